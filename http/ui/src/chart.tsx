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

export function RunChart({ runs }: { runs: Run[] }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const done = runs.filter((r) => r.started_at && r.status !== "RUNNING" && r.status !== "QUEUED")
      .sort((a, b) => Date.parse(a.started_at!) - Date.parse(b.started_at!));
    const xs = done.map((r) => Date.parse(r.started_at!) / 1000);
    const ys = SERIES.map((s) => done.map((r) => (toneOf(r.status) === s.tone ? r.duration_ms / 1000 : null)));
    const width = Math.max(280, el.current.clientWidth);
    const plot = new uPlot({
      width, height: 220,
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [{}, { label: "s", size: 50 }],
      series: [{}, ...SERIES.map((s) => ({
        label: s.label(), stroke: s.color, fill: s.color, width: 0,
        points: { show: true, size: 7, fill: s.color }, paths: () => null,
      }))],
    }, [xs, ...ys] as uPlot.AlignedData, el.current);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.current?.clientWidth ?? width), height: 220 }));
    ro.observe(el.current);
    return () => { ro.disconnect(); plot.destroy(); };
  }, [runs]);
  return <figure class="chart"><figcaption>{t("chartTitle")}</figcaption><div ref={el} role="img" aria-label={t("chartTitle")} /></figure>;
}
