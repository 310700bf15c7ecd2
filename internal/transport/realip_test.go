package transport

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies([]string{" 10.0.0.0/8", "192.168.1.7", "", "fd00::/8", "::1", "::ffff:172.16.0.0/108", "10.1.2.3/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "::1/128", "172.16.0.0/12", "10.0.0.0/8"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d: %v, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "nope", "10.0.0", "fe80::1%eth0", "10.0.0.1:80", "*", "10.0.0.0/8/8"} {
		if _, err := ParseTrustedProxies([]string{bad}); err == nil || !strings.Contains(err.Error(), "trusted proxy") {
			t.Errorf("%q: error %v, want a trusted proxy error", bad, err)
		}
	}
	if _, err := New(Config{TrustedProxies: []string{"nope"}}, newEcho()); err == nil {
		t.Error("New took a malformed trusted proxy")
	}
}

func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	proxy := netip.MustParseAddrPort("10.0.0.5:40000")
	stranger := netip.MustParseAddrPort("198.51.100.9:5000")
	many := strings.Repeat("10.9.9.9, ", maxForwardHops+3) + "10.9.9.9"
	for _, tc := range []struct {
		name string
		peer netip.AddrPort
		xff  []string
		want string
	}{
		{"untrusted peer: the header is ignored", stranger, []string{"203.0.113.7"}, "198.51.100.9:5000"},
		{"trusted peer without header", proxy, nil, "10.0.0.5:40000"},
		{"trusted peer, empty header", proxy, []string{""}, "10.0.0.5:40000"},
		{"one hop", proxy, []string{"203.0.113.7"}, "203.0.113.7:0"},
		{"spaces and tabs", proxy, []string{" \t203.0.113.7 \t"}, "203.0.113.7:0"},
		{"spoofed entries left of the client", proxy, []string{"1.1.1.1, 2.2.2.2, 203.0.113.7"}, "203.0.113.7:0"},
		{"a chain of trusted proxies", proxy, []string{"203.0.113.7, 10.1.1.1, 10.2.2.2"}, "203.0.113.7:0"},
		{"several header lines, in order", proxy, []string{"9.9.9.9, 203.0.113.7", "10.1.1.1"}, "203.0.113.7:0"},
		{"every entry trusted: the leftmost", proxy, []string{"10.3.3.3, 10.4.4.4"}, "10.3.3.3:0"},
		{"IPv6 client", proxy, []string{"2001:db8::1"}, "[2001:db8::1]:0"},
		{"IPv6 proxy", netip.MustParseAddrPort("[fd00::2]:9000"), []string{"203.0.113.7"}, "203.0.113.7:0"},
		{"IPv4-mapped peer and entry", netip.MustParseAddrPort("[::ffff:10.0.0.5]:1"), []string{"::ffff:203.0.113.7"}, "203.0.113.7:0"},
		{"entry with a port", proxy, []string{"203.0.113.7:4711"}, "203.0.113.7:0"},
		{"bracketed IPv6 with a port", proxy, []string{"[2001:db8::1]:4711"}, "[2001:db8::1]:0"},
		{"malformed entry: the proxy that passed it", proxy, []string{"203.0.113.7, garbage"}, "10.0.0.5:0"},
		{"malformed entry behind a trusted hop", proxy, []string{"garbage, 10.1.1.1"}, "10.1.1.1:0"},
		{"empty entry in the middle", proxy, []string{"203.0.113.7, , 10.1.1.1"}, "10.1.1.1:0"},
		{"trailing comma", proxy, []string{"203.0.113.7,"}, "10.0.0.5:0"},
		{"zone", proxy, []string{"fe80::1%eth0"}, "10.0.0.5:0"},
		{"an unknown token", proxy, []string{"unknown"}, "10.0.0.5:0"},
		{"too many trusted hops", proxy, []string{"203.0.113.7, " + many}, "10.9.9.9:0"},
		{"a huge header", proxy, []string{strings.Repeat("x", 16<<10)}, "10.0.0.5:0"},
	} {
		if got := clientAddr(trusted, tc.peer, tc.xff); got.String() != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, got, tc.want)
		}
	}
	if got := clientAddr(nil, proxy, []string{"203.0.113.7"}); got != proxy {
		t.Errorf("no trusted proxies: %v, want the peer", got)
	}
}

// Behind a trusted proxy (the test's loopback client), connections are
// counted per forwarded client, through the Front's own parser and
// through net/http (two header lines); a peer that is not trusted is
// counted as itself whatever it claims.
func TestPerIPLimitCountsForwardedClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		header  func(client string) []string
		viaMux  int  // upgrades that reach net/http
		perPeer bool // every upgrade counts against the peer
	}{
		{"front", []string{"127.0.0.0/8"}, func(c string) []string { return []string{"X-Forwarded-For: " + c} }, 0, false},
		{"net/http", []string{"127.0.0.1"}, func(c string) []string {
			return []string{"X-Forwarded-For: 1.1.1.1", "X-Forwarded-For: " + c}
		}, 3, false},
		{"untrusted", []string{"10.0.0.0/8"}, func(c string) []string { return []string{"X-Forwarded-For: " + c} }, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startFront(t, Config{MaxConnsPerIP: 1, TrustedProxies: tc.trusted}, newEcho(), nil)
			var got []int
			for _, client := range []string{"203.0.113.7", "203.0.113.8", "203.0.113.7"} {
				got = append(got, e.roundTrip(t, upgradeRequest("/ws", e.addr, tc.header(client)...)).StatusCode)
			}
			want := []int{http.StatusSwitchingProtocols, http.StatusSwitchingProtocols, http.StatusTooManyRequests}
			if tc.perPeer {
				want[1] = http.StatusTooManyRequests
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("statuses %v, want %v", got, want)
			}
			if n := len(e.muxCalls()); n != tc.viaMux {
				t.Fatalf("%d upgrades went through net/http, want %d", n, tc.viaMux)
			}
		})
	}
}

// The fallback's admission rate counts the forwarded client too.
func TestAdmitFallbackCountsForwardedClient(t *testing.T) {
	s, err := New(Config{HandshakeRate: 1, HandshakeBurst: 1, TrustedProxies: []string{"10.0.0.0/8"}}, newEcho())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(t.Context(), uint16(CloseGoingAway), "test over") })
	req := func(peer, xff string) int {
		r := httptest.NewRequest(http.MethodPost, "/sse", nil)
		r.RemoteAddr = peer
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		code, _ := s.AdmitFallback(r, 0)
		return code
	}
	if got := req("10.0.0.5:1000", "203.0.113.7"); got != 0 {
		t.Fatalf("first client: %d", got)
	}
	if got := req("10.0.0.5:1001", "203.0.113.8"); got != 0 {
		t.Fatalf("second client through the same proxy: %d", got)
	}
	if got := req("10.0.0.6:1002", "203.0.113.7"); got != http.StatusTooManyRequests {
		t.Fatalf("first client again, through another proxy: %d, want 429", got)
	}
	if got := req("198.51.100.9:1", "203.0.113.9"); got != 0 {
		t.Fatalf("an untrusted peer: %d", got)
	}
	if got := req("198.51.100.9:2", "203.0.113.10"); got != http.StatusTooManyRequests {
		t.Fatalf("an untrusted peer claiming another client: %d, want 429", got)
	}
}

// FuzzClientAddr checks that a hostile X-Forwarded-For never panics and
// never names a client the header does not hold: the result is the peer
// (always, when the peer is not trusted), or an address written in the
// header, and anything but the peer is trusted only if every entry to
// its right is.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{
		"203.0.113.7", "1.1.1.1, 203.0.113.7, 10.1.1.1", "garbage, 10.1.1.1", "203.0.113.7,", " , ",
		"[2001:db8::1]:4711", "::ffff:203.0.113.7", "fe80::1%eth0", "10.0.0.1, 10.0.0.2, 10.0.0.3", "unknown",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "fd00::/8"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, xff string, fromProxy bool) {
		peer := netip.MustParseAddrPort("198.51.100.9:5000")
		if fromProxy {
			peer = netip.MustParseAddrPort("10.0.0.5:40000")
		}
		got := clientAddr(trusted, peer, []string{xff})
		if got == peer {
			return
		}
		if !fromProxy {
			t.Fatalf("an untrusted peer became %v", got)
		}
		if got.Port() != 0 || !got.Addr().IsValid() || got.Addr().Is4In6() || got.Addr().Zone() != "" {
			t.Fatalf("client %v: want an unmapped address without port or zone", got)
		}
		// The result is one of the entries, and every entry to its right
		// is a trusted proxy.
		entries := strings.Split(xff, ",")
		for i := len(entries) - 1; i >= 0; i-- {
			a, ok := forwardedAddr(strings.Trim(entries[i], " \t"))
			if !ok {
				break
			}
			if a == got.Addr() {
				return
			}
			if !isTrusted(trusted, a) {
				break
			}
		}
		if got.Addr() == peer.Addr() {
			return // a malformed header: the proxy that passed it on
		}
		t.Fatalf("client %v is not an entry reached through trusted proxies in %q", got, xff)
	})
}
