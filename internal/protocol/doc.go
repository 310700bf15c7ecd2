// Package protocol implements the game server's wire format.
//
// A message travels in one WebSocket binary frame and is laid out as
//
//	[type: uint16 big-endian][body: exactly one msgpack value]
//
// The schema of the body is fixed by the type. System messages (types
// 0x0000–0x0FFF) have msgpack array bodies with positional fields; games
// define their own types from [FirstGameType] (0x1000) upwards. The full
// specification, written for client authors, is docs/protocol.md.
//
// # Decoding rules
//
// Decoders are lenient where a newer or foreign encoder may differ and
// strict everywhere else:
//
//   - An array body may carry more elements than the decoder knows; the
//     extra trailing elements are validated as well-formed msgpack and
//     skipped. It may carry fewer elements as long as every missing
//     trailing field is optional; missing fields take their zero value.
//   - msgpack nil is accepted for every optional string or raw field.
//   - Integer fields accept every msgpack integer encoding whose value fits
//     the field, and float32/float64 values that hold an exact integer
//     (JavaScript encoders produce those). Float fields accept float32,
//     float64 and any integer encoding, but must be finite.
//   - Strings must be msgpack str values holding valid UTF-8.
//   - Every length is checked against the remaining input before it is
//     used, raw values are limited to [MaxDepth] levels of nesting, and
//     bytes after the body value are an error.
//
// Decoding failures are reported as *[Error] with code [CodeBadRequest]
// (malformed, truncated, wrong type, out of range, trailing bytes) or
// [CodeTooLarge] (a field over its size limit); the message names the field
// and the reason. No input makes a decoder panic.
//
// # Encoding and allocation
//
// Every message struct has Append, which appends the whole message (type
// prefix and body) to a caller-owned buffer, and Decode, which decodes a
// body (the bytes after the prefix, as returned by [Split]). Encoders
// produce the shortest msgpack encoding of every value, the same bytes as
// vmihailenco/msgpack with compact integers.
//
// The hot-path messages ([Ping], [Pong], [State], [ArenaInput] and
// [ArenaState]) encode and decode without allocating; their []byte fields
// are sub-slices of the decoded input and are valid until the input buffer
// is reused. Control messages decode strings into newly allocated Go
// strings.
//
// The package also exports the small msgpack toolkit it is built on: the
// Append* functions and [Reader], which the server's other packages and
// the load-test driver reuse to encode and decode with the same
// guarantees. (Being internal, it is not importable by games; they use
// vmihailenco/msgpack through the game package.)
package protocol
