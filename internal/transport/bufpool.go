package transport

import (
	"sync"

	"github.com/gameserver/gameserver/internal/frame"
)

// Read buffers for partial frames and fragmented messages come from a few
// size classes so an idle connection holds none and a busy one reuses them.
// A buffer travels as a *[]byte, the same box into the pool and out again,
// so returning one does not allocate, and a holder keeps one word, not a
// slice header.
var bufClasses = [...]int{256, 1 << 10, 4 << 10, 16 << 10, 64<<10 + 16}

var bufPools [len(bufClasses)]sync.Pool

// getBuf returns a buffer of length zero and capacity at least n. Past the
// largest class it is a new one that putBuf will not keep.
func getBuf(n int) *[]byte {
	for i, size := range bufClasses {
		if n <= size {
			if p, ok := bufPools[i].Get().(*[]byte); ok {
				*p = (*p)[:0]
				return p
			}
			b := make([]byte, 0, size)
			return &b
		}
	}
	b := make([]byte, 0, n)
	return &b
}

// putBuf returns a buffer obtained from getBuf, box and all; the caller
// must not use p afterwards.
func putBuf(p *[]byte) {
	c := cap(*p)
	for i, size := range bufClasses {
		if c == size {
			*p = (*p)[:0]
			bufPools[i].Put(p)
			return
		}
	}
}

// A connection's outbound queue outgrows its inline array of three frames
// when a burst (a join's roster, history and presences, or a slow reader)
// queues more between flushes. The larger arrays come from these pools and
// go back when the queue empties, so bursts leave no garbage and an idle
// connection holds none. Past the largest class the array is the
// collector's.
var (
	outQueues16  = sync.Pool{New: func() any { return new([16]*frame.Frame) }}
	outQueues64  = sync.Pool{New: func() any { return new([64]*frame.Frame) }}
	outQueues256 = sync.Pool{New: func() any { return new([256]*frame.Frame) }}
)

// getOutQueue returns an empty queue array of capacity at least n.
func getOutQueue(n int) []*frame.Frame {
	switch {
	case n <= 16:
		return outQueues16.Get().(*[16]*frame.Frame)[:0]
	case n <= 64:
		return outQueues64.Get().(*[64]*frame.Frame)[:0]
	case n <= 256:
		return outQueues256.Get().(*[256]*frame.Frame)[:0]
	}
	return make([]*frame.Frame, 0, n)
}

// putOutQueue gives back an array from getOutQueue; its elements must be
// nil. Others (the inline array, one past the classes) are ignored.
func putOutQueue(q []*frame.Frame) {
	switch cap(q) {
	case 16:
		outQueues16.Put((*[16]*frame.Frame)(q[:16]))
	case 64:
		outQueues64.Put((*[64]*frame.Frame)(q[:64]))
	case 256:
		outQueues256.Put((*[256]*frame.Frame)(q[:256]))
	}
}
