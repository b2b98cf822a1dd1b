// The instances page: every daemon sharing the database (this one marked), its host, when it
// started, how old its last heartbeat is and what it is running. Kept current by the live events:
// instance.heartbeat moves an instance's last heartbeat; run.started / run.finished (of every
// instance) re-read the list, coalesced.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, Instance, InstanceList } from "./api";
import { duration } from "./fmt";
import { t } from "./i18n";
import { useEvents } from "./store";
import { Time } from "./ui";

/** The age of a heartbeat, "< 1 s", "3.2 s", ticking with now. */
function age(iso: string | null, now: number): string {
  if (!iso) return "—";
  const ms = now - Date.parse(iso);
  return ms < 1000 ? "< 1 s" : duration(ms);
}

function Row({ inst, list, now }: { inst: Instance; list: InstanceList; now: number }) {
  const seen = inst.last_seen ? now - Date.parse(inst.last_seen) : Infinity;
  const alive = inst.self || seen <= list.heartbeat_timeout_ms;
  return (
    <tr data-instance={inst.id} data-self={inst.self ? "true" : undefined} data-alive={alive ? "true" : "false"}>
      <td data-label={t("instance")}>
        <strong>{inst.id}</strong>
        {inst.self && <span class="badge tone-ok self-badge" data-role="self">{t("thisInstance")}</span>}
      </td>
      <td data-label={t("host")}>{inst.hostname} · pid {inst.pid} <span class="muted small">v{inst.version}</span></td>
      <td data-label={t("startedAt")}><Time iso={inst.started_at} /></td>
      <td data-label={t("lastHeartbeat")} data-role="heartbeat">
        {list.shared ? (
          <span class={`badge tone-${alive ? "ok" : "failed"}`}>
            <span class="dot" aria-hidden="true">{alive ? "✓" : "✕"}</span>
            <span data-role="heartbeat-age">{age(inst.last_seen, now)}</span>
            <span class="sr-only">{alive ? t("alive") : t("dead")}</span>
          </span>
        ) : <span class="muted">—</span>}
      </td>
      <td data-label={t("runningHere")} data-role="running">
        {inst.running.length === 0 ? <span class="muted">{t("idle")}</span> : (
          <ul class="inst-runs">
            {inst.running.map((r) => (
              <li key={r.id} data-run={r.id}>
                <a href={`/runs/${r.id}`}>{r.job} #{r.id}</a> <span class="muted small"><Time iso={r.started_at} /></span>
              </li>
            ))}
          </ul>
        )}
      </td>
    </tr>
  );
}

export function InstancesPage() {
  const [list, setList] = useState<InstanceList | null>(null);
  const [err, setErr] = useState("");
  const [now, setNow] = useState(Date.now());
  const timer = useRef<number | null>(null);
  const load = async () => {
    try {
      setList(await api.instances());
      setErr("");
    } catch (e) {
      setErr((e as ApiError).message);
    }
  };
  const reloadSoon = () => {
    if (timer.current !== null) return;
    timer.current = window.setTimeout(() => {
      timer.current = null;
      load();
    }, 200);
  };
  useEffect(() => {
    load();
    const tick = window.setInterval(() => setNow(Date.now()), 1000);
    return () => {
      window.clearInterval(tick);
      if (timer.current !== null) window.clearTimeout(timer.current);
    };
  }, []);
  useEvents((ev) => {
    if (ev.type === "instance.heartbeat" && ev.instance) {
      setNow(Date.now());
      setList((l) => {
        if (!l) return l;
        const i = l.instances.findIndex((x) => x.id === ev.instance.id);
        if (i < 0) {
          reloadSoon(); // a new instance
          return l;
        }
        const instances = l.instances.slice();
        instances[i] = { ...instances[i], last_seen: ev.instance.last_seen };
        return { ...l, instances };
      });
    } else if (ev.type === "run.started" || ev.type === "run.finished") {
      reloadSoon();
    }
  }, []);
  return (
    <>
      <h1>{t("instances")}</h1>
      <p class="muted">{list && !list.shared ? t("embeddedStore") : t("instancesHelp")}</p>
      {err && <p class="error-text" role="alert">{err}</p>}
      {!list ? <p>{t("loading")}</p> : (
        <table class="instances" data-shared={list.shared ? "true" : "false"}>
          <thead>
            <tr>
              <th scope="col">{t("instance")}</th>
              <th scope="col">{t("host")}</th>
              <th scope="col">{t("startedAt")}</th>
              <th scope="col">{t("lastHeartbeat")}</th>
              <th scope="col">{t("runningHere")}</th>
            </tr>
          </thead>
          <tbody>
            {list.instances.map((i) => <Row key={i.id} inst={i} list={list} now={now} />)}
          </tbody>
        </table>
      )}
    </>
  );
}
