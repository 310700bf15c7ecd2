package session

import (
	"testing"
	"time"

	"github.com/gameserver/gameserver/internal/protocol"
)

// BenchmarkSweep19k is one sweep of 19,000 active sessions none of which
// is due: what the sweeper costs an idle node once a second.
func BenchmarkSweep19k(b *testing.B) {
	h, err := NewHub(Config{PingInterval: time.Hour, PingTimeout: time.Hour}, &countingRouter{})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Stop()
	hello := (&protocol.Hello{Version: protocol.Version}).Append(nil)
	active := time.Now()
	for range 19000 {
		c := &activeConn{at: active}
		h.Message(h.Open(c), c, hello)
	}
	var batch []*Session
	b.ResetTimer()
	for b.Loop() {
		h.mu.Lock()
		batch = h.appendAllLocked(batch[:0])
		h.mu.Unlock()
		h.sweepSessions(time.Now().UnixNano(), batch)
	}
	if len(batch) != 19000 {
		b.Fatalf("swept %d sessions, want 19000", len(batch))
	}
}

// activeConn is a fakeConn whose peer was last heard at a fixed time, as
// a transport connection's is between frames: reading it costs a load.
type activeConn struct {
	fakeConn
	at time.Time
}

func (c *activeConn) LastActive() time.Time { return c.at }
