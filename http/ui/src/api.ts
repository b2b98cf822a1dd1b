// The REST client: every call carries the session's bearer token; errors become ApiError with
// the server's {"error":{"code","message",...}} body. See proto/openapi.yaml for the contract.

import type { components } from "./gen/api";
import { errorText } from "./errors";

// Every shape below is generated from proto/openapi.yaml (src/gen/api.d.ts, written by
// `npm run gen` at each build): a field renamed there breaks this build.
export type Schemas = components["schemas"];
export type RunStatus = Schemas["RunStatus"];
export type LastRun = NonNullable<Schemas["LastRun"]>;
export type JobStats = NonNullable<Schemas["Stats"]>;
export type Job = Schemas["Job"];
export type Run = Schemas["Run"] & { output_tail?: string };
/** A run with its chain links (GET /api/runs/{id} only). */
export type RunFull = Schemas["RunFull"];
export type ChainLink = Schemas["ChainLink"];
/** error: set by the page when a refresh request itself failed. */
export type Probe = Schemas["Probe"] & { error?: string | null };
export type InstanceList = Schemas["InstanceList"];
export type Instance = InstanceList["instances"][number];
export type InstanceRun = Instance["running"][number];
export type Info = Schemas["Info"];
export type Link = Info["links"][number];
export type AuditEntry = Schemas["AuditEntry"];
export type Preview = Schemas["Preview"];
export type Summary = Schemas["Summary"];
type Authenticated = Extract<Schemas["ControlMessage"], { type: "authenticated" }>;
export type Role = Authenticated["role"];

export class ApiError extends Error {
  status: number;
  code: string;
  /** The server's own (English) message; .message is the translated text for the code. */
  detail: string;
  column?: number;
  field?: string;
  constructor(status: number, code: string, message: string, extra?: { column?: number; field?: string }) {
    super(errorText(code, message, extra?.column));
    this.status = status;
    this.code = code;
    this.detail = message;
    this.column = extra?.column;
    this.field = extra?.field;
  }
}

const TOKEN_KEY = "cronvisor.token";

/** The session of a person a trusted proxy names (auth.proxy): no token is sent, the proxy's
 * headers authenticate every request. Never stored. */
export const PROXY_SESSION = "\u0000proxy";

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}
export function setToken(t: string | null): void {
  if (t === null || t === PROXY_SESSION) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, t);
}

let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}

let networkFailed = false;
/** True once after a request failed for want of a network (no answer at all): what the page
 * loaded then is missing, and is loaded again when the live connection is back. */
export function takeNetworkFailure(): boolean {
  const f = networkFailed;
  networkFailed = false;
  return f;
}

export async function request<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const tok = token ?? getToken();
  if (tok && tok !== PROXY_SESSION) headers.Authorization = `Bearer ${tok}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    networkFailed = true;
    throw new ApiError(0, "network", (e as Error).message);
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    type ErrorBody = { error?: { code?: string; message?: string; column?: number; field?: string } };
    const err = (json as ErrorBody | null)?.error ?? {};
    if (res.status === 401 && token === undefined) onUnauthorized();
    throw new ApiError(res.status, err.code ?? `http_${res.status}`, err.message ?? res.statusText, err);
  }
  return json as T;
}

const enc = encodeURIComponent;

export const api = {
  /** One page of jobs by name; pass next_cursor back for the following page. */
  jobs: (q: { q?: string; tag?: string; status?: string; enabled?: boolean; limit: number; cursor?: string | null }) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
    return request<Schemas["JobList"]>("GET", `/api/jobs?${p}`);
  },
  job: (name: string) => request<Job>("GET", `/api/jobs/${enc(name)}`),
  trigger: (name: string) =>
    request<Schemas["Triggered"]>("POST", `/api/jobs/${enc(name)}/trigger`),
  setEnabled: (name: string, on: boolean) =>
    request<Job>("POST", `/api/jobs/${enc(name)}/${on ? "enable" : "disable"}`),
  setSchedule: (name: string, schedule: string, timezone?: string) =>
    request<Schemas["ScheduleChanged"]>("PUT", `/api/jobs/${enc(name)}/schedule`,
      timezone ? { schedule, timezone } : { schedule }),
  resetOverrides: (name: string) => request<Job>("DELETE", `/api/jobs/${enc(name)}/overrides`),
  preview: (schedule: string, timezone: string, job?: string) =>
    request<Preview>("POST", "/api/schedule/preview", { schedule, timezone, job, count: 5 }),
  /** One page of runs, newest first; pass next_cursor back for the following page. */
  runs: (q: { job?: string; status?: string; trigger?: string; limit: number; cursor?: string; since?: string }) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== "" && k !== "job") p.set(k, String(v));
    const base = q.job ? `/api/jobs/${enc(q.job)}/runs` : "/api/runs";
    return request<Schemas["RunPage"]>("GET", `${base}?${p}`);
  },
  /** Counts of the last 24 hours (running and queued: now). */
  summary: () =>
    request<Summary>("GET", "/api/summary"),
  run: (id: number) => request<Schemas["RunFull"]>("GET", `/api/runs/${id}`),
  cancel: (id: number) => request<Schemas["Cancelling"]>("POST", `/api/runs/${id}/cancel`),
  health: () => request<{ probes: Probe[] }>("GET", "/api/health").then((r) => r.probes ?? []),
  checkProbe: (name: string) =>
    request<{ probes: Probe[] }>("POST", `/api/health/refresh?probe=${enc(name)}`).then((r) => r.probes[0]),
  info: () => request<Info>("GET", "/api/info"),
  audit: (job: string) =>
    request<Schemas["AuditPage"]>("GET", `/api/audit?job=${enc(job)}&limit=50`).then((r) => r.entries ?? []),
  instances: () => request<InstanceList>("GET", "/api/instances"),
  ticket: () => request<Schemas["Ticket"]>("POST", "/api/events/ticket"),
  /** One page of runs across jobs (GET /api/runs, the Runs page), newest first. */
  allRuns: (q: { job?: string; status?: string; trigger?: string; since?: string; until?: string; limit: number; cursor?: string }) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== "") p.set(k, String(v));
    return request<Schemas["RunPage"]>("GET", `/api/runs?${p}`);
  },
};
