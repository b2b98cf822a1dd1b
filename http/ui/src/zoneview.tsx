// Which zone a job's times are shown in: the job's (the default, the viewer's own on hover) or
// the viewer's (the job's on hover). One choice for every time of the page (header, history,
// chart, schedule editor), kept in localStorage.
import { useEffect, useState } from "preact/hooks";
import { viewerTime, zonedTime } from "./fmt";
import { t } from "./i18n";

export type ZoneView = "job" | "viewer";
const KEY = "cronvisor.timeView";
const listeners = new Set<(v: ZoneView) => void>();

function saved(): ZoneView {
  return localStorage.getItem(KEY) === "viewer" ? "viewer" : "job";
}

function choose(v: ZoneView): void {
  if (v === "viewer") localStorage.setItem(KEY, v);
  else localStorage.removeItem(KEY);
  listeners.forEach((f) => f(v));
}

/** The current choice; the component re-renders when it changes. */
export function useZoneView(): ZoneView {
  const [v, setV] = useState<ZoneView>(saved);
  useEffect(() => {
    listeners.add(setV);
    return () => { listeners.delete(setV); };
  }, []);
  return v;
}

/** The browser's own IANA zone. */
export function viewerZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** A time of a job in zone tz: shown in the chosen zone, the other one in the hover title. */
export function ZoneTime({ iso, tz }: { iso: string | null | undefined; tz: string }) {
  const view = useZoneView();
  if (!iso) return <span>—</span>;
  const inJob = zonedTime(iso, tz), inViewer = viewerTime(iso);
  return view === "viewer"
    ? <time dateTime={iso} title={t("inJobZone", { tz, t: inJob })} data-tz={viewerZone()} data-view="viewer">{inViewer}</time>
    : <time dateTime={iso} title={t("inViewerZone", { t: inViewer })} data-tz={tz} data-view="job">{inJob}</time>;
}

/** The switch between the two: a labelled radio pair (arrow keys move the choice). */
export function ZoneViewToggle({ tz }: { tz: string }) {
  const view = useZoneView();
  const option = (v: ZoneView, label: string) => (
    <label>
      <input type="radio" name="tz-view" value={v} checked={view === v} onChange={() => choose(v)} /> {label}
    </label>
  );
  return (
    <fieldset class="zone-view" data-role="tz-view">
      <legend>{t("showTimesIn")}</legend>
      {option("job", t("jobZone", { tz }))}
      {option("viewer", t("yourZone", { tz: viewerZone() }))}
    </fieldset>
  );
}
