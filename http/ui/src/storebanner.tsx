// The store banner: shown while the daemon cannot write its database (degraded: PostgreSQL is
// unreachable, or SQLite refuses writes: disk full, I/O error, file deleted; jobs keep running,
// their records wait in the outage spool or in memory) and while they are written back
// (replaying). The state comes from /readyz when the page loads, then from store.changed
// events.
import { useEffect, useState } from "preact/hooks";
import type { Schemas } from "./api";
import { currentLang, Lang } from "./i18n";
import { useEvents } from "./store";

type StoreState = Pick<Schemas["StoreState"], "state" | "spooled">;

const TEXT: Record<Lang, { degraded: (n: number) => string; replaying: (n: number) => string }> = {
  en: {
    degraded: (n) => `Database cannot be written — jobs keep running; ${n} record(s) wait to be written`,
    replaying: (n) => `Database back — writing ${n} waiting record(s)…`,
  },
  sv: {
    degraded: (n) => `Databasen kan inte skrivas — jobben fortsätter; ${n} post(er) väntar på att skrivas`,
    replaying: (n) => `Databasen är tillbaka — skriver ${n} köad(e) post(er)…`,
  },
  da: {
    degraded: (n) => `Databasen kan ikke skrives — job kører videre; ${n} post(er) venter på at blive skrevet`,
    replaying: (n) => `Databasen er tilbage — skriver ${n} post(er) fra køen…`,
  },
};

export function StoreBanner() {
  const [st, setSt] = useState<StoreState>({ state: "up", spooled: 0 });
  useEffect(() => {
    fetch("/readyz", { headers: { Accept: "application/json" } })
      .then((r) => r.json())
      .then((j) => {
        if (j && (j.store === "degraded" || j.store === "replaying" || j.store === "up"))
          setSt({ state: j.store, spooled: Number(j.spooled) || 0 });
      })
      .catch(() => undefined);
  }, []);
  useEvents((ev) => {
    if (ev.type === "store.changed") setSt(ev.store);
  }, []);
  if (st.state !== "degraded" && st.state !== "replaying") return null;
  const text = TEXT[currentLang()] ?? TEXT.en;
  return (
    <div class={`banner store-banner ${st.state}`} role="status" aria-live="polite" data-store={st.state}>
      {st.state === "degraded" ? text.degraded(st.spooled) : text.replaying(st.spooled)}
    </div>
  );
}
