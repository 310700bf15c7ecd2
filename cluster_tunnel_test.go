package gameserver_test

import (
	"bytes"
	"context"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/internal/cluster/redistest"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gobwas/ws"
)

// proxyGoroutines counts goroutines of net/http's reverse proxy.
func proxyGoroutines() (n int) {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(g, "httputil.(*ReverseProxy)") {
			n++
		}
	}
	return n
}

// A client whose session lives on another node than the one it reached
// is tunnelled there from the event loop, over WebSocket (a resume) and
// over the fallback's event stream: the session works as on its own
// node, and no reverse-proxy goroutine carries the connection.
func TestClusterTunnelsToTheSessionsNode(t *testing.T) {
	redis := redistest.StartServer(t)
	a := startNode(t, redis.URL(), "node-a", gameserver.Config{})
	b := startNode(t, redis.URL(), "node-b", gameserver.Config{})

	// WebSocket: a session on A, resumed through B.
	first := dial(t, a.addr)
	first.send(&protocol.Hello{Version: protocol.Version})
	var w protocol.Welcome
	if err := w.Decode(first.expect(protocol.TypeWelcome)); err != nil {
		t.Fatal(err)
	}
	_ = first.conn.Close()
	var c *client
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Until A has recorded the session and detached it, B may answer
		// the resume itself (and refuse it): try again.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		conn, _, _, err := ws.Dial(ctx, "ws://"+b.addr+"/ws?session="+w.SessionID)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		c = &client{t: t, conn: conn}
		c.send(&protocol.Resume{SessionID: w.SessionID, ResumeToken: w.ResumeToken})
		tp, _, err := c.next(3 * time.Second)
		if err == nil && tp == protocol.TypeResumed {
			break
		}
		_ = conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no RESUMED through B: %v %v", tp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() { c.conn.Close() })
	c.send(&protocol.Ping{Nonce: 42})
	var pong protocol.Pong
	if err := pong.Decode(c.expect(protocol.TypePong)); err != nil || pong.Nonce != 42 {
		t.Fatalf("pong %+v, %v", pong, err)
	}
	if n := proxyGoroutines(); n != 0 {
		t.Fatalf("%d reverse-proxy goroutines for a tunnelled WebSocket", n)
	}

	// The fallback: a session opened on A, its stream through B.
	sc, r, code := sseOpen(t, "http://"+a.addr, &protocol.Hello{Version: 1})
	if code != 200 {
		t.Fatalf("open on A: %d %+v", code, r)
	}
	// The open's answer comes once the session's place is recorded: the
	// stream finds it through B at the first try.
	sc.base = "http://" + b.addr
	if code := sc.connect(""); code != 200 {
		t.Fatalf("stream through B right after the open: %d", code)
	}
	sc.post(&protocol.Ping{Nonce: 7}) // through B's reverse proxy: a short request
	for {
		ev := sc.next()
		if ev.ended {
			t.Fatal("stream ended")
		}
		if ev.typ == protocol.TypePong {
			break
		}
	}
	deadline = time.Now().Add(5 * time.Second)
	for proxyGoroutines() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d reverse-proxy goroutines with the stream tunnelled", proxyGoroutines())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
