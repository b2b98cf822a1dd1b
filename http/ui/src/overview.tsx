// The overview: summary cards (each opens the Runs page on its runs), probes, and the configured links.
import { useState } from "preact/hooks";
import { api, ApiError } from "./api";
import { num } from "./fmt";
import { Key, t } from "./i18n";
import { JobFilter, JobTable } from "./jobs";
import { navigate } from "./router";
import { FAILED_CARD, last24Url, runsUrl } from "./runs";
import { can, set, state, useStore } from "./store";
import { Time } from "./ui";

/** A count that opens the Runs page on its runs (to(): its URL, made at the click). */
function Card(p: { label: string; value: number; card: string; tone: string; to: () => string }) {
  return (
    <button type="button" class={`card tone-${p.tone}`} data-card={p.card} onClick={() => navigate(p.to())}>
      <span class="card-value">{num(p.value)}</span>
      <span class="card-label">{p.label}</span>
    </button>
  );
}

function ProbeCard({ name }: { name: string }) {
  const s = useStore();
  const p = s.probes.find((x) => x.name === name)!;
  const [busy, setBusy] = useState(false);
  const refresh = async () => {
    setBusy(true);
    try {
      const np = await api.checkProbe(name);
      if (np?.name) set({ probes: state.probes.map((x) => (x.name === name ? np : x)) });
    } catch (e) {
      set({ probes: state.probes.map((x) => (x.name === name ? { ...x, error: (e as ApiError).message } : x)) });
    } finally {
      setBusy(false);
    }
  };
  // degraded is amber (a warning), not the grey of unknown
  const tone = p.status === "healthy" ? "ok" : p.status === "unhealthy" ? "failed" : p.status === "degraded" ? "degraded" : "never";
  const icon = tone === "ok" ? "✓" : tone === "failed" ? "✕" : tone === "degraded" ? "!" : "–";
  const mayRefresh = can("trigger");
  return (
    <li class={`probe tone-${tone}`} data-probe={name} data-probe-status={p.status}>
      <div class="row between">
        <strong>{name}</strong>
        <span class="badge"><span class="dot" aria-hidden="true">{icon}</span>{t(`pr_${p.status}` as Key)}</span>
      </div>
      <div class="small muted">{t("latency")}: {p.latency_ms} ms · {t("lastChecked")}: <Time iso={p.checked_at} /></div>
      {(p.error || (p.status !== "healthy" && p.message)) && (
        <div class="small error-text">{p.error || p.message}</div>
      )}
      {mayRefresh && (
        <button type="button" class="small-btn" onClick={refresh} disabled={busy} aria-label={`${t("refresh")}: ${name}`}>
          ↻ {t("refresh")}
        </button>
      )}
    </li>
  );
}

export function Overview({ filter }: { filter: JobFilter }) {
  const s = useStore();
  const { running, queued } = s; // over every job, not only the page shown
  return (
    <>
      <h1 class="sr-only">{t("overview")}</h1>
      <section class="cards" aria-label={t("overview")}>
        <Card label={t("runningNow")} value={running} card="running" tone="running" to={() => runsUrl({ status: "RUNNING" })} />
        <Card label={t("queued")} value={queued} card="queued" tone="queued" to={() => runsUrl({ status: "QUEUED" })} />
        <Card label={t("succeeded24")} value={s.ok24} card="succeeded" tone="ok" to={() => last24Url("SUCCESS")} />
        <Card label={t("partial24")} value={s.partial24} card="partial" tone="partial" to={() => last24Url("PARTIAL")} />
        <Card label={t("failed24")} value={s.failed24} card="failed" tone="failed" to={() => last24Url(FAILED_CARD)} />
      </section>
      <section aria-labelledby="jobs-h">
        <div class="row between">
          <h2 id="jobs-h">{t("jobs")}</h2>
          {filter && <a href="/">{t("clearFilter")}</a>}
        </div>
        <JobTable filter={filter} />
      </section>
      <div class="two-col">
        <section aria-labelledby="health-h">
          <h2 id="health-h">{t("health")}</h2>
          {!can("trigger") && s.probes.length > 0 && <p class="muted small" data-role="refresh-reason">{t("roleNoRefresh", { role: s.role || "?" })}</p>}
          {s.probes.length === 0 ? <p class="muted">{t("noProbes")}</p> : (
            <ul class="probes">{s.probes.map((p) => <ProbeCard key={p.name} name={p.name} />)}</ul>
          )}
        </section>
        {s.links.length > 0 && (
          <section aria-labelledby="links-h">
            <h2 id="links-h">{t("links")}</h2>
            <ul class="links">
              {s.links.map((l) => <li key={l.url}><a href={l.url} target="_blank" rel="noopener noreferrer">{l.title} ↗</a></li>)}
            </ul>
          </section>
        )}
      </div>
    </>
  );
}
