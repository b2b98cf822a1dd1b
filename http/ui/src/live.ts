// The live connection: one WebSocket to /api/events, authenticated by its first message, that
// resumes from the last sequence number after a drop (with backoff) and asks the app to reload
// when the server cannot replay ({"type":"resync"}). Topic subscriptions (run:<id>) are renewed
// on every reconnect. Nothing here polls.

import type { Schemas } from "./api";

export type ConnState = "connecting" | "live" | "lost";
/** A numbered event (run.*, job.*, config.reloaded, health.changed, ...): see proto/openapi.yaml. */
export type LiveEvent = Schemas["Event"];
export type LiveEventOf<T extends LiveEvent["type"]> = Extract<LiveEvent, { type: T }>;
export type RunEvent = LiveEventOf<"run.queued" | "run.started" | "run.progress" | "run.finished">;
export function isRunEvent(ev: LiveEvent): ev is RunEvent {
  return ev.type.startsWith("run.");
}
/** An event of a subscribed topic (run:<id>: its output lines). */
export type TopicEvent = Schemas["OutputEvent"];
/** Everything the server sends: events, topic events and the hub's replies. */
type ServerMessage = Schemas["ServerMessage"];

export interface LiveHandlers {
  onEvent(ev: LiveEvent): void;
  onState(s: ConnState): void;
  /** Authenticated, with the server's role; resync = state must be reloaded. */
  onAuthenticated(info: { name: string; role: string; resync: boolean }): void;
  onAuthFailed(): void;
}

export class Live {
  private ws: WebSocket | null = null;
  private seq = -1;
  private attempt = 0;
  private timer: number | undefined;
  private stopped = false;
  private topics = new Map<string, Set<(ev: TopicEvent) => void>>();
  private everAuthenticated = false;
  private needResync = true;

  constructor(private token: string, private h: LiveHandlers) {}

  start(): void {
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close(1000);
    this.ws = null;
  }

  /** Closes the socket as a network failure would (tests use it): the usual reconnect follows. */
  drop(): void {
    this.ws?.close(4000, "dropped");
  }

  subscribe(topic: string, fn: (ev: TopicEvent) => void): () => void {
    let set = this.topics.get(topic);
    if (!set) {
      set = new Set();
      this.topics.set(topic, set);
      this.send({ type: "subscribe", topic });
    }
    set.add(fn);
    return () => {
      const s = this.topics.get(topic);
      if (!s) return;
      s.delete(fn);
      if (s.size === 0) {
        this.topics.delete(topic);
        this.send({ type: "unsubscribe", topic });
      }
    };
  }

  private send(m: object): void {
    if (this.ws?.readyState === WebSocket.OPEN && this.everAuthenticatedThisSocket) this.ws.send(JSON.stringify(m));
  }

  private everAuthenticatedThisSocket = false;

  private open(): void {
    this.h.onState(this.everAuthenticated ? "lost" : "connecting");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/events`);
    this.ws = ws;
    this.everAuthenticatedThisSocket = false;
    ws.onopen = () => {
      const auth: Record<string, unknown> = { type: "auth", token: this.token };
      if (this.seq >= 0) auth.since = this.seq;
      ws.send(JSON.stringify(auth));
    };
    ws.onmessage = (m) => this.onMessage(ws, m.data);
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (e.code === 1008 && !this.everAuthenticatedThisSocket) {
        this.h.onAuthFailed();
        return;
      }
      this.h.onState("lost");
      const delay = Math.min(15000, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
      this.attempt++;
      this.timer = window.setTimeout(() => this.open(), delay);
    };
  }

  private onMessage(ws: WebSocket, data: unknown): void {
    let ev: ServerMessage;
    try {
      ev = JSON.parse(String(data)) as ServerMessage;
    } catch {
      return;
    }
    if (ev.type === "authenticated") {
      this.everAuthenticatedThisSocket = true;
      this.attempt = 0;
      // A first connection, or one whose resume point is unknown, must load the state; a
      // resumed one gets the missed events replayed (or a resync message) next.
      const resync = this.needResync || this.seq < 0;
      this.needResync = false;
      if (resync) this.seq = typeof ev.seq === "number" ? ev.seq : 0;
      this.everAuthenticated = true;
      for (const topic of this.topics.keys()) ws.send(JSON.stringify({ type: "subscribe", topic }));
      this.h.onState("live");
      this.h.onAuthenticated({ name: ev.name ?? "", role: ev.role ?? "viewer", resync });
      return;
    }
    if (ev.type === "resync" && ev.reason) {
      this.needResync = true; // dropped as a slow consumer: reload after reconnecting
      return;
    }
    if (ev.type === "resync") {
      if (typeof ev.seq === "number") this.seq = ev.seq;
      else this.needResync = true;
      this.h.onAuthenticated({ name: "", role: "", resync: true });
      return;
    }
    if (ev.type === "error" || ev.type === "pong" || ev.type === "subscribed" || ev.type === "unsubscribed") return;
    if (ev.type === "output") {
      const out = ev;
      this.topics.get(out.topic)?.forEach((f) => f(out));
      return;
    }
    if (typeof ev.seq === "number") {
      if (ev.seq <= this.seq) return; // replayed twice
      this.seq = ev.seq;
    }
    this.h.onEvent(ev);
  }
}
