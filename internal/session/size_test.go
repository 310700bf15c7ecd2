package session

import (
	"testing"
	"unsafe"
)

// Every connected player has a Session, so it is kept within the Go
// allocator's 224-byte size class: a few more bytes and every session
// takes a 240-byte block instead. What few sessions use lives behind
// Session.cold.
func TestSessionSize(t *testing.T) {
	const budget = 176
	if n := unsafe.Sizeof(Session{}); n > budget {
		t.Fatalf("Session is %d bytes, over its budget of %d (an allocator size class)", n, budget)
	}
}
