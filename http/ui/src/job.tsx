// Job detail: header with actions, run history (filters, pages) kept current by run events,
// the duration chart, the schedule editor, consecutive failures, and audit entries.
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, AuditEntry, Run } from "./api";
import { RunChart } from "./chart";
import { duration, percent } from "./fmt";
import { describeSchedule, Key, t } from "./i18n";
import { EnableToggle, PingBadge, RunNowButton } from "./jobs";
import { ScheduleEditor } from "./schedule";
import { isRunEvent } from "./live";
import { showJob, useEvents, useStore } from "./store";
import { jobStatus, StatusBadge, Time } from "./ui";

const PAGE = 20;
const STATUSES = ["SUCCESS", "PARTIAL", "FAILED", "TIMED_OUT", "CANCELLED", "ABANDONED", "RUNNING", "QUEUED", "SKIPPED"];

function RunHistory({ job }: { job: string }) {
  const s = useStore();
  const [status, setStatus] = useState("");
  const [trigger, setTrigger] = useState("");
  const [page, setPage] = useState(0);
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]); // cursor of each page
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [err, setErr] = useState("");
  const [chartRuns, setChartRuns] = useState<Run[]>([]);

  useEffect(() => {
    let gone = false;
    api.runs({ job, status, trigger, limit: PAGE, cursor: cursors[page] })
      .then((r) => {
        if (gone) return;
        setRuns(r.runs);
        setErr("");
        setCursors((c) => { const n = c.slice(0, page + 1); if (r.next_cursor) n.push(r.next_cursor); return n; });
      })
      .catch((e: ApiError) => !gone && setErr(e.message));
    return () => { gone = true; };
  }, [job, status, trigger, page, s.loaded]);
  useEffect(() => {
    api.runs({ job, limit: 200 }).then((r) => setChartRuns(r.runs)).catch(() => {});
  }, [job, s.loaded]);

  // Run events update the rows in place; a new run appears at the top of the first page.
  useEvents((ev) => {
    if (!isRunEvent(ev) || ev.run.job !== job) return;
    const run: Run = ev.run;
    const fits = (!status || status === run.status) && (!trigger || run.trigger === trigger);
    const merge = (list: Run[] | null, limit: number): Run[] | null => {
      if (!list) return list;
      const i = list.findIndex((r) => r.id === run.id);
      if (i >= 0) return fits ? list.map((r) => (r.id === run.id ? { ...r, ...run } : r)) : list.filter((r) => r.id !== run.id);
      return fits && page === 0 ? [run, ...list].slice(0, limit) : list;
    };
    setRuns((l) => merge(l, PAGE));
    if (ev.type === "run.finished") setChartRuns((l) => merge(l, 200) ?? []);
  }, [job, status, trigger, page]);

  const triggers = Array.from(new Set(["cron", "retry", "catch_up", "reboot", s.name ? `api:${s.name}` : "", trigger,
    ...(runs ?? []).map((r) => r.trigger)].filter(Boolean)));
  const filterBy = (f: (v: string) => void) => (e: Event) => {
    f((e.target as HTMLSelectElement).value);
    setPage(0);
    setCursors([undefined]);
  };
  return (
    <section aria-labelledby="hist-h">
      <h2 id="hist-h">{t("runHistory")}</h2>
      <RunChart runs={chartRuns} />
      <div class="row filters">
        <label>{t("status")}{" "}
          <select value={status} onChange={filterBy(setStatus)} data-filter="status">
            <option value="">{t("all")}</option>
            {STATUSES.map((x) => <option key={x} value={x}>{t(`st_${x}` as Key)}</option>)}
          </select>
        </label>
        <label>{t("trigger")}{" "}
          <select value={trigger} onChange={filterBy(setTrigger)} data-filter="trigger">
            <option value="">{t("all")}</option>
            {triggers.map((x) => <option key={x} value={x}>{x}</option>)}
          </select>
        </label>
      </div>
      {err && <p class="error-text" role="alert">{err}</p>}
      {runs && runs.length === 0 && <p class="muted">{t("noRuns")}</p>}
      {runs && runs.length > 0 && (
        <table class="runs">
          <thead><tr>
            <th scope="col">#</th><th scope="col">{t("status")}</th><th scope="col">{t("trigger")}</th>
            <th scope="col">{t("started_")}</th><th scope="col">{t("duration")}</th>
            <th scope="col">{t("items")}</th><th scope="col">{t("attempt")}</th>
          </tr></thead>
          <tbody>
            {runs.map((r) => (
              <tr key={r.id} data-run={r.id}>
                <td data-label="#"><a href={`/runs/${r.id}`}>#{r.id}</a></td>
                <td data-label={t("status")}><StatusBadge status={r.status} /></td>
                <td data-label={t("trigger")}>{r.trigger}</td>
                <td data-label={t("started_")}><Time iso={r.started_at ?? r.queued_at} /></td>
                <td data-label={t("duration")}>{r.status === "RUNNING" ? "…" : duration(r.duration_ms)}</td>
                <td data-label={t("items")}>{r.items_processed}{r.items_failed > 0 && <span class="warn-text"> / {r.items_failed} {t("failedItems")}</span>}</td>
                <td data-label={t("attempt")}>{r.attempt}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <nav class="row pager" aria-label={t("runHistory")}>
        <button type="button" disabled={page === 0} onClick={() => setPage(page - 1)}>← {t("prev")}</button>
        <span>{t("page", { n: page + 1 })}</span>
        <button type="button" disabled={cursors.length <= page + 1} onClick={() => setPage(page + 1)}>{t("next")} →</button>
      </nav>
    </section>
  );
}

/** The job's audit entries, read once per visit (not on events: no event carries audit). */
function Audit({ job }: { job: string }) {
  const s = useStore();
  const [entries, setEntries] = useState<AuditEntry[] | null>(null);
  useEffect(() => {
    api.audit(job).then(setEntries).catch(() => setEntries(null));
  }, [job, s.gen]);
  if (entries === null) return null;
  return (
    <section aria-labelledby="audit-h">
      <h2 id="audit-h">{t("audit")}</h2>
      {entries.length === 0 ? <p class="muted">{t("noAudit")}</p> : (
        <table class="audit">
          <thead><tr><th scope="col">{t("when")}</th><th scope="col">{t("who")}</th><th scope="col">{t("what")}</th><th scope="col"></th></tr></thead>
          <tbody>{entries.map((e, i) => (
            <tr key={e.id ?? i}>
              <td><Time iso={e.at} /></td><td>{e.actor}</td><td>{e.action}</td>
              <td class="mono small">{e.before !== null && e.before !== undefined ? `${JSON.stringify(e.before)} → ` : ""}{JSON.stringify(e.after ?? null)}</td>
            </tr>
          ))}</tbody>
        </table>
      )}
    </section>
  );
}

export function JobDetail({ name }: { name: string }) {
  const s = useStore();
  const [missing, setMissing] = useState(false);
  // Read once per visit (and after a resync); events keep it current from then on.
  useEffect(() => {
    setMissing(false);
    api.job(name).then(showJob).catch((e: ApiError) => setMissing(e.status === 404));
  }, [name, s.gen]);
  const job = s.jobs.find((j) => j.name === name);
  if (!s.loaded || (!job && !missing)) return <p>{t("loading")}</p>;
  if (!job) return <p>{t("notFound")}</p>;
  return (
    <>
      <p><a href="/jobs">← {t("jobs")}</a></p>
      <header class="job-head" data-job={job.name}>
        <div>
          <h1>{job.title ?? job.name} <StatusBadge status={jobStatus(job)} /> <PingBadge job={job} /></h1>
          {job.description && <p class="muted">{job.description}</p>}
          <p>{describeSchedule(job.schedule, job.overridden.includes("schedule") ? null : job.schedule_human)} <code>{job.schedule}</code> · {t("nextRun")}: <Time iso={job.enabled ? job.next_fire : null} /></p>
        </div>
        <div class="actions"><RunNowButton job={job} /><EnableToggle job={job} /></div>
      </header>
      <dl class="facts">
        <div><dt>{t("successRate")}</dt><dd>{job.stats?.runs ? percent(job.stats.success_rate) : "—"}</dd></div>
        <div><dt>{t("consecutiveFailures")}</dt><dd data-role="consecutive-failures" class={job.stats?.consecutive_failures ? "error-text" : ""}>{job.stats?.consecutive_failures ?? 0}</dd></div>
        <div><dt>{t("duration")} (p95)</dt><dd>{job.stats?.runs ? duration(job.stats.p95_duration_ms) : "—"}</dd></div>
        <div><dt>{t("timezone")}</dt><dd>{job.timezone || "UTC"}</dd></div>
      </dl>
      <ScheduleEditor job={job} />
      <RunHistory job={job.name} />
      <Audit job={job.name} />
    </>
  );
}
