// Run detail: every recorded field and the output, followed live (topic run:<id>) while the
// run is going; the final record replaces it when run.finished arrives.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, ChainLink, Run, RunFull } from "./api";
import { absTime, duration, kib } from "./fmt";
import { t } from "./i18n";
import { isRunEvent } from "./live";
import { live, useEvents, useStore } from "./store";
import { StatusBadge } from "./ui";

export function RunDetail({ id }: { id: number }) {
  const s = useStore();
  const [run, setRun] = useState<Run | null>(null);
  const [err, setErr] = useState("");
  // the chain links of the latest full record (run events do not carry them)
  const [links, setLinks] = useState<Pick<RunFull, "chained_from" | "chained">>({ chained_from: null, chained: [] });
  const [lines, setLines] = useState<string[]>([]);
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
    }).catch((e: ApiError) => my === loads.current && setErr(e.message));
  };
  useEffect(() => { load(); }, [id, s.loaded]);

  // Follow the output while the run is active.
  useEffect(() => {
    if (!active || !live) return;
    return live.subscribe(`run:${id}`, (ev) => {
      setLines((l) => l.concat(ev.line ?? ""));
    });
  }, [id, active, s.conn]);

  // Status changes arrive as run events.
  useEvents((ev) => {
    if (!isRunEvent(ev) || ev.run.id !== id) return;
    if (ev.type === "run.finished") load();
    else setRun((r) => (r ? { ...r, ...ev.run, output_tail: r.output_tail } : r));
  }, [id]);

  useEffect(() => {
    const el = pre.current;
    if (el && active) el.scrollTop = el.scrollHeight;
  }, [lines, run?.output_tail]);

  if (err) return <p class="error-text" role="alert">{err}</p>;
  if (!run) return <p>{t("loading")}</p>;
  const output = (run.output_tail ?? "") + (lines.length ? (run.output_tail && !run.output_tail.endsWith("\n") ? "\n" : "") + lines.join("\n") + "\n" : "");
  const rows: [string, preact.ComponentChild][] = [
    [t("status"), <StatusBadge status={run.status} />],
    [t("trigger"), run.trigger],
    [t("host"), <span data-role="run-host">{run.host ?? "—"}</span>],
    [t("scheduledFor"), absTime(run.scheduled_for)],
    [t("started_"), absTime(run.started_at)],
    [t("finished"), absTime(run.finished_at)],
    [t("duration"), active ? "…" : duration(run.duration_ms)],
    [t("attempt"), run.attempt],
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
      <h1>{t("run")} #{run.id} <span class="muted">{run.job}</span></h1>
      <dl class="facts" data-run={run.id} data-status={run.status}>
        {rows.map(([k, v]) => <div key={k}><dt>{k}</dt><dd>{v}</dd></div>)}
      </dl>
      {run.error && <p class="error-text" role="alert" data-role="run-error"><strong>{t("error")}:</strong> {run.error}</p>}
      {run.summary !== null && run.summary !== undefined && (
        <section><h2>{t("summary")}</h2><pre class="mono small">{typeof run.summary === "string" ? run.summary : JSON.stringify(run.summary, null, 2)}</pre></section>
      )}
      <section aria-labelledby="out-h">
        <h2 id="out-h">{t("output")} {active && <span class="live-pill" role="status">● {t("following")}</span>}</h2>
        <pre ref={pre} class="output mono" tabIndex={0} aria-label={t("output")} data-role="output">{output || t("noOutput")}</pre>
      </section>
    </>
  );
}
