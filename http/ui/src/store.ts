// The page's state: the jobs on screen (a page of the list, or the job of a detail page), the
// active counts, probes, 24-hour counters, who is signed in and the connection. Loaded over REST
// when the live connection (re)authenticates without a resume point or a page is navigated to,
// then kept current by the events alone: run events and job.updated carry the job as the API
// lists it, so an event never costs a request. Components read it through useStore().
import { useEffect, useState } from "preact/hooks";
import {
  api, ApiError, getToken, Info, Job, Link, Probe, PROXY_SESSION, request, Role, Run, setToken, setUnauthorizedHandler,
  takeNetworkFailure,
} from "./api";
import { ConnState, isRunEvent, Live, LiveEvent, RunEvent } from "./live";

export interface State {
  token: string | null;
  name: string;
  role: Role | "";
  conn: ConnState;
  loaded: boolean;
  jobs: Job[]; // the jobs on screen
  total: number; // jobs matching the list's filter
  nextCursor: string | null; // the list's next page
  gen: number; // bumped by every full (re)load: pages fetch again
  running: number; // runs running / queued now, over every job
  queued: number;
  probes: Probe[];
  links: Link[];
  version: string;
  ok24: number;
  failed24: number;
  partial24: number;
  loginError: string;
  summaryAt: number; // when ok24/failed24 were read: runs finished after it are counted on top
}

export const state: State = {
  token: getToken(), name: "", role: "", conn: "connecting", loaded: false,
  jobs: [], total: 0, nextCursor: null, gen: 0, running: 0, queued: 0, probes: [], links: [], version: "", ok24: 0, failed24: 0, partial24: 0, loginError: "", summaryAt: 0,
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
/** What GET /api/summary counts as failed (the Failed card, and the Runs page it opens). */
const SUMMARY_FAILED = ["FAILED", "TIMED_OUT"];

/** Replaces the job on screen with j (added = a new job: put in the list too). */
function upsertJob(j: Job, added = false): void {
  const i = state.jobs.findIndex((x) => x.name === j.name);
  if (i < 0 && !added) return; // not on screen
  // The job record's last_run may lack the error text that the run event carried: keep it.
  const old = i >= 0 ? state.jobs[i].last_run : null;
  if (j.last_run && old && old.id === j.last_run.id && j.last_run.error === undefined) j.last_run.error = old.error;
  const jobs = state.jobs.slice();
  if (i >= 0) jobs[i] = j;
  else jobs.push(j);
  if (added) jobs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  set({ jobs });
}

/** Puts j in the page's list of jobs on screen (a detail page's job). */
export function showJob(j: Job): void {
  upsertJob(j, true);
}

export async function loadAll(): Promise<void> {
  const [sum, probes, info] = await Promise.all([
    // The counts of runs active now come with it, then with every run event (ev.active).
    api.summary().catch(() => ({ succeeded: 0, failed: 0, partial: 0, running: state.running, queued: state.queued })),
    api.health().catch(() => state.probes),
    api.info().catch(() => ({} as { links?: Link[]; version?: string })),
  ]);
  seen24.clear();
  set({ probes, links: info.links ?? [], version: info.version ?? "", loaded: true, gen: state.gen + 1,
    ok24: sum.succeeded, failed24: sum.failed, partial24: sum.partial, summaryAt: Date.now(),
    running: sum.running, queued: sum.queued });
}

function applyRun(type: RunEvent["type"], run: Run, job: Job | undefined): void {
  const j = state.jobs.find((x) => x.name === run.job);
  if (job) {
    // The event carries the job as the API lists it after the event: nothing to ask.
    if (j && j.last_run && job.last_run && j.last_run.id === job.last_run.id && job.last_run.error === undefined)
      job.last_run.error = j.last_run.error;
    upsertJob(job);
  } else if (j && type !== "run.progress") {
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
    else if (run.status === "PARTIAL") set({ partial24: state.partial24 + 1 });
    else if (SUMMARY_FAILED.includes(run.status)) set({ failed24: state.failed24 + 1 });
  }
}

function onEvent(ev: LiveEvent): void {
  if (isRunEvent(ev)) {
    applyRun(ev.type, ev.run, ev.job);
    if (ev.active && (ev.active.running !== state.running || ev.active.queued !== state.queued))
      set({ running: ev.active.running, queued: ev.active.queued });
  }
  else if (ev.type === "job.updated" || ev.type === "job.added") upsertJob(ev.job, ev.type === "job.added");
  else if (ev.type === "job.removed") {
    set({ jobs: state.jobs.filter((x) => x.name !== ev.job) });
  }
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
      // A resumed connection replays what it missed, but a page whose request failed while the
      // network was gone has nothing for the events to update: it loads again.
      if (takeNetworkFailure() || resync) loadAll().catch((e: ApiError) => set({ loginError: e.message }));
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
