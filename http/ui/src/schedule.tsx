// The schedule editor: the expression and its time zone, validated as you type through POST
// /api/schedule/preview (the server loads the zone as the scheduler does), shows the error with
// its column or the next five fires in the chosen zone, saves both as overrides (admin), shows
// and resets overrides. Disabled with the reason for a locked job or a role that may not edit.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, Job } from "./api";
import { relTime } from "./fmt";
import { describeSchedule, t } from "./i18n";
import { can, useStore } from "./store";
import { ZoneTime } from "./zoneview";

let zones: string[] | null = null;
/** The zones the browser knows, for the zone input's suggestions (the server decides). */
function zoneList(): string[] {
  if (zones === null) {
    const known = (Intl as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.("timeZone") ?? [];
    zones = known.includes("UTC") ? known : ["UTC", ...known];
  }
  return zones;
}

export function ScheduleEditor({ job }: { job: Job }) {
  const s = useStore();
  const jobZone = job.timezone || "UTC";
  const [text, setText] = useState(job.schedule);
  const [zone, setZone] = useState(jobZone);
  const [next, setNext] = useState<string[]>([]);
  const [err, setErr] = useState<ApiError | null>(null);
  const [msg, setMsg] = useState("");
  const seq = useRef(0);
  const reason = job.locked ? t("lockedReason") : !can("edit") ? t("roleReason", { role: s.role || "?" }) : "";

  useEffect(() => setText(job.schedule), [job.schedule]);
  useEffect(() => setZone(jobZone), [jobZone]);
  useEffect(() => {
    const my = ++seq.current;
    const h = window.setTimeout(async () => {
      try {
        const p = await api.preview(text, zone, job.name);
        if (my !== seq.current) return;
        setErr(null);
        setNext(p.next);
      } catch (e) {
        if (my !== seq.current) return;
        setErr(e as ApiError);
        setNext([]);
      }
    }, 200);
    return () => clearTimeout(h);
  }, [text, zone]);

  const save = async (e: Event) => {
    e.preventDefault();
    try {
      const r = await api.setSchedule(job.name, text, zone !== jobZone ? zone : undefined);
      setNext(r.next);
      setMsg(t("saved"));
    } catch (x) {
      setErr(x as ApiError);
    }
  };
  const reset = async () => {
    try {
      await api.resetOverrides(job.name);
      setMsg(t("saved"));
    } catch (x) {
      setMsg((x as ApiError).message);
    }
  };
  const col = err?.column;
  const zoneErr = err?.field === "timezone";
  const edited = (set: (v: string) => void) => (e: Event) => { set((e.target as HTMLInputElement).value); setMsg(""); };
  const overridden = job.overridden ?? [];
  return (
    <form class="editor" onSubmit={save} aria-labelledby="sched-h" data-role="schedule-editor">
      <h2 id="sched-h">{t("editSchedule")}</h2>
      <fieldset disabled={!!reason}>
        <div class="row sched-fields">
          <label for="sched-input">{t("editSchedule")}</label>
          <input id="sched-input" class="mono" value={text} spellcheck={false} autocomplete="off"
            aria-invalid={!!err && !zoneErr} aria-describedby="sched-status"
            onInput={edited(setText)} />
          <label for="sched-tz">{t("timezone")}</label>
          <input id="sched-tz" class="mono" value={zone} spellcheck={false} autocomplete="off" list="sched-tz-list"
            aria-invalid={zoneErr} aria-describedby="sched-tz-help sched-status" onInput={edited(setZone)} />
          <datalist id="sched-tz-list">{zoneList().map((z) => <option key={z} value={z} />)}</datalist>
          <button type="submit" class="primary" disabled={!!err || (text === job.schedule && zone === jobZone)}>{t("save")}</button>
        </div>
        <p id="sched-tz-help" class="muted small">{t("zonesHelp")}</p>
      </fieldset>
      {reason && <p class="muted" data-role="disabled-reason">{reason}</p>}
      <div id="sched-status" aria-live="polite">
        {err ? (
          <div class="error-text" data-role="schedule-error">
            {col ? <pre class="caret mono" aria-hidden="true">{text + "\n" + " ".repeat(Math.max(0, col - 1)) + "^"}</pre> : null}
            <span>{col ? `${t("errorAt", { col })}: ` : ""}{err.message}</span>
          </div>
        ) : (
          <>
            <p>{describeSchedule(text)}</p>
            {next.length > 0 && (
              <>
                <h3>{t("nextFires")}</h3>
                <ol class="fires" data-role="next-fires">
                  {next.map((n) => <li key={n}><ZoneTime iso={n} tz={zone} /> <span class="muted">({relTime(n)})</span></li>)}
                </ol>
              </>
            )}
          </>
        )}
      </div>
      {msg && <p role="status">{msg}</p>}
      {overridden.length > 0 && (
        <div class="override" data-role="overrides">
          <p>
            <span class="tag">{t("overridden")}</span> {overridden.join(", ")} —{" "}
            {t("configValue", { v: `${job.config.schedule} (${job.config.timezone})${job.config.enabled ? "" : ` (${t("disabled")})`}` })}
          </p>
          <button type="button" onClick={reset} disabled={!can("edit")}>{t("reset")}</button>
        </div>
      )}
    </form>
  );
}
