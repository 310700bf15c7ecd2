package gameserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/internal/cluster/redistest"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gobwas/ws"
)

// TestResumeOnOtherNodeGoesThroughHTTP checks the listener front's
// intercept: a resume naming, in its URL, a session that lives on another
// node must not be upgraded on the fast path (where this node would not
// know the session) but reach the /ws route, which tunnels it to the
// session's node from the event loop: the session works through it, and
// no reverse-proxy goroutine carries it.
func TestResumeOnOtherNodeGoesThroughHTTP(t *testing.T) {
	proxies := goroutinesIn("httputil.(*ReverseProxy)") // earlier tests' on their way out
	redis := redistest.StartServer(t)
	a := startNode(t, redis.URL(), "fa", gameserver.Config{})
	b := startNode(t, redis.URL(), "fb", gameserver.Config{})
	r := newResumer(t, a.addr, "")
	_ = r.conn.Close()

	// The session's node is recorded in the directory shortly after
	// WELCOME; until then node b cannot know where to send the resume.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		conn, _, _, err := ws.Dial(ctx, "ws://"+b.addr+"/ws?session="+r.sessionID)
		cancel()
		if err != nil {
			t.Fatalf("dial node b: %v", err)
		}
		r.client = &client{t: t, conn: conn}
		r.send(&protocol.Resume{SessionID: r.sessionID, ResumeToken: r.token})
		code := protocol.Code(0)
	read:
		for {
			tp, body, err := r.next(3 * time.Second)
			if err != nil {
				t.Fatalf("resume through node b: %v", err)
			}
			switch tp {
			case protocol.TypeResumed:
				r.send(&protocol.Ping{Nonce: 42})
				var pong protocol.Pong
				if err := pong.Decode(r.expect(protocol.TypePong)); err != nil || pong.Nonce != 42 {
					t.Fatalf("pong through node b: %+v, %v", pong, err)
				}
				if n := goroutinesIn("httputil.(*ReverseProxy)"); n > proxies {
					t.Fatalf("%d reverse-proxy goroutines for a tunnelled WebSocket (%d before)", n, proxies)
				}
				conn.Close()
				return
			case protocol.TypeError:
				var e protocol.ErrorMsg
				_ = e.Decode(body)
				code = e.Code
				break read
			}
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("resume through node b refused with %v: it did not reach node a", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
