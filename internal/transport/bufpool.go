package transport

import "sync"

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
