// Small shared pieces: the status badge (colour and icon and text), the confirm dialog, times.
import { ComponentChildren } from "preact";
import { useEffect, useId, useRef } from "preact/hooks";
import { Job, LastRun, RunStatus } from "./api";
import { absTime, duration as fmtDur, relTime } from "./fmt";
import { Key, t } from "./i18n";

export type Tone = "ok" | "partial" | "failed" | "running" | "never" | "queued" | "neutral";

export function toneOf(status: RunStatus | "NEVER" | undefined): Tone {
  switch (status) {
    case "SUCCESS": return "ok";
    case "PARTIAL": return "partial";
    case "FAILED": case "TIMED_OUT": case "ABANDONED": return "failed";
    case "RUNNING": return "running";
    case "QUEUED": return "queued";
    case "CANCELLED": case "SKIPPED": return "neutral";
    default: return "never";
  }
}

/** A job's current status: running beats the last outcome. */
export function jobStatus(j: Job): RunStatus | "NEVER" {
  if (j.running > 0) return "RUNNING";
  if (j.last_run) return j.last_run.status === "RUNNING" ? "RUNNING" : j.last_run.status;
  if (j.queued > 0) return "QUEUED";
  return "NEVER";
}

const ICONS: Record<Tone, string> = {
  ok: "✓", partial: "!", failed: "✕", running: "↻", never: "–", queued: "…", neutral: "○",
};

export function StatusBadge({ status, compact, runId }: { status: RunStatus | "NEVER"; compact?: boolean; runId?: number }) {
  const tone = toneOf(status);
  const label = t(`st_${status}` as Key);
  return (
    <span class={`badge tone-${tone}`} data-status={status} data-run-id={runId} title={label}>
      <span class="dot" aria-hidden="true">{ICONS[tone]}</span>
      {compact ? <span class="sr-only">{label}</span> : <span class="badge-text">{label}</span>}
    </span>
  );
}

export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span>—</span>;
  return <time dateTime={iso} title={absTime(iso)}>{relTime(iso)}</time>;
}

export function LastRunCell({ r }: { r: LastRun | null }) {
  if (!r) return <span class="muted">{t("never")}</span>;
  return (
    <span>
      <Time iso={r.started_at} />
      {r.status !== "RUNNING" && <span class="muted"> · {fmtDur(r.duration_ms)}</span>}
      {(r.items_processed > 0 || r.items_failed > 0) && (
        <span class="muted"> · {r.items_processed} {t("items")}{r.items_failed > 0 && <>, <span class="warn-text">{r.items_failed} {t("failedItems")}</span></>}</span>
      )}
    </span>
  );
}

/** What Tab moves through inside a dialog. */
const FOCUSABLE = "button:not([disabled]), a[href], input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

/** A modal confirm. Tab and Shift+Tab stay inside it; Escape cancels; when it closes (either
 * way), focus goes back to what opened it (or to main, when that is gone). */
export function Dialog(props: {
  open: boolean; title: string; children: ComponentChildren; confirmLabel: string;
  onConfirm: () => void; onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const opener = useRef<HTMLElement | null>(null);
  const titleId = useId(); // one dialog per job row: each its own title
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.open && !d.open) {
      opener.current = document.activeElement as HTMLElement | null;
      d.showModal();
    }
    if (!props.open && d.open) d.close();
  }, [props.open]);
  const trap = (e: KeyboardEvent) => {
    if (e.key !== "Tab" || !ref.current) return;
    const items = Array.from(ref.current.querySelectorAll<HTMLElement>(FOCUSABLE));
    if (!items.length) return;
    const first = items[0], last = items[items.length - 1];
    const at = document.activeElement;
    if (e.shiftKey && (at === first || !ref.current.contains(at))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (at === last || !ref.current.contains(at))) {
      e.preventDefault();
      first.focus();
    }
  };
  // "close" also follows an Escape the browser did not let the page cancel: the state follows.
  const closed = () => {
    const o = opener.current;
    opener.current = null;
    (o?.isConnected ? o : document.getElementById("main"))?.focus();
    if (props.open) props.onCancel();
  };
  return (
    <dialog ref={ref} aria-labelledby={titleId} onKeyDown={trap} onClose={closed}
      onCancel={(e) => { e.preventDefault(); props.onCancel(); }}>
      <h2 id={titleId}>{props.title}</h2>
      <div>{props.children}</div>
      <div class="row end">
        <button type="button" onClick={props.onCancel}>{t("cancel")}</button>
        <button type="button" class="primary" onClick={props.onConfirm} autofocus>{props.confirmLabel}</button>
      </div>
    </dialog>
  );
}
