// Light or dark colours: the system's (prefers-color-scheme) unless the user picks one here
// (kept in localStorage). The choice is html[data-theme]; style.css keys the dark colours on it.
import { useState } from "preact/hooks";
import { t } from "./i18n";

type Theme = "auto" | "light" | "dark";
const KEY = "cronvisor.theme";

function saved(): Theme {
  const v = localStorage.getItem(KEY);
  return v === "light" || v === "dark" ? v : "auto";
}

function apply(th: Theme): void {
  if (th === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = th;
}
apply(saved());

export function ThemeSelect() {
  const [th, setTh] = useState<Theme>(saved());
  const pick = (v: Theme) => {
    if (v === "auto") localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, v);
    apply(v);
    setTh(v);
  };
  return (
    <select value={th} onChange={(e) => pick((e.target as HTMLSelectElement).value as Theme)}
      aria-label={t("theme")} data-role="theme">
      <option value="auto">{t("themeAuto")}</option>
      <option value="light">{t("themeLight")}</option>
      <option value="dark">{t("themeDark")}</option>
    </select>
  );
}
