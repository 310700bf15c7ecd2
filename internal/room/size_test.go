package room

import (
	"testing"
	"unsafe"
)

// Every seated player has a player, so it is kept within the Go
// allocator's 64-byte size class: a held seat's deadline lives in its
// heldMember, not here.
func TestPlayerSize(t *testing.T) {
	const budget = 64
	if n := unsafe.Sizeof(player{}); n > budget {
		t.Fatalf("player is %d bytes, over its budget of %d (an allocator size class)", n, budget)
	}
}
