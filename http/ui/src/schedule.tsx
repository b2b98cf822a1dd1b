// The schedule editor: validates as you type through POST /api/schedule/preview, shows the
// error with its column or the next five fires, saves as an override (admin), shows and resets
// overrides. Disabled with the reason for a locked job or a role that may not edit.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, Job } from "./api";
import { absTime, relTime } from "./fmt";
import { describeSchedule, t } from "./i18n";
import { can, useStore } from "./store";

export function ScheduleEditor({ job }: { job: Job }) {
  const s = useStore();
  const [text, setText] = useState(job.schedule);
  const [next, setNext] = useState<string[]>([]);
  const [err, setErr] = useState<ApiError | null>(null);
  const [msg, setMsg] = useState("");
  const seq = useRef(0);
  const reason = job.locked ? t("lockedReason") : !can("edit") ? t("roleReason", { role: s.role || "?" }) : "";

  useEffect(() => setText(job.schedule), [job.schedule]);
  useEffect(() => {
    const my = ++seq.current;
    const h = window.setTimeout(async () => {
      try {
        const p = await api.preview(text, job.timezone || "UTC", job.name);
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
  }, [text, job.timezone]);

  const save = async (e: Event) => {
    e.preventDefault();
    try {
      const r = await api.setSchedule(job.name, text);
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
  const overridden = job.overridden ?? [];
  return (
    <form class="editor" onSubmit={save} aria-labelledby="sched-h" data-role="schedule-editor">
      <h2 id="sched-h">{t("editSchedule")}</h2>
      <fieldset disabled={!!reason}>
        <label for="sched-input">{t("editSchedule")} ({t("timezone")}: {job.timezone || "UTC"})</label>
        <div class="row">
          <input id="sched-input" class="mono" value={text} spellcheck={false} autocomplete="off"
            aria-invalid={!!err} aria-describedby="sched-status"
            onInput={(e) => { setText((e.target as HTMLInputElement).value); setMsg(""); }} />
          <button type="submit" class="primary" disabled={!!err || text === job.schedule}>{t("save")}</button>
        </div>
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
                  {next.map((n) => <li key={n}><time dateTime={n}>{absTime(n)}</time> <span class="muted">({relTime(n)})</span></li>)}
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
            {t("configValue", { v: `${job.config.schedule}${job.config.enabled ? "" : ` (${t("disabled")})`}` })}
          </p>
          <button type="button" onClick={reset} disabled={!can("edit")}>{t("reset")}</button>
        </div>
      )}
    </form>
  );
}
