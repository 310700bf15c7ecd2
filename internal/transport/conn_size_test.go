package transport

import (
	"net/netip"
	"testing"
	"unsafe"
)

// An idle connection costs little more than its Conn, so Conn is kept
// within the Go allocator's 160-byte size class: a few more bytes and
// every connection takes a 176-byte block (or larger) instead.
func TestConnSize(t *testing.T) {
	const budget = 160
	if n := unsafe.Sizeof(Conn{}); n > budget {
		t.Fatalf("Conn is %d bytes, over its budget of %d (an allocator size class)", n, budget)
	}
}

// The peer's address survives its compact form; an IPv4-mapped one reads
// back as plain IPv4, as the per-IP limits count it.
func TestRemoteAddrRoundTrip(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.3.4:5":           "1.2.3.4:5",
		"[2001:db8::1]:443":   "[2001:db8::1]:443",
		"[::ffff:1.2.3.4]:80": "1.2.3.4:80",
		"[::1]:65535":         "[::1]:65535",
	} {
		var c Conn
		c.setRemote(netip.MustParseAddrPort(in))
		if got := c.RemoteAddr().String(); got != want {
			t.Errorf("%s: read back %s, want %s", in, got, want)
		}
	}
}
