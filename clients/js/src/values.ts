// Game values (message bodies, room options, state, metadata) are any
// msgpack value; they are converted with @msgpack/msgpack.
//
// Integers decode as numbers while they are exact in a double
// (|v| ≤ 2^53 − 1) and as bigint beyond, so no value is ever rounded.
// bigint values encode as 64-bit integers.

import { Decoder, Encoder } from "@msgpack/msgpack";

const encoder = new Encoder({ useBigInt64: true });
const decoder = new Decoder({ useBigInt64: false });
const bigDecoder = new Decoder({ useBigInt64: true });

/** Encodes a value as msgpack. undefined encodes as nil. */
export function encodeValue(value: unknown): Uint8Array {
  return encoder.encode(value === undefined ? null : value);
}

/** Decodes the bytes of one msgpack value; null (no bytes) decodes as null. */
export function decodeValue(bytes: Uint8Array | null): unknown {
  if (bytes === null || bytes.length === 0) return null;
  // Only uint64 (0xcf) and int64 (0xd3) encodings can hold integers a
  // double cannot; without those bytes the fast path is exact.
  if (bytes.indexOf(0xcf) < 0 && bytes.indexOf(0xd3) < 0) return decoder.decode(bytes);
  return narrow(bigDecoder.decode(bytes));
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Turns bigints that a number holds exactly back into numbers. */
function narrow(v: unknown): unknown {
  if (typeof v === "bigint") return v >= -MAX_SAFE && v <= MAX_SAFE ? Number(v) : v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = narrow(v[i]);
    return v;
  }
  if (v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = narrow(o[k]);
  }
  return v;
}
