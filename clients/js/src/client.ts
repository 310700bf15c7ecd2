// The client: one session with the server, requests (join, create, list),
// heartbeats, and automatic reconnection.

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
  type Rooms,
  type SystemMessage,
  type Welcome,
} from "./protocol.js";
import { Room, errMessage, type DisconnectedEvent, type LeaveEvent, type ReconnectingEvent, type RoomHost } from "./room.js";
import { webSocketTransport, type Transport, type TransportFactory, type WebSocketConstructor } from "./transport.js";
import { decodeValue, encodeValue } from "./values.js";

/** The client's version, sent in HELLO as "gameserver-js/<version>". */
export const VERSION = "0.1.0";

export interface ClientOptions {
  /**
   * Authentication token sent in HELLO, or a function returning one
   * (called before every connection, so it can refresh an expired token).
   */
  token?: string | null | (() => string | null | Promise<string | null>);
  /** Client name and version sent in HELLO (default "gameserver-js/0.1.0"). */
  clientName?: string;
  /** Time from opening the connection to WELCOME, in ms (default 5000). */
  connectTimeout?: number;
  /** Time a request (join, list, leave) waits for its answer, in ms (default 10000). */
  requestTimeout?: number;
  /** Reconnect automatically after a connection loss (default true). */
  reconnect?: boolean;
  /** Smallest reconnection delay in ms (default 500). */
  minReconnectDelay?: number;
  /** Largest reconnection delay in ms (default 20000). */
  maxReconnectDelay?: number;
  /** After close 4002 (server draining), the first attempt waits up to this many ms (default 5000). */
  drainDelay?: number;
  /** Reconnection attempts before giving up (default Infinity). */
  maxRetries?: number;
  /**
   * Interval of the client's own pings in ms. By default the server's
   * pingIntervalMs from WELCOME.
   */
  pingInterval?: number;
  /** Opens connections; default WebSocket. */
  transport?: TransportFactory;
  /** The WebSocket constructor for the default transport (default globalThis.WebSocket). */
  webSocket?: WebSocketConstructor;
}

/** The client's connection state. */
export type ConnectionState =
  | "idle" // no connection; the next request opens one
  | "connecting" // opening a connection for a new session
  | "open" // the session is up (WELCOME received)
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

export interface ClientEvents {
  /** The connection state changed. */
  state: ConnectionState;
  /** A session started (WELCOME), first or after a reconnect. */
  open: SessionInfo;
  /** The connection was lost and a reconnection is scheduled. */
  reconnecting: ReconnectingEvent;
  /** A new session replaced the lost one. */
  reconnected: SessionInfo;
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

/** One transport connection and its heartbeat. */
interface Connection {
  transport: Transport | null;
  welcomed: boolean;
  /** performance.now() of the last message received. */
  lastReceived: number;
  connectTimer?: ReturnType<typeof setTimeout>;
  pingTimer?: ReturnType<typeof setTimeout>;
  watchdog?: ReturnType<typeof setInterval>;
  pings: Map<number, number>;
  /** The last ERROR or KICK before a close, to explain a terminal close. */
  lastError?: GameserverError;
  /** A MOVE received: reconnect there after the delay. */
  move?: { url: string; delayMs: number };
}

/** A room whose LEFT (disposed or dropped) waits briefly for a close. */
const DISPOSE_GRACE_MS = 1000;

const now = (): number => (typeof performance !== "undefined" ? performance.now() : Date.now());

/**
 * A connection to a gameserver. Requests open the session on demand; once
 * a session was established, a lost connection is re-established
 * automatically (see ClientOptions) and the current room is re-joined.
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

  private readonly opts: Required<Omit<ClientOptions, "token" | "webSocket" | "pingInterval">> & Pick<ClientOptions, "token" | "pingInterval">;
  private _state: ConnectionState = "idle";
  private conn: Connection | null = null;
  private room: Room | null = null;
  private joinPending = false;
  private pending = new Map<number, Pending>();
  private waiters: Waiter[] = [];
  private nextReqID = 1;
  private nextNonce = 1 + Math.floor(Math.random() * 0x7fffffff);
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
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
   * the page's own server.
   */
  constructor(url?: string, options: ClientOptions = {}) {
    super();
    this.url = normalizeUrl(url);
    this.opts = {
      token: options.token,
      clientName: options.clientName ?? `gameserver-js/${VERSION}`,
      connectTimeout: options.connectTimeout ?? 5000,
      requestTimeout: options.requestTimeout ?? 10000,
      reconnect: options.reconnect ?? true,
      minReconnectDelay: options.minReconnectDelay ?? 500,
      maxReconnectDelay: options.maxReconnectDelay ?? 20000,
      drainDelay: options.drainDelay ?? 5000,
      maxRetries: options.maxRetries ?? Infinity,
      pingInterval: options.pingInterval,
      transport: options.transport ?? webSocketTransport(options.webSocket),
    };
    const client = this;
    this.host = {
      sendGame: (type, body) => client.sendMessage({ type, body }),
      leaveRoom: (room) => client.leaveRoom(room),
      reportError: (room, err) => client.reportError(room, err),
    };
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this._state;
  }

  /** The name of the transport in use ("websocket"), or undefined when not connected. */
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
    conn?.transport?.close(CloseCode.Normal, "client closed");
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
          this.sendMessage(build(reqID));
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
    if (room._disposeTimer !== undefined || !this.conn?.welcomed || room._rejoining) {
      // Disposed by the server, or the connection is down: nothing to ask.
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
      this.sendMessage({ type: MsgType.Leave, reqID });
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

  // ---- connections ----

  private openConnection(): void {
    this.reconnectTimer = undefined;
    const conn: Connection = { transport: null, welcomed: false, lastReceived: now(), pings: new Map() };
    this.conn = conn;
    conn.connectTimer = setTimeout(() => {
      if (this.conn !== conn || conn.welcomed) return;
      conn.transport?.close(CloseCode.HelloTimeout, "connect timeout");
      this.connectionLost(conn, CloseCode.HelloTimeout, `no session within ${this.opts.connectTimeout} ms`, "timeout");
    }, this.opts.connectTimeout);
    let transport: Transport;
    try {
      transport = this.opts.transport(this.url, {
        open: () => {
          // From a microtask: a transport may report open before the
          // factory has returned it.
          queueMicrotask(() => {
            if (this.conn === conn) void this.hello(conn);
          });
        },
        message: (data) => {
          if (this.conn === conn) this.receive(conn, data);
        },
        close: (code, reason) => {
          if (this.conn === conn) this.connectionLost(conn, code, reason);
        },
      });
    } catch (e) {
      // A bad URL or a missing WebSocket: report after this call returns.
      const err = new GameserverError(ErrorCode.ConnectFailed, `cannot open a connection to ${this.url}: ${errMessage(e)}`, { cause: e });
      queueMicrotask(() => {
        if (this.conn === conn) this.connectionLost(conn, CloseCode.Abnormal, err.message, "error", err);
      });
      return;
    }
    conn.transport = transport;
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
    this.sendMessage({ type: MsgType.Hello, version: PROTOCOL_VERSION, token: token ?? null, client: this.opts.clientName });
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
        this.sendMessage({ type: MsgType.Pong, nonce: m.nonce });
        if (m.rttUs > 0) this.serverRtt = m.rttUs / 1000;
        return;
      case MsgType.Pong: {
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
        conn.move = { url: m.url, delayMs: m.delayMs };
        return;
      case MsgType.State:
        if (this.room && !this.room._rejoining) this.room._state(m.tick, m.serverTimeNs, m.body);
        return;
      case MsgType.Presence:
        if (this.room && !this.room._rejoining && m.roomID === this.room.id) this.room._presence(m.event, m.playerID);
        return;
      default:
        // RESUMED and client-to-server types: not expected, ignored as the
        // protocol asks of unknown server messages.
        return;
    }
  }

  private welcome(conn: Connection, m: Welcome): void {
    if (conn.welcomed) return;
    conn.welcomed = true;
    clearTimeout(conn.connectTimer);
    const info: SessionInfo = {
      sessionId: m.sessionID,
      node: m.node,
      version: m.version,
      pingIntervalMs: m.pingIntervalMs || 10000,
      pingTimeoutMs: m.pingTimeoutMs || 10000,
      maxMessage: m.maxMessage || 65536,
    };
    this.session = info;
    this.lastError = undefined;
    const reconnected = this.everWelcomed;
    this.everWelcomed = true;
    this.attempt = 0;
    this.startHeartbeat(conn, info);
    this.setState("open");
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.resolve();
    this.emit("open", info);
    if (reconnected) this.emit("reconnected", info);
    const room = this.room;
    if (room && room._rejoining) this.rejoin(room);
  }

  private startHeartbeat(conn: Connection, info: SessionInfo): void {
    const interval = Math.max(100, this.opts.pingInterval ?? info.pingIntervalMs);
    const ping = () => {
      if (this.conn !== conn) return;
      const nonce = this.nextNonce;
      this.nextNonce = (nonce % 0xffffffff) + 1;
      conn.pings.set(nonce, now());
      if (conn.pings.size > 8) conn.pings.delete(conn.pings.keys().next().value!);
      const rttUs = this.rtt === undefined ? 0 : Math.min(0xffffffff, Math.round(this.rtt * 1000));
      this.sendMessage({ type: MsgType.Ping, nonce, rttUs, ack: 0n });
      conn.pingTimer = setTimeout(ping, interval);
    };
    ping();
    // Nothing from the server for pingInterval + pingTimeout: the
    // connection is dead even if the socket does not know it yet.
    const silentMax = info.pingIntervalMs + info.pingTimeoutMs;
    conn.watchdog = setInterval(() => {
      if (this.conn !== conn) return;
      const silent = now() - conn.lastReceived;
      if (silent > silentMax) {
        conn.transport?.close(CloseCode.HeartbeatTimeout, "heartbeat timeout");
        this.connectionLost(conn, CloseCode.HeartbeatTimeout, `nothing received from the server for ${Math.round(silent)} ms`, "timeout");
      }
    }, Math.max(50, Math.min(1000, silentMax / 4)));
  }

  private teardown(conn: Connection | null): void {
    if (!conn) return;
    clearTimeout(conn.connectTimer);
    clearTimeout(conn.pingTimer);
    clearInterval(conn.watchdog);
    if (this.conn === conn) this.conn = null;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
  }

  /**
   * The connection ended. cause is "close" for a close reported by the
   * transport, "timeout" when the client gave up on it (heartbeat or
   * connect timeout) and "error" when it could not be used at all.
   */
  private connectionLost(conn: Connection, code: number, reason: string, cause: "close" | "timeout" | "error" = "close", error?: GameserverError): void {
    if (this.conn !== conn) return;
    const wasOpen = conn.welcomed;
    this.teardown(conn);
    let action: CloseAction = cause === "close" ? closeAction(code) : cause === "timeout" ? "reconnect" : "terminal";
    if (conn.move && action !== "terminal") action = "reconnect";

    // Requests in flight cannot be answered any more.
    for (const [reqID, p] of this.pending) {
      this.pending.delete(reqID);
      clearTimeout(p.timer);
      if (p.kind === "leave") {
        this.endRoom({ reason: "left", code: 0 });
        p.resolve(undefined);
      } else if (p.kind === "rejoin") {
        // Re-tried after the next WELCOME.
      } else {
        p.reject(new GameserverError(ErrorCode.ConnectionLost, `connection lost before the ${p.kind} was answered (close ${code}${reason ? ": " + reason : ""})`, { closeCode: code, reqID }));
      }
    }

    if (action === "terminal" || action === "none" || !this.opts.reconnect || (!wasOpen && this._state === "connecting")) {
      // No automatic reconnection: a terminal code, a normal close, or a
      // first connection that failed (the caller's request reports it).
      let err: GameserverError | undefined = error;
      if (!err && action === "terminal") {
        const cause = conn.lastError;
        err = new GameserverError(cause?.code ?? closeCodeError(code), `connection closed (${code}${reason ? ": " + reason : ""})${cause ? ": " + cause.message : ""}; not reconnecting`, { closeCode: code, cause });
      } else if (!err && !wasOpen) {
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

    // Reconnect: the room, if any, is re-joined after the next WELCOME.
    const room = this.room;
    if (room) {
      room._rejoining = true;
      if (room._disposeTimer !== undefined) {
        // A room disposed just before a reconnectable close (a server
        // restart): re-join rather than end it.
        clearTimeout(room._disposeTimer);
        room._disposeTimer = undefined;
        room._disposeInfo = undefined;
      }
    }
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
      delay = conn.move.delayMs;
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
      if (!this.room || this.room.id !== m.roomID) this.sendMessage({ type: MsgType.Leave, reqID: this.newReqID() });
      return;
    }
    this.pending.delete(m.reqID);
    clearTimeout(p.timer);
    if (p.kind === "rejoin") {
      const room = p.room!;
      if (this.room !== room || !room.joined) {
        this.sendMessage({ type: MsgType.Leave, reqID: this.newReqID() });
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
    const info: LeaveEvent =
      m.reason === LeftReason.Requested ? { reason: "left", code: m.code }
      : m.reason === LeftReason.Kicked ? { reason: "kicked", code: m.code }
      : m.reason === LeftReason.Dropped ? { reason: "dropped", code: m.code }
      : { reason: "disposed", code: m.code };
    if (info.reason === "disposed" || info.reason === "dropped") {
      // A server that restarts disposes its rooms, then closes with a
      // reconnect code; wait a moment to tell that apart from a room that
      // simply ended, so the room can be re-joined after the restart.
      room._disposeInfo = info;
      room._disposeTimer = setTimeout(() => {
        if (this.room === room) this.endRoom(info);
      }, DISPOSE_GRACE_MS);
      return;
    }
    this.endRoom(info);
  }

  private endRoom(info: LeaveEvent): void {
    const room = this.room;
    if (!room) return;
    this.room = null;
    room._end(info);
  }

  /** Re-joins the room after a reconnect: by ID, else a room of the same kind. */
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
    this.sendMessage(
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
    if (m.ref === MsgType.Hello || m.code === ErrorCode.Unauthorized || m.code === ErrorCode.UnsupportedVersion) {
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

  /** Sends one message; false when no session is open. */
  private sendMessage(m: Message): boolean {
    const conn = this.conn;
    const t = conn?.transport;
    if (!conn || !t) return false;
    if (!conn.welcomed && m.type !== MsgType.Hello) return false;
    const bytes = encodeMessage(m);
    const max = this.session?.maxMessage ?? 65536;
    if (conn.welcomed && bytes.length > max) {
      // The server would close the connection with 1009.
      throw new GameserverError(ErrorCode.TooLarge, `${typeName(m.type)} message of ${bytes.length} bytes is over the server's limit of ${max} bytes; not sent`);
    }
    try {
      t.send(bytes);
    } catch (e) {
      rethrow(e);
      return false;
    }
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
