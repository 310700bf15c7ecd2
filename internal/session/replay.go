package session

import "github.com/gameserver/gameserver/internal/frame"

// replay is a session's bounded buffer of the sequenced messages it sent and
// the client has not acknowledged: a ring of shared frames (a broadcast
// frame is held, not copied), bounded by count and bytes. It grows on
// demand, so a quiet session holds nothing.
type replay struct {
	frames   []*frame.Frame
	head, n  int
	firstSeq uint64 // sequence number of frames[head]
	bytes    int
	maxMsgs  int
	maxBytes int
}

// push appends the frame with sequence number seq (always the previous
// seq + 1), dropping the oldest entries past the bounds.
func (b *replay) push(seq uint64, f *frame.Frame) {
	if b.n == 0 {
		b.firstSeq = seq
	}
	if b.n == len(b.frames) {
		if len(b.frames) < b.maxMsgs {
			b.grow()
		} else {
			b.dropOldest()
		}
	}
	f.Retain()
	b.frames[(b.head+b.n)%len(b.frames)] = f
	b.n++
	b.bytes += f.Len()
	for b.bytes > b.maxBytes && b.n > 1 {
		b.dropOldest()
	}
}

func (b *replay) grow() {
	size := max(8, 2*len(b.frames))
	size = min(size, b.maxMsgs)
	nf := make([]*frame.Frame, size)
	for i := 0; i < b.n; i++ {
		nf[i] = b.frames[(b.head+i)%len(b.frames)]
	}
	b.frames, b.head = nf, 0
}

func (b *replay) dropOldest() {
	f := b.frames[b.head]
	b.frames[b.head] = nil
	b.bytes -= f.Len()
	f.Release()
	b.head = (b.head + 1) % len(b.frames)
	b.n--
	b.firstSeq++
}

// ack forgets everything up to and including seq.
func (b *replay) ack(seq uint64) {
	for b.n > 0 && b.firstSeq <= seq {
		b.dropOldest()
	}
	if b.n == 0 {
		// Everything is acknowledged: a quiet session holds no ring. A
		// session that keeps receiving rarely gets here (acks trail
		// sends), so the ring is not rebuilt at its message rate.
		b.frames, b.head = nil, 0
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
	for i := 0; i < b.n; i++ {
		if seq := b.firstSeq + uint64(i); seq > lastSeq {
			fn(seq, b.frames[(b.head+i)%len(b.frames)])
		}
	}
}

// reset releases every frame.
func (b *replay) reset() {
	for b.n > 0 {
		b.dropOldest()
	}
	b.frames, b.head, b.bytes = nil, 0, 0
}
