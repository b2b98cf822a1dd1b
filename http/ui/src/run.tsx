// Run detail: every recorded field and the output, followed live (topic run:<id>) while the
// run is going; the final record replaces it when run.finished arrives.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, ChainLink, Run, RunFull } from "./api";
import { absTime, clockTime, duration, kib } from "./fmt";
import { Key, t } from "./i18n";
import { isRunEvent } from "./live";
import { can, live, useEvents, useStore } from "./store";
import { Dialog, StatusBadge } from "./ui";

/** A live output line with the time the daemon read it. */
type Line = { ts: string; line: string; stream: string };
/** One attempt of a run that retries: the first run (attempt 1) and the runs retrying it. */
type Attempt = { id: number; attempt: number; status?: Run["status"] };

/** The retry chain a run belongs to: its first attempt's id (retry_of of every retry). */
const rootOf = (r: Run) => r.retry_of || r.id;

/** The result summary as a key/value table when it is an object; anything else as text. */
function SummaryView({ summary }: { summary: unknown }) {
  if (summary && typeof summary === "object" && !Array.isArray(summary)) {
    const entries = Object.entries(summary as Record<string, unknown>);
    return (
      <table class="kv" data-role="summary">
        <tbody>{entries.map(([k, v]) => (
          <tr key={k}><th scope="row">{k}</th>
            <td class={typeof v === "object" && v !== null ? "mono small" : ""}>{typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)}</td></tr>
        ))}</tbody>
      </table>
    );
  }
  return <pre class="mono small" data-role="summary">{typeof summary === "string" ? summary : JSON.stringify(summary, null, 2)}</pre>;
}

/** Cancel (operator and up, after a confirm) while the run is queued or running. */
function CancelButton({ run }: { run: Run }) {
  const [open, setOpen] = useState(false);
  const [msg, setMsg] = useState("");
  if (!can("trigger")) return null;
  const go = async () => {
    setOpen(false);
    try {
      await api.cancel(run.id);
      setMsg(t("cancelRequested"));
    } catch (e) {
      setMsg((e as ApiError).message);
    }
  };
  return (
    <>
      <button type="button" class="danger" data-action="cancel-run" onClick={() => setOpen(true)}>■ {t("cancelRun")}</button>
      {msg && <span class="toast" role="status" data-role="cancel-msg">{msg}</span>}
      <Dialog open={open} title={t("confirmCancel", { id: run.id, job: run.job })} confirmLabel={t("cancelRun")}
        onConfirm={go} onCancel={() => setOpen(false)}>
        <p>{t("confirmCancelBody")}</p>
      </Dialog>
    </>
  );
}

export function RunDetail({ id }: { id: number }) {
  const s = useStore();
  const [run, setRun] = useState<Run | null>(null);
  const [err, setErr] = useState("");
  // the chain links of the latest full record (run events do not carry them)
  const [links, setLinks] = useState<Pick<RunFull, "chained_from" | "chained">>({ chained_from: null, chained: [] });
  const [lines, setLines] = useState<Line[]>([]);
  const [attempts, setAttempts] = useState<Attempt[]>([]);
  const pre = useRef<HTMLPreElement>(null);
  const active = run?.status === "RUNNING" || run?.status === "QUEUED";

  const loads = useRef(0);
  const load = () => {
    const my = ++loads.current; // only the latest answer counts (answers may cross)
    api.run(id).then((r) => {
      if (my !== loads.current) return;
      setRun(r);
      setLinks({ chained_from: r.chained_from ?? null, chained: r.chained ?? [] });
      setLines([]);
      setErr("");
      // The attempts of a retried run: read once per load, kept current by run events.
      const root = rootOf(r);
      if (r.retry_of || r.attempt > 1 || r.status !== "SUCCESS") {
        api.runs({ job: r.job, trigger: "retry", limit: 100 }).then((p) => {
          if (my !== loads.current) return;
          const mine = p.runs.filter((x) => x.retry_of === root);
          const list: Attempt[] = mine.map(({ id, attempt, status }) => ({ id, attempt, status }));
          if (root === r.id) list.push({ id: r.id, attempt: r.attempt, status: r.status });
          else if (!list.some((x) => x.id === root)) list.push({ id: root, attempt: 1 });
          if (!list.some((x) => x.id === r.id)) list.push({ id: r.id, attempt: r.attempt, status: r.status });
          setAttempts(list.length > 1 ? list.sort((a, b) => a.id - b.id) : []);
        }).catch(() => setAttempts([]));
      } else setAttempts([]);
    }).catch((e: ApiError) => my === loads.current && setErr(e.message));
  };
  useEffect(() => { load(); }, [id, s.loaded, s.gen]);

  // Follow the output while the run is active.
  useEffect(() => {
    if (!active || !live) return;
    return live.subscribe(`run:${id}`, (ev) => {
      setLines((l) => l.concat({ ts: ev.ts ?? "", line: ev.line ?? "", stream: ev.stream }));
    });
  }, [id, active, s.conn]);

  // Status changes arrive as run events.
  useEvents((ev) => {
    if (!isRunEvent(ev)) return;
    // a retry of this chain appears (or moves on) in the attempt links without a request
    if (run && ev.run.id !== id && ev.run.retry_of === rootOf(run)) {
      const a: Attempt = { id: ev.run.id, attempt: ev.run.attempt, status: ev.run.status };
      setAttempts((l) => {
        const base = l.length ? l : [{ id: run.id, attempt: run.attempt, status: run.status }];
        return base.some((x) => x.id === a.id) ? base.map((x) => (x.id === a.id ? a : x)) : base.concat(a).sort((x, y) => x.id - y.id);
      });
      return;
    }
    if (ev.run.id !== id) return;
    if (ev.type === "run.finished") load();
    else setRun((r) => (r ? { ...r, ...ev.run, output_tail: r.output_tail } : r));
  }, [id, run?.retry_of, run?.attempt, run?.status]);

  useEffect(() => {
    const el = pre.current;
    if (el && active) el.scrollTop = el.scrollHeight;
  }, [lines, run?.output_tail]);

  if (err) return <p class="error-text" role="alert">{err}</p>;
  if (!run) return <p>{t("loading")}</p>;
  const tail = run.output_tail ?? "";
  const progress = typeof run.progress === "number" ? Math.max(0, Math.min(1, run.progress)) : null;
  const rows: [string, preact.ComponentChild][] = [
    [t("status"), <StatusBadge status={run.status} />],
    [t("trigger"), run.trigger],
    [t("host"), <span data-role="run-host">{run.host ?? "—"}</span>],
    [t("scheduledFor"), absTime(run.scheduled_for)],
    [t("started_"), absTime(run.started_at)],
    [t("finished"), absTime(run.finished_at)],
    [t("duration"), active ? "…" : duration(run.duration_ms)],
    [t("attempt"), attempts.length ? (
      <span data-role="attempts">{attempts.map((a, i) => (
        <span key={a.id}>{i ? " → " : ""}{a.id === run.id
          ? <strong aria-current="page" data-attempt={a.attempt}>{a.attempt}</strong>
          : <a href={`/runs/${a.id}`} data-run-link={a.id} data-attempt={a.attempt}
            title={a.status ? t(`st_${a.status}` as Key) : undefined}>{a.attempt} (#{a.id})</a>}</span>
      ))}</span>) : run.attempt],
    [t("exit"), active ? "—" : run.exit_code],
    [t("signal"), run.signal ? run.signal : "—"],
    [t("items"), `${run.items_processed} / ${run.items_failed} ${t("failedItems")}`],
    [t("maxRss"), kib(run.max_rss_kb)],
    [t("cpu"), `${duration(run.cpu_user_ms)} / ${duration(run.cpu_sys_ms)}`],
  ];
  const runLink = (l: ChainLink) => <a href={`/runs/${l.run}`} data-run-link={l.run}>{l.job ?? "?"} #{l.run}</a>;
  const from = links.chained_from;
  if (from)
    rows.push([t("startedBy"), <a href={`/runs/${from.run}`} data-role="chained-from" data-run-link={from.run}>{t("runOfJob", { id: from.run, job: from.job ?? "?" })}</a>]);
  if (links.chained.length)
    rows.push([t("chainStarted"), <span data-role="chained">{links.chained.map((l, i) => <span key={l.run}>{i ? ", " : ""}{runLink(l)}</span>)}</span>]);
  return (
    <>
      <p><a href={`/jobs/${encodeURIComponent(run.job)}`}>← {run.job}</a></p>
      <header class="job-head">
        <h1>{t("run")} #{run.id} <span class="muted">{run.job}</span></h1>
        {active && <div class="actions"><CancelButton run={run} /></div>}
      </header>
      {active && progress !== null && (
        <div class="progress-row" data-role="progress">
          <progress max={1} value={progress} aria-label={t("progress")} />
          <span>{Math.round(progress * 100)} %</span>
        </div>
      )}
      <dl class="facts" data-run={run.id} data-status={run.status}>
        {rows.map(([k, v]) => <div key={k}><dt>{k}</dt><dd>{v}</dd></div>)}
      </dl>
      {run.error && <p class="error-text" role="alert" data-role="run-error"><strong>{t("error")}:</strong> {run.error}</p>}
      {run.summary !== null && run.summary !== undefined && (
        <section><h2>{t("summary")}</h2><SummaryView summary={run.summary} /></section>
      )}
      <section aria-labelledby="out-h">
        <h2 id="out-h">{t("output")} {active && <span class="live-pill" role="status">● {t("following")}</span>}</h2>
        <pre ref={pre} class="output mono" tabIndex={0} aria-label={t("output")} data-role="output">
          {!tail && !lines.length && t("noOutput")}
          {tail}{tail && lines.length > 0 && !tail.endsWith("\n") && "\n"}
          {lines.map((l, i) => (
            <span key={i} class={l.stream === "stderr" ? "line err" : "line"}><time class="ts" dateTime={l.ts} data-role="line-ts">{clockTime(l.ts)}</time> {l.line}{"\n"}</span>
          ))}
        </pre>
      </section>
    </>
  );
}
