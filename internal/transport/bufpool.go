package transport

import "sync"

// Read buffers for partial frames and fragmented messages come from a few
// size classes so an idle connection holds none and a busy one reuses them.
var bufClasses = [...]int{256, 1 << 10, 4 << 10, 16 << 10, 64<<10 + 16}

var bufPools [len(bufClasses)]sync.Pool

// getBuf returns a zero-length buffer with capacity of at least n.
func getBuf(n int) []byte {
	for i, size := range bufClasses {
		if n <= size {
			if p, ok := bufPools[i].Get().(*[]byte); ok {
				return (*p)[:0]
			}
			return make([]byte, 0, size)
		}
	}
	return make([]byte, 0, n)
}

// putBuf returns a buffer obtained from getBuf.
func putBuf(b []byte) {
	c := cap(b)
	for i, size := range bufClasses {
		if c == size {
			b = b[:0]
			bufPools[i].Put(&b)
			return
		}
	}
}
