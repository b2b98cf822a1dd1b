// The Runs page: every run across jobs, newest first, with filters for job, status, trigger and
// a date range. The filter and the page (a keyset cursor) live in the URL, so a view can be
// shared and the back button walks through earlier filters and pages. A page is fetched once per
// navigation; run events then update its rows in place and put new fitting runs at the top of
// the first page: an event never costs a request.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, Run } from "./api";
import { duration } from "./fmt";
import { Key, t } from "./i18n";
import { isRunEvent } from "./live";
import { navigate } from "./router";
import { useEvents, useStore } from "./store";
import { StatusBadge, Time } from "./ui";

export const RUNS_PAGE = 50;
/** Rows the first page may grow to with live runs before the oldest leave it. */
const LIVE_MAX = 500;
const STATUSES = ["SUCCESS", "PARTIAL", "FAILED", "TIMED_OUT", "CANCELLED", "ABANDONED", "RUNNING", "QUEUED", "SKIPPED"];
/** The statuses the overview's Failed card counts (as GET /api/summary does). */
export const FAILED_CARD = "FAILED,TIMED_OUT";
const TRIGGERS = ["cron", "retry", "catch_up", "reboot", "ping"];

/** The Runs page's state in its URL: every field optional ("" = no filter). */
export interface RunQuery {
  job: string;
  status: string; // a comma list of statuses
  trigger: string;
  since: string; // RFC 3339
  until: string;
  cursor: string;
  limit: string; // rows a page (1 to 500; default RUNS_PAGE)
}
const FIELDS: (keyof RunQuery)[] = ["job", "status", "trigger", "since", "until", "limit", "cursor"];

export function runQueryOf(u: URL): RunQuery {
  const q = {} as RunQuery;
  for (const k of FIELDS) q[k] = u.searchParams.get(k) ?? "";
  return q;
}

/** The URL of the Runs page showing q (fields in a fixed order, empty ones left out). */
export function runsUrl(q: Partial<RunQuery>): string {
  const p = new URLSearchParams();
  for (const k of FIELDS) if (q[k]) p.set(k, q[k]!);
  const s = p.toString();
  return s ? `/runs?${s}` : "/runs";
}

/** Whether run belongs in the list q selects (the server's rules: the range is on started_at). */
export function fits(run: Run, q: RunQuery): boolean {
  if (q.job && run.job !== q.job) return false;
  if (q.status && !q.status.split(",").includes(run.status)) return false;
  if (q.trigger && run.trigger !== q.trigger) return false;
  if (q.since || q.until) {
    const at = run.started_at ? Date.parse(run.started_at) : NaN;
    if (isNaN(at)) return false;
    if (q.since && at < Date.parse(q.since)) return false;
    if (q.until && at >= Date.parse(q.until)) return false;
  }
  return true;
}

/** A datetime-local value (the viewer's zone) from an RFC 3339 time, and back. */
function toLocalInput(iso: string): string {
  const d = new Date(iso);
  if (isNaN(d.getTime())) return "";
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
function fromLocalInput(v: string): string {
  const d = new Date(v);
  return v && !isNaN(d.getTime()) ? isoSeconds(d.getTime()) : "";
}

/** RFC 3339 in UTC to the second (what the API takes). */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The Runs page of the last 24 hours' runs of these statuses (the overview's cards). */
export function last24Url(status: string): string {
  return runsUrl({ status, since: isoSeconds(Date.now() - 24 * 3600e3) });
}

/** The cursor of the page before each page seen (for "Newer"); a shared link starts afresh. */
const newerOf = new Map<string, string>();

const SUGGESTED_JOBS = 20;

/** Names of jobs matching what is typed in the job filter: a small page, asked as one types
 * (never the whole list of jobs). */
function useJobSuggestions(): [string[], (typed: string) => void] {
  const [names, setNames] = useState<string[]>([]);
  const timer = useRef<number | undefined>(undefined);
  const asked = useRef<string | null>(null);
  useEffect(() => () => window.clearTimeout(timer.current), []);
  const ask = (typed: string) => {
    if (typed === asked.current) return;
    asked.current = typed;
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(() => {
      api.jobs({ q: typed, limit: SUGGESTED_JOBS })
        .then((r) => asked.current === typed && setNames(r.jobs.map((j) => j.name)))
        .catch(() => undefined);
    }, 150);
  };
  return [names, ask];
}

function RunFilters({ q, triggers }: { q: RunQuery; triggers: string[] }) {
  const [jobs, suggest] = useJobSuggestions();
  const go = (p: Partial<RunQuery>) => navigate(runsUrl({ ...q, ...p, cursor: "" }));
  const text = (k: "job" | "trigger") => (e: Event) => go({ [k]: (e.target as HTMLInputElement).value.trim() });
  const time = (k: "since" | "until") => (e: Event) => go({ [k]: fromLocalInput((e.target as HTMLInputElement).value) });
  const statuses = STATUSES.includes(q.status) || !q.status || q.status === FAILED_CARD ? STATUSES : [q.status, ...STATUSES];
  const any = FIELDS.some((k) => k !== "cursor" && k !== "limit" && q[k]);
  return (
    // The text and date inputs are uncontrolled (defaultValue, remounted by key when the URL
    // changes): a live run event re-rendering the page must not wipe what is being typed.
    <form class="row filters" data-role="run-filters" onSubmit={(e) => e.preventDefault()} aria-label={t("filter")}>
      <label>{t("job")}{" "}
        <input list="runs-jobs" key={`job:${q.job}`} defaultValue={q.job} data-filter="job" onChange={text("job")} size={14}
          onFocus={(e) => suggest((e.target as HTMLInputElement).value.trim())}
          onInput={(e) => suggest((e.target as HTMLInputElement).value.trim())} />
        <datalist id="runs-jobs">{jobs.map((j) => <option key={j} value={j} />)}</datalist>
      </label>
      <label>{t("status")}{" "}
        <select value={q.status} data-filter="status" onChange={(e) => go({ status: (e.target as HTMLSelectElement).value })}>
          <option value="">{t("all")}</option>
          <option value={FAILED_CARD}>{t("anyFailure")}</option>
          {statuses.map((x) => <option key={x} value={x}>{STATUSES.includes(x) ? t(`st_${x}` as Key) : x}</option>)}
        </select>
      </label>
      <label>{t("trigger")}{" "}
        <input list="runs-triggers" key={`trigger:${q.trigger}`} defaultValue={q.trigger} data-filter="trigger" onChange={text("trigger")} size={10} />
        <datalist id="runs-triggers">{triggers.map((x) => <option key={x} value={x} />)}</datalist>
      </label>
      <label>{t("from")}{" "}
        <input type="datetime-local" key={`since:${q.since}`} defaultValue={toLocalInput(q.since)} data-filter="since" onChange={time("since")} />
      </label>
      <label>{t("to")}{" "}
        <input type="datetime-local" key={`until:${q.until}`} defaultValue={toLocalInput(q.until)} data-filter="until" onChange={time("until")} />
      </label>
      {any && <a href="/runs" data-role="clear-run-filters">{t("clearFilters")}</a>}
    </form>
  );
}

export function RunsPage({ url }: { url: URL }) {
  const s = useStore();
  const q = runQueryOf(url);
  const key = runsUrl(q);
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [err, setErr] = useState("");
  useEffect(() => {
    let gone = false;
    setErr("");
    api.allRuns({ job: q.job, status: q.status, trigger: q.trigger, since: q.since, until: q.until, cursor: q.cursor,
      limit: Math.min(500, Math.max(1, Number(q.limit) || RUNS_PAGE)) })
      .then((r) => {
        if (gone) return;
        setRuns(r.runs);
        setNext(r.next_cursor);
        if (r.next_cursor) {
          if (newerOf.size >= 1000) newerOf.clear(); // a long session starts "Newer" afresh
          newerOf.set(r.next_cursor, q.cursor);
        }
      })
      .catch((e: ApiError) => {
        if (gone) return;
        setRuns(null); // no rows for the events to join
        setNext(null);
        setErr(e.message);
      });
    return () => { gone = true; };
  }, [key, s.gen]);

  // A known row follows its run (and leaves when it no longer fits); a new fitting run newer
  // than the page's oldest row joins the first page in id order.
  useEvents((ev) => {
    if (!isRunEvent(ev)) return;
    const run: Run = ev.run;
    const ok = fits(run, q);
    setRuns((list) => {
      if (!list) return list;
      const i = list.findIndex((r) => r.id === run.id);
      if (i >= 0) return ok ? list.map((r) => (r.id === run.id ? { ...r, ...run } : r)) : list.filter((r) => r.id !== run.id);
      if (!ok || q.cursor || (list.length > 0 && next && run.id < list[list.length - 1].id)) return list;
      const n = [...list, run].sort((a, b) => b.id - a.id);
      return n.length > LIVE_MAX ? n.slice(0, LIVE_MAX) : n;
    });
  }, [key, next]);

  const newer = q.cursor ? runsUrl({ ...q, cursor: newerOf.get(q.cursor) ?? "" }) : null;
  return (
    <section aria-labelledby="runs-h">
      <h1 id="runs-h">{t("runs")}</h1>
      <RunFilters q={q} triggers={Array.from(new Set([...TRIGGERS, s.name ? `api:${s.name}` : "",
        ...(runs ?? []).map((r) => r.trigger)].filter(Boolean)))} />
      {err && <p class="error-text" role="alert">{err}</p>}
      {runs && runs.length === 0 && !err && <p class="muted" data-role="no-runs">{t("noRunsMatch")}</p>}
      {runs && runs.length > 0 && (
        <table class="runs" data-role="all-runs">
          <thead><tr>
            <th scope="col">#</th><th scope="col">{t("job")}</th><th scope="col">{t("status")}</th>
            <th scope="col">{t("trigger")}</th><th scope="col">{t("started_")}</th>
            <th scope="col">{t("duration")}</th><th scope="col">{t("items")}</th>
          </tr></thead>
          <tbody>
            {runs.map((r) => (
              <tr key={r.id} data-run={r.id} data-run-job={r.job}>
                <td data-label="#"><a href={`/runs/${r.id}`}>#{r.id}</a></td>
                <td data-label={t("job")}>
                  <a href={`/jobs/${encodeURIComponent(r.job)}`}>{r.job}</a>
                  {r.error && <div class="error-text small" data-role="run-error">{r.error.split("\n")[0]}</div>}
                </td>
                <td data-label={t("status")}><StatusBadge status={r.status} /></td>
                <td data-label={t("trigger")}>{r.trigger}</td>
                <td data-label={t("started_")}><Time iso={r.started_at ?? r.queued_at} /></td>
                <td data-label={t("duration")}>{r.status === "RUNNING" ? "…" : duration(r.duration_ms)}</td>
                <td data-label={t("items")}>{r.items_processed}{r.items_failed > 0 && <span class="warn-text"> / {r.items_failed} {t("failedItems")}</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <nav class="row pager" aria-label={t("runs")}>
        {newer !== null ? <a href={newer} data-role="newer">← {t("newer")}</a> : <span class="muted">← {t("newer")}</span>}
        {q.cursor && <a href={runsUrl({ ...q, cursor: "" })} data-role="newest">{t("newest")}</a>}
        {next ? <a href={runsUrl({ ...q, cursor: next })} data-role="older">{t("older")} →</a> : <span class="muted">{t("older")} →</span>}
      </nav>
    </section>
  );
}
