// Job detail: header with actions, run history (filters, pages) kept current by run events,
// the duration chart, the schedule editor, consecutive failures, and audit entries. Times are in
// the job's zone or the viewer's, as the zone switch says (zoneview.tsx).
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, AuditEntry, Run } from "./api";
import { RunChart } from "./chart";
import { duration, num, percent } from "./fmt";
import { describeSchedule, Key, t } from "./i18n";
import { EnableToggle, PingBadge, RunNowButton } from "./jobs";
import { ScheduleEditor } from "./schedule";
import { isRunEvent } from "./live";
import { FAILED, showJob, useEvents, useStore } from "./store";
import { jobStatus, StatusBadge, Time } from "./ui";
import { useZoneView, viewerZone, ZoneTime, ZoneViewToggle } from "./zoneview";

const PAGE = 20;

/** The first line of a run's error (the history shows no more). */
const firstLine = (e: string | null | undefined) => (e ?? "").split("\n", 1)[0].trim();

type Last = { success: Run | null; failure: Run | null };

/** Last success and last failure: read once per visit, then moved by run.finished events. */
function useLastOutcomes(job: string): Last | null {
  const s = useStore();
  const [last, setLast] = useState<Last | null>(null);
  useEffect(() => {
    let gone = false;
    setLast(null);
    Promise.all([api.runs({ job, status: "SUCCESS", limit: 1 }), api.runs({ job, status: FAILED.join(","), limit: 1 })])
      .then(([ok, bad]) => !gone && setLast({ success: ok.runs[0] ?? null, failure: bad.runs[0] ?? null }))
      .catch(() => !gone && setLast(null));
    return () => { gone = true; };
  }, [job, s.gen]);
  useEvents((ev) => {
    if (ev.type !== "run.finished" || ev.run.job !== job) return;
    const r = ev.run;
    const newer = (cur: Run | null) => !cur || r.id >= cur.id;
    setLast((l) => {
      if (!l) return l;
      if (r.status === "SUCCESS" && newer(l.success)) return { ...l, success: r };
      if (FAILED.includes(r.status) && newer(l.failure)) return { ...l, failure: r };
      return l;
    });
  }, [job]);
  return last;
}
const STATUSES = ["SUCCESS", "PARTIAL", "FAILED", "TIMED_OUT", "CANCELLED", "ABANDONED", "RUNNING", "QUEUED", "SKIPPED"];

function RunHistory({ job, tz }: { job: string; tz: string }) {
  const s = useStore();
  const [status, setStatus] = useState("");
  const [trigger, setTrigger] = useState("");
  const [page, setPage] = useState(0);
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]); // cursor of each page
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [err, setErr] = useState("");
  const [chartRuns, setChartRuns] = useState<Run[]>([]);
  const view = useZoneView();

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
      <RunChart runs={chartRuns} tz={view === "viewer" ? viewerZone() : tz} />
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
                <td data-label={t("status")}><StatusBadge status={r.status} />
                  {firstLine(r.error) && <div class="error-line small" data-role="run-error-line" title={r.error ?? ""}>{firstLine(r.error)}</div>}</td>
                <td data-label={t("trigger")}>{r.trigger}</td>
                <td data-label={t("started_")}><ZoneTime iso={r.started_at ?? r.queued_at} tz={tz} /></td>
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
  const last = useLastOutcomes(name);
  if (!s.loaded || (!job && !missing)) return <p>{t("loading")}</p>;
  if (!job) return <p>{t("notFound")}</p>;
  const tz = job.timezone || "UTC";
  const st = job.stats;
  return (
    <>
      <p><a href="/jobs">← {t("jobs")}</a></p>
      <header class="job-head" data-job={job.name}>
        <div>
          <h1>{job.title ?? job.name} <StatusBadge status={jobStatus(job)} /> <PingBadge job={job} /></h1>
          {job.description && <p class="muted">{job.description}</p>}
          <p>{describeSchedule(job.schedule, job.overridden.includes("schedule") ? null : job.schedule_human)} <code>{job.schedule}</code> · {t("nextRun")}: <ZoneTime iso={job.enabled ? job.next_fire : null} tz={tz} /></p>
        </div>
        <div class="actions"><RunNowButton job={job} /><EnableToggle job={job} /></div>
      </header>
      <ZoneViewToggle tz={tz} />
      <dl class="facts" data-role="job-stats">
        <div><dt>{t("successRate")}</dt><dd data-stat="success-rate">{st?.runs ? percent(st.success_rate) : "—"}</dd></div>
        <div><dt>{t("runsInHistory")}</dt><dd data-stat="runs">{num(st?.runs ?? 0)}</dd></div>
        <div><dt>{t("st_SUCCESS")}</dt><dd data-stat="successes">{num(st?.successes ?? 0)}</dd></div>
        <div><dt>{t("st_PARTIAL")}</dt><dd data-stat="partials">{num(st?.partials ?? 0)}</dd></div>
        <div><dt>{t("st_FAILED")}</dt><dd data-stat="failures" class={st?.failures ? "error-text" : ""}>{num(st?.failures ?? 0)}</dd></div>
        <div><dt>{t("consecutiveFailures")}</dt><dd data-role="consecutive-failures" class={st?.consecutive_failures ? "error-text" : ""}>{st?.consecutive_failures ?? 0}</dd></div>
        <div><dt>{t("avgDuration")}</dt><dd data-stat="avg-duration">{st?.duration_samples ? duration(Math.round(st.avg_duration_ms)) : "—"}</dd></div>
        <div><dt>{t("duration")} (p95)</dt><dd data-stat="p95-duration">{st?.duration_samples ? duration(st.p95_duration_ms) : "—"}</dd></div>
        <div><dt>{t("lastSuccess")}</dt><dd data-stat="last-success">{last?.success
          ? <a href={`/runs/${last.success.id}`}><ZoneTime iso={last.success.started_at ?? last.success.queued_at} tz={tz} /></a> : "—"}</dd></div>
        <div><dt>{t("lastFailure")}</dt><dd data-stat="last-failure">{last?.failure
          ? <a href={`/runs/${last.failure.id}`}><ZoneTime iso={last.failure.started_at ?? last.failure.queued_at} tz={tz} /></a> : "—"}</dd></div>
        <div><dt>{t("timezone")}</dt><dd data-stat="timezone">{tz}</dd></div>
      </dl>
      <ScheduleEditor job={job} />
      <RunHistory job={job.name} tz={tz} />
      <Audit job={job.name} />
    </>
  );
}
