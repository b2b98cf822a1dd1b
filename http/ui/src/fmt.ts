// Times and numbers through Intl, in the current language.
import { currentLang } from "./i18n";

const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ["year", 365 * 86400e3], ["month", 30 * 86400e3], ["week", 7 * 86400e3], ["day", 86400e3],
  ["hour", 3600e3], ["minute", 60e3], ["second", 1e3],
];

function locale(): string {
  return { en: "en-GB", sv: "sv-SE", da: "da-DK" }[currentLang()];
}

export function relTime(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "—";
  const diff = Date.parse(iso) - now;
  const rtf = new Intl.RelativeTimeFormat(locale(), { numeric: "auto" });
  for (const [unit, ms] of UNITS) {
    if (Math.abs(diff) >= ms || unit === "second") return rtf.format(Math.round(diff / ms), unit);
  }
  return "—";
}

export function absTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "medium" }).format(new Date(iso));
}

export function shortTime(iso: string): string {
  return new Intl.DateTimeFormat(locale(), {
    weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  }).format(new Date(iso));
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || ms < 0) return "—";
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function percent(x: number | null | undefined): string {
  if (x === null || x === undefined || isNaN(x)) return "—";
  return new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: 0 }).format(x);
}

export function num(n: number): string {
  return new Intl.NumberFormat(locale()).format(n);
}

export function kib(kb: number): string {
  if (!kb) return "—";
  return kb >= 1024 ? `${(kb / 1024).toFixed(1)} MiB` : `${kb} KiB`;
}

/** A time in a given IANA zone (the job's), with the zone's abbreviation; an unknown zone
 * falls back to the viewer's. */
export function zonedTime(iso: string | null | undefined, timeZone: string | null | undefined): string {
  if (!iso) return "—";
  const opts: Intl.DateTimeFormatOptions = { dateStyle: "medium", timeStyle: "long" };
  try {
    return new Intl.DateTimeFormat(locale(), { ...opts, timeZone: timeZone || "UTC" }).format(new Date(iso));
  } catch {
    return new Intl.DateTimeFormat(locale(), opts).format(new Date(iso));
  }
}

/** The viewer's own zone's rendering of a time (the hover text beside a job-zone time). */
export function viewerTime(iso: string): string {
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "long" }).format(new Date(iso));
}

/** Clock time of a live output line, to the millisecond. */
export function clockTime(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d.getTime())) return "";
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
