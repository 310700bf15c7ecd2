package transport

import (
	"testing"
	"unsafe"
)

// An idle connection costs little more than its Conn, so Conn is kept
// within the Go allocator's 192-byte size class: a few more bytes and
// every connection takes a 208-byte block (or larger) instead.
func TestConnSize(t *testing.T) {
	const budget = 192
	if n := unsafe.Sizeof(Conn{}); n > budget {
		t.Fatalf("Conn is %d bytes, over its budget of %d (an allocator size class)", n, budget)
	}
}
