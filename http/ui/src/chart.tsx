// Duration and outcome of a job's runs over time (uPlot): one point series per outcome, so the
// legend names each colour.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { Run } from "./api";
import { t } from "./i18n";
import { toneOf } from "./ui";

const SERIES: { tone: string; label: () => string; color: string }[] = [
  { tone: "ok", label: () => t("st_SUCCESS"), color: "#1a7f37" },
  { tone: "partial", label: () => t("st_PARTIAL"), color: "#b35900" },
  { tone: "failed", label: () => t("st_FAILED"), color: "#cf222e" },
];

/** The time axis' range: the runs' span with a margin, at least ten minutes (so one run, or a few
 * close together, is not drawn on an axis of years). */
export function xRange(min: number | null, max: number | null): [number, number] {
  if (min === null || max === null || !isFinite(min) || !isFinite(max)) {
    const now = Date.now() / 1000;
    return [now - 3600, now];
  }
  const span = max - min;
  if (span < 600) {
    const mid = (min + max) / 2;
    return [mid - 300, mid + 300];
  }
  return [min - span * 0.03, max + span * 0.03];
}

/** uPlot's own x range for a single point is min + 86400 / ms (1000 days with seconds): an
 * autoscale (min at the first run) is given the runs' extent instead; a zoom keeps its range. */
function xAuto(xs: number[], min: number | null, max: number | null): [number, number] {
  if (!xs.length || min === xs[0]) return xRange(xs.length ? xs[0] : null, xs.length ? xs[xs.length - 1] : null);
  return [min ?? xs[0], max ?? xs[xs.length - 1]];
}

export function RunChart({ runs, tz }: { runs: Run[]; tz?: string }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const done = runs.filter((r) => r.started_at && r.status !== "RUNNING" && r.status !== "QUEUED")
      .sort((a, b) => Date.parse(a.started_at!) - Date.parse(b.started_at!));
    const xs = done.map((r) => Date.parse(r.started_at!) / 1000);
    const ys = SERIES.map((s) => done.map((r) => (toneOf(r.status) === s.tone ? r.duration_ms / 1000 : null)));
    delete el.current.dataset.xMin; // set again by the new plot's setScale
    delete el.current.dataset.xMax;
    const width = Math.max(280, el.current.clientWidth);
    const plot = new uPlot({
      width, height: 220,
      tzDate: (ts) => { try { return uPlot.tzDate(new Date(ts * 1e3), tz || "UTC"); } catch { return new Date(ts * 1e3); } },
      scales: { x: { time: true, range: (_u, min, max) => xAuto(xs, min, max) }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [{}, { label: "s", size: 50 }],
      // the drawn time range, for the browser test (data-x-min / data-x-max, seconds)
      hooks: { setScale: [(u, key) => {
        if (key !== "x" || !el.current) return;
        el.current.dataset.xMin = String(u.scales.x.min);
        el.current.dataset.xMax = String(u.scales.x.max);
      }] },
      series: [{ label: t("chartTime") }, ...SERIES.map((s) => ({
        label: s.label(), stroke: s.color, fill: s.color, width: 0,
        points: { show: true, size: 7, fill: s.color }, paths: () => null,
      }))],
    }, [xs, ...ys] as uPlot.AlignedData, el.current);
    el.current.dataset.points = String(xs.length);
    if (!xs.length) plot.setScale("x", { min: Date.now() / 1000 - 86400, max: Date.now() / 1000 }); // no runs: the last day
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.current?.clientWidth ?? width), height: 220 }));
    ro.observe(el.current);
    return () => { ro.disconnect(); plot.destroy(); };
  }, [runs, tz]);
  return <figure class="chart" data-tz={tz}><figcaption>{t("chartTitle")}</figcaption><div ref={el} role="img" aria-label={t("chartTitle")} /></figure>;
}
