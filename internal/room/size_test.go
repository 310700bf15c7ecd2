package room

import (
	"testing"
	"unsafe"
)

// Every seated player has a player, so it is kept within the Go
// allocator's 80-byte size class: a few more bytes and every seat takes a
// 96-byte block instead.
func TestPlayerSize(t *testing.T) {
	const budget = 80
	if n := unsafe.Sizeof(player{}); n > budget {
		t.Fatalf("player is %d bytes, over its budget of %d (an allocator size class)", n, budget)
	}
}
