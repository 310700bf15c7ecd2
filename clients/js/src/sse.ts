// The HTTP fallback transport (docs/protocol.md, "HTTP fallback"): a
// Server-Sent Events stream carries the server's messages, POST requests
// carry the client's. It is a Transport like the WebSocket one: the
// client sends the same bytes and gets the same messages.
//
//   POST   /sse/open                  HELLO or RESUME → session, stream key, send token, first messages
//   GET    /sse/stream?session=&key=  the event stream (EventSource; it resumes on its own with Last-Event-ID)
//   POST   /sse/send?session=         [firstSeq, [message...]], one request in flight, retried as is
//   DELETE /sse/session?session=      ends the session (a close with 1000)

import { CloseCode } from "./errors.js";
import { MsgType, decodeMessage, type Resume, type Welcome } from "./protocol.js";
import type { Transport, TransportEvents, TransportFactory } from "./transport.js";
import { encodeValue } from "./values.js";

/** The subset of the WHATWG EventSource the fallback needs. */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  addEventListener(type: string, listener: (ev: { data: string }) => void): void;
  close(): void;
}

export type EventSourceConstructor = new (url: string) => EventSourceLike;

/** The subset of fetch the fallback needs. */
export type FetchLike = (
  url: string,
  init: { method: string; headers?: Record<string, string>; body?: Uint8Array; cache?: "no-store"; keepalive?: boolean },
) => Promise<{ status: number; json(): Promise<unknown> }>;

export interface SseTransportOptions {
  /** The EventSource constructor (default globalThis.EventSource; in Node, pass one). */
  eventSource?: EventSourceConstructor;
  /** The fetch function (default globalThis.fetch). */
  fetch?: FetchLike;
  /**
   * How long a dropped event stream may take to come back on its own
   * (EventSource reconnects and the server resumes the session from the
   * last event ID) before the connection counts as lost, in ms (default 4000).
   */
  streamRetryTimeout?: number;
}

/** Most messages in one POST (the server's limit). */
const MAX_POST_MESSAGES = 64;
/** Largest retry delay of a POST, ms. */
const MAX_POST_RETRY_MS = 2000;
/** maxMessage assumed before a WELCOME said otherwise. */
const DEFAULT_MAX_MESSAGE = 16 * 1024;

/** What a factory remembers of a session across its connections. */
interface SessionMemory {
  /** The highest POST sequence number sent for the session (applied or not). */
  lastPostSeq: number;
  /** The server's maxMessage, from WELCOME. */
  maxMessage: number;
}

/** The fallback's HTTP endpoints for a server URL. */
export interface SseEndpoints {
  open: string;
  stream: string;
  send: string;
  session: string;
}

/**
 * The fallback endpoints of a server, from its WebSocket URL:
 * ws://host/ws becomes http://host/sse/open and so on (a path ending in
 * /ws keeps its prefix: wss://host/game/ws → https://host/game/sse/...).
 */
export function sseEndpoints(url: string): SseEndpoints {
  const u = new URL(url);
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  let prefix = u.pathname.replace(/\/+$/, "");
  if (prefix.endsWith("/ws")) prefix = prefix.slice(0, -3);
  u.search = "";
  u.hash = "";
  const at = (path: string) => {
    u.pathname = `${prefix}/sse/${path}`;
    return u.toString();
  };
  return { open: at("open"), stream: at("stream"), send: at("send"), session: at("session") };
}

/** Whether the fallback can run here: an EventSource and fetch exist. */
export function sseAvailable(options: SseTransportOptions = {}): boolean {
  const g = globalThis as { EventSource?: unknown; fetch?: unknown };
  return typeof (options.eventSource ?? g.EventSource) === "function" && typeof (options.fetch ?? g.fetch) === "function";
}

/**
 * A TransportFactory over the HTTP fallback. One factory serves one
 * client: it remembers, per session, how far the POST sequence went, so a
 * session resumed on a new fallback connection continues its numbering.
 */
export function sseTransport(options: SseTransportOptions = {}): TransportFactory {
  const sessions = new Map<string, SessionMemory>();
  return (url, events) => new SseTransport(url, events, options, sessions);
}

/** base64 (standard alphabet) to bytes. */
function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const enc = encodeURIComponent;

interface Batch {
  firstSeq: number;
  msgs: Uint8Array[];
}

class SseTransport implements Transport {
  readonly name = "sse";

  private readonly endpoints: SseEndpoints;
  private readonly fetchFn: FetchLike;
  private readonly ES: EventSourceConstructor | undefined;
  /** idle: waiting for HELLO or RESUME; opening: POST /sse/open in flight; open; closed. */
  private phase: "idle" | "opening" | "open" | "closed" = "idle";
  private session = "";
  private sendToken = "";
  private memory: SessionMemory | undefined;
  private es: EventSourceLike | null = null;
  private streamOpens = 0;
  /** The stream came back on its own: its first event must be RESUMED. */
  private awaitingResumed = false;
  private streamTimer: ReturnType<typeof setTimeout> | undefined;

  /** Messages waiting for the next POST. */
  private queue: Uint8Array[] = [];
  /** The POST in flight (or waiting for its retry). */
  private batch: Batch | null = null;
  private nextSeq = 1;
  private retryDelay = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private scheduled = false;
  /** Closed with 1000: send what is queued, then end the session. */
  private ending = false;
  private lostTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    url: string,
    private readonly events: TransportEvents,
    private readonly opts: SseTransportOptions,
    private readonly sessions: Map<string, SessionMemory>,
  ) {
    this.endpoints = sseEndpoints(url);
    const g = globalThis as { fetch?: FetchLike; EventSource?: EventSourceConstructor };
    const f = opts.fetch ?? g.fetch;
    this.ES = opts.eventSource ?? g.EventSource;
    if (typeof f !== "function" || typeof this.ES !== "function") {
      throw new Error("the HTTP fallback needs fetch and EventSource: pass an EventSource implementation with the eventSource option");
    }
    this.fetchFn = (u, init) => f.call(globalThis, u, init);
    // The session opens with the first message (HELLO or RESUME), which
    // travels in the body of POST /sse/open: the transport is "open" at once.
    queueMicrotask(() => {
      if (this.phase !== "closed") this.events.open();
    });
  }

  send(data: Uint8Array): void {
    switch (this.phase) {
      case "closed":
        return;
      case "idle":
        this.openSession(data);
        return;
      default:
        this.queue.push(data);
        this.schedule();
    }
  }

  close(code: number, _reason: string): void {
    if (this.phase === "closed") return;
    const wasOpen = this.phase === "open";
    this.phase = "closed";
    this.stopStream();
    clearTimeout(this.lostTimer);
    if (code !== CloseCode.Normal) {
      // The session stays on the server, detached, for a resume.
      clearTimeout(this.retryTimer);
      this.queue = [];
      return;
    }
    // Like a WebSocket close with 1000: what was sent goes out first, then
    // the session ends (a session still opening ends when its answer comes).
    this.ending = true;
    if (wasOpen) {
      if (!this.batch) this.post();
      else if (this.retryTimer !== undefined) {
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
        this.batch = null;
        this.endSession();
      }
    }
  }

  // ---- opening ----

  private openSession(first: Uint8Array): void {
    this.phase = "opening";
    let resumeOf: string | undefined;
    if (first.length >= 2 && ((first[0] << 8) | first[1]) === MsgType.Resume) {
      try {
        resumeOf = (decodeMessage(first) as Resume).sessionID;
      } catch {
        // The server refuses it with the details.
      }
    }
    this.fetchFn(this.endpoints.open, {
      method: "POST",
      headers: { "Content-Type": "application/octet-stream" },
      body: first,
      cache: "no-store",
    })
      .then(async (res) => ({ status: res.status, body: (await res.json().catch(() => null)) as OpenReply | null }))
      .then(
        ({ status, body }) => this.opened(status, body, resumeOf),
        (e) => this.finish(CloseCode.Abnormal, `cannot reach ${this.endpoints.open}: ${e instanceof Error ? e.message : String(e)}`),
      );
  }

  private opened(status: number, reply: OpenReply | null, resumeOf: string | undefined): void {
    const ok = status === 200 && reply !== null && typeof reply.session === "string" && typeof reply.key === "string" && typeof reply.sendToken === "string";
    if (this.phase === "closed") {
      // Closed while opening: a close with 1000 still ends the session.
      if (ok && this.ending) {
        this.session = reply!.session!;
        this.sendToken = reply!.sendToken!;
        this.endSession();
      }
      return;
    }
    let messages: Uint8Array[] = [];
    try {
      messages = (Array.isArray(reply?.messages) ? reply!.messages : []).map((m) => fromBase64(String(m)));
    } catch {
      messages = [];
    }
    if (ok) {
      this.session = reply!.session!;
      this.sendToken = reply!.sendToken!;
      this.phase = "open";
      let memory = this.sessions.get(this.session);
      if (!memory || resumeOf !== this.session) {
        // A new session numbers its POSTs from 1; a resumed one goes on
        // where it was (the server keeps its count across connections).
        memory = { lastPostSeq: 0, maxMessage: memory?.maxMessage ?? DEFAULT_MAX_MESSAGE };
        this.sessions.set(this.session, memory);
      }
      this.memory = memory;
      // The server says which number it expects (a session that moved to
      // another node starts its count there anew); the client's own count
      // is for a server that does not say.
      const next = reply!.nextSeq;
      this.nextSeq = typeof next === "number" && Number.isSafeInteger(next) && next >= 1 ? next : memory.lastPostSeq + 1;
      memory.lastPostSeq = this.nextSeq - 1;
      for (const m of messages) {
        if (m.length >= 2 && ((m[0] << 8) | m[1]) === MsgType.Welcome) {
          try {
            memory.maxMessage = (decodeMessage(m) as Welcome).maxMessage || memory.maxMessage;
          } catch {
            // Reported by the client when it decodes the message.
          }
        }
      }
      this.startStream(`${this.endpoints.stream}?session=${enc(this.session)}&key=${enc(reply!.key!)}`);
      this.deliver(messages);
      return;
    }
    // Refused. The ERROR among the messages tells the client why; after a
    // refused RESUME (409, 429) it starts over with HELLO, which opens anew.
    this.phase = "idle";
    this.deliver(messages);
    if (this.phase !== "idle") return; // the client answered (HELLO) or closed
    const why = reply?.error ? `: ${reply.error}` : "";
    switch (status) {
      case 409:
      case 429:
        if (messages.length > 0) return; // the client decides what comes next
        this.finish(CloseCode.Abnormal, `the fallback refused the session (${status}${why})`);
        return;
      case 401:
      case 403:
        this.finish(CloseCode.Unauthorized, `unauthorized (${status}${why})`);
        return;
      case 400:
        this.finish(CloseCode.ProtocolError, `the fallback refused the first message (400${why})`);
        return;
      case 413:
        this.finish(CloseCode.MessageTooBig, `the first message is too large (413${why})`);
        return;
      default:
        this.finish(CloseCode.Abnormal, `the fallback could not open a session (HTTP ${status}${why})`);
    }
  }

  private deliver(messages: Uint8Array[]): void {
    for (const m of messages) {
      if (this.phase === "closed") return;
      this.events.message(m);
    }
  }

  // ---- the event stream ----

  private startStream(url: string): void {
    const es = new this.ES!(url);
    this.es = es;
    es.onopen = () => {
      if (this.es !== es) return;
      this.streamOpens++;
      clearTimeout(this.streamTimer);
      this.streamTimer = undefined;
      // A stream that comes back resumes the session: RESUMED comes first.
      if (this.streamOpens > 1) this.awaitingResumed = true;
    };
    es.onmessage = (ev) => {
      if (this.es !== es) return;
      this.awaitingResumed = false;
      let bytes: Uint8Array;
      try {
        bytes = fromBase64(ev.data);
      } catch {
        bytes = new Uint8Array(0); // reported as malformed by the client
      }
      this.events.message(bytes);
    };
    es.addEventListener("close", (ev) => {
      if (this.es !== es) return;
      let code: number = CloseCode.Abnormal;
      let reason = "";
      try {
        const d = JSON.parse(ev.data) as { code?: unknown; reason?: unknown };
        if (typeof d.code === "number") code = d.code;
        if (typeof d.reason === "string") reason = d.reason;
      } catch {
        // A close without details: the connection dropped.
      }
      if (this.awaitingResumed) {
        // The stream came back but the session could not be resumed from
        // it: the connection is lost, and the client resumes (or starts
        // over) with a new open.
        this.finish(CloseCode.Abnormal, `the event stream could not resume the session (${code}${reason ? ": " + reason : ""})`);
        return;
      }
      this.finish(code, reason);
    });
    es.onerror = () => {
      if (this.es !== es) return;
      if (es.readyState === 2) {
        // Refused for good (an HTTP error, a session the server no longer knows).
        this.finish(CloseCode.Abnormal, "the event stream failed");
        return;
      }
      // EventSource reconnects on its own; give it a moment.
      if (this.streamTimer === undefined) {
        this.streamTimer = setTimeout(() => {
          this.streamTimer = undefined;
          if (this.es === es && es.readyState !== 1) this.finish(CloseCode.Abnormal, "the event stream dropped and did not come back");
        }, this.opts.streamRetryTimeout ?? 4000);
      }
    };
  }

  private stopStream(): void {
    clearTimeout(this.streamTimer);
    this.streamTimer = undefined;
    const es = this.es;
    this.es = null;
    es?.close();
  }

  /** The connection ended on its own: reported once. */
  private finish(code: number, reason: string): void {
    if (this.phase === "closed") return;
    this.phase = "closed";
    this.stopStream();
    clearTimeout(this.retryTimer);
    clearTimeout(this.lostTimer);
    this.queue = [];
    this.batch = null;
    this.events.close(code, reason);
  }

  // ---- sending ----

  private schedule(): void {
    if (this.scheduled || this.batch || this.phase !== "open") return;
    this.scheduled = true;
    // Messages sent in the same turn share a POST.
    queueMicrotask(() => {
      this.scheduled = false;
      if (this.phase === "open") this.post();
    });
  }

  /** Sends the next batch, if nothing is in flight. */
  private post(): void {
    if (this.batch) return;
    if (this.queue.length === 0) {
      if (this.ending) this.endSession();
      return;
    }
    const limit = 4 * (this.memory?.maxMessage ?? DEFAULT_MAX_MESSAGE);
    let n = 0;
    let bytes = 16;
    while (n < this.queue.length && n < MAX_POST_MESSAGES) {
      const size = this.queue[n].length + 5;
      if (n > 0 && bytes + size > limit) break;
      bytes += size;
      n++;
    }
    this.batch = { firstSeq: this.nextSeq, msgs: this.queue.splice(0, n) };
    this.sendBatch(this.batch);
  }

  private sendBatch(b: Batch): void {
    this.retryTimer = undefined;
    if (this.memory) this.memory.lastPostSeq = Math.max(this.memory.lastPostSeq, b.firstSeq + b.msgs.length - 1);
    this.fetchFn(`${this.endpoints.send}?session=${enc(this.session)}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${this.sendToken}`, "Content-Type": "application/octet-stream" },
      body: encodeValue([b.firstSeq, b.msgs]),
      cache: "no-store",
    })
      .then(async (res) => {
        const body = res.status === 204 ? null : ((await res.json().catch(() => null)) as { expected?: unknown; error?: unknown } | null);
        this.posted(b, res.status, body);
      })
      .catch(() => this.posted(b, 0, null));
  }

  private posted(b: Batch, status: number, body: { expected?: unknown; error?: unknown } | null): void {
    if (this.batch !== b) return;
    const live = this.phase === "open" || this.ending;
    if (!live) {
      this.batch = null;
      return;
    }
    if (status === 204) {
      this.batch = null;
      this.nextSeq = b.firstSeq + b.msgs.length;
      this.retryDelay = 0;
      this.post();
      return;
    }
    const why = typeof body?.error === "string" ? `: ${body.error}` : "";
    switch (status) {
      case 400:
        this.batch = null;
        this.finish(CloseCode.ProtocolError, `the server refused a POST (400${why})`);
        return;
      case 413:
        this.batch = null;
        this.finish(CloseCode.MessageTooBig, `the server refused a POST as too large (413${why})`);
        return;
      case 401:
      case 404:
        // The session is gone. The stream usually says why first (a close
        // event); if it does not, the connection counts as lost.
        this.batch = null;
        if (this.ending) return;
        this.lostTimer ??= setTimeout(() => this.finish(CloseCode.Abnormal, `the server no longer knows the session (${status}${why})`), 1000);
        return;
      case 409: {
        // Out of order or stream not attached: nothing applied. When the
        // server misses messages before this batch (they were lost with an
        // earlier connection), the batch takes their numbers.
        const expected = typeof body?.expected === "number" ? body.expected : 0;
        if (expected > 0 && expected < b.firstSeq) b.firstSeq = expected;
        break;
      }
    }
    // A network failure, 409, 429 or a server error: the same batch again
    // (messages the server already applied are skipped).
    if (this.ending) {
      this.batch = null;
      this.endSession();
      return;
    }
    this.retryDelay = Math.min(MAX_POST_RETRY_MS, Math.max(100, this.retryDelay * 2));
    this.retryTimer = setTimeout(() => {
      if (this.batch === b && this.phase === "open") this.sendBatch(b);
    }, this.retryDelay);
  }

  /** DELETE /sse/session: the session ends at once. */
  private endSession(): void {
    if (!this.session) return;
    this.ending = false;
    const session = this.session;
    this.session = "";
    this.fetchFn(`${this.endpoints.session}?session=${enc(session)}`, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${this.sendToken}` },
      keepalive: true,
    }).catch(() => {});
  }
}

interface OpenReply {
  session?: string;
  key?: string;
  sendToken?: string;
  nextSeq?: unknown;
  messages?: unknown[];
  code?: number;
  error?: string;
  errorCode?: number;
}
