// The wire protocol's messages (docs/protocol.md): every message is
// [uint16 big-endian type][one msgpack value], system bodies are
// positional arrays. encodeMessage and decodeMessage convert between bytes
// and plain objects whose field names are those of the protocol document.

import { ErrorCode } from "./errors.js";
import { Reader, Writer, wireError } from "./wire.js";

/** The protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;

/** System message types. Types from 0x1000 up are game types. */
export const MsgType = {
  Hello: 0x0001,
  Welcome: 0x0002,
  Ping: 0x0003,
  Pong: 0x0004,
  Error: 0x0005,
  Kick: 0x0006,
  Move: 0x0007,
  Resume: 0x0008,
  Resumed: 0x0009,
  Join: 0x0010,
  Joined: 0x0011,
  Leave: 0x0012,
  Left: 0x0013,
  List: 0x0014,
  Rooms: 0x0015,
  Presence: 0x0016,
  State: 0x0020,
} as const;

/** The first game message type. */
export const FIRST_GAME_TYPE = 0x1000;

/** Length limits in bytes (strings) or entries (lists), docs/protocol.md "Limits". */
export const Limits = {
  id: 64,
  token: 4096,
  client: 128,
  text: 1024,
  node: 255,
  url: 2048,
  rooms: 1024,
  arenaPlayers: 1024,
} as const;

/** JOIN modes. */
export const JoinMode = { JoinOrCreate: 0, Create: 1, JoinById: 2 } as const;

/** LEFT reasons. Unknown values are treated like Disposed. */
export const LeftReason = { Requested: 0, Kicked: 1, Disposed: 2, Dropped: 3 } as const;

/** PRESENCE events. Unknown values are ignored. */
export const PresenceEvent = { Joined: 0, Left: 1, Dropped: 2, Resumed: 3 } as const;

export interface Hello { type: 0x0001; version: number; token: string | null; client: string | null }
export interface Welcome {
  type: 0x0002;
  version: number;
  sessionID: string;
  node: string;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  maxMessage: number;
  resumeToken: string | null;
}
export interface Ping { type: 0x0003; nonce: number; rttUs: number; ack: bigint }
export interface Pong { type: 0x0004; nonce: number; ack: bigint }
export interface ErrorMsg { type: 0x0005; code: number; message: string; ref: number; reqID: number }
export interface Kick { type: 0x0006; code: number; reason: string }
export interface Move { type: 0x0007; url: string; resumeToken: string; delayMs: number }
export interface Resume { type: 0x0008; sessionID: string; resumeToken: string; lastSeq: bigint; token: string | null }
export interface Resumed { type: 0x0009; sessionID: string; fromSeq: bigint; clientSeq: bigint; resumeToken: string | null }
export interface Join { type: 0x0010; reqID: number; mode: number; kind: string; roomID: string; options: Uint8Array | null }
export interface Joined { type: 0x0011; reqID: number; roomID: string; kind: string; playerID: string; tickRate: number }
export interface Leave { type: 0x0012; reqID: number }
export interface Left { type: 0x0013; roomID: string; reason: number; code: number }
export interface List { type: 0x0014; reqID: number; kind: string | null }
export interface RoomEntry { roomID: string; kind: string; players: number; maxPlayers: number; metadata: Uint8Array | null }
export interface Rooms { type: 0x0015; reqID: number; rooms: RoomEntry[] }
export interface Presence { type: 0x0016; roomID: string; event: number; playerID: string }
export interface State { type: 0x0020; tick: bigint; serverTimeNs: bigint; body: Uint8Array | null }
/** A game message: type ≥ 0x1000, body the exact bytes of one msgpack value. */
export interface GameMessage { type: number; body: Uint8Array }

export type SystemMessage =
  | Hello | Welcome | Ping | Pong | ErrorMsg | Kick | Move | Resume | Resumed
  | Join | Joined | Leave | Left | List | Rooms | Presence | State;

export type Message = SystemMessage | GameMessage;

// Field kinds: unsigned integers of a width, signed 64-bit, float32, str,
// str|nil, raw (exact bytes of any value) and the ROOMS entry list.
type Kind = "u8" | "u16" | "u32" | "u64" | "i64" | "f32" | "str" | "strnil" | "raw" | "rooms";

interface Field {
  name: string;
  kind: Kind;
  limit?: number;
}

interface Schema {
  name: string;
  required: number;
  fields: Field[];
}

const f = (name: string, kind: Kind, limit?: number): Field => (limit === undefined ? { name, kind } : { name, kind, limit });

const schemas: Record<number, Schema> = {
  [MsgType.Hello]: { name: "hello", required: 1, fields: [f("version", "u32"), f("token", "strnil", Limits.token), f("client", "strnil", Limits.client)] },
  [MsgType.Welcome]: {
    name: "welcome",
    required: 0,
    fields: [
      f("version", "u32"), f("sessionID", "str", Limits.id), f("node", "str", Limits.node), f("pingIntervalMs", "u32"),
      f("pingTimeoutMs", "u32"), f("maxMessage", "u32"), f("resumeToken", "strnil", Limits.token),
    ],
  },
  [MsgType.Ping]: { name: "ping", required: 1, fields: [f("nonce", "u32"), f("rttUs", "u32"), f("ack", "u64")] },
  [MsgType.Pong]: { name: "pong", required: 1, fields: [f("nonce", "u32"), f("ack", "u64")] },
  [MsgType.Error]: { name: "error", required: 1, fields: [f("code", "u16"), f("message", "str", Limits.text), f("ref", "u16"), f("reqID", "u32")] },
  [MsgType.Kick]: { name: "kick", required: 0, fields: [f("code", "u16"), f("reason", "str", Limits.text)] },
  [MsgType.Move]: { name: "move", required: 0, fields: [f("url", "str", Limits.url), f("resumeToken", "str", Limits.token), f("delayMs", "u32")] },
  [MsgType.Resume]: {
    name: "resume",
    required: 0,
    fields: [f("sessionID", "str", Limits.id), f("resumeToken", "str", Limits.token), f("lastSeq", "u64"), f("token", "strnil", Limits.token)],
  },
  [MsgType.Resumed]: {
    name: "resumed",
    required: 0,
    fields: [f("sessionID", "str", Limits.id), f("fromSeq", "u64"), f("clientSeq", "u64"), f("resumeToken", "strnil", Limits.token)],
  },
  [MsgType.Join]: {
    name: "join",
    required: 0,
    fields: [f("reqID", "u32"), f("mode", "u8"), f("kind", "str", Limits.id), f("roomID", "str", Limits.id), f("options", "raw")],
  },
  [MsgType.Joined]: {
    name: "joined",
    required: 0,
    fields: [f("reqID", "u32"), f("roomID", "str", Limits.id), f("kind", "str", Limits.id), f("playerID", "str", Limits.id), f("tickRate", "u32")],
  },
  [MsgType.Leave]: { name: "leave", required: 0, fields: [f("reqID", "u32")] },
  [MsgType.Left]: { name: "left", required: 0, fields: [f("roomID", "str", Limits.id), f("reason", "u8"), f("code", "u16")] },
  [MsgType.List]: { name: "list", required: 0, fields: [f("reqID", "u32"), f("kind", "strnil", Limits.id)] },
  [MsgType.Rooms]: { name: "rooms", required: 0, fields: [f("reqID", "u32"), f("rooms", "rooms", Limits.rooms)] },
  [MsgType.Presence]: { name: "presence", required: 0, fields: [f("roomID", "str", Limits.id), f("event", "u8"), f("playerID", "str", Limits.id)] },
  [MsgType.State]: { name: "state", required: 0, fields: [f("tick", "u64"), f("serverTimeNs", "i64"), f("body", "raw")] },
};

const roomEntryFields: Field[] = [
  f("roomID", "str", Limits.id), f("kind", "str", Limits.id), f("players", "u32"), f("maxPlayers", "u32"), f("metadata", "raw"),
];

/** Whether t is a game message type (≥ 0x1000). */
export function isGameType(t: number): boolean {
  return t >= FIRST_GAME_TYPE && t <= 0xffff;
}

/** The protocol name of a message type ("joined"), or "game 0x1000". */
export function typeName(t: number): string {
  if (isGameType(t)) return `game 0x${t.toString(16)}`;
  return schemas[t]?.name ?? `unknown 0x${t.toString(16).padStart(4, "0")}`;
}

function zero(kind: Kind): unknown {
  switch (kind) {
    case "u64": case "i64": return 0n;
    case "str": return "";
    case "strnil": case "raw": return null;
    case "rooms": return [];
    default: return 0;
  }
}

function readField(r: Reader, field: Field): unknown {
  switch (field.kind) {
    case "u8": return r.uint(8);
    case "u16": return r.uint(16);
    case "u32": return r.uint(32);
    case "u64": return r.uint64();
    case "i64": return r.int64();
    case "f32": return r.float32();
    case "str": return r.str(field.limit!);
    case "strnil": return r.strOrNil(field.limit!);
    case "raw": return r.raw();
    case "rooms": {
      if (r.skipNil()) return [];
      const n = r.arrayHeader(field.limit!, "rooms list");
      const rooms: RoomEntry[] = [];
      for (let i = 0; i < n; i++) rooms.push(readFields(r, roomEntryFields, 0, `room ${i}`) as unknown as RoomEntry);
      return rooms;
    }
  }
}

/** Reads one array of positional fields with the extensibility rules. */
function readFields(r: Reader, fields: Field[], required: number, what: string): Record<string, unknown> {
  const n = r.arrayHeader();
  const out: Record<string, unknown> = {};
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i];
    if (i >= n) {
      if (i < required) {
        throw wireError(ErrorCode.BadRequest, `${what}: field ${i} (${field.name}) is required, the array has ${n} elements`);
      }
      out[field.name] = zero(field.kind);
      continue;
    }
    try {
      out[field.name] = readField(r, field);
    } catch (e) {
      throw prefixed(e, `${what}: field ${i} (${field.name}): `);
    }
  }
  for (let i = fields.length; i < n; i++) {
    try {
      r.skip(); // unknown trailing field: validated, then ignored
    } catch (e) {
      throw prefixed(e, `${what}: extra field ${i}: `);
    }
  }
  return out;
}

function prefixed(e: unknown, prefix: string): unknown {
  if (e instanceof Error) e.message = prefix + e.message;
  return e;
}

/**
 * Decodes one whole message. Game messages (type ≥ 0x1000) come back as
 * { type, body } with body the bytes of their single msgpack value.
 * Throws a GameserverError: 400 for malformed input, 413 for a field over
 * its limit, 405 for an unknown system type.
 */
export function decodeMessage(bytes: Uint8Array): Message {
  if (bytes.length < 2) throw wireError(ErrorCode.BadRequest, `message of ${bytes.length} bytes: shorter than its type`);
  const t = (bytes[0] << 8) | bytes[1];
  const r = new Reader(bytes, 2);
  if (isGameType(t)) {
    r.skip();
    if (r.remaining > 0) throw wireError(ErrorCode.BadRequest, `game 0x${t.toString(16)}: ${r.remaining} trailing bytes after the body`);
    return { type: t, body: bytes.slice(2) };
  }
  const schema = schemas[t];
  if (!schema) throw wireError(ErrorCode.UnknownType, `unknown message type 0x${t.toString(16).padStart(4, "0")}`);
  const out = readFields(r, schema.fields, schema.required, schema.name);
  if (r.remaining > 0) throw wireError(ErrorCode.BadRequest, `${schema.name}: ${r.remaining} trailing bytes after the body`);
  if (t === MsgType.Join && (out.mode as number) > JoinMode.JoinById) {
    throw wireError(ErrorCode.BadRequest, `join: field 1 (mode): unknown join mode ${out.mode}`);
  }
  out.type = t;
  return out as unknown as Message;
}

function writeField(w: Writer, field: Field, v: unknown, what: string): void {
  switch (field.kind) {
    case "u8": case "u16": case "u32": case "u64": case "i64": {
      const n = (v ?? 0) as number | bigint;
      checkRange(n, field.kind, `${what}.${field.name}`);
      w.int(n);
      return;
    }
    case "f32": w.float32((v ?? 0) as number); return;
    case "str": w.str((v ?? "") as string); return;
    case "strnil": w.strOrNil(v as string | null); return;
    case "raw": w.raw(v as Uint8Array | null); return;
    case "rooms": {
      const rooms = (v ?? []) as RoomEntry[];
      w.arrayHeader(rooms.length);
      for (const entry of rooms) {
        w.arrayHeader(roomEntryFields.length);
        for (const ef of roomEntryFields) writeField(w, ef, (entry as unknown as Record<string, unknown>)[ef.name], "room");
      }
    }
  }
}

const ranges: Record<string, [bigint, bigint]> = {
  u8: [0n, 0xffn],
  u16: [0n, 0xffffn],
  u32: [0n, 0xffffffffn],
  u64: [0n, (1n << 64n) - 1n],
  i64: [-(1n << 63n), (1n << 63n) - 1n],
};

function checkRange(v: number | bigint, kind: string, what: string): void {
  if (typeof v === "number" && !Number.isInteger(v)) throw new RangeError(`${what}: ${v} is not an integer`);
  const i = BigInt(v);
  const [lo, hi] = ranges[kind];
  if (i < lo || i > hi) throw new RangeError(`${what}: ${v} is outside the ${kind} range`);
}

/**
 * Encodes a message: shortest integer encodings, nil for empty str|nil
 * fields and absent raw values. A game message's body must already be the
 * bytes of one msgpack value.
 */
export function encodeMessage(m: Message): Uint8Array {
  const w = new Writer(64);
  w.type(m.type);
  if (isGameType(m.type)) {
    const body = (m as GameMessage).body;
    if (!(body instanceof Uint8Array) || body.length === 0) throw new TypeError("a game message body must be the bytes of one msgpack value");
    w.raw(body);
    return w.bytes();
  }
  const schema = schemas[m.type];
  if (!schema) throw new TypeError(`unknown message type 0x${m.type.toString(16)}`);
  const values = m as unknown as Record<string, unknown>;
  w.arrayHeader(schema.fields.length);
  for (const field of schema.fields) writeField(w, field, values[field.name], schema.name);
  return w.bytes();
}
