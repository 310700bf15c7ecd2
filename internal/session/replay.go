package session

import (
	"math"
	"sync"

	"github.com/gameserver/gameserver/internal/frame"
)

// replay is a session's bounded buffer of the sequenced messages it sent and
// the client has not acknowledged: shared frames (a broadcast frame is
// held, not copied), bounded by count and bytes. The frames sit in a chain
// of fixed-size chunks taken from a pool as it grows and given back as acks
// empty them, so a quiet session holds nothing and a burst of messages
// leaves no outgrown arrays behind for the collector.
//
// The frames held are the last n the session sent, so their sequence
// numbers are known from its outSeq (the methods' last): the buffer keeps
// none of its own.
type replay struct {
	head, tail *replayChunk
	bytes      int32
	n          int32  // frames held: sequence numbers last-n+1 to last
	off        uint16 // position of the oldest frame in head (< chunkLen)
	sinceAsk   uint16 // frames pushed since the last ack or ask (≤ askEvery)
}

// first is the sequence number of the oldest frame held, last that of the
// newest (the session's outSeq); last+1 when none is held.
func (b *replay) first(last uint64) uint64 { return last - uint64(b.n) + 1 }

// bounds are a replay buffer's limits: the hub's, or a moved session's
// own (see Session.bounds).
type bounds struct{ msgs, bytes int32 }

// askEvery is how many frames pushed since the last ack or ask make the
// session ask the client for an ack (a PING); half the count bound when
// that is fewer.
const askEvery = 32

// maxReplayBytes caps the byte bound, so the count of bytes held (the
// bound plus one frame) fits an int32.
const maxReplayBytes = 1 << 30

// newBounds returns the bounds for msgs messages and bytes bytes; a byte
// bound past 1 GiB holds at that.
func newBounds(msgs, bytes int) bounds {
	return bounds{msgs: int32(min(max(msgs, 1), math.MaxInt32)), bytes: int32(min(max(bytes, 1), maxReplayBytes))}
}

func (l bounds) askStep() int32 { return max(min(askEvery, l.msgs/2), 1) }

// chunkLen frames per chunk: 136 bytes, the allocator's 144-byte class.
const chunkLen = 16

type replayChunk struct {
	frames [chunkLen]*frame.Frame
	next   *replayChunk
}

var replayChunks = sync.Pool{New: func() any { return new(replayChunk) }}

// push appends the frame with the next sequence number (the session's
// outSeq, just advanced), dropping the oldest entries past the bounds lim.
// It reports whether to ask the client for an ack: when askStep frames
// were pushed since the last ack that released something, or since the
// last ask.
func (b *replay) push(f *frame.Frame, lim bounds) (ask bool) {
	if b.n >= lim.msgs {
		b.dropOldest()
	}
	i := (int32(b.off) + b.n) % chunkLen
	switch {
	case b.tail == nil:
		b.head = replayChunks.Get().(*replayChunk)
		b.tail, b.off, i = b.head, 0, 0
	case i == 0: // the tail chunk is full
		c := replayChunks.Get().(*replayChunk)
		b.tail.next, b.tail = c, c
	}
	f.Retain()
	b.tail.frames[i] = f
	b.n++
	b.bytes += int32(f.Len())
	for b.bytes > lim.bytes && b.n > 1 {
		b.dropOldest()
	}
	b.sinceAsk++
	if int32(b.sinceAsk) >= lim.askStep() {
		b.sinceAsk = 0
		return true
	}
	return false
}

// dropOldest releases the oldest frame, and its chunk once that is empty.
func (b *replay) dropOldest() {
	f := b.head.frames[b.off]
	b.head.frames[b.off] = nil
	b.bytes -= int32(f.Len())
	f.Release()
	b.off++
	b.n--
	switch {
	case b.n == 0:
		// Everything is acknowledged: a quiet session holds no chunk.
		replayChunks.Put(b.head)
		b.head, b.tail, b.off = nil, nil, 0
	case b.off == chunkLen:
		c := b.head
		b.head, b.off = c.next, 0
		c.next = nil
		replayChunks.Put(c)
	}
}

// ack forgets everything up to and including seq; last is the newest
// sequence number sent.
func (b *replay) ack(seq, last uint64) {
	first := b.first(last)
	if b.n > 0 && first <= seq {
		b.sinceAsk = 0
	}
	for ; b.n > 0 && first <= seq; first++ {
		b.dropOldest()
	}
}

// covers reports whether every message after lastSeq up to last is held.
func (b *replay) covers(lastSeq, last uint64) bool {
	if lastSeq == last {
		return true
	}
	return b.n > 0 && b.first(last) <= lastSeq+1
}

// each calls fn for every held frame after lastSeq, in order; last is the
// newest sequence number sent.
func (b *replay) each(lastSeq, last uint64, fn func(seq uint64, f *frame.Frame)) {
	c, i, first := b.head, int(b.off), b.first(last)
	for k := int32(0); k < b.n; k++ {
		if i == chunkLen {
			c, i = c.next, 0
		}
		if seq := first + uint64(k); seq > lastSeq {
			fn(seq, c.frames[i])
		}
		i++
	}
}

// reset releases every frame.
func (b *replay) reset() {
	for b.n > 0 {
		b.dropOldest()
	}
	b.bytes = 0
	b.sinceAsk = 0
}
