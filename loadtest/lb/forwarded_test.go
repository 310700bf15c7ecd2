package main

import (
	"bufio"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gameserver/gameserver"
)

// upgradeFrom dials addr from the loopback source address src and sends a
// WebSocket upgrade; it returns the response status.
func upgradeFrom(t *testing.T, src, addr string) int {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 3 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Through the balancer (a real reverse proxy, which appends the client to
// X-Forwarded-For), a node that trusts it counts connections per player
// address; a node that does not counts every player as the balancer.
func TestPerIPLimitBehindBalancer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		want    []int
	}{
		{"trusted", []string{"127.0.0.1"}, []int{101, 101, 429}},
		{"not trusted", nil, []int{101, 429, 429}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node, err := gameserver.New(gameserver.Config{Addr: "127.0.0.1:0", MaxConnsPerIP: 1, TrustedProxies: tc.trusted})
			if err != nil {
				t.Fatal(err)
			}
			if err := node.Listen(); err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- node.ListenAndServe() }()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = node.Shutdown(ctx)
				<-served
			})
			lb := newBalancer([]string{node.Addr().String()}, log.New(io.Discard, "", 0))
			lb.backends[0].healthy.Store(true)
			front := httptest.NewServer(lb)
			defer front.Close()
			addr := strings.TrimPrefix(front.URL, "http://")
			var got []int
			for _, src := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.2"} {
				got = append(got, upgradeFrom(t, src, addr))
			}
			for i := range tc.want {
				if got[i] != tc.want[i] {
					t.Fatalf("statuses from 127.0.0.2, .3, .2: %v, want %v", got, tc.want)
				}
			}
		})
	}
}
