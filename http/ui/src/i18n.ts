// Languages: English, Swedish and Danish. The browser's language picks one; the user can switch
// (kept in localStorage). Schedules are put in words by cronstrue in the same language.
import cronstrue from "cronstrue";
import "cronstrue/locales/sv";
import "cronstrue/locales/da";

export type Lang = "en" | "sv" | "da";
export const LANGS: { id: Lang; label: string }[] = [
  { id: "en", label: "English" },
  { id: "sv", label: "Svenska" },
  { id: "da", label: "Dansk" },
];

const en = {
  instances: "Instances", instance: "Instance", host: "Host", startedAt: "Started",
  lastHeartbeat: "Last heartbeat", runningHere: "Running", thisInstance: "this instance", idle: "idle",
  alive: "alive", dead: "no heartbeat", embeddedStore: "Embedded store: this daemon runs every job alone.",
  instancesHelp: "Daemons sharing the database, from their heartbeats.",
  overview: "Overview", jobs: "Jobs", signOut: "Sign out", language: "Language",
  signInTitle: "Sign in to cronvisor", token: "API token", signIn: "Sign in",
  tokenHelp: "Kept only for this browser tab (session storage).",
  badToken: "That token was not accepted.", signedInAs: "Signed in as",
  runningNow: "Running now", queued: "Queued", succeeded24: "Succeeded (24 h)", failed24: "Failed (24 h)",
  health: "Health", refresh: "Refresh", links: "Links", latency: "Latency", lastChecked: "Last checked",
  noProbes: "No probes configured.",
  pr_healthy: "healthy", pr_degraded: "degraded", pr_unhealthy: "unhealthy", pr_unknown: "unknown",
  roleNoRefresh: "Your role ({role}) may not refresh probes.", roleNoRun: "Your role ({role}) may not run, enable or disable jobs.",
  theme: "Colours", themeAuto: "System colours", themeLight: "Light", themeDark: "Dark",
  status: "Status", job: "Job", schedule: "Schedule", lastRun: "Last run", nextRun: "Next run",
  successRate: "Success rate", actions: "Actions", runNow: "Run now", enable: "Enable", disable: "Disable",
  enabled: "Enabled", disabled: "Disabled", never: "never", items: "items", failedItems: "failed",
  confirmRun: "Run “{job}” now?", confirmRunBody: "It starts at once, outside its schedule.", confirmRunDisabled: "This job is disabled: it runs this once, and its schedule stays off.",
  cancel: "Cancel", confirm: "Run", started: "Started run #{id}",
  st_RUNNING: "Running", st_SUCCESS: "Succeeded", st_PARTIAL: "Partial", st_FAILED: "Failed",
  st_TIMED_OUT: "Timed out", st_CANCELLED: "Cancelled", st_SKIPPED: "Skipped", st_ABANDONED: "Abandoned",
  st_QUEUED: "Queued", st_NEVER: "Never run", st_DISABLED: "Disabled",
  filter: "Filter", all: "All", clearFilter: "Show all jobs", manual: "Manual only",
  runHistory: "Run history", trigger: "Trigger", started_: "Started", duration: "Duration", attempt: "Attempt",
  prev: "Previous", next: "Next", page: "Page {n}", noRuns: "No runs yet.",
  jobCount: "{n} jobs", search: "Search", noJobs: "No jobs match.",
  chartTitle: "Duration and outcome over time", consecutiveFailures: "Consecutive failures",
  editSchedule: "Schedule", save: "Save", reset: "Reset to configuration", overridden: "overridden",
  configValue: "Configuration: {v}", lockedReason: "Locked in the configuration: runtime changes are not allowed.",
  roleReason: "Your role ({role}) may not change schedules.", nextFires: "Next fires", errorAt: "Column {col}",
  saved: "Saved.", timezone: "Time zone", audit: "Audit", noAudit: "No audit entries.",
  who: "Who", what: "What", when: "When",
  run: "Run", exit: "Exit code", signal: "Signal", output: "Output", summary: "Summary", error: "Error",
  maxRss: "Max RSS", cpu: "CPU (user / system)", scheduledFor: "Scheduled for", finished: "Finished",
  following: "Following live", noOutput: "No output.", back: "Back",
  startedBy: "Started by", runOfJob: "run #{id} of job {job}", chainStarted: "Started runs",
  connLost: "Connection lost — reconnecting…", connBack: "Live", connConnecting: "Connecting…",
  ping: "ping", pingHelp: "Runs elsewhere and reports with its ping key", locked: "locked", notFound: "Not found.", loading: "Loading…", viewerCannot: "Your role may not do this.",
  // uidetail: run and job detail
  cancelRun: "Cancel run", confirmCancel: "Cancel run #{id} of {job}?", confirmCancelBody: "The job is stopped and the run ends as Cancelled.",
  cancelRequested: "Cancellation requested.", progress: "Progress", avgDuration: "Average duration",
  lastSuccess: "Last success", lastFailure: "Last failure", runsInHistory: "Runs in history",
  inViewerZone: "Your time: {t}",
  // the Runs page (issue 16)
  runs: "Runs", partial24: "Partial (24 h)", anyFailure: "Failed or timed out", from: "From", to: "To",
  clearFilters: "Clear filters", noRunsMatch: "No runs match.", newer: "Newer", older: "Older", newest: "Newest",
  // tzedit: the zone edited with the schedule, the zone times are shown in
  showTimesIn: "Show times in", jobZone: "the job's zone ({tz})", yourZone: "your zone ({tz})",
  inJobZone: "The job's time ({tz}): {t}", zonesHelp: "Type or pick an IANA zone, such as Europe/Stockholm.",
  // a11y (issue 16): keyboard, translations, phone layout
  skipToContent: "Skip to content", mainNav: "Main", chartTime: "Time",
};
type Dict = typeof en;

const sv: Dict = {
  instances: "Instanser", instance: "Instans", host: "Värd", startedAt: "Startad",
  lastHeartbeat: "Senaste hjärtslag", runningHere: "Kör", thisInstance: "denna instans", idle: "ledig",
  alive: "lever", dead: "inga hjärtslag", embeddedStore: "Inbyggd databas: denna tjänst kör alla jobb ensam.",
  instancesHelp: "Tjänster som delar databasen, enligt deras hjärtslag.",
  overview: "Översikt", jobs: "Jobb", signOut: "Logga ut", language: "Språk",
  signInTitle: "Logga in i cronvisor", token: "API-token", signIn: "Logga in",
  tokenHelp: "Sparas bara för den här fliken (session storage).",
  badToken: "Token godkändes inte.", signedInAs: "Inloggad som",
  runningNow: "Körs nu", queued: "I kö", succeeded24: "Lyckade (24 h)", failed24: "Misslyckade (24 h)",
  health: "Hälsa", refresh: "Uppdatera", links: "Länkar", latency: "Svarstid", lastChecked: "Senast kontrollerad",
  noProbes: "Inga kontroller konfigurerade.",
  pr_healthy: "frisk", pr_degraded: "nedsatt", pr_unhealthy: "ej frisk", pr_unknown: "okänd",
  roleNoRefresh: "Din roll ({role}) får inte uppdatera kontroller.", roleNoRun: "Din roll ({role}) får inte köra, aktivera eller inaktivera jobb.",
  theme: "Färger", themeAuto: "Systemets färger", themeLight: "Ljust", themeDark: "Mörkt",
  status: "Status", job: "Jobb", schedule: "Schema", lastRun: "Senaste körning", nextRun: "Nästa körning",
  successRate: "Lyckandegrad", actions: "Åtgärder", runNow: "Kör nu", enable: "Aktivera", disable: "Inaktivera",
  enabled: "Aktiv", disabled: "Inaktiv", never: "aldrig", items: "poster", failedItems: "misslyckade",
  confirmRun: "Kör ”{job}” nu?", confirmRunBody: "Jobbet startar direkt, utanför sitt schema.", confirmRunDisabled: "Jobbet är avstängt: det körs den här gången, och schemat förblir avstängt.",
  cancel: "Avbryt", confirm: "Kör", started: "Körning #{id} startad",
  st_RUNNING: "Körs", st_SUCCESS: "Lyckades", st_PARTIAL: "Delvis", st_FAILED: "Misslyckades",
  st_TIMED_OUT: "Tidsgräns", st_CANCELLED: "Avbruten", st_SKIPPED: "Överhoppad", st_ABANDONED: "Övergiven",
  st_QUEUED: "I kö", st_NEVER: "Aldrig körd", st_DISABLED: "Inaktiv",
  filter: "Filter", all: "Alla", clearFilter: "Visa alla jobb", manual: "Endast manuellt",
  runHistory: "Körhistorik", trigger: "Utlösare", started_: "Startad", duration: "Varaktighet", attempt: "Försök",
  prev: "Föregående", next: "Nästa", page: "Sida {n}", noRuns: "Inga körningar än.",
  jobCount: "{n} jobb", search: "Sök", noJobs: "Inga jobb matchar.",
  chartTitle: "Varaktighet och utfall över tid", consecutiveFailures: "Misslyckanden i rad",
  editSchedule: "Schema", save: "Spara", reset: "Återställ till konfigurationen", overridden: "ändrat",
  configValue: "Konfiguration: {v}", lockedReason: "Låst i konfigurationen: ändringar under drift är inte tillåtna.",
  roleReason: "Din roll ({role}) får inte ändra scheman.", nextFires: "Nästa körningar", errorAt: "Kolumn {col}",
  saved: "Sparat.", timezone: "Tidszon", audit: "Granskningslogg", noAudit: "Inga poster.",
  who: "Vem", what: "Vad", when: "När",
  run: "Körning", exit: "Slutkod", signal: "Signal", output: "Utdata", summary: "Sammanfattning", error: "Fel",
  maxRss: "Max RSS", cpu: "CPU (användare / system)", scheduledFor: "Schemalagd", finished: "Klar",
  following: "Följer live", noOutput: "Ingen utdata.", back: "Tillbaka",
  startedBy: "Startad av", runOfJob: "körning #{id} av jobbet {job}", chainStarted: "Startade körningar",
  connLost: "Anslutningen bröts — återansluter…", connBack: "Live", connConnecting: "Ansluter…",
  ping: "ping", pingHelp: "Körs någon annanstans och rapporterar med sin ping-nyckel", locked: "låst", notFound: "Hittades inte.", loading: "Laddar…", viewerCannot: "Din roll får inte göra detta.",
  // uidetail: run and job detail
  cancelRun: "Avbryt körningen", confirmCancel: "Avbryta körning #{id} av {job}?", confirmCancelBody: "Jobbet stoppas och körningen slutar som Avbruten.",
  cancelRequested: "Avbrott begärt.", progress: "Förlopp", avgDuration: "Genomsnittlig körtid",
  lastSuccess: "Senast lyckad", lastFailure: "Senast misslyckad", runsInHistory: "Körningar i historiken",
  inViewerZone: "Din tid: {t}",
  // the Runs page (issue 16)
  runs: "Körningar", partial24: "Delvis (24 h)", anyFailure: "Misslyckade eller tidsgräns", from: "Från", to: "Till",
  clearFilters: "Rensa filter", noRunsMatch: "Inga körningar matchar.", newer: "Nyare", older: "Äldre", newest: "Senaste",
  // tzedit: the zone edited with the schedule, the zone times are shown in
  showTimesIn: "Visa tider i", jobZone: "jobbets tidszon ({tz})", yourZone: "din tidszon ({tz})",
  inJobZone: "Jobbets tid ({tz}): {t}", zonesHelp: "Skriv eller välj en IANA-tidszon, till exempel Europe/Stockholm.",
  // a11y (issue 16): keyboard, translations, phone layout
  skipToContent: "Hoppa till innehållet", mainNav: "Huvudmeny", chartTime: "Tid",
};

const da: Dict = {
  instances: "Instanser", instance: "Instans", host: "Vært", startedAt: "Startet",
  lastHeartbeat: "Seneste hjerteslag", runningHere: "Kører", thisInstance: "denne instans", idle: "ledig",
  alive: "i live", dead: "ingen hjerteslag", embeddedStore: "Indbygget database: denne tjeneste kører alle jobs alene.",
  instancesHelp: "Tjenester der deler databasen, ifølge deres hjerteslag.",
  overview: "Oversigt", jobs: "Jobs", signOut: "Log ud", language: "Sprog",
  signInTitle: "Log ind i cronvisor", token: "API-token", signIn: "Log ind",
  tokenHelp: "Gemmes kun for denne fane (session storage).",
  badToken: "Token blev ikke godkendt.", signedInAs: "Logget ind som",
  runningNow: "Kører nu", queued: "I kø", succeeded24: "Lykkedes (24 t)", failed24: "Fejlede (24 t)",
  health: "Helbred", refresh: "Opdater", links: "Links", latency: "Svartid", lastChecked: "Sidst tjekket",
  noProbes: "Ingen tjek konfigureret.",
  pr_healthy: "sund", pr_degraded: "nedsat", pr_unhealthy: "usund", pr_unknown: "ukendt",
  roleNoRefresh: "Din rolle ({role}) må ikke opdatere tjek.", roleNoRun: "Din rolle ({role}) må ikke køre, aktivere eller deaktivere jobs.",
  theme: "Farver", themeAuto: "Systemets farver", themeLight: "Lyst", themeDark: "Mørkt",
  status: "Status", job: "Job", schedule: "Tidsplan", lastRun: "Seneste kørsel", nextRun: "Næste kørsel",
  successRate: "Succesrate", actions: "Handlinger", runNow: "Kør nu", enable: "Aktivér", disable: "Deaktivér",
  enabled: "Aktiv", disabled: "Deaktiveret", never: "aldrig", items: "elementer", failedItems: "fejlede",
  confirmRun: "Kør “{job}” nu?", confirmRunBody: "Jobbet starter med det samme, uden for sin tidsplan.", confirmRunDisabled: "Jobbet er deaktiveret: det kører denne ene gang, og tidsplanen forbliver slået fra.",
  cancel: "Annullér", confirm: "Kør", started: "Kørsel #{id} startet",
  st_RUNNING: "Kører", st_SUCCESS: "Lykkedes", st_PARTIAL: "Delvis", st_FAILED: "Fejlede",
  st_TIMED_OUT: "Tidsgrænse", st_CANCELLED: "Annulleret", st_SKIPPED: "Sprunget over", st_ABANDONED: "Opgivet",
  st_QUEUED: "I kø", st_NEVER: "Aldrig kørt", st_DISABLED: "Deaktiveret",
  filter: "Filter", all: "Alle", clearFilter: "Vis alle jobs", manual: "Kun manuelt",
  runHistory: "Kørselshistorik", trigger: "Udløser", started_: "Startet", duration: "Varighed", attempt: "Forsøg",
  prev: "Forrige", next: "Næste", page: "Side {n}", noRuns: "Ingen kørsler endnu.",
  jobCount: "{n} jobs", search: "Søg", noJobs: "Ingen jobs matcher.",
  chartTitle: "Varighed og udfald over tid", consecutiveFailures: "Fejl i træk",
  editSchedule: "Tidsplan", save: "Gem", reset: "Nulstil til konfigurationen", overridden: "ændret",
  configValue: "Konfiguration: {v}", lockedReason: "Låst i konfigurationen: ændringer under drift er ikke tilladt.",
  roleReason: "Din rolle ({role}) må ikke ændre tidsplaner.", nextFires: "Næste kørsler", errorAt: "Kolonne {col}",
  saved: "Gemt.", timezone: "Tidszone", audit: "Revisionslog", noAudit: "Ingen poster.",
  who: "Hvem", what: "Hvad", when: "Hvornår",
  run: "Kørsel", exit: "Exitkode", signal: "Signal", output: "Output", summary: "Resumé", error: "Fejl",
  maxRss: "Maks RSS", cpu: "CPU (bruger / system)", scheduledFor: "Planlagt til", finished: "Færdig",
  following: "Følger live", noOutput: "Intet output.", back: "Tilbage",
  startedBy: "Startet af", runOfJob: "kørsel #{id} af jobbet {job}", chainStarted: "Startede kørsler",
  connLost: "Forbindelsen blev afbrudt — genforbinder…", connBack: "Live", connConnecting: "Forbinder…",
  ping: "ping", pingHelp: "Kører et andet sted og melder sig med sin ping-nøgle", locked: "låst", notFound: "Ikke fundet.", loading: "Indlæser…", viewerCannot: "Din rolle må ikke gøre dette.",
  // uidetail: run and job detail
  cancelRun: "Afbryd kørslen", confirmCancel: "Afbryde kørsel #{id} af {job}?", confirmCancelBody: "Jobbet stoppes, og kørslen ender som Annulleret.",
  cancelRequested: "Afbrydelse anmodet.", progress: "Fremskridt", avgDuration: "Gennemsnitlig varighed",
  lastSuccess: "Seneste succes", lastFailure: "Seneste fejl", runsInHistory: "Kørsler i historikken",
  inViewerZone: "Din tid: {t}",
  // the Runs page (issue 16)
  runs: "Kørsler", partial24: "Delvis (24 t)", anyFailure: "Fejlet eller tidsgrænse", from: "Fra", to: "Til",
  clearFilters: "Ryd filtre", noRunsMatch: "Ingen kørsler matcher.", newer: "Nyere", older: "Ældre", newest: "Nyeste",
  // tzedit: the zone edited with the schedule, the zone times are shown in
  showTimesIn: "Vis tider i", jobZone: "jobbets tidszone ({tz})", yourZone: "din tidszone ({tz})",
  inJobZone: "Jobbets tid ({tz}): {t}", zonesHelp: "Skriv eller vælg en IANA-tidszone, for eksempel Europe/Copenhagen.",
  // a11y (issue 16): keyboard, translations, phone layout
  skipToContent: "Spring til indholdet", mainNav: "Hovedmenu", chartTime: "Tid",
};

const DICTS: Record<Lang, Dict> = { en, sv, da };
export type Key = keyof Dict;

function detect(): Lang {
  const saved = localStorage.getItem("cronvisor.lang");
  if (saved === "en" || saved === "sv" || saved === "da") return saved;
  for (const l of navigator.languages ?? [navigator.language]) {
    const p = l.toLowerCase().slice(0, 2);
    if (p === "sv") return "sv";
    if (p === "da") return "da";
    if (p === "en") return "en";
  }
  return "en";
}

let lang: Lang = detect();
const listeners = new Set<() => void>();

export function currentLang(): Lang {
  return lang;
}
export function setLang(l: Lang): void {
  lang = l;
  localStorage.setItem("cronvisor.lang", l);
  document.documentElement.lang = l;
  listeners.forEach((f) => f());
}
export function onLangChange(f: () => void): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}
document.documentElement.lang = lang;

export function t(key: Key, vars?: Record<string, string | number>): string {
  let s: string = DICTS[lang][key] ?? en[key];
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.replace(`{${k}}`, String(v));
  return s;
}

/** The schedule in words: the job's schedule_human when set, else cronstrue in the current
 * language; macros and cronvisor's own forms are handled before cronstrue. */
export function describeSchedule(schedule: string, human?: string | null): string {
  if (human) return human;
  const s = schedule.trim();
  if (s === "manual") return t("manual");
  const every = /^@every\s+(.+)$/.exec(s);
  if (every) return `@every ${every[1]}`;
  if (s === "@reboot") return "@reboot";
  try {
    return cronstrue.toString(s.replace(/\bH\b/g, "*"), {
      locale: lang,
      use24HourTimeFormat: lang !== "en",
      verbose: false,
      throwExceptionOnParseError: true,
    });
  } catch {
    return s;
  }
}
