package gameserver_test

import (
	"testing"
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/internal/cluster/redistest"
	"github.com/gameserver/gameserver/internal/protocol"
)

// A fallback client whose session lives on another node than the one its
// stream reached is tunnelled there from the event loop: the session works
// as on its own node, and no reverse-proxy goroutine carries the stream.
// (TestResumeOnOtherNodeGoesThroughHTTP does the same for a WebSocket.)
func TestFallbackStreamOnOtherNodeIsTunnelled(t *testing.T) {
	proxies := goroutinesIn("httputil.(*ReverseProxy)") // earlier tests' on their way out
	redis := redistest.StartServer(t)
	a := startNode(t, redis.URL(), "node-a", gameserver.Config{})
	b := startNode(t, redis.URL(), "node-b", gameserver.Config{})

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
	deadline := time.Now().Add(5 * time.Second)
	for goroutinesIn("httputil.(*ReverseProxy)") > proxies {
		if time.Now().After(deadline) {
			t.Fatalf("%d reverse-proxy goroutines with the stream tunnelled (%d before)", goroutinesIn("httputil.(*ReverseProxy)"), proxies)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
