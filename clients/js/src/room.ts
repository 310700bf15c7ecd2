// A room the client has joined: game messages in both directions, state
// broadcasts, presence, and the room's life cycle events.

import { Emitter, rethrow } from "./emitter.js";
import { ErrorCode, GameserverError } from "./errors.js";
import { FIRST_GAME_TYPE, PresenceEvent, isGameType, type Joined } from "./protocol.js";
import { decodeValue, encodeValue } from "./values.js";

/** A STATE broadcast of the room. */
export interface StateUpdate<S = unknown> {
  /** The room tick the state belongs to. */
  tick: bigint;
  /** When the server encoded the message, in ms since the Unix epoch (fractional). */
  serverTime: number;
  /** The same instant in ns, exact. */
  serverTimeNs: bigint;
  /** The game's state value, decoded (null when the server sent none). */
  body: S;
}

/** Why a room membership ended. */
export type LeaveReason =
  | "left" // room.leave()
  | "kicked" // the room kicked the player (code says why)
  | "disposed" // the room was closed
  | "dropped" // the server dropped the player
  | "disconnected" // the connection ended and will not be re-established
  | "rejoin_failed"; // the room could not be re-joined after a reconnect

export interface LeaveEvent {
  reason: LeaveReason;
  /** An error code detailing a kick or drop (game codes ≥ 1000 allowed); 0 = none. */
  code: number;
  /** Set when the membership ended because of a failure. */
  error?: GameserverError;
}

export interface PresenceChange {
  event: "join" | "leave" | "drop" | "resume";
  playerId: string;
}

export interface ReconnectingEvent {
  /** Attempt number, 1 for the first reconnection attempt. */
  attempt: number;
  /** Wait before this attempt, in ms. */
  delay: number;
  /** The close code that ended the previous connection. */
  closeCode: number;
  reason: string;
}

export interface ReconnectedEvent {
  /**
   * True when the session was resumed: the room went on without a
   * re-join (same room, same player ID, no message lost). False when a new
   * session joined the room again.
   */
  resumed: boolean;
  /** True when the old room was gone and another room of the same kind was joined. */
  roomChanged: boolean;
  previousRoomId: string;
  previousPlayerId: string;
}

export interface DisconnectedEvent {
  closeCode: number;
  reason: string;
  /** Why the connection will not be re-established; absent after a normal close. */
  error?: GameserverError;
}

export interface RoomEvents {
  join: Room;
  leave: LeaveEvent;
  error: GameserverError;
  reconnecting: ReconnectingEvent;
  reconnected: ReconnectedEvent;
  disconnected: DisconnectedEvent;
  presence: PresenceChange;
}

/** Information about the message a handler receives. */
export interface MessageInfo {
  type: number;
  room: Room;
}

export type MessageHandler<T = any> = (body: T, info: MessageInfo) => void;
export type StateHandler<S = any> = (state: StateUpdate<S>) => void;

/** The part of the client a room uses. @internal */
export interface RoomHost {
  sendGame(type: number, body: Uint8Array): boolean;
  leaveRoom(room: Room): Promise<void>;
  reportError(room: Room | null, err: GameserverError): void;
}

/** Messages kept for handlers registered late (at most this many). */
const MAX_HELD = 256;

const presenceNames: Record<number, PresenceChange["event"]> = {
  [PresenceEvent.Joined]: "join",
  [PresenceEvent.Left]: "leave",
  [PresenceEvent.Dropped]: "drop",
  [PresenceEvent.Resumed]: "resume",
};

/**
 * A joined room. Obtained from client.joinOrCreate, create or join.
 *
 * Messages that arrive before a handler for their type is registered are
 * held (up to 256) and delivered when one is, so handlers registered right
 * after `await client.joinOrCreate(...)` miss nothing, such as a chat
 * room's history.
 */
export class Room<S = any> extends Emitter<RoomEvents> {
  /** The room's ID. Changes only if a reconnect had to join another room. */
  id: string;
  /** The room's type, e.g. "arena". */
  readonly kind: string;
  /** This client's player ID in the room. A reconnect that cannot resume the session gives a new one. */
  playerId: string;
  /** Room simulation ticks per second. */
  tickRate: number;
  /** The options the room was joined with (used again to re-join). */
  readonly options: unknown;
  /** The latest state body, or undefined before the first STATE. */
  state: S | undefined;
  /** The tick of the latest state. */
  tick = 0n;

  /** @internal */ _joined = true;
  /** @internal The room must be joined again (a new session, or the server closed it to come back). */
  _rejoining = false;

  private readonly host: RoomHost;
  private readonly handlers = new Map<number | "*", Set<MessageHandler>>();
  private readonly stateHandlers = new Set<StateHandler<S>>();
  private held: { type: number; body: unknown }[] = [];
  private heldState: StateUpdate<S> | undefined;
  private leaving: Promise<void> | undefined;

  /** @internal */
  constructor(host: RoomHost, joined: Joined, options: unknown) {
    super();
    this.host = host;
    this.id = joined.roomID;
    this.kind = joined.kind;
    this.playerId = joined.playerID;
    this.tickRate = joined.tickRate;
    this.options = options;
  }

  /** Whether the client is (still) in this room. */
  get joined(): boolean {
    return this._joined;
  }

  /**
   * Sends a game message: type ≥ 0x1000, body any msgpack-encodable value
   * (arrays for positional bodies). While the connection is down and the
   * session can be resumed, the message waits for the resume and is
   * delivered once (true); it is dropped if the session cannot be resumed.
   * Returns false, without sending, when there is no session to send it
   * in (reconnecting without resume, or re-joining the room).
   * Throws a GameserverError 413 if the message is over the server's
   * maximum size, and 406 if the client has left the room.
   */
  send(type: number, body?: unknown): boolean {
    checkGameType(type);
    return this.sendBytes(type, encodeValue(body));
  }

  /** Sends a game message whose body is already msgpack-encoded. */
  sendBytes(type: number, body: Uint8Array): boolean {
    checkGameType(type);
    if (!this._joined) throw new GameserverError(ErrorCode.NotInRoom, `not in room ${this.id}: it was left`);
    if (this._rejoining) return false;
    return this.host.sendGame(type, body);
  }

  /**
   * Calls handler for each game message of the given type ("*": every
   * type) with its decoded body. Returns a function that removes it.
   */
  onMessage<T = any>(type: number | "*", handler: MessageHandler<T>): () => void {
    if (type !== "*") checkGameType(type);
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler as MessageHandler);
    const matching = this.held.filter((m) => type === "*" || m.type === type);
    if (matching.length > 0) {
      this.held = this.held.filter((m) => !matching.includes(m));
      queueMicrotask(() => {
        for (const m of matching) this.call(handler as MessageHandler, m.type, m.body);
      });
    }
    return () => {
      set!.delete(handler as MessageHandler);
    };
  }

  /** Calls handler for each STATE broadcast. Returns a function that removes it. */
  onState(handler: StateHandler<S>): () => void {
    this.stateHandlers.add(handler);
    const latest = this.heldState;
    if (latest) {
      this.heldState = undefined;
      queueMicrotask(() => this.callState(handler, latest));
    }
    return () => {
      this.stateHandlers.delete(handler);
    };
  }

  /**
   * Leaves the room. Resolves once the server confirms (or at once when
   * the connection is down). Rejects only on a request timeout.
   */
  leave(): Promise<void> {
    if (!this._joined) return Promise.resolve();
    this.leaving ??= this.host.leaveRoom(this);
    return this.leaving;
  }

  /** @internal A game message for this room. */
  _message(type: number, bytes: Uint8Array): void {
    let body: unknown;
    try {
      body = decodeValue(bytes);
    } catch (e) {
      this.host.reportError(this, new GameserverError(ErrorCode.BadServerMessage, `room ${this.id}: cannot decode the body of message 0x${type.toString(16)}: ${errMessage(e)}`, { cause: e }));
      return;
    }
    const exact = this.handlers.get(type);
    const any = this.handlers.get("*");
    if ((!exact || exact.size === 0) && (!any || any.size === 0)) {
      if (this.held.length >= MAX_HELD) this.held.shift();
      this.held.push({ type, body });
      return;
    }
    if (exact) for (const h of [...exact]) this.call(h, type, body);
    if (any) for (const h of [...any]) this.call(h, type, body);
  }

  /** @internal A STATE broadcast for this room. */
  _state(tick: bigint, serverTimeNs: bigint, bytes: Uint8Array | null): void {
    let body: S;
    try {
      body = decodeValue(bytes) as S;
    } catch (e) {
      this.host.reportError(this, new GameserverError(ErrorCode.BadServerMessage, `room ${this.id}: cannot decode a state body: ${errMessage(e)}`, { cause: e }));
      return;
    }
    this.state = body;
    this.tick = tick;
    const update: StateUpdate<S> = { tick, serverTimeNs, serverTime: Number(serverTimeNs / 1000n) / 1000, body };
    if (this.stateHandlers.size === 0) {
      this.heldState = update;
      return;
    }
    for (const h of [...this.stateHandlers]) this.callState(h, update);
  }

  /** @internal A PRESENCE event for this room. */
  _presence(event: number, playerId: string): void {
    const name = presenceNames[event];
    if (name) this.emit("presence", { event: name, playerId });
  }

  /** @internal The membership ended. */
  _end(info: LeaveEvent): void {
    if (!this._joined) return;
    this._joined = false;
    this._rejoining = false;
    this.held = [];
    this.heldState = undefined;
    this.emit("leave", info);
  }

  /** @internal The session was resumed: the room goes on as it was. */
  _resumed(): ReconnectedEvent {
    const ev: ReconnectedEvent = { resumed: true, roomChanged: false, previousRoomId: this.id, previousPlayerId: this.playerId };
    this.emit("reconnected", ev);
    return ev;
  }

  /** @internal The room was joined again after a reconnect. */
  _rejoined(joined: Joined): ReconnectedEvent {
    const ev: ReconnectedEvent = {
      resumed: false,
      roomChanged: joined.roomID !== this.id,
      previousRoomId: this.id,
      previousPlayerId: this.playerId,
    };
    this.id = joined.roomID;
    this.playerId = joined.playerID;
    this.tickRate = joined.tickRate;
    this._rejoining = false;
    if (ev.roomChanged) {
      this.state = undefined;
      this.tick = 0n;
    }
    this.emit("reconnected", ev);
    return ev;
  }

  /** @internal Emits an event on behalf of the client. */
  _emit<K extends keyof RoomEvents>(event: K, value: RoomEvents[K]): void {
    this.emit(event, value);
  }

  private call(h: MessageHandler, type: number, body: unknown): void {
    try {
      h(body, { type, room: this });
    } catch (e) {
      rethrow(e);
    }
  }

  private callState(h: StateHandler<S>, update: StateUpdate<S>): void {
    try {
      h(update);
    } catch (e) {
      rethrow(e);
    }
  }
}

function checkGameType(type: number): void {
  if (!Number.isInteger(type) || !isGameType(type)) {
    throw new RangeError(`message type ${type} is not a game type (0x${FIRST_GAME_TYPE.toString(16)} to 0xffff)`);
  }
}

export function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
