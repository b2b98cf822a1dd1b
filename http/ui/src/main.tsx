// The dashboard shell: sign-in, navigation, the connection banner, language switch, routes.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { request } from "./api";
import { currentLang, Lang, LANGS, onLangChange, setLang, t } from "./i18n";
import { ThemeSelect } from "./theme";
import { JobDetail } from "./job";
import { InstancesPage } from "./instances";
import { JobFilter, JobsPage } from "./jobs";
import { Overview } from "./overview";
import { onLinkClick, useLocation } from "./router";
import { RunDetail } from "./run";
import { RunsPage } from "./runs";
import { signIn, signOut, useStore } from "./store";
import { ReloadNotice } from "./reloadnotice";
import { StoreBanner } from "./storebanner";
import "./style.css";

function Login() {
  const s = useStore();
  const [tok, setTok] = useState("");
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState(s.loginError ? t("badToken") : "");
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      await request("GET", "/api/jobs?limit=1", undefined, tok.trim());
      signIn(tok.trim());
    } catch (x) {
      setErr((x as { status: number }).status === 401 ? t("badToken") : (x as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form onSubmit={submit} aria-labelledby="login-h">
        <h1 id="login-h">{t("signInTitle")}</h1>
        <label for="token">{t("token")}</label>
        <input id="token" type="password" autocomplete="current-password" value={tok} required
          onInput={(e) => setTok((e.target as HTMLInputElement).value)} aria-describedby="token-help" />
        <p id="token-help" class="muted small">{t("tokenHelp")}</p>
        {err && <p class="error-text" role="alert">{err}</p>}
        <button type="submit" class="primary" disabled={busy || !tok.trim()}>{t("signIn")}</button>
        <LangSelect />
      </form>
    </main>
  );
}

function LangSelect() {
  return (
    <label class="lang">
      <span class="sr-only">{t("language")}</span>
      <select value={currentLang()} onChange={(e) => setLang((e.target as HTMLSelectElement).value as Lang)} aria-label={t("language")}>
        {LANGS.map((l) => <option key={l.id} value={l.id}>{l.label}</option>)}
      </select>
    </label>
  );
}

function ConnBanner() {
  const s = useStore();
  if (s.conn === "live") return <span class="conn live" role="status" data-conn="live">● {t("connBack")}</span>;
  return (
    <div class={`banner ${s.conn}`} role="status" aria-live="assertive" data-conn={s.conn}>
      {s.conn === "lost" ? t("connLost") : t("connConnecting")}
    </div>
  );
}

function App() {
  const s = useStore();
  const loc = useLocation();
  const [, setTick] = useState(0);
  useEffect(() => onLangChange(() => setTick((n) => n + 1)), []);
  if (!s.token) return <Login />;
  const path = loc.pathname;
  const filter = (loc.searchParams.get("filter") ?? "") as JobFilter;
  let page;
  let m: RegExpExecArray | null;
  if ((m = /^\/jobs\/([^/]+)$/.exec(path))) page = <JobDetail name={decodeURIComponent(m[1])} />;
  else if ((m = /^\/runs\/(\d+)$/.exec(path))) page = <RunDetail id={Number(m[1])} />;
  else if (path === "/jobs") page = <JobsPage filter={filter} />;
  else if (path === "/instances") page = <InstancesPage />;
  else if (path === "/runs") page = <RunsPage url={loc} />;
  else page = <Overview filter={filter} />;
  return (
    <div onClick={onLinkClick as any}>
      <a class="skip" href="#main">{t("skipToContent")}</a>
      <header class="top">
        <a href="/" class="brand">cronvisor</a>
        <nav aria-label={t("mainNav")}>
          <a href="/" aria-current={path === "/" ? "page" : undefined}>{t("overview")}</a>
          <a href="/jobs" aria-current={path.startsWith("/jobs") ? "page" : undefined}>{t("jobs")}</a>
          <a href="/runs" aria-current={path === "/runs" ? "page" : undefined}>{t("runs")}</a>
          <a href="/instances" aria-current={path === "/instances" ? "page" : undefined}>{t("instances")}</a>
        </nav>
        <div class="who">
          <ConnBanner />
          <span class="role" data-role="role">{s.name && `${s.name} · `}{s.role}</span>
          <LangSelect />
          <ThemeSelect />
          <button type="button" onClick={() => signOut()}>{t("signOut")}</button>
        </div>
      </header>
      <StoreBanner />
      <ReloadNotice />
      <main id="main" tabIndex={-1}>{s.loaded || path.startsWith("/runs/") || path === "/instances" ? page : <p>{t("loading")}</p>}</main>
    </div>
  );
}

render(<App />, document.getElementById("app")!);
