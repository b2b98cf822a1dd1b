// The REST client: every call carries the session's bearer token; errors become ApiError with
// the server's {"error":{"code","message",...}} body. See proto/openapi.yaml for the contract.

export type Role = "viewer" | "operator" | "admin";
export type RunStatus =
  | "QUEUED" | "RUNNING" | "SUCCESS" | "PARTIAL" | "FAILED" | "TIMED_OUT"
  | "CANCELLED" | "SKIPPED" | "ABANDONED";

export interface LastRun {
  id: number;
  status: RunStatus;
  started_at: string | null;
  duration_ms: number;
  items_processed: number;
  items_failed: number;
  error?: string | null;
}

export interface JobStats {
  runs: number;
  successes: number;
  partials: number;
  failures: number;
  consecutive_failures: number;
  success_rate: number; // 0..1
  avg_duration_ms: number;
  p95_duration_ms: number;
  window: number;
}

export interface Job {
  name: string;
  title: string | null;
  description: string | null;
  schedule: string;
  schedule_human: string | null;
  timezone: string;
  enabled: boolean;
  locked: boolean;
  overridden: string[];
  config: { schedule: string; timezone: string | null; enabled: boolean };
  next_fire: string | null;
  running: number;
  queued: number;
  last_run: LastRun | null;
  stats: JobStats | null;
  tags: string[];
}

export interface Run {
  id: number;
  job: string;
  status: RunStatus;
  trigger: string;
  scheduled_for: string | null;
  queued_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  duration_ms: number;
  attempt: number;
  retry_of: number | null;
  exit_code: number;
  signal: number;
  items_processed: number;
  items_failed: number;
  progress: number | null;
  summary: unknown;
  error: string | null;
  max_rss_kb: number;
  cpu_user_ms: number;
  cpu_sys_ms: number;
  output_tail?: string;
}

export interface Probe {
  name: string;
  status: string; // "healthy" | "unhealthy" | "unknown"
  latency_ms: number;
  checked_at: string | null;
  since?: string | null;
  message?: string | null; // what the latest check said (the error when not healthy)
  error?: string | null; // set by the page when a refresh request itself failed
}

export interface InstanceRun {
  id: number;
  job: string;
  trigger: string;
  started_at: string | null;
}

export interface Instance {
  id: string;
  hostname: string;
  pid: number;
  version: string;
  started_at: string | null;
  last_seen: string | null;
  self: boolean;
  alive: boolean;
  running: InstanceRun[];
}

export interface InstanceList {
  self: string;
  shared: boolean;
  heartbeat_timeout_ms: number;
  instances: Instance[];
}

export interface Link {
  title: string;
  url: string;
}

export interface AuditEntry {
  id?: number;
  at: string;
  actor: string;
  action: string;
  job: string | null;
  run_id?: number | null;
  before: unknown;
  after: unknown;
}

export interface Preview {
  kind: string;
  timezone: string;
  next: string[];
}

export class ApiError extends Error {
  status: number;
  code: string;
  column?: number;
  field?: string;
  constructor(status: number, code: string, message: string, extra?: { column?: number; field?: string }) {
    super(message);
    this.status = status;
    this.code = code;
    this.column = extra?.column;
    this.field = extra?.field;
  }
}

const TOKEN_KEY = "cronvisor.token";

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}
export function setToken(t: string | null): void {
  if (t === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, t);
}

let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}

export async function request<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const tok = token ?? getToken();
  if (tok) headers.Authorization = `Bearer ${tok}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "network", (e as Error).message);
  }
  const text = await res.text();
  let json: any = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const err = json?.error ?? {};
    if (res.status === 401 && token === undefined) onUnauthorized();
    throw new ApiError(res.status, err.code ?? `http_${res.status}`, err.message ?? res.statusText, err);
  }
  return json as T;
}

const enc = encodeURIComponent;

export const api = {
  jobs: () => request<{ jobs: Job[] }>("GET", "/api/jobs").then((r) => r.jobs),
  job: (name: string) => request<Job>("GET", `/api/jobs/${enc(name)}`),
  trigger: (name: string) =>
    request<{ run_id: number; status: RunStatus; job: string }>("POST", `/api/jobs/${enc(name)}/trigger`),
  setEnabled: (name: string, on: boolean) =>
    request<Job>("POST", `/api/jobs/${enc(name)}/${on ? "enable" : "disable"}`),
  setSchedule: (name: string, schedule: string, timezone?: string) =>
    request<{ job: Job; next: string[] }>("PUT", `/api/jobs/${enc(name)}/schedule`,
      timezone ? { schedule, timezone } : { schedule }),
  resetOverrides: (name: string) => request<Job>("DELETE", `/api/jobs/${enc(name)}/overrides`),
  preview: (schedule: string, timezone: string, job?: string) =>
    request<Preview>("POST", "/api/schedule/preview", { schedule, timezone, job, count: 5 }),
  /** One page of runs, newest first; pass next_cursor back for the following page. */
  runs: (q: { job?: string; status?: string; trigger?: string; limit: number; cursor?: string; since?: string }) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== "" && k !== "job") p.set(k, String(v));
    const base = q.job ? `/api/jobs/${enc(q.job)}/runs` : "/api/runs";
    return request<{ runs: Run[]; next_cursor: string | null }>("GET", `${base}?${p}`);
  },
  /** Counts of the last 24 hours (running and queued: now). */
  summary: () =>
    request<{ running: number; queued: number; succeeded: number; partial: number; failed: number }>("GET", "/api/summary"),
  run: (id: number) => request<Run>("GET", `/api/runs/${id}`),
  health: () => request<{ probes: Probe[] }>("GET", "/api/health").then((r) => r.probes ?? []),
  checkProbe: (name: string) =>
    request<{ probes: Probe[] }>("POST", `/api/health/refresh?probe=${enc(name)}`).then((r) => r.probes[0]),
  info: () => request<{ version?: string; links?: Link[]; instance?: string }>("GET", "/api/info"),
  audit: (job: string) =>
    request<{ entries: AuditEntry[] }>("GET", `/api/audit?job=${enc(job)}&limit=50`).then((r) => r.entries ?? []),
  instances: () => request<InstanceList>("GET", "/api/instances"),
  ticket: () => request<{ ticket: string }>("POST", "/api/events/ticket"),
};
