// Package frame holds the unit every outbound message travels in: a
// pooled, reference-counted buffer with room in front of the message for the
// WebSocket header, so one encoding is shared by every recipient and by every
// transport (the SSE fallback sends the same message bytes, base64-encoded).
package frame

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// Headroom is the space kept in front of a frame's payload for the largest
// server-to-client WebSocket header (2 bytes + 8 bytes of extended length; a
// server never masks).
const Headroom = 10

// pooledSize is the buffer size of a pooled frame, headroom included. Only
// frames of this size go back to the pool: a frame that grew (a roster, a
// snapshot) is left to the garbage collector, so a small message taken from
// the pool never pins a large buffer while it waits in a replay buffer.
const pooledSize = 256

// Frame is one encoded, ready-to-write WebSocket frame whose bytes can be
// shared by many connections. It is reference-counted: NewFrame returns it
// with one reference, every Conn.Send takes another until the frame is
// written or dropped, and Release gives one back. The last Release returns
// the buffer to a pool, so a Frame must not be touched after its owner's
// Release.
//
// Build the payload by appending to B, then call Seal once. B must not be
// changed after Seal.
type Frame struct {
	// B is the message payload. Append to it before Seal.
	B []byte

	raw    []byte // Headroom + payload backing B
	wire   []byte // the sealed frame: header + payload
	refs   atomic.Int32
	sealed bool
}

var framePool = sync.Pool{New: func() any {
	b := make([]byte, Headroom, pooledSize)
	return &Frame{raw: b}
}}

// New returns an empty frame holding one reference.
func New() *Frame {
	f := framePool.Get().(*Frame)
	f.refs.Store(1)
	f.raw = f.raw[:Headroom]
	f.B = f.raw[Headroom:Headroom]
	f.wire = nil
	f.sealed = false
	return f
}

// WebSocket opcodes for SealOp.
const (
	OpBinary byte = 0x2
	OpClose  byte = 0x8
	OpPing   byte = 0x9
	OpPong   byte = 0xA
)

// Seal finishes a message: it writes the header of a final, unmasked
// WebSocket binary frame in front of B. It must be called exactly once,
// before the frame is sent; B must not change afterwards.
func (f *Frame) Seal() *Frame { return f.SealOp(OpBinary) }

// SealOp is Seal with another opcode (control frames).
func (f *Frame) SealOp(op byte) *Frame {
	n := len(f.B)
	if n > 0 && (cap(f.raw) < Headroom+n || &f.raw[Headroom : Headroom+1][0] != &f.B[0]) {
		// B outgrew the pooled buffer and was reallocated by append: move
		// it behind a fresh Headroom.
		raw := make([]byte, Headroom+n)
		copy(raw[Headroom:], f.B)
		f.raw = raw
		f.B = raw[Headroom:]
	}
	f.raw = f.raw[:Headroom+n]
	var hs int
	switch {
	case n <= 125:
		hs = 2
		f.raw[Headroom-1] = byte(n)
	case n <= 0xFFFF:
		hs = 4
		f.raw[Headroom-3] = 126
		binary.BigEndian.PutUint16(f.raw[Headroom-2:Headroom], uint16(n))
	default:
		hs = 10
		f.raw[Headroom-9] = 127
		binary.BigEndian.PutUint64(f.raw[Headroom-8:Headroom], uint64(n))
	}
	f.raw[Headroom-hs] = 0x80 | op // FIN
	f.wire = f.raw[Headroom-hs : Headroom+n]
	f.sealed = true
	return f
}

// Sealed reports whether Seal was called.
func (f *Frame) Sealed() bool { return f.sealed }

// Wire returns the sealed frame bytes (header and payload).
func (f *Frame) Wire() []byte { return f.wire }

// Len is the number of bytes the frame occupies on the wire.
func (f *Frame) Len() int { return len(f.wire) }

// Retain takes one more reference.
func (f *Frame) Retain() { f.refs.Add(1) }

// Release gives one reference back; the last one recycles the frame.
func (f *Frame) Release() {
	switch r := f.refs.Add(-1); {
	case r == 0:
		if cap(f.raw) == pooledSize {
			f.B, f.wire = nil, nil
			framePool.Put(f)
		}
	case r < 0:
		panic("frame: Frame released more times than retained")
	}
}
