// Package frame holds the unit every outbound message travels in: a
// pooled, reference-counted buffer with room in front of the message for the
// WebSocket header, so one encoding is shared by every recipient and by every
// transport (the SSE fallback sends the same message bytes, base64-encoded).
package frame

import (
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
)

// Headroom is the space kept in front of a frame's payload for the largest
// server-to-client WebSocket header (2 bytes + 8 bytes of extended length; a
// server never masks).
const Headroom = 10

// Frame is one encoded, ready-to-write WebSocket frame whose bytes can be
// shared by many connections. It is reference-counted: New returns it
// with one reference, every Conn.Send takes another until the frame is
// written or dropped, and Release gives one back. The last Release returns
// the buffer to a pool, so a Frame must not be touched after its owner's
// Release.
//
// Build the payload by appending to B (after Grow, for a large payload),
// then call Seal once. B must not be changed after Seal.
type Frame struct {
	// B is the message payload. Append to it before Seal.
	B []byte

	raw  []byte // Headroom + payload backing B; after Seal, up to the payload's end
	refs atomic.Int32
	hs   int8 // header bytes in front of the payload once sealed; 0 before
}

// Buffer size classes, headroom included, at most a quarter apart (as the
// Go allocator's own), so a message wastes little of its buffer: frames
// are held in replay buffers for seconds, and a state of 270 bytes must
// not hold 1 KiB, nor a 20-byte PRESENCE 256 bytes. New starts a frame in
// the 256-byte class (room for any system message); Grow moves it to the
// smallest class that fits what it must hold, Seal to the smallest class
// that fits the payload, and Release returns it to the pool of its class.
// Small messages therefore never pin a large buffer, and a room's large
// state reuses large buffers. Payloads past the largest class are left to
// the garbage collector.
var classes = [...]int{
	64, 80, 96, 112, 128, 160, 192, 224,
	256, 320, 384, 448, 512, 640, 768, 896, 1 << 10,
	1280, 1536, 1792, 2 << 10, 2560, 3 << 10, 3584, 4 << 10,
	5 << 10, 6 << 10, 7 << 10, 8 << 10, 10 << 10, 12 << 10, 14 << 10, 16 << 10,
	20 << 10, 24 << 10, 28 << 10, 32 << 10, 40 << 10, 48 << 10, 56 << 10, 64<<10 + Headroom,
}

// pools[i] holds frames whose buffer has capacity classes[i].
var pools [len(classes)]sync.Pool

// startClass is the class New takes a buffer from.
const startClass = 8 // 256 bytes

func init() {
	for i := range pools {
		size := classes[i]
		pools[i].New = func() any { return &Frame{raw: make([]byte, Headroom, size)} }
	}
}

// classOf returns the index of the smallest class holding n bytes,
// headroom included, or -1 past the largest.
func classOf(n int) int {
	if i, _ := slices.BinarySearch(classes[:], n); i < len(classes) {
		return i
	}
	return -1
}

// New returns an empty frame holding one reference.
func New() *Frame {
	f := pools[startClass].Get().(*Frame)
	f.reset()
	return f
}

func (f *Frame) reset() {
	f.refs.Store(1)
	f.raw = f.raw[:Headroom]
	f.B = f.raw[Headroom:Headroom]
	f.hs = 0
}

// Grow makes room for n more payload bytes, so appending them to B does not
// allocate: the payload moves to a pooled buffer of a larger class if it
// must. Call it before appending a large body.
func (f *Frame) Grow(n int) {
	if cap(f.B)-len(f.B) >= n {
		return
	}
	f.moveTo(Headroom+len(f.B)+n, f.B)
}

// moveTo puts payload behind the headroom of a buffer of at least size
// bytes, pooled when a class fits: it trades buffers with a pooled frame
// of that class, which goes back to the pool of the buffer it received.
func (f *Frame) moveTo(size int, payload []byte) {
	k := classOf(size)
	if k < 0 {
		raw := append(make([]byte, Headroom, size), payload...)
		f.raw, f.B = raw, raw[Headroom:]
		return
	}
	g := pools[k].Get().(*Frame)
	raw := append(g.raw[:Headroom], payload...) // copy before the old buffer goes back
	old := f.raw
	f.raw, f.B = raw, raw[Headroom:]
	if i := classOf(cap(old)); i >= 0 && cap(old) == classes[i] {
		g.raw, g.B = old, nil
		pools[i].Put(g)
	}
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
	n := f.fit()
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
	f.hs = int8(hs)
	return f
}

// SealRaw finishes a frame whose bytes go on the wire as they are, with no
// WebSocket header: the text of an HTTP event stream (the fallback's). Like
// Seal, it must be called exactly once, and B must not change afterwards.
func (f *Frame) SealRaw() *Frame {
	f.fit()
	f.hs = rawHeader
	return f
}

// rawHeader marks a frame sealed by SealRaw: no header in front of B.
const rawHeader = -1

// fit moves B behind the headroom of the buffer class that fits it (see
// classes) and returns its length.
func (f *Frame) fit() int {
	n := len(f.B)
	switch {
	case n > 0 && (cap(f.raw) < Headroom+n || &f.raw[Headroom : Headroom+1][0] != &f.B[0]):
		// B outgrew its buffer and was reallocated by append: move it
		// behind the headroom of a pooled buffer that fits.
		f.moveTo(Headroom+n, f.B)
	case cap(f.raw) > classes[0]:
		// A payload much smaller than its buffer moves to the class that
		// fits it, since a sealed frame may be held for seconds.
		if k := classOf(Headroom + n); k >= 0 && classes[k] < cap(f.raw) {
			f.moveTo(classes[k], f.B)
		}
	}
	f.raw = f.raw[:Headroom+n]
	return n
}

// Sealed reports whether Seal (or SealRaw) was called.
func (f *Frame) Sealed() bool { return f.hs != 0 }

// header is the number of header bytes in front of the payload.
func (f *Frame) header() int { return max(int(f.hs), 0) }

// Wire returns the sealed frame bytes (header and payload).
func (f *Frame) Wire() []byte {
	if f.hs == 0 {
		return nil
	}
	return f.raw[Headroom-f.header():]
}

// Len is the number of bytes the frame occupies on the wire.
func (f *Frame) Len() int {
	if f.hs == 0 {
		return 0
	}
	return len(f.raw) - Headroom + f.header()
}

// Retain takes one more reference.
func (f *Frame) Retain() { f.refs.Add(1) }

// Release gives one reference back; the last one recycles the frame.
func (f *Frame) Release() {
	switch r := f.refs.Add(-1); {
	case r == 0:
		if i := classOf(cap(f.raw)); i >= 0 && cap(f.raw) == classes[i] {
			f.B = nil
			pools[i].Put(f)
		}
	case r < 0:
		panic("frame: Frame released more times than retained")
	}
}
