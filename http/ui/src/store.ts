// The page's state: jobs, probes, 24-hour counters, who is signed in and the connection. Loaded
// over REST when the live connection (re)authenticates without a resume point, then kept
// current by the events alone. Components read it through useStore().
import { useEffect, useState } from "preact/hooks";
import {
  api, ApiError, getToken, Info, Job, Link, Probe, PROXY_SESSION, request, Role, Run, setToken, setUnauthorizedHandler,
} from "./api";
import { ConnState, isRunEvent, Live, LiveEvent, RunEvent } from "./live";

export interface State {
  token: string | null;
  name: string;
  role: Role | "";
  conn: ConnState;
  loaded: boolean;
  jobs: Job[];
  probes: Probe[];
  links: Link[];
  version: string;
  ok24: number;
  failed24: number;
  loginError: string;
  summaryAt: number; // when ok24/failed24 were read: runs finished after it are counted on top
}

export const state: State = {
  token: getToken(), name: "", role: "", conn: "connecting", loaded: false,
  jobs: [], probes: [], links: [], version: "", ok24: 0, failed24: 0, loginError: "", summaryAt: 0,
};

const listeners = new Set<() => void>();
let version = 0;
function changed(): void {
  version++;
  listeners.forEach((f) => f());
}
export function set(p: Partial<State>): void {
  Object.assign(state, p);
  changed();
}

/** Re-renders the calling component whenever the state changes. */
export function useStore(): State {
  const [, setV] = useState(version);
  useEffect(() => {
    const f = () => setV(version);
    listeners.add(f);
    return () => void listeners.delete(f);
  }, []);
  return state;
}

export let live: Live | null = null;
const seen24 = new Set<number>(); // run ids already counted in ok24/failed24

export const FAILED = ["FAILED", "TIMED_OUT", "ABANDONED"];

function upsertJob(j: Job): void {
  const i = state.jobs.findIndex((x) => x.name === j.name);
  // The job record's last_run may lack the error text that the run event carried: keep it.
  const old = i >= 0 ? state.jobs[i].last_run : null;
  if (j.last_run && old && old.id === j.last_run.id && j.last_run.error === undefined) j.last_run.error = old.error;
  const jobs = state.jobs.slice();
  if (i >= 0) jobs[i] = j;
  else jobs.push(j);
  set({ jobs });
}

const refetching = new Map<string, number>();
/** Reloads one job soon (coalesced): counts, stats and next fire after a run event. */
function refetchJob(name: string): void {
  if (refetching.has(name)) return;
  refetching.set(name, window.setTimeout(async () => {
    refetching.delete(name);
    try {
      upsertJob(await api.job(name));
    } catch {
      /* the next event or reload fixes it */
    }
  }, 150));
}

export async function loadAll(): Promise<void> {
  const [jobs, probes, info, sum] = await Promise.all([
    api.jobs(),
    api.health().catch(() => state.probes),
    api.info().catch(() => ({} as { links?: Link[]; version?: string })),
    api.summary().catch(() => ({ succeeded: 0, failed: 0 })),
  ]);
  seen24.clear();
  set({ jobs, probes, links: info.links ?? [], version: info.version ?? "", loaded: true,
    ok24: sum.succeeded, failed24: sum.failed, summaryAt: Date.now() });
}

function applyRun(type: RunEvent["type"], run: Run): void {
  const j = state.jobs.find((x) => x.name === run.job);
  if (j) {
    const copy: Job = { ...j };
    if (type === "run.started") copy.running = Math.max(1, j.running);
    if (type === "run.queued") copy.queued = j.queued + 1;
    // A SKIPPED firing never ran: the row keeps the job's last real outcome (as the API does).
    const skipped = run.status === "SKIPPED";
    if (type !== "run.queued" && !skipped && (!j.last_run || run.id >= j.last_run.id)) {
      copy.last_run = {
        id: run.id, status: run.status, started_at: run.started_at, duration_ms: run.duration_ms,
        items_processed: run.items_processed, items_failed: run.items_failed, error: run.error,
      };
    }
    if (type === "run.finished" && !skipped && j.running > 0) copy.running = j.running - 1;
    upsertJob(copy);
  }
  if (type === "run.finished" && !seen24.has(run.id) && Date.parse(run.finished_at ?? "") >= state.summaryAt - 1000) {
    seen24.add(run.id);
    if (run.status === "SUCCESS") set({ ok24: state.ok24 + 1 });
    else if (FAILED.includes(run.status)) set({ failed24: state.failed24 + 1 });
  }
  if (type !== "run.progress") refetchJob(run.job);
}

function onEvent(ev: LiveEvent): void {
  if (isRunEvent(ev)) applyRun(ev.type, ev.run);
  else if (ev.type === "job.updated" || ev.type === "job.added") upsertJob(ev.job);
  else if (ev.type === "job.removed") set({ jobs: state.jobs.filter((x) => x.name !== ev.job) });
  else if (ev.type === "health.changed") {
    const p: Probe = ev.probe;
    const probes = state.probes.filter((x) => x.name !== p.name).concat(p).sort((a, b) => a.name.localeCompare(b.name));
    set({ probes });
  }
  eventListeners.forEach((f) => f(ev));
}

const eventListeners = new Set<(ev: LiveEvent) => void>();
/** Calls fn with every live event (each one, even when several arrive before a render). */
export function useEvents(fn: (ev: LiveEvent) => void, deps: unknown[]): void {
  useEffect(() => {
    eventListeners.add(fn);
    return () => void eventListeners.delete(fn);
  }, deps);
}

export function signIn(token: string): void {
  setToken(token);
  set({ token, loginError: "", loaded: false });
  live?.stop();
  live = new Live(token, {
    onEvent,
    onState: (conn) => set({ conn }),
    onAuthenticated: ({ name, role, resync }) => {
      if (role) set({ name, role: role as Role });
      if (resync) loadAll().catch((e: ApiError) => set({ loginError: e.message }));
    },
    onAuthFailed: () => signOut(true),
  });
  live.start();
}

export function signOut(rejected = false): void {
  live?.stop();
  live = null;
  setToken(null);
  set({ token: null, name: "", role: "", loaded: false, jobs: [], loginError: rejected ? "bad" : "" });
}

setUnauthorizedHandler(() => signOut(true));
// For the browser tests: simulate a dropped connection.
(window as unknown as { __cronvisor: object }).__cronvisor = { drop: () => live?.drop() };

export function can(action: "trigger" | "edit"): boolean {
  if (action === "trigger") return state.role === "operator" || state.role === "admin";
  return state.role === "admin";
}

if (state.token) signIn(state.token);
else {
  // Behind an authenticating proxy (auth.proxy) the person is known without a token.
  request<Info>("GET", "/api/info", undefined, "")
    .then((info) => {
      if (info.you?.person && !state.token) signIn(PROXY_SESSION);
    })
    .catch(() => {});
}
