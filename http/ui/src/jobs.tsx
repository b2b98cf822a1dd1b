// The job list: one page of jobs (by name) with status, schedule in words, last and next run,
// success rate, and the actions the role allows; fetched once per navigation (filter, search,
// page) and kept current by the events. Also used on the overview when a card filters it.
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, Job } from "./api";
import { percent } from "./fmt";
import { describeSchedule, t } from "./i18n";
import { navigate } from "./router";
import { can, FAILED, set, state, useStore } from "./store";
import { Dialog, jobStatus, LastRunCell, StatusBadge, Time } from "./ui";

export type JobFilter = "" | "running" | "queued" | "succeeded" | "failed";

/** The status= of GET /api/jobs that selects a filter's jobs. */
const STATUS_OF: Record<JobFilter, string> = {
  "": "", running: "RUNNING", queued: "QUEUED", succeeded: "SUCCESS", failed: FAILED.join(","),
};
export const JOB_PAGE = 50;

export function matches(j: Job, f: JobFilter): boolean {
  const s = jobStatus(j);
  if (f === "running") return j.running > 0;
  if (f === "queued") return j.queued > 0;
  if (f === "succeeded") return s === "SUCCESS";
  if (f === "failed") return FAILED.includes(s);
  return true;
}

export function RunNowButton({ job }: { job: Job }) {
  const [open, setOpen] = useState(false);
  const [msg, setMsg] = useState("");
  const allowed = can("trigger") && job.action.type !== "ping"; // a monitored job runs elsewhere
  if (!allowed) return null;
  const go = async () => {
    setOpen(false);
    try {
      const r = await api.trigger(job.name);
      setMsg(t("started", { id: r.run_id }));
    } catch (e) {
      setMsg((e as ApiError).message);
    }
  };
  return (
    <>
      <button type="button" class="primary" onClick={() => setOpen(true)}
        aria-label={`${t("runNow")}: ${job.title ?? job.name}`} data-action="run-now">
        ▶ {t("runNow")}
      </button>
      {msg && <span class="toast" role="status">{msg}</span>}
      <Dialog open={open} title={t("confirmRun", { job: job.title ?? job.name })} confirmLabel={t("confirm")}
        onConfirm={go} onCancel={() => setOpen(false)}>
        <p>{t("confirmRunBody")}</p>
        {!job.enabled && <p data-role="disabled-note"><strong>{t("confirmRunDisabled")}</strong></p>}
      </Dialog>
    </>
  );
}

/** A monitored job (ping:): a "ping" tag with the URL it reports to (never its key). */
export function PingBadge({ job }: { job: Job }) {
  if (job.action.type !== "ping" || !job.action.ping_url) return null;
  const url = `${location.origin}${job.action.ping_url}`;
  return (
    <span class="tag" data-role="ping" title={`${t("pingHelp")}: POST ${url}`}>
      {t("ping")} <code class="small">{job.action.ping_url}</code>
    </span>
  );
}

export function EnableToggle({ job }: { job: Job }) {
  const [err, setErr] = useState("");
  const allowed = can("trigger") && !job.locked;
  const toggle = async () => {
    try {
      await api.setEnabled(job.name, !job.enabled);
      setErr("");
    } catch (e) {
      setErr((e as ApiError).message);
    }
  };
  return (
    <label class="switch" title={job.locked ? t("lockedReason") : !can("trigger") ? t("roleNoRun", { role: state.role || "?" }) : undefined}>
      <input type="checkbox" role="switch" checked={job.enabled} disabled={!allowed} onChange={toggle}
        aria-label={`${t("enabled")}: ${job.title ?? job.name}`} />
      <span>{job.enabled ? t("enabled") : t("disabled")}</span>
      {err && <span class="error-text" role="alert">{err}</span>}
    </label>
  );
}

export function JobRow({ job }: { job: Job }) {
  const href = `/jobs/${encodeURIComponent(job.name)}`;
  return (
    <tr data-job={job.name} class={job.enabled ? "" : "is-disabled"}>
      <td data-label={t("status")}><StatusBadge status={jobStatus(job)} runId={job.last_run?.id} /></td>
      <td data-label={t("job")}>
        <a href={href} class="job-title">{job.title ?? job.name}</a>
        {job.locked && <span class="tag" title={t("lockedReason")} data-role="locked">{t("locked")}</span>}
        <PingBadge job={job} />
        {job.description && <div class="muted small">{job.description}</div>}
        {job.last_run?.error && FAILED.includes(job.last_run.status) && (
          <div class="error-text small" data-role="last-error">{job.last_run.error}</div>
        )}
      </td>
      <td data-label={t("schedule")}>
        <div>{describeSchedule(job.schedule, job.overridden.includes("schedule") ? null : job.schedule_human)}</div>
        <code class="small">{job.schedule}</code>
        {job.timezone && job.timezone !== "UTC" && <span class="muted small" data-role="job-tz"> {job.timezone}</span>}
      </td>
      <td data-label={t("lastRun")}><LastRunCell r={job.last_run} /></td>
      <td data-label={t("nextRun")}>{job.enabled ? <Time iso={job.next_fire} /> : <span class="muted">{t("disabled")}</span>}</td>
      <td data-label={t("successRate")}>{job.stats && job.stats.runs > 0 ? percent(job.stats.success_rate) : "—"}</td>
      <td data-label={t("actions")} data-role="actions-cell">
        {/* flex inside the cell, not on it: a flex td is no table cell, and its border misaligns */}
        <div class="actions"><RunNowButton job={job} /><EnableToggle job={job} /></div>
      </td>
    </tr>
  );
}

export function JobTable({ filter, q = "" }: { filter: JobFilter; q?: string }) {
  const s = useStore();
  const [page, setPage] = useState(0);
  const [cursors, setCursors] = useState<(string | null)[]>([null]); // cursor of each page
  const [err, setErr] = useState("");
  useEffect(() => { setPage(0); setCursors([null]); }, [filter, q]);
  useEffect(() => {
    let gone = false;
    api.jobs({ status: STATUS_OF[filter], q, limit: JOB_PAGE, cursor: cursors[page] })
      .then((r) => {
        if (gone) return;
        set({ jobs: r.jobs, total: r.total, nextCursor: r.next_cursor });
        setErr("");
        setCursors((c) => { const n = c.slice(0, page + 1); if (r.next_cursor) n.push(r.next_cursor); return n; });
      })
      .catch((e: ApiError) => !gone && setErr(e.message));
    return () => { gone = true; };
  }, [filter, q, page, cursors[page], s.gen]);
  // A row whose job no longer fits the filter leaves at once; one that came to fit shows on the
  // next navigation.
  const jobs = s.jobs.filter((j) => matches(j, filter));
  return (
    <>
      {err && <p class="error-text" role="alert">{err}</p>}
      <table class="jobs">
        <thead>
          <tr>
            <th scope="col">{t("status")}</th><th scope="col">{t("job")}</th><th scope="col">{t("schedule")}</th>
            <th scope="col">{t("lastRun")}</th><th scope="col">{t("nextRun")}</th>
            <th scope="col">{t("successRate")}</th><th scope="col">{t("actions")}</th>
          </tr>
        </thead>
        <tbody>{jobs.map((j) => <JobRow key={j.name} job={j} />)}</tbody>
      </table>
      {jobs.length === 0 && <p class="muted">{t("noJobs")}</p>}
      <nav class="row pager" aria-label={t("jobs")}>
        <button type="button" disabled={page === 0} onClick={() => setPage(page - 1)}>← {t("prev")}</button>
        <span>{t("page", { n: page + 1 })} · <span data-role="job-count">{t("jobCount", { n: s.total })}</span></span>
        <button type="button" disabled={cursors.length <= page + 1} onClick={() => setPage(page + 1)}>{t("next")} →</button>
      </nav>
    </>
  );
}

export function JobsPage({ filter }: { filter: JobFilter }) {
  const [text, setText] = useState("");
  const [q, setQ] = useState("");
  return (
    <section aria-labelledby="jobs-h">
      <div class="row between">
        <h1 id="jobs-h">{t("jobs")}</h1>
        <form role="search" onSubmit={(e) => { e.preventDefault(); setQ(text.trim()); }}>
          <label>
            {t("search")}{" "}
            <input type="search" value={text} data-role="job-search"
              onInput={(e) => setText((e.target as HTMLInputElement).value)} />
          </label>
        </form>
        <label>
          {t("filter")}{" "}
          <select value={filter} onChange={(e) => {
            const v = (e.target as HTMLSelectElement).value;
            navigate(v ? `/jobs?filter=${v}` : "/jobs");
          }}>
            <option value="">{t("all")}</option>
            <option value="running">{t("runningNow")}</option>
            <option value="queued">{t("queued")}</option>
            <option value="succeeded">{t("st_SUCCESS")}</option>
            <option value="failed">{t("st_FAILED")}</option>
          </select>
        </label>
      </div>
      <JobTable filter={filter} q={q} />
    </section>
  );
}
