// Helpers for "arena", the reference game (docs/protocol.md, "Game
// messages and the arena reference game"). Its input can also be sent as
// room.send(ARENA_INPUT, [seq, dx, dy]); these helpers write the compact
// form (float32 directions) and read the state with the protocol's checks.

import { ErrorCode } from "./errors.js";
import { Limits } from "./protocol.js";
import { Reader, Writer, wireError } from "./wire.js";

/** The arena's input message type (client → server). */
export const ARENA_INPUT = 0x1000;

export interface ArenaInput {
  /** Input sequence number, increasing; echoed as lastSeq in the state. */
  seq: number;
  /** Steering direction, each in [-1, 1]. */
  dx: number;
  dy: number;
}

export interface ArenaPlayer {
  id: string;
  x: number;
  y: number;
  /** seq of the player's last input the room applied. */
  lastSeq: number;
  /**
   * Input messages the room received from the player, stale and repeated
   * ones included (0 when the server does not say): compared with what was
   * sent, it shows that nothing was lost or delivered twice.
   */
  received: number;
}

/** Encodes an input body [seq, dx, dy] with float32 directions. */
export function encodeArenaInput(input: ArenaInput): Uint8Array {
  return new Writer(16).arrayHeader(3).int(input.seq >>> 0).float32(input.dx).float32(input.dy).bytes();
}

/** Decodes an input body. */
export function decodeArenaInput(body: Uint8Array): ArenaInput {
  const r = new Reader(body);
  const n = r.arrayHeader();
  const seq = n > 0 ? r.uint(32) : 0;
  const dx = n > 1 ? r.float32() : 0;
  const dy = n > 2 ? r.float32() : 0;
  for (let i = 3; i < n; i++) r.skip();
  if (r.remaining > 0) throw wireError(ErrorCode.BadRequest, "arena input: trailing bytes after the body");
  return { seq, dx, dy };
}

/** Decodes a STATE body of the arena: [[id, x, y, lastSeq, received], ...]; nil is no players. */
export function decodeArenaState(body: Uint8Array | null): ArenaPlayer[] {
  if (body === null) return [];
  const r = new Reader(body);
  const players: ArenaPlayer[] = [];
  if (!r.skipNil()) {
    const n = r.arrayHeader(Limits.arenaPlayers, "arena state");
    for (let i = 0; i < n; i++) {
      const m = r.arrayHeader();
      const id = m > 0 ? r.str(Limits.id) : "";
      const x = m > 1 ? r.float32() : 0;
      const y = m > 2 ? r.float32() : 0;
      const lastSeq = m > 3 ? r.uint(32) : 0;
      const received = m > 4 ? r.uint(32) : 0;
      for (let j = 5; j < m; j++) r.skip();
      players.push({ id, x, y, lastSeq, received });
    }
  }
  if (r.remaining > 0) throw wireError(ErrorCode.BadRequest, "arena state: trailing bytes after the body");
  return players;
}

/** Encodes an arena STATE body (received defaults to 0). */
export function encodeArenaState(players: (Omit<ArenaPlayer, "received"> & { received?: number })[]): Uint8Array {
  const w = new Writer(16 + players.length * 26).arrayHeader(players.length);
  for (const p of players) w.arrayHeader(5).str(p.id).float32(p.x).float32(p.y).int(p.lastSeq >>> 0).int((p.received ?? 0) >>> 0);
  return w.bytes();
}
