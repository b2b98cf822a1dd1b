// The reload notice: when the daemon applies a new configuration (SIGHUP or POST /api/reload),
// its config.reloaded event carries what changed ("jobs +2 -1 ~3, tokens -1"); the notice shows
// that summary until it is dismissed or a later reload replaces it. The lists themselves follow
// through job.added / job.removed / job.updated (store.ts).
import { useState } from "preact/hooks";
import { currentLang, Lang } from "./i18n";
import { useEvents } from "./store";

const TEXT: Record<Lang, { reloaded: string; dismiss: string }> = {
  en: { reloaded: "Configuration reloaded", dismiss: "Dismiss" },
  sv: { reloaded: "Konfigurationen har lästs om", dismiss: "Stäng" },
  da: { reloaded: "Konfigurationen er genindlæst", dismiss: "Luk" },
};

export function ReloadNotice() {
  const [summary, setSummary] = useState<string | null>(null);
  useEvents((ev) => {
    if (ev.type === "config.reloaded") setSummary(ev.summary);
  }, []);
  if (summary === null) return null;
  const text = TEXT[currentLang()] ?? TEXT.en;
  return (
    <div class="banner reload-notice" role="status" aria-live="polite" data-role="reload-notice">
      <span><strong>{text.reloaded}:</strong> <span data-role="reload-summary">{summary}</span></span>
      <button type="button" onClick={() => setSummary(null)} aria-label={text.dismiss}>×</button>
    </div>
  );
}
