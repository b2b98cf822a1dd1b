// Client-side routes on the History API; the daemon answers index.html for any of them.
import { useEffect, useState } from "preact/hooks";

const listeners = new Set<() => void>();
window.addEventListener("popstate", () => listeners.forEach((f) => f()));

export function navigate(to: string): void {
  if (to === location.pathname + location.search) return;
  history.pushState(null, "", to);
  listeners.forEach((f) => f());
  window.scrollTo(0, 0);
}

export function useLocation(): URL {
  const [, setN] = useState(0);
  useEffect(() => {
    const f = () => setN((n) => n + 1);
    listeners.add(f);
    return () => void listeners.delete(f);
  }, []);
  return new URL(location.href);
}

/** Follows same-origin link clicks without a reload. */
export function onLinkClick(e: MouseEvent): void {
  const a = (e.target as HTMLElement).closest("a");
  if (!a || a.target || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
}
