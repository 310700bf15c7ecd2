// Low-level msgpack reading and writing for the system messages of the
// wire protocol (docs/protocol.md, "Encoding rules"). System bodies are
// decoded field by field with the protocol's rules: every integer encoding
// and exact-integer floats accepted, 64-bit fields as bigint, str|nil,
// raw values kept as their exact bytes, nesting limited to 32 levels.
// Writing uses the shortest integer encodings and float32 for float
// fields, so encoded messages are byte-identical to the shared vectors.

import { ErrorCode, GameserverError } from "./errors.js";

/** Deepest container nesting accepted in a raw value or an ignored field. */
export const MAX_DEPTH = 32;

const utf8Decoder = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

/** A decoding failure: code 400 (malformed) or 413 (over a limit). */
export function wireError(code: number, message: string): GameserverError {
  return new GameserverError(code, message);
}

const TWO_64 = 1n << 64n;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

/** Reads msgpack values front to back from a byte array. */
export class Reader {
  pos = 0;
  private readonly view: DataView;

  constructor(readonly buf: Uint8Array, pos = 0) {
    this.pos = pos;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, at = this.pos): void {
    if (at + n > this.buf.length) {
      throw wireError(ErrorCode.BadRequest, `truncated: ${n} bytes needed at offset ${at}, ${this.buf.length - at} left`);
    }
  }

  private typeError(want: string): GameserverError {
    if (this.pos >= this.buf.length) {
      return wireError(ErrorCode.BadRequest, `truncated: ${want} expected at offset ${this.pos}`);
    }
    const b = this.buf[this.pos];
    if (b === 0xc1) return wireError(ErrorCode.BadRequest, `invalid format byte 0xc1 at offset ${this.pos}`);
    return wireError(ErrorCode.BadRequest, `${want} expected at offset ${this.pos}, found ${kindName(b)}`);
  }

  /** Consumes a nil and returns true, or consumes nothing and returns false. */
  skipNil(): boolean {
    if (this.pos < this.buf.length && this.buf[this.pos] === 0xc0) {
      this.pos++;
      return true;
    }
    return false;
  }

  /** Reads an array header; checks that n elements can fit in the input. */
  arrayHeader(max = Infinity, what = "array"): number {
    this.need(1);
    const b = this.buf[this.pos];
    let n: number;
    let hdr: number;
    if ((b & 0xf0) === 0x90) {
      n = b & 0x0f;
      hdr = 1;
    } else if (b === 0xdc) {
      this.need(3);
      n = this.view.getUint16(this.pos + 1);
      hdr = 3;
    } else if (b === 0xdd) {
      this.need(5);
      n = this.view.getUint32(this.pos + 1);
      hdr = 5;
    } else {
      throw this.typeError("array");
    }
    if (n > max) throw wireError(ErrorCode.TooLarge, `${what} of ${n} entries, limit ${max}`);
    if (n > this.buf.length - this.pos - hdr) {
      throw wireError(ErrorCode.BadRequest, `truncated: array of ${n} elements at offset ${this.pos}, ${this.buf.length - this.pos - hdr} bytes follow`);
    }
    this.pos += hdr;
    return n;
  }

  /** Reads any integer or float encoding. Integers come back as bigint. */
  private number(want: string): { int: bigint } | { float: number } {
    this.need(1);
    const p = this.pos;
    const b = this.buf[p];
    if (b <= 0x7f) {
      this.pos++;
      return { int: BigInt(b) };
    }
    if (b >= 0xe0) {
      this.pos++;
      return { int: BigInt(b - 0x100) };
    }
    const v = this.view;
    switch (b) {
      case 0xca: this.need(5); this.pos += 5; return { float: v.getFloat32(p + 1) };
      case 0xcb: this.need(9); this.pos += 9; return { float: v.getFloat64(p + 1) };
      case 0xcc: this.need(2); this.pos += 2; return { int: BigInt(v.getUint8(p + 1)) };
      case 0xcd: this.need(3); this.pos += 3; return { int: BigInt(v.getUint16(p + 1)) };
      case 0xce: this.need(5); this.pos += 5; return { int: BigInt(v.getUint32(p + 1)) };
      case 0xcf: this.need(9); this.pos += 9; return { int: v.getBigUint64(p + 1) };
      case 0xd0: this.need(2); this.pos += 2; return { int: BigInt(v.getInt8(p + 1)) };
      case 0xd1: this.need(3); this.pos += 3; return { int: BigInt(v.getInt16(p + 1)) };
      case 0xd2: this.need(5); this.pos += 5; return { int: BigInt(v.getInt32(p + 1)) };
      case 0xd3: this.need(9); this.pos += 9; return { int: v.getBigInt64(p + 1) };
    }
    throw this.typeError(want);
  }

  /** Reads an integer in [min, max] (any encoding, or an exact-integer float). */
  integer(min: bigint, max: bigint): bigint {
    const start = this.pos;
    const n = this.number("integer");
    let i: bigint;
    if ("int" in n) {
      i = n.int;
    } else {
      const f = n.float;
      if (!Number.isFinite(f) || Math.trunc(f) !== f || f < -(2 ** 63) || f >= 2 ** 64) {
        this.pos = start;
        throw wireError(ErrorCode.BadRequest, `float ${f} at offset ${start} is not an integer`);
      }
      i = BigInt(f);
    }
    if (i < min || i > max) {
      this.pos = start;
      throw wireError(ErrorCode.BadRequest, `integer ${i} at offset ${start} is outside [${min}, ${max}]`);
    }
    return i;
  }

  /** Reads an unsigned integer of at most `bits` (≤ 32) bits as a number. */
  uint(bits: 8 | 16 | 32): number {
    const b = this.pos < this.buf.length ? this.buf[this.pos] : 0xc1;
    if (b <= 0x7f) {
      this.pos++;
      return b; // positive fixint, the most common case
    }
    return Number(this.integer(0n, (1n << BigInt(bits)) - 1n));
  }

  /** Reads an unsigned 64-bit integer as a bigint. */
  uint64(): bigint {
    return this.integer(0n, TWO_64 - 1n);
  }

  /** Reads a signed 64-bit integer as a bigint. */
  int64(): bigint {
    return this.integer(INT64_MIN, INT64_MAX);
  }

  /** Reads a float field: any float or integer, finite as a float32. */
  float32(): number {
    const start = this.pos;
    const n = this.number("number");
    const v = "int" in n ? Number(n.int) : n.float;
    const f = Math.fround(v);
    if (!Number.isFinite(f)) {
      this.pos = start;
      throw wireError(ErrorCode.BadRequest, `not a finite float32 at offset ${start}: ${v}`);
    }
    return f;
  }

  /** Reads a str of at most `max` bytes of valid UTF-8; nil reads as "". */
  str(max: number): string {
    if (this.skipNil()) return "";
    this.need(1);
    const b = this.buf[this.pos];
    let n: number;
    let hdr: number;
    if ((b & 0xe0) === 0xa0) {
      n = b & 0x1f;
      hdr = 1;
    } else if (b === 0xd9) {
      this.need(2);
      n = this.buf[this.pos + 1];
      hdr = 2;
    } else if (b === 0xda) {
      this.need(3);
      n = this.view.getUint16(this.pos + 1);
      hdr = 3;
    } else if (b === 0xdb) {
      this.need(5);
      n = this.view.getUint32(this.pos + 1);
      hdr = 5;
    } else {
      throw this.typeError("string");
    }
    if (n > max) throw wireError(ErrorCode.TooLarge, `string of ${n} bytes at offset ${this.pos}, limit ${max}`);
    this.need(hdr + n);
    const bytes = this.buf.subarray(this.pos + hdr, this.pos + hdr + n);
    let s: string;
    try {
      s = utf8Decoder.decode(bytes);
    } catch {
      throw wireError(ErrorCode.BadRequest, `string at offset ${this.pos} is not valid UTF-8`);
    }
    this.pos += hdr + n;
    return s;
  }

  /** Reads a str|nil field: nil and "" both read as null. */
  strOrNil(max: number): string | null {
    const s = this.str(max);
    return s === "" ? null : s;
  }

  /** Reads one complete value and returns its exact bytes; nil reads as null. */
  raw(): Uint8Array | null {
    if (this.skipNil()) return null;
    const start = this.pos;
    this.skip();
    return this.buf.slice(start, this.pos);
  }

  /**
   * Consumes one complete, well-formed value. Containers may nest at most
   * MAX_DEPTH levels (deeper fails with 413); 0xc1 and lengths that do not
   * fit the input fail with 400.
   */
  skip(): void {
    const pending: number[] = [];
    let p = this.pos;
    for (;;) {
      const [size, children] = this.valueHeader(p);
      p += size;
      if (children >= 0) {
        if (pending.length >= MAX_DEPTH) {
          throw wireError(ErrorCode.TooLarge, `value at offset ${p - size} nests deeper than ${MAX_DEPTH} levels`);
        }
        if (children > 0) {
          pending.push(children);
          continue;
        }
      }
      // One value is complete: close every container it completes.
      while (pending.length > 0) {
        const top = --pending[pending.length - 1];
        if (top > 0) break;
        pending.pop();
      }
      if (pending.length === 0) {
        this.pos = p;
        return;
      }
    }
  }

  /**
   * Examines the value at p: for a container returns [header size, child
   * count]; for anything else [whole size, -1]. Sizes are checked against
   * the input.
   */
  private valueHeader(p: number): [number, number] {
    if (p >= this.buf.length) throw wireError(ErrorCode.BadRequest, `truncated: value expected at offset ${p}`);
    const b = this.buf[p];
    const left = this.buf.length - p;
    const fit = (size: number): [number, number] => {
      if (size > left) throw wireError(ErrorCode.BadRequest, `truncated: ${kindName(b)} at offset ${p} needs ${size} bytes, ${left} left`);
      return [size, -1];
    };
    const container = (hdr: number, n: number): [number, number] => {
      if (hdr > left) throw wireError(ErrorCode.BadRequest, `truncated: header at offset ${p}`);
      if (n > left - hdr) throw wireError(ErrorCode.BadRequest, `truncated: container at offset ${p} announces ${n} values, ${left - hdr} bytes follow`);
      return [hdr, n];
    };
    const len = (w: 1 | 2 | 4): number => {
      if (1 + w > left) throw wireError(ErrorCode.BadRequest, `truncated: header at offset ${p}`);
      return w === 1 ? this.buf[p + 1] : w === 2 ? this.view.getUint16(p + 1) : this.view.getUint32(p + 1);
    };
    if (b <= 0x7f || b >= 0xe0) return [1, -1];
    if (b <= 0x8f) return container(1, 2 * (b & 0x0f));
    if (b <= 0x9f) return container(1, b & 0x0f);
    if (b <= 0xbf) return fit(1 + (b & 0x1f));
    switch (b) {
      case 0xc0: case 0xc2: case 0xc3: return [1, -1];
      case 0xc1: throw wireError(ErrorCode.BadRequest, `invalid format byte 0xc1 at offset ${p}`);
      case 0xc4: case 0xd9: return fit(2 + len(1));
      case 0xc5: case 0xda: return fit(3 + len(2));
      case 0xc6: case 0xdb: return fit(5 + len(4));
      case 0xc7: return fit(3 + len(1));
      case 0xc8: return fit(4 + len(2));
      case 0xc9: return fit(6 + len(4));
      case 0xca: return fit(5);
      case 0xcb: return fit(9);
      case 0xcc: case 0xd0: return fit(2);
      case 0xcd: case 0xd1: return fit(3);
      case 0xce: case 0xd2: return fit(5);
      case 0xcf: case 0xd3: return fit(9);
      case 0xd4: return fit(3);
      case 0xd5: return fit(4);
      case 0xd6: return fit(6);
      case 0xd7: return fit(10);
      case 0xd8: return fit(18);
      case 0xdc: return container(3, len(2));
      case 0xdd: return container(5, len(4));
      case 0xde: return container(3, 2 * len(2));
      default: return container(5, 2 * len(4)); // 0xdf
    }
  }
}

function kindName(b: number): string {
  if (b <= 0x7f || b >= 0xe0) return "integer";
  if (b <= 0x8f || b === 0xde || b === 0xdf) return "map";
  if (b <= 0x9f || b === 0xdc || b === 0xdd) return "array";
  if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb)) return "string";
  if (b === 0xc0) return "nil";
  if (b === 0xc2 || b === 0xc3) return "bool";
  if (b >= 0xc4 && b <= 0xc6) return "binary";
  if (b === 0xca || b === 0xcb) return "float";
  if (b >= 0xcc && b <= 0xd3) return "integer";
  if (b === 0xc1) return "invalid byte 0xc1";
  return "extension";
}

/** Appends msgpack values to a growing byte buffer. */
export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  pos = 0;

  constructor(size = 64) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  private grow(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** The bytes written so far, as a new array. */
  bytes(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  u8(b: number): this {
    this.grow(1);
    this.buf[this.pos++] = b;
    return this;
  }

  /** The 2-byte big-endian message type. */
  type(t: number): this {
    this.grow(2);
    this.view.setUint16(this.pos, t);
    this.pos += 2;
    return this;
  }

  arrayHeader(n: number): this {
    if (n < 16) return this.u8(0x90 | n);
    this.grow(5);
    if (n < 0x10000) {
      this.buf[this.pos] = 0xdc;
      this.view.setUint16(this.pos + 1, n);
      this.pos += 3;
    } else {
      this.buf[this.pos] = 0xdd;
      this.view.setUint32(this.pos + 1, n);
      this.pos += 5;
    }
    return this;
  }

  nil(): this {
    return this.u8(0xc0);
  }

  /** An integer in its shortest encoding (fixint where possible). */
  int(v: number | bigint): this {
    const i = typeof v === "bigint" ? v : BigInt(checkInteger(v));
    this.grow(9);
    const p = this.pos;
    const view = this.view;
    if (i >= 0n) {
      if (i <= 0x7fn) {
        this.buf[p] = Number(i);
        this.pos += 1;
      } else if (i <= 0xffn) {
        this.buf[p] = 0xcc;
        this.buf[p + 1] = Number(i);
        this.pos += 2;
      } else if (i <= 0xffffn) {
        this.buf[p] = 0xcd;
        view.setUint16(p + 1, Number(i));
        this.pos += 3;
      } else if (i <= 0xffffffffn) {
        this.buf[p] = 0xce;
        view.setUint32(p + 1, Number(i));
        this.pos += 5;
      } else if (i < TWO_64) {
        this.buf[p] = 0xcf;
        view.setBigUint64(p + 1, i);
        this.pos += 9;
      } else {
        throw new RangeError(`integer ${i} does not fit in 64 bits`);
      }
    } else if (i >= -32n) {
      this.buf[p] = 0x100 + Number(i);
      this.pos += 1;
    } else if (i >= -0x80n) {
      this.buf[p] = 0xd0;
      view.setInt8(p + 1, Number(i));
      this.pos += 2;
    } else if (i >= -0x8000n) {
      this.buf[p] = 0xd1;
      view.setInt16(p + 1, Number(i));
      this.pos += 3;
    } else if (i >= -0x80000000n) {
      this.buf[p] = 0xd2;
      view.setInt32(p + 1, Number(i));
      this.pos += 5;
    } else if (i >= INT64_MIN) {
      this.buf[p] = 0xd3;
      view.setBigInt64(p + 1, i);
      this.pos += 9;
    } else {
      throw new RangeError(`integer ${i} does not fit in 64 bits`);
    }
    return this;
  }

  float32(v: number): this {
    this.grow(5);
    this.buf[this.pos] = 0xca;
    this.view.setFloat32(this.pos + 1, v);
    this.pos += 5;
    return this;
  }

  str(s: string): this {
    const b = utf8Encoder.encode(s);
    const n = b.length;
    this.grow(5 + n);
    if (n < 32) {
      this.buf[this.pos++] = 0xa0 | n;
    } else if (n < 0x100) {
      this.buf[this.pos++] = 0xd9;
      this.buf[this.pos++] = n;
    } else if (n < 0x10000) {
      this.buf[this.pos] = 0xda;
      this.view.setUint16(this.pos + 1, n);
      this.pos += 3;
    } else {
      this.buf[this.pos] = 0xdb;
      this.view.setUint32(this.pos + 1, n);
      this.pos += 5;
    }
    this.buf.set(b, this.pos);
    this.pos += n;
    return this;
  }

  /** A str|nil field: nil when empty. */
  strOrNil(s: string | null | undefined): this {
    return s ? this.str(s) : this.nil();
  }

  /** A raw field: pre-encoded bytes of one value, nil when absent or empty. */
  raw(b: Uint8Array | null | undefined): this {
    if (!b || b.length === 0) return this.nil();
    this.grow(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }
}

function checkInteger(v: number): number {
  if (!Number.isInteger(v)) throw new RangeError(`${v} is not an integer`);
  return v;
}
