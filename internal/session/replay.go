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
type replay struct {
	head, tail *replayChunk
	firstSeq   uint64 // sequence number of the oldest frame
	bytes      int32
	off        int32 // position of the oldest frame in head
	n          int32 // frames held
	sinceAsk   int32 // frames pushed since the last ack or ask
}

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

// push appends the frame with sequence number seq (always the previous
// seq + 1), dropping the oldest entries past the bounds lim. It reports
// whether to ask the client for an ack: when askStep frames were pushed
// since the last ack that released something, or since the last ask.
func (b *replay) push(seq uint64, f *frame.Frame, lim bounds) (ask bool) {
	if b.n >= lim.msgs {
		b.dropOldest()
	}
	if b.n == 0 {
		b.firstSeq = seq
	}
	i := (b.off + b.n) % chunkLen
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
	if b.sinceAsk >= lim.askStep() {
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
	b.firstSeq++
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

// ack forgets everything up to and including seq.
func (b *replay) ack(seq uint64) {
	if b.n > 0 && b.firstSeq <= seq {
		b.sinceAsk = 0
	}
	for b.n > 0 && b.firstSeq <= seq {
		b.dropOldest()
	}
}

// covers reports whether every message after lastSeq up to last is held.
func (b *replay) covers(lastSeq, last uint64) bool {
	if lastSeq == last {
		return true
	}
	return b.n > 0 && b.firstSeq <= lastSeq+1
}

// each calls fn for every held frame after lastSeq, in order.
func (b *replay) each(lastSeq uint64, fn func(seq uint64, f *frame.Frame)) {
	c, i := b.head, b.off
	for k := int32(0); k < b.n; k++ {
		if i == chunkLen {
			c, i = c.next, 0
		}
		if seq := b.firstSeq + uint64(k); seq > lastSeq {
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
