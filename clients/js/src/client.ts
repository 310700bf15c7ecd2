// The client: one session with the server, requests (join, create, list),
// heartbeats, automatic reconnection with session resume, MOVE, and the
// choice between WebSocket and the HTTP fallback.

import { backoffDelay, drainDelay } from "./backoff.js";
import { Emitter, rethrow } from "./emitter.js";
import { CloseCode, ErrorCode, GameserverError, closeAction, closeCodeError, errorCodeName, type CloseAction } from "./errors.js";
import {
  JoinMode,
  LeftReason,
  MsgType,
  PROTOCOL_VERSION,
  decodeMessage,
  encodeMessage,
  isGameType,
  typeName,
  type ErrorMsg,
  type Joined,
  type Left,
  type Message,
  type Move,
  type Resumed,
  type Rooms,
  type SystemMessage,
  type Welcome,
} from "./protocol.js";
import { Room, errMessage, type DisconnectedEvent, type LeaveEvent, type ReconnectingEvent, type RoomHost } from "./room.js";
import { sseAvailable, sseTransport, type EventSourceConstructor, type FetchLike } from "./sse.js";
import { webSocketTransport, type Transport, type TransportFactory, type WebSocketConstructor } from "./transport.js";
import { decodeValue, encodeValue } from "./values.js";

/** The client's version, sent in HELLO as "gameserver-js/<version>". */
export const VERSION = "0.1.0";

/** The built-in transports. */
export type TransportName = "websocket" | "sse";

export interface ClientOptions {
  /**
   * Authentication token sent in HELLO (and RESUME), or a function
   * returning one (called before every connection, so it can refresh an
   * expired token).
   */
  token?: string | null | (() => string | null | Promise<string | null>);
  /** Client name and version sent in HELLO (default "gameserver-js/<version>"). */
  clientName?: string;
  /** Time from opening the connection to WELCOME (or RESUMED), in ms (default 5000). */
  connectTimeout?: number;
  /** Time a request (join, list, leave) waits for its answer, in ms (default 10000). */
  requestTimeout?: number;
  /** Reconnect automatically after a connection loss (default true). */
  reconnect?: boolean;
  /** Resume the session after a connection loss rather than start a new one (default true). */
  resume?: boolean;
  /** Smallest reconnection delay in ms (default 500). */
  minReconnectDelay?: number;
  /** Largest reconnection delay in ms (default 20000). */
  maxReconnectDelay?: number;
  /** After close 4002 (server draining), the first attempt waits up to this many ms (default 5000). */
  drainDelay?: number;
  /** A MOVE's delay is lengthened by a random amount up to this many ms (default 500). */
  moveJitter?: number;
  /** Reconnection attempts before giving up (default Infinity). */
  maxRetries?: number;
  /**
   * Interval of the client's own pings in ms. By default the server's
   * pingIntervalMs from WELCOME.
   */
  pingInterval?: number;
  /**
   * How to connect: "auto" (default) tries WebSocket and falls back to the
   * HTTP fallback (Server-Sent Events and POST) when a WebSocket cannot
   * open; "websocket" or "sse" use one only; a TransportFactory plugs in
   * another transport.
   */
  transport?: "auto" | TransportName | TransportFactory;
  /** In "auto" mode, how long a WebSocket may take to open before the fallback is tried, in ms (default 3000). */
  webSocketTimeout?: number;
  /** The WebSocket constructor (default globalThis.WebSocket). */
  webSocket?: WebSocketConstructor;
  /** The EventSource constructor of the fallback (default globalThis.EventSource). */
  eventSource?: EventSourceConstructor;
  /** The fetch function of the fallback (default globalThis.fetch). */
  fetch?: FetchLike;
}

/** The client's connection state. */
export type ConnectionState =
  | "idle" // no connection; the next request opens one
  | "connecting" // opening a connection for a new session
  | "open" // the session is up (WELCOME or RESUMED received)
  | "reconnecting" // the connection was lost; waiting to reconnect, or reconnecting
  | "closed"; // client.close() was called; the client cannot be used again

/** A room as listed by getAvailableRooms. */
export interface RoomAvailable<M = unknown> {
  roomId: string;
  kind: string;
  players: number;
  maxPlayers: number;
  /** What the room publishes about itself, decoded; null for none. */
  metadata: M;
}

/** The session parameters from WELCOME. */
export interface SessionInfo {
  sessionId: string;
  node: string;
  version: number;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  maxMessage: number;
}

/** The session after a reconnect: resumed (the same session) or a new one. */
export interface ReconnectedInfo extends SessionInfo {
  resumed: boolean;
}

/** The server asked the client to reconnect elsewhere (MOVE). */
export interface MoveEvent {
  /** Where the client reconnects (the same server when the MOVE named none). */
  url: string;
  /** The wait before reconnecting, ms (the MOVE's delay plus jitter). */
  delay: number;
}

export interface ClientEvents {
  /** The connection state changed. */
  state: ConnectionState;
  /** A session started (WELCOME), first or after a reconnect that could not resume. */
  open: SessionInfo;
  /** The connection was lost and a reconnection is scheduled. */
  reconnecting: ReconnectingEvent;
  /** The connection is back: the session resumed, or a new one replaced it. */
  reconnected: ReconnectedInfo;
  /** The server asked the client to move; the reconnection follows. */
  move: MoveEvent;
  /** The connection ended and will not be re-established automatically. */
  disconnected: DisconnectedEvent;
  /** A failure not tied to a request or a room with an error listener. */
  error: GameserverError;
  /** A new round-trip time measurement, in ms. */
  rtt: number;
}

interface Pending {
  kind: "join" | "list" | "leave" | "rejoin";
  resolve: (value: any) => void;
  reject: (err: GameserverError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** For joins: the options, kept to create the Room. */
  options?: unknown;
  /** For leaves and re-joins: the room concerned. */
  room?: Room;
}

interface Waiter {
  resolve: () => void;
  reject: (err: GameserverError) => void;
}

/**
 * A session's sequence numbers (docs/protocol.md, "Sequence numbers and
 * resume"): what it received, what it sent and what the server has not
 * acknowledged yet. It outlives connections; a new session replaces it.
 */
interface SessionState {
  id: string;
  /** The token for the next RESUME; null when the server offers no resume. */
  token: string | null;
  /** Sequenced server messages received. */
  inSeq: number;
  /** Sequenced client messages sent. */
  outSeq: number;
  /** Sent messages the server has not acknowledged, oldest first. */
  unacked: { seq: number; bytes: Uint8Array }[];
  /** inSeq as of the last PING or PONG sent (its ack). */
  ackSent: number;
}

/** One connection attempt and, once it is up, its heartbeat. */
interface Connection {
  transport: Transport | null;
  /** Which transport: "websocket", "sse" or a custom one. */
  kind: TransportName | "custom";
  /** Identifies the transport in use; replaced when "auto" falls back. */
  attempt: object;
  /** The transport reported open. */
  opened: boolean;
  /** WELCOME or RESUMED received: the session runs on this connection. */
  welcomed: boolean;
  /** RESUME sent, no answer yet. */
  resuming: boolean;
  /** The authentication token of this connection's HELLO or RESUME. */
  token: string | null;
  /** performance.now() of the last message received, and of the last PING sent. */
  lastReceived: number;
  lastPing: number;
  connectTimer?: ReturnType<typeof setTimeout>;
  fallbackTimer?: ReturnType<typeof setTimeout>;
  pingTimer?: ReturnType<typeof setTimeout>;
  watchdog?: ReturnType<typeof setInterval>;
  moveTimer?: ReturnType<typeof setTimeout>;
  pings: Map<number, number>;
  /** The last ERROR or KICK before a close, to explain a terminal close. */
  lastError?: GameserverError;
  /** A MOVE received: where to reconnect, and when (performance.now()). */
  move?: { url: string; at: number };
}

/**
 * Server message types outside the sequence: PING, PONG, RESUMED and
 * KICK, as the protocol says, and MOVE and WELCOME, which the server also
 * sends outside it (as control messages, like KICK).
 */
const UNSEQUENCED = new Set<number>([MsgType.Welcome, MsgType.Ping, MsgType.Pong, MsgType.Resumed, MsgType.Kick, MsgType.Move]);

/** Ack early when this many messages arrived since the last PING... */
const ACK_EVERY_MESSAGES = 200;
/** ...or when any did and the last PING is this old, ms. */
const ACK_INTERVAL_MS = 2000;
/** Unacknowledged sent messages kept for a resume, at most. */
const MAX_UNACKED = 4096;

const now = (): number => (typeof performance !== "undefined" ? performance.now() : Date.now());

/** The transport that worked per server, for the page's lifetime ("auto"). */
const workingTransport = new Map<string, TransportName>();

function serverKey(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/**
 * A connection to a gameserver. Requests open the session on demand; once
 * a session was established, a lost connection is re-established
 * automatically (see ClientOptions): the session is resumed where it was,
 * or, when it cannot be, a new one starts and the current room is joined
 * again.
 */
export class Client extends Emitter<ClientEvents> {
  /** The WebSocket URL, e.g. "ws://localhost:8080/ws". */
  url: string;
  /** Latest round-trip time from the client's own pings, in ms; undefined before the first. */
  rtt: number | undefined;
  /** The server's latest measurement of the round trip (from its PINGs), in ms. */
  serverRtt: number | undefined;
  /** The session parameters, once a session is open. */
  session: SessionInfo | undefined;
  /** The error that ended the last connection, if it ended badly. */
  lastError: GameserverError | undefined;

  private readonly opts: {
    token: ClientOptions["token"];
    clientName: string;
    connectTimeout: number;
    requestTimeout: number;
    reconnect: boolean;
    resume: boolean;
    minReconnectDelay: number;
    maxReconnectDelay: number;
    drainDelay: number;
    moveJitter: number;
    maxRetries: number;
    pingInterval: number | undefined;
    transport: "auto" | TransportName | TransportFactory;
    webSocketTimeout: number;
    webSocket: WebSocketConstructor | undefined;
    eventSource: EventSourceConstructor | undefined;
    fetch: FetchLike | undefined;
  };
  private readonly webSocketFactory: TransportFactory;
  private readonly sseFactory: TransportFactory;
  private _state: ConnectionState = "idle";
  private conn: Connection | null = null;
  private seq: SessionState | null = null;
  private room: Room | null = null;
  private joinPending = false;
  private pending = new Map<number, Pending>();
  private waiters: Waiter[] = [];
  private nextReqID = 1;
  private nextNonce = 1 + Math.floor(Math.random() * 0x7fffffff);
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private comeBackTimer: ReturnType<typeof setTimeout> | undefined;
  private everWelcomed = false;
  /**
   * Messages that arrived right after a join resolved, delivered from a
   * microtask: code that runs right after `await client.join...()` attaches
   * its listeners first, even when several messages arrive in one event
   * loop turn (the ws package emits them synchronously).
   */
  private inbox: { conn: Connection; data: Uint8Array }[] | null = null;
  private readonly host: RoomHost;
  private readonly onOnline = () => {
    if (this._state === "reconnecting" && this.reconnectTimer !== undefined) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
      this.openConnection();
    }
  };

  /**
   * url: the server's WebSocket URL ("ws://host:port/ws"; a bare host URL
   * gets the path /ws, http(s) becomes ws(s)). In a browser it defaults to
   * the page's own server. The HTTP fallback is found from the same URL.
   */
  constructor(url?: string, options: ClientOptions = {}) {
    super();
    this.url = normalizeUrl(url);
    const transport = options.transport ?? "auto";
    if (typeof transport !== "function" && transport !== "auto" && transport !== "websocket" && transport !== "sse") {
      throw new TypeError(`unknown transport ${JSON.stringify(transport)}: want "auto", "websocket", "sse" or a TransportFactory`);
    }
    this.opts = {
      token: options.token,
      clientName: options.clientName ?? `gameserver-js/${VERSION}`,
      connectTimeout: options.connectTimeout ?? 5000,
      requestTimeout: options.requestTimeout ?? 10000,
      reconnect: options.reconnect ?? true,
      resume: options.resume ?? true,
      minReconnectDelay: options.minReconnectDelay ?? 500,
      maxReconnectDelay: options.maxReconnectDelay ?? 20000,
      drainDelay: options.drainDelay ?? 5000,
      moveJitter: options.moveJitter ?? 500,
      maxRetries: options.maxRetries ?? Infinity,
      pingInterval: options.pingInterval,
      transport,
      webSocketTimeout: options.webSocketTimeout ?? 3000,
      webSocket: options.webSocket,
      eventSource: options.eventSource,
      fetch: options.fetch,
    };
    this.webSocketFactory = webSocketTransport(options.webSocket);
    this.sseFactory = sseTransport({ eventSource: options.eventSource, fetch: options.fetch });
    const client = this;
    this.host = {
      sendGame: (type, body) => client.sendSequenced({ type, body }),
      leaveRoom: (room) => client.leaveRoom(room),
      reportError: (room, err) => client.reportError(room, err),
    };
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this._state;
  }

  /** The transport in use ("websocket" or "sse"), or undefined when not connected. */
  get transport(): string | undefined {
    return this.conn?.transport?.name;
  }

  /** The room the client is in, if any. */
  get currentRoom(): Room | null {
    return this.room;
  }

  /** Opens the session if needed; resolves when it is open. */
  connect(): Promise<void> {
    return this.ready();
  }

  /** Joins a room of this kind with a free seat, or creates one. */
  joinOrCreate<S = any>(kind: string, options?: unknown): Promise<Room<S>> {
    return this.joinRequest(JoinMode.JoinOrCreate, kind, "", options) as Promise<Room<S>>;
  }

  /** Creates a new room of this kind and joins it. */
  create<S = any>(kind: string, options?: unknown): Promise<Room<S>> {
    return this.joinRequest(JoinMode.Create, kind, "", options) as Promise<Room<S>>;
  }

  /** Joins the room with this ID. */
  join<S = any>(roomId: string, options?: unknown): Promise<Room<S>> {
    return this.joinRequest(JoinMode.JoinById, "", roomId, options) as Promise<Room<S>>;
  }

  /** Lists the rooms, of one kind or all. */
  async getAvailableRooms<M = unknown>(kind?: string): Promise<RoomAvailable<M>[]> {
    const rooms: Rooms = await this.request("list", (reqID) => ({ type: MsgType.List, reqID, kind: kind ?? null }));
    return rooms.rooms.map((r) => ({
      roomId: r.roomID,
      kind: r.kind,
      players: r.players,
      maxPlayers: r.maxPlayers,
      metadata: decodeValue(r.metadata) as M,
    }));
  }

  /**
   * Ends the session for good: the current room is left, requests are
   * rejected with ClientClosed and no reconnection happens.
   */
  close(): void {
    if (this._state === "closed") return;
    const err = new GameserverError(ErrorCode.ClientClosed, "the client was closed");
    const conn = this.conn;
    this.teardown(conn);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    clearTimeout(this.comeBackTimer);
    conn?.transport?.close(CloseCode.Normal, "client closed");
    this.seq = null;
    this.setState("closed");
    this.failAll(err);
    const ev: DisconnectedEvent = { closeCode: CloseCode.Normal, reason: "client closed" };
    this.room?._emit("disconnected", ev);
    this.endRoom({ reason: "disconnected", code: 0 });
    this.emit("disconnected", ev);
    this.detachNetworkEvents();
  }

  // ---- requests ----

  private joinRequest(mode: number, kind: string, roomID: string, options: unknown): Promise<Room> {
    // No async wrapper: the caller's `await` resumes in the microtask right
    // after the answer, before the room's next messages are delivered.
    if (this.room) {
      return Promise.reject(new GameserverError(ErrorCode.AlreadyInRoom, `already in room ${this.room.id}: leave it first`));
    }
    if (this.joinPending) return Promise.reject(new GameserverError(ErrorCode.AlreadyInRoom, "a join is already in progress"));
    let encoded: Uint8Array | null;
    try {
      encoded = options === undefined || options === null ? null : encodeValue(options);
    } catch (e) {
      return Promise.reject(e);
    }
    this.joinPending = true;
    return this.request<Room>("join", (reqID) => ({ type: MsgType.Join, reqID, mode, kind, roomID, options: encoded }), { options }, () => {
      this.joinPending = false;
    });
  }

  /**
   * Sends a request once the session is open and resolves with its answer.
   * The timeout covers both the wait for the session and the answer.
   */
  private request<T>(kind: Pending["kind"], build: (reqID: number) => Message, extra: Partial<Pending> = {}, settled: () => void = () => {}): Promise<T> {
    if (this._state === "closed") {
      settled();
      return Promise.reject(new GameserverError(ErrorCode.ClientClosed, "the client was closed"));
    }
    return new Promise<T>((res, rej) => {
      const resolve = (v: T) => {
        settled();
        res(v);
      };
      const reject = (e: GameserverError) => {
        settled();
        rej(e);
      };
      let reqID = 0;
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        if (reqID) this.pending.delete(reqID);
        reject(new GameserverError(ErrorCode.RequestTimeout, `${kind} got no answer within ${this.opts.requestTimeout} ms`));
      }, this.opts.requestTimeout);
      this.ready().then(
        () => {
          if (done) return;
          reqID = this.newReqID();
          this.pending.set(reqID, {
            kind,
            resolve: (v) => {
              clearTimeout(timer);
              resolve(v);
            },
            reject: (e) => {
              clearTimeout(timer);
              reject(e);
            },
            timer,
            ...extra,
          });
          try {
            this.sendSequenced(build(reqID));
          } catch (e) {
            this.pending.delete(reqID);
            clearTimeout(timer);
            reject(e instanceof GameserverError ? e : new GameserverError(ErrorCode.BadRequest, errMessage(e), { cause: e }));
          }
        },
        (err: GameserverError) => {
          clearTimeout(timer);
          if (!done) reject(err);
        },
      );
    });
  }

  private newReqID(): number {
    const id = this.nextReqID;
    this.nextReqID = id >= 0xffffffff ? 1 : id + 1;
    return id;
  }

  private leaveRoom(room: Room): Promise<void> {
    if (room._rejoining || !this.sessionAlive()) {
      // The room is already gone on the server (or the session is): nothing to ask.
      this.endRoom({ reason: "left", code: 0 });
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const reqID = this.newReqID();
      const timer = setTimeout(() => {
        this.pending.delete(reqID);
        this.endRoom({ reason: "left", code: 0 });
        reject(new GameserverError(ErrorCode.RequestTimeout, `leave got no answer within ${this.opts.requestTimeout} ms`));
      }, this.opts.requestTimeout);
      this.pending.set(reqID, {
        kind: "leave",
        room,
        timer,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      // While the connection is down this waits for the resume.
      this.sendSequenced({ type: MsgType.Leave, reqID });
    });
  }

  /** Resolves when the session is open, opening it if idle. */
  private ready(): Promise<void> {
    switch (this._state) {
      case "open":
        return Promise.resolve();
      case "closed":
        return Promise.reject(new GameserverError(ErrorCode.ClientClosed, "the client was closed"));
      case "idle":
        this.attempt = 0;
        this.setState("connecting");
        this.attachNetworkEvents();
        this.openConnection();
        break;
    }
    return new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  // ---- sessions ----

  /** Whether the next connection can resume the session. */
  private canResume(): boolean {
    return this.opts.resume && this.seq !== null && this.seq.token !== null;
  }

  /**
   * Whether the session exists: open on a connection, or waiting to be
   * resumed on the next one.
   */
  private sessionAlive(): boolean {
    if (this.conn?.welcomed) return true;
    return this._state === "reconnecting" && this.canResume();
  }

  /**
   * The session is over (it could not be resumed, or will not be): what
   * waited for it fails, and the room, if any, is joined again in the next
   * session.
   */
  private dropSession(why: string, code: number = 0): void {
    this.seq = null;
    for (const [reqID, p] of this.pending) {
      this.pending.delete(reqID);
      clearTimeout(p.timer);
      if (p.kind === "leave") {
        this.endRoom({ reason: "left", code: 0 });
        p.resolve(undefined);
      } else if (p.kind === "rejoin") {
        // Done again after the next WELCOME.
      } else {
        p.reject(new GameserverError(ErrorCode.ConnectionLost, `connection lost before the ${p.kind} was answered (${why})`, { closeCode: code || undefined, reqID }));
      }
    }
    if (this.room) this.room._rejoining = true;
  }

  // ---- connections ----

  /** The transport for the next connection. */
  private pickTransport(): TransportName | "custom" {
    const t = this.opts.transport;
    if (typeof t === "function") return "custom";
    if (t !== "auto") return t;
    const known = workingTransport.get(serverKey(this.url));
    if (known === "websocket" || (known === "sse" && this.fallbackAvailable())) return known;
    const g = globalThis as { WebSocket?: unknown };
    const hasWebSocket = typeof (this.opts.webSocket ?? g.WebSocket) === "function";
    return hasWebSocket || !this.fallbackAvailable() ? "websocket" : "sse";
  }

  private fallbackAvailable(): boolean {
    return sseAvailable({ eventSource: this.opts.eventSource, fetch: this.opts.fetch });
  }

  private openConnection(): void {
    this.reconnectTimer = undefined;
    const conn: Connection = {
      transport: null,
      kind: "websocket",
      attempt: {},
      opened: false,
      welcomed: false,
      resuming: false,
      token: null,
      lastReceived: now(),
      lastPing: 0,
      pings: new Map(),
    };
    this.conn = conn;
    this.armConnectTimer(conn);
    this.startTransport(conn, this.pickTransport());
  }

  private armConnectTimer(conn: Connection): void {
    clearTimeout(conn.connectTimer);
    conn.connectTimer = setTimeout(() => {
      if (this.conn !== conn || conn.welcomed) return;
      conn.transport?.close(CloseCode.HelloTimeout, "connect timeout");
      this.connectionLost(conn, CloseCode.HelloTimeout, `no session within ${this.opts.connectTimeout} ms`, "timeout");
    }, this.opts.connectTimeout);
  }

  /** The URL of the next connection: a resume names its session, so a cluster can route it. */
  private connectUrl(): string {
    if (!this.canResume()) return this.url;
    try {
      const u = new URL(this.url);
      u.searchParams.set("session", this.seq!.id);
      return u.toString();
    } catch {
      return this.url;
    }
  }

  private startTransport(conn: Connection, kind: TransportName | "custom"): void {
    const attempt = {};
    conn.attempt = attempt;
    conn.kind = kind;
    conn.opened = false;
    conn.transport = null;
    const current = () => this.conn === conn && conn.attempt === attempt;
    // "auto": a WebSocket that cannot open gives way to the fallback.
    const fallback = this.opts.transport === "auto" && kind === "websocket" && this.fallbackAvailable();
    const url = this.connectUrl();
    const factory = kind === "sse" ? this.sseFactory : kind === "websocket" ? this.webSocketFactory : (this.opts.transport as TransportFactory);
    let transport: Transport;
    try {
      transport = factory(url, {
        open: () => {
          if (!current()) return;
          conn.opened = true;
          clearTimeout(conn.fallbackTimer);
          // From a microtask: a transport may report open before the
          // factory has returned it.
          queueMicrotask(() => {
            if (current()) void this.hello(conn);
          });
        },
        message: (data) => {
          if (current()) this.receive(conn, data);
        },
        close: (code, reason) => {
          if (!current()) return;
          if (fallback && !conn.opened) {
            this.fallBack(conn, `the WebSocket closed before opening (${code})`);
            return;
          }
          this.connectionLost(conn, code, reason);
        },
      });
    } catch (e) {
      if (fallback) {
        queueMicrotask(() => {
          if (current()) this.fallBack(conn, `no WebSocket: ${errMessage(e)}`);
        });
        return;
      }
      // A bad URL or a missing WebSocket: report after this call returns.
      const err = new GameserverError(ErrorCode.ConnectFailed, `cannot open a connection to ${this.url}: ${errMessage(e)}`, { cause: e });
      queueMicrotask(() => {
        if (current()) this.connectionLost(conn, CloseCode.Abnormal, err.message, "error", err);
      });
      return;
    }
    conn.transport = transport;
    if (fallback) {
      conn.fallbackTimer = setTimeout(() => {
        if (!current() || conn.opened) return;
        transport.close(CloseCode.Normal, "too slow to open");
        this.fallBack(conn, `the WebSocket did not open within ${this.opts.webSocketTimeout} ms`);
      }, this.opts.webSocketTimeout);
    }
  }

  /** "auto": the WebSocket could not open; the same attempt goes on over the fallback. */
  private fallBack(conn: Connection, _why: string): void {
    if (this.conn !== conn) return;
    clearTimeout(conn.fallbackTimer);
    this.armConnectTimer(conn);
    this.startTransport(conn, "sse");
  }

  private async hello(conn: Connection): Promise<void> {
    let token: string | null | undefined;
    try {
      const t = this.opts.token;
      token = typeof t === "function" ? await t() : t;
    } catch (e) {
      if (this.conn !== conn) return;
      const err = new GameserverError(ErrorCode.Unauthorized, `the token function failed: ${errMessage(e)}`, { cause: e });
      conn.transport?.close(CloseCode.Normal, "no token");
      this.connectionLost(conn, CloseCode.Unauthorized, err.message, "error", err);
      return;
    }
    if (this.conn !== conn) return;
    conn.token = token ?? null;
    const seq = this.seq;
    if (this.canResume() && seq) {
      conn.resuming = true;
      this.sendControl(conn, { type: MsgType.Resume, sessionID: seq.id, resumeToken: seq.token!, lastSeq: BigInt(seq.inSeq), token: conn.token });
      return;
    }
    this.sendHello(conn);
  }

  private sendHello(conn: Connection): void {
    this.sendControl(conn, { type: MsgType.Hello, version: PROTOCOL_VERSION, token: conn.token, client: this.opts.clientName });
  }

  private receive(conn: Connection, data: Uint8Array): void {
    conn.lastReceived = now();
    if (this.inbox) {
      this.inbox.push({ conn, data });
      return;
    }
    this.handle(conn, data);
  }

  /** Holds incoming messages until the current microtasks have run. */
  private deferInbox(): void {
    if (this.inbox) return;
    this.inbox = [];
    const drain = () => {
      const queued = this.inbox ?? [];
      this.inbox = null;
      for (let i = 0; i < queued.length; i++) {
        const again = this.inbox as { conn: Connection; data: Uint8Array }[] | null;
        if (again) {
          // A message in the batch resolved another join: keep the order.
          again.push(...queued.slice(i));
          return;
        }
        if (this.conn === queued[i].conn) this.handle(queued[i].conn, queued[i].data);
      }
    };
    // setImmediate (Node) runs after every pending microtask; browsers
    // deliver each WebSocket message as a task of its own anyway.
    const g = globalThis as { setImmediate?: (fn: () => void) => unknown };
    if (typeof g.setImmediate === "function") g.setImmediate(drain);
    else queueMicrotask(drain);
  }

  private handle(conn: Connection, data: Uint8Array): void {
    // Count before decoding: messages the client does not understand
    // count too, or the resume would start at the wrong message.
    const seq = this.seq;
    if (conn.welcomed && seq && data.length >= 2 && !UNSEQUENCED.has((data[0] << 8) | data[1])) {
      seq.inSeq++;
      if (seq.inSeq - seq.ackSent >= ACK_EVERY_MESSAGES && now() - conn.lastPing >= 100) this.ping(conn);
    }
    let msg: Message;
    try {
      msg = decodeMessage(data);
    } catch (e) {
      const err = e instanceof GameserverError ? e : new GameserverError(ErrorCode.BadServerMessage, errMessage(e));
      this.reportError(this.room, new GameserverError(ErrorCode.BadServerMessage, `cannot decode a server message: ${err.message}`, { cause: err }));
      return;
    }
    if (isGameType(msg.type)) {
      if (this.room && !this.room._rejoining) this.room._message(msg.type, (msg as { body: Uint8Array }).body);
      return;
    }
    const m = msg as SystemMessage;
    switch (m.type) {
      case MsgType.Ping:
        // Answered at once from the message handler: timers are throttled
        // in background tabs, message events are not.
        // The PONG carries an ack too: the server pings on its own when
        // its unacknowledged messages pile up and trims its replay buffer
        // when the answer comes.
        this.sendControl(conn, { type: MsgType.Pong, nonce: m.nonce, ack: this.takeAck() });
        if (m.rttUs > 0) this.serverRtt = m.rttUs / 1000;
        if (m.ack > 0n) this.acked(Number(m.ack));
        return;
      case MsgType.Pong: {
        if (m.ack > 0n) this.acked(Number(m.ack));
        const sent = conn.pings.get(m.nonce);
        if (sent !== undefined) {
          conn.pings.delete(m.nonce);
          this.rtt = now() - sent;
          this.emit("rtt", this.rtt);
        }
        return;
      }
      case MsgType.Welcome:
        this.welcome(conn, m);
        return;
      case MsgType.Resumed:
        this.resumed(conn, m);
        return;
      case MsgType.Joined:
        this.joined(m);
        return;
      case MsgType.Left:
        this.left(m);
        return;
      case MsgType.Rooms: {
        const p = this.take(m.reqID, "list");
        if (p) p.resolve(m);
        return;
      }
      case MsgType.Error:
        this.serverError(conn, m);
        return;
      case MsgType.Kick:
        conn.lastError = new GameserverError(m.code || ErrorCode.Forbidden, `kicked: ${m.reason || errorCodeName(m.code)}`);
        return;
      case MsgType.Move:
        this.move(conn, m);
        return;
      case MsgType.State:
        if (this.room && !this.room._rejoining) this.room._state(m.tick, m.serverTimeNs, m.body);
        return;
      case MsgType.Presence:
        if (this.room && !this.room._rejoining && m.roomID === this.room.id) this.room._presence(m.event, m.playerID);
        return;
      default:
        // Client-to-server types: not expected, ignored as the protocol
        // asks of unknown server messages.
        return;
    }
  }

  /** The session is up on conn: state, heartbeat, waiting requests. */
  private sessionUp(conn: Connection): void {
    conn.welcomed = true;
    conn.resuming = false;
    clearTimeout(conn.connectTimer);
    clearTimeout(conn.fallbackTimer);
    if (this.opts.transport === "auto" && conn.kind !== "custom") workingTransport.set(serverKey(this.url), conn.kind);
    this.lastError = undefined;
    this.attempt = 0;
    this.startHeartbeat(conn, this.session!);
    this.setState("open");
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve();
  }

  private welcome(conn: Connection, m: Welcome): void {
    if (conn.welcomed) return;
    const info: SessionInfo = {
      sessionId: m.sessionID,
      node: m.node,
      version: m.version,
      pingIntervalMs: m.pingIntervalMs || 10000,
      pingTimeoutMs: m.pingTimeoutMs || 10000,
      maxMessage: m.maxMessage || 65536,
    };
    this.session = info;
    this.seq = { id: m.sessionID, token: m.resumeToken || null, inSeq: 0, outSeq: 0, unacked: [], ackSent: 0 };
    const reconnected = this.everWelcomed;
    this.everWelcomed = true;
    this.sessionUp(conn);
    this.emit("open", info);
    if (reconnected) this.emit("reconnected", { ...info, resumed: false });
    // A new session is in no room: join the current one again.
    const room = this.room;
    if (room) {
      room._rejoining = true;
      if (!this.rejoinPending(room)) this.rejoin(room);
    }
  }

  private resumed(conn: Connection, m: Resumed): void {
    const seq = this.seq;
    if (!seq || m.sessionID !== seq.id) return;
    if (m.resumeToken) seq.token = m.resumeToken;
    if (m.fromSeq > 0n) seq.inSeq = Number(m.fromSeq) - 1;
    const clientSeq = Number(m.clientSeq);
    this.acked(clientSeq);
    if (conn.welcomed) {
      // The fallback's event stream came back on its own and resumed the
      // session: the replay follows, and the fallback re-sends what the
      // server did not apply.
      return;
    }
    // Re-send what the server did not receive, in order, before anything new.
    for (const u of seq.unacked) {
      if (u.seq > clientSeq) this.sendBytes(conn, u.bytes);
    }
    this.sessionUp(conn);
    const info = this.session!;
    this.emit("reconnected", { ...info, resumed: true });
    const room = this.room;
    if (!room) return;
    if (room._rejoining) {
      // The room went away before the connection did (the server shut it
      // down): join it again, or another of its kind.
      if (!this.rejoinPending(room)) this.rejoin(room);
      return;
    }
    room._resumed();
  }

  /** MOVE: reconnect to its URL after its delay, and resume there. */
  private move(conn: Connection, m: Move): void {
    if (m.resumeToken && this.seq) this.seq.token = m.resumeToken;
    const delay = Math.max(0, m.delayMs) + Math.random() * Math.max(0, this.opts.moveJitter);
    conn.move = { url: m.url, at: now() + delay };
    let target = this.url;
    if (m.url) {
      try {
        target = normalizeUrl(m.url);
      } catch {
        // Reported when the move happens.
      }
    }
    this.emit("move", { url: target, delay });
    clearTimeout(conn.moveTimer);
    // The server closes the connection (4002) after a MOVE; if it has not
    // by the time the delay is over, the client leaves it itself. Either
    // way one reconnection follows.
    conn.moveTimer = setTimeout(() => {
      if (this.conn !== conn) return;
      conn.transport?.close(CloseCode.Draining, "moving");
      this.connectionLost(conn, CloseCode.Draining, "moved by the server", "timeout");
    }, delay);
  }

  /** The server acknowledged the client's messages up to n. */
  private acked(n: number): void {
    const seq = this.seq;
    if (!seq) return;
    let i = 0;
    while (i < seq.unacked.length && seq.unacked[i].seq <= n) i++;
    if (i > 0) seq.unacked.splice(0, i);
  }

  private ping(conn: Connection): void {
    const nonce = this.nextNonce;
    this.nextNonce = (nonce % 0xffffffff) + 1;
    const t = now();
    conn.pings.set(nonce, t);
    conn.lastPing = t;
    if (conn.pings.size > 8) conn.pings.delete(conn.pings.keys().next().value!);
    const rttUs = this.rtt === undefined ? 0 : Math.min(0xffffffff, Math.round(this.rtt * 1000));
    this.sendControl(conn, { type: MsgType.Ping, nonce, rttUs, ack: this.takeAck() });
  }

  /**
   * The ack for an outgoing PING or PONG: the sequenced server messages
   * received (0 = none, or no session yet), recorded as sent.
   */
  private takeAck(): bigint {
    const seq = this.seq;
    const ack = seq ? seq.inSeq : 0;
    if (seq) seq.ackSent = ack;
    return BigInt(ack);
  }

  private startHeartbeat(conn: Connection, info: SessionInfo): void {
    clearTimeout(conn.pingTimer);
    clearInterval(conn.watchdog);
    const interval = Math.max(100, this.opts.pingInterval ?? info.pingIntervalMs);
    const tick = () => {
      if (this.conn !== conn) return;
      this.ping(conn);
      conn.pingTimer = setTimeout(tick, interval);
    };
    tick();
    // Nothing from the server for pingInterval + pingTimeout: the
    // connection is dead even if the socket does not know it yet. The same
    // timer acks a stream of messages every ACK_INTERVAL_MS.
    const silentMax = info.pingIntervalMs + info.pingTimeoutMs;
    conn.watchdog = setInterval(() => {
      if (this.conn !== conn) return;
      const t = now();
      const silent = t - conn.lastReceived;
      if (silent > silentMax) {
        conn.transport?.close(CloseCode.HeartbeatTimeout, "heartbeat timeout");
        this.connectionLost(conn, CloseCode.HeartbeatTimeout, `nothing received from the server for ${Math.round(silent)} ms`, "timeout");
        return;
      }
      const seq = this.seq;
      const backlog = seq ? seq.inSeq - seq.ackSent : 0;
      if (backlog >= ACK_EVERY_MESSAGES || (backlog > 0 && t - conn.lastPing >= ACK_INTERVAL_MS)) this.ping(conn);
    }, Math.max(50, Math.min(1000, silentMax / 4)));
  }

  private teardown(conn: Connection | null): void {
    if (!conn) return;
    clearTimeout(conn.connectTimer);
    clearTimeout(conn.fallbackTimer);
    clearTimeout(conn.pingTimer);
    clearTimeout(conn.moveTimer);
    clearInterval(conn.watchdog);
    if (this.conn === conn) this.conn = null;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
  }

  /**
   * The connection ended. cause is "close" for a close reported by the
   * transport, "timeout" when the client gave up on it (heartbeat or
   * connect timeout, or a MOVE) and "error" when it could not be used at all.
   */
  private connectionLost(conn: Connection, code: number, reason: string, cause: "close" | "timeout" | "error" = "close", error?: GameserverError): void {
    if (this.conn !== conn) return;
    const wasOpen = conn.welcomed;
    this.teardown(conn);
    clearTimeout(this.comeBackTimer);
    let action: CloseAction = cause === "close" ? closeAction(code) : cause === "timeout" ? "reconnect" : "terminal";
    if (conn.move && action !== "terminal") action = "reconnect";

    if (action === "terminal" || action === "none" || !this.opts.reconnect || (!wasOpen && this._state === "connecting")) {
      // No automatic reconnection: a terminal code, a normal close, or a
      // first connection that failed (the caller's request reports it).
      let err: GameserverError | undefined = error;
      if (!err && action === "terminal") {
        const cause = conn.lastError;
        err = new GameserverError(cause?.code ?? closeCodeError(code), `connection closed (${code}${reason ? ": " + reason : ""})${cause ? ": " + cause.message : ""}; not reconnecting`, { closeCode: code, cause });
      } else if (!err && !wasOpen && this._state === "connecting") {
        err = new GameserverError(
          cause === "timeout" ? ErrorCode.ConnectTimeout : ErrorCode.ConnectFailed,
          cause === "timeout" ? `no session within ${this.opts.connectTimeout} ms (${this.url})` : `cannot connect to ${this.url} (close ${code}${reason ? ": " + reason : ""})`,
          { closeCode: code },
        );
      } else if (!err && action !== "none") {
        err = new GameserverError(ErrorCode.ConnectionLost, `connection lost (${code}${reason ? ": " + reason : ""}) and reconnection is off`, { closeCode: code });
      }
      this.giveUp(code, reason, err);
      return;
    }

    // Reconnect. A session that can be resumed keeps its requests and its
    // room; otherwise they fail now and the room is joined again after the
    // next WELCOME.
    if (!this.canResume()) this.dropSession(`close ${code}${reason ? ": " + reason : ""}`, code);
    const room = this.room;
    if (this.attempt >= this.opts.maxRetries) {
      this.giveUp(code, reason, new GameserverError(ErrorCode.ReconnectFailed, `gave up reconnecting after ${this.attempt} attempts (last close ${code}${reason ? ": " + reason : ""})`, { closeCode: code }));
      return;
    }
    let delay: number;
    if (conn.move) {
      // MOVE: reconnect after its delay, to its URL (empty: the same one).
      if (conn.move.url) {
        try {
          this.url = normalizeUrl(conn.move.url);
        } catch (e) {
          this.reportError(room, new GameserverError(ErrorCode.BadServerMessage, `MOVE to an unusable URL ${JSON.stringify(conn.move.url)}: ${errMessage(e)}; reconnecting to ${this.url}`));
        }
      }
      delay = Math.max(0, conn.move.at - now());
    } else if (action === "drain") {
      delay = drainDelay(this.opts.minReconnectDelay, this.opts.drainDelay);
    } else {
      delay = backoffDelay(this.attempt, { minDelay: this.opts.minReconnectDelay, maxDelay: this.opts.maxReconnectDelay });
    }
    this.attempt++;
    this.setState("reconnecting");
    const ev: ReconnectingEvent = { attempt: this.attempt, delay, closeCode: code, reason };
    this.emit("reconnecting", ev);
    if (room && room.joined) room._emit("reconnecting", ev);
    this.reconnectTimer = setTimeout(() => this.openConnection(), delay);
  }

  /** Stops for good after a connection ended: no reconnection. */
  private giveUp(code: number, reason: string, err: GameserverError | undefined): void {
    // A rejected promise tells the caller; otherwise the error is reported.
    let observed = this.waiters.length > 0;
    for (const p of this.pending.values()) if (p.kind === "join" || p.kind === "list") observed = true;
    this.lastError = err;
    this.seq = null;
    this.setState("idle");
    this.detachNetworkEvents();
    this.failAll(err ?? new GameserverError(ErrorCode.ConnectionLost, `connection closed (${code}${reason ? ": " + reason : ""})`, { closeCode: code }));
    const ev: DisconnectedEvent = err ? { closeCode: code, reason, error: err } : { closeCode: code, reason };
    const room = this.room;
    room?._emit("disconnected", ev);
    if (this.everWelcomed) this.emit("disconnected", ev);
    this.everWelcomed = false;
    if (err && !observed) this.reportError(room, err);
    this.endRoom(err ? { reason: "disconnected", code: 0, error: err } : { reason: "disconnected", code: 0 });
  }

  private failAll(err: GameserverError): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
    for (const [reqID, p] of this.pending) {
      this.pending.delete(reqID);
      clearTimeout(p.timer);
      if (p.kind === "leave") p.resolve(undefined);
      else if (p.kind !== "rejoin") p.reject(err);
    }
  }

  // ---- rooms ----

  private joined(m: Joined): void {
    const p = this.pending.get(m.reqID);
    if (!p || (p.kind !== "join" && p.kind !== "rejoin")) {
      // The answer to a join that timed out: do not stay in a room nobody
      // knows about.
      if (!this.room || this.room.id !== m.roomID) this.sendSequenced({ type: MsgType.Leave, reqID: this.newReqID() });
      return;
    }
    this.pending.delete(m.reqID);
    clearTimeout(p.timer);
    if (p.kind === "rejoin") {
      const room = p.room!;
      if (this.room !== room || !room.joined) {
        this.sendSequenced({ type: MsgType.Leave, reqID: this.newReqID() });
        return;
      }
      room._rejoined(m);
      queueMicrotask(() => room.joined && room._emit("join", room));
      return;
    }
    const room = new Room(this.host, m, p.options);
    this.room = room;
    p.resolve(room);
    queueMicrotask(() => room.joined && room._emit("join", room));
    this.deferInbox();
  }

  private left(m: Left): void {
    const room = this.room;
    if (!room || room.id !== m.roomID || room._rejoining) return;
    for (const [reqID, p] of this.pending) {
      if (p.kind === "leave" && p.room === room) {
        this.pending.delete(reqID);
        this.endRoom({ reason: "left", code: m.code });
        p.resolve(undefined);
        return;
      }
    }
    if (m.code === ErrorCode.Unavailable && m.reason !== LeftReason.Requested && m.reason !== LeftReason.Kicked) {
      // The server (or the node running the room) is shutting down: come
      // back later. When the connection closes too, the room is joined
      // again once reconnected; otherwise after a jittered delay.
      room._rejoining = true;
      clearTimeout(this.comeBackTimer);
      this.comeBackTimer = setTimeout(() => {
        this.comeBackTimer = undefined;
        if (this.room === room && room._rejoining && this.conn?.welcomed && !this.rejoinPending(room)) this.rejoin(room);
      }, drainDelay(this.opts.minReconnectDelay, this.opts.drainDelay));
      return;
    }
    const info: LeaveEvent =
      m.reason === LeftReason.Requested ? { reason: "left", code: m.code }
      : m.reason === LeftReason.Kicked ? { reason: "kicked", code: m.code }
      : m.reason === LeftReason.Dropped ? { reason: "dropped", code: m.code }
      : { reason: "disposed", code: m.code };
    this.endRoom(info);
  }

  private endRoom(info: LeaveEvent): void {
    const room = this.room;
    if (!room) return;
    this.room = null;
    clearTimeout(this.comeBackTimer);
    room._end(info);
  }

  private rejoinPending(room: Room): boolean {
    for (const p of this.pending.values()) if (p.kind === "rejoin" && p.room === room) return true;
    return false;
  }

  /** Joins the room again after a new session: by ID, else a room of the same kind. */
  private rejoin(room: Room, fallback = false): void {
    const reqID = this.newReqID();
    const timer = setTimeout(() => {
      if (!this.pending.has(reqID)) return;
      this.pending.delete(reqID);
      this.rejoinFailed(room, new GameserverError(ErrorCode.RequestTimeout, `re-join got no answer within ${this.opts.requestTimeout} ms`));
    }, this.opts.requestTimeout);
    this.pending.set(reqID, {
      kind: "rejoin",
      room,
      timer,
      resolve: () => {},
      reject: (err) => {
        clearTimeout(timer);
        const gone = err.code === ErrorCode.RoomNotFound || err.code === ErrorCode.RoomFull || err.code === ErrorCode.RoomLocked;
        if (!fallback && gone) this.rejoin(room, true);
        else this.rejoinFailed(room, err);
      },
    });
    const options = room.options === undefined || room.options === null ? null : encodeValue(room.options);
    this.sendSequenced(
      fallback
        ? { type: MsgType.Join, reqID, mode: JoinMode.JoinOrCreate, kind: room.kind, roomID: "", options }
        : { type: MsgType.Join, reqID, mode: JoinMode.JoinById, kind: "", roomID: room.id, options },
    );
  }

  private rejoinFailed(room: Room, cause: GameserverError): void {
    if (this.room !== room) return;
    const err = new GameserverError(ErrorCode.RejoinFailed, `could not re-join room ${room.id} (${room.kind}) after reconnecting: ${cause.message}`, { cause });
    this.reportError(room, err);
    this.endRoom({ reason: "rejoin_failed", code: cause.code, error: err });
  }

  private take(reqID: number, kind: Pending["kind"]): Pending | undefined {
    const p = this.pending.get(reqID);
    if (!p || p.kind !== kind) return undefined;
    this.pending.delete(reqID);
    return p;
  }

  private serverError(conn: Connection, m: ErrorMsg): void {
    const err = new GameserverError(m.code, m.message || errorCodeName(m.code), { ref: m.ref, reqID: m.reqID });
    if (!conn.welcomed && conn.resuming) {
      conn.lastError = err;
      // 401 or 403: the token does not fit; the close (4500) follows.
      if (m.code === ErrorCode.Unauthorized || m.code === ErrorCode.Forbidden) return;
      // Any other refusal (412 resume_failed, 429, 400...): start over on
      // the same connection with a new session.
      conn.resuming = false;
      this.dropSession(`the session could not be resumed: ${err.message}`);
      this.sendHello(conn);
      return;
    }
    if (m.reqID !== 0) {
      const p = this.pending.get(m.reqID);
      if (p) {
        this.pending.delete(m.reqID);
        if (p.kind === "leave") {
          // 406 not_in_room: the room is already left.
          this.endRoom({ reason: "left", code: 0 });
          p.resolve(undefined);
        } else {
          p.reject(err);
        }
        return;
      }
    }
    conn.lastError = err; // explains a terminal close that may follow (401 then 4500)
    if (m.ref === MsgType.Hello || m.ref === MsgType.Resume || m.code === ErrorCode.Unauthorized || m.code === ErrorCode.UnsupportedVersion) {
      // Followed by a close; reported with it.
      return;
    }
    this.reportError(isGameType(m.ref) || m.ref === 0 ? this.room : null, err);
  }

  /** Routes an error to the room, else the client, else the console. */
  private reportError(room: Room | null, err: GameserverError): void {
    if (room && room.listens("error")) {
      room._emit("error", err);
    } else if (this.listens("error")) {
      this.emit("error", err);
    } else {
      console.error(`gameserver: ${err.message} (${err.codeName}${err.ref ? ", " + typeName(err.ref) : ""})`);
    }
  }

  // ---- sending ----

  /** Sends an unsequenced message (HELLO, RESUME, PING, PONG) on conn. */
  private sendControl(conn: Connection, m: Message): void {
    if (this.conn !== conn || !conn.transport) return;
    this.sendBytes(conn, encodeMessage(m));
  }

  private sendBytes(conn: Connection, bytes: Uint8Array): boolean {
    try {
      conn.transport!.send(bytes);
    } catch (e) {
      rethrow(e);
      return false;
    }
    return true;
  }

  /**
   * Sends a sequenced message (JOIN, LEAVE, LIST, game messages). It is
   * kept until the server acknowledges it, so a resume re-sends it if the
   * server did not get it; while the connection is down and the session
   * can be resumed, it waits for the resume. False when no session exists.
   */
  private sendSequenced(m: Message): boolean {
    const bytes = encodeMessage(m);
    const max = this.session?.maxMessage ?? 65536;
    if (bytes.length > max) {
      // The server would close the connection with 1009.
      throw new GameserverError(ErrorCode.TooLarge, `${typeName(m.type)} message of ${bytes.length} bytes is over the server's limit of ${max} bytes; not sent`);
    }
    const seq = this.seq;
    const conn = this.conn;
    const live = conn !== null && conn.welcomed && conn.transport !== null;
    if (!seq || !this.sessionAlive()) return false;
    seq.outSeq++;
    if (seq.token !== null && this.opts.resume) {
      seq.unacked.push({ seq: seq.outSeq, bytes });
      if (seq.unacked.length > MAX_UNACKED) seq.unacked.shift();
    }
    if (live) return this.sendBytes(conn!, bytes);
    return true;
  }

  private setState(s: ConnectionState): void {
    if (this._state === s) return;
    this._state = s;
    this.emit("state", s);
  }

  private attachNetworkEvents(): void {
    const g = globalThis as { addEventListener?: (ev: string, fn: () => void) => void };
    if (typeof g.addEventListener === "function" && typeof window !== "undefined") g.addEventListener("online", this.onOnline);
  }

  private detachNetworkEvents(): void {
    const g = globalThis as { removeEventListener?: (ev: string, fn: () => void) => void };
    if (typeof g.removeEventListener === "function" && typeof window !== "undefined") g.removeEventListener("online", this.onOnline);
  }
}

/** Resolves a server URL to its WebSocket endpoint. */
export function normalizeUrl(url?: string): string {
  const base = typeof location !== "undefined" ? location.href : undefined;
  if (url === undefined && base === undefined) throw new TypeError("a server URL is needed outside a browser, e.g. ws://localhost:8080");
  const u = new URL(url ?? "/ws", base);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  if (u.protocol !== "ws:" && u.protocol !== "wss:") throw new TypeError(`unsupported URL scheme ${u.protocol} in ${url}`);
  if (u.pathname === "/" || u.pathname === "") u.pathname = "/ws";
  return u.toString();
}
