package session

import (
	"sync"
	"testing"
	"time"

	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gameserver/gameserver/internal/protocol"
)

// fakeConn records what a session sends it.
type fakeConn struct {
	mu     sync.Mutex
	msgs   [][]byte
	closed uint16
	data   any
}

func (c *fakeConn) Send(f *frame.Frame, _ uint64) error {
	c.mu.Lock()
	c.msgs = append(c.msgs, append([]byte(nil), f.B...))
	c.mu.Unlock()
	return nil
}
func (c *fakeConn) SendNow(f *frame.Frame) error { return c.Send(f, 0) }
func (c *fakeConn) Flush()                       {}
func (c *fakeConn) Close(code uint16, _ string) {
	c.mu.Lock()
	c.closed = code
	c.mu.Unlock()
}
func (c *fakeConn) LastActive() time.Time { return time.Now() }
func (c *fakeConn) SetData(v any)         { c.data = v }

// find returns the body of the first message of type t.
func (c *fakeConn) find(t *testing.T, want protocol.MsgType) []byte {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if tp, body, err := protocol.Split(m); err == nil && tp == want {
			return body
		}
	}
	t.Fatalf("no %v among %d messages", want, len(c.msgs))
	return nil
}

// countingRouter counts the game messages routed to it.
type countingRouter struct {
	mu     sync.Mutex
	routed int
}

func (r *countingRouter) Route(*Session, protocol.MsgType, []byte) error {
	r.mu.Lock()
	r.routed++
	r.mu.Unlock()
	return nil
}
func (r *countingRouter) Started(*Session)                        {}
func (r *countingRouter) Detached(*Session) (time.Duration, bool) { return 0, false }
func (r *countingRouter) Resumed(*Session)                        {}
func (r *countingRouter) Closed(*Session)                         {}
func (r *countingRouter) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.routed
}

// A message that reaches the session from its old connection after a
// resume moved it to a new one is dropped and not counted: RESUMED's
// clientSeq already told the client to send it again on the new one, so
// counting it would apply it twice.
func TestMessageFromLeftConnectionDropped(t *testing.T) {
	router := &countingRouter{}
	h, err := NewHub(Config{}, router)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	game := (&protocol.ArenaInput{Seq: 1, DX: 1}).Append(nil)

	oldConn := &fakeConn{}
	s := h.Open(oldConn)
	h.Message(s, oldConn, (&protocol.Hello{Version: protocol.Version}).Append(nil))
	var w protocol.Welcome
	if err := w.Decode(oldConn.find(t, protocol.TypeWelcome)); err != nil {
		t.Fatal(err)
	}
	h.Message(s, oldConn, game) // counted: clientSeq 1
	if router.count() != 1 {
		t.Fatalf("routed %d, want 1", router.count())
	}

	// The client reconnects while the old connection is still attached
	// (the server has not seen it drop yet) and resumes.
	newConn := &fakeConn{}
	p := h.Open(newConn)
	h.Message(p, newConn, (&protocol.Resume{SessionID: w.SessionID, ResumeToken: w.ResumeToken}).Append(nil))
	var r protocol.Resumed
	if err := r.Decode(newConn.find(t, protocol.TypeResumed)); err != nil {
		t.Fatal(err)
	}
	if r.ClientSeq != 1 {
		t.Fatalf("clientSeq %d, want 1", r.ClientSeq)
	}
	if oldConn.closed == 0 {
		t.Fatal("the old connection was not closed")
	}

	// A message the old connection had already read arrives now: dropped.
	h.Message(s, oldConn, game)
	if router.count() != 1 || s.inSeq.Load() != 1 {
		t.Fatalf("a message from the left connection was handled: routed %d, clientSeq %d", router.count(), s.inSeq.Load())
	}
	// The client sends it again on the new connection: handled once.
	h.Message(s, newConn, game)
	if router.count() != 2 || s.inSeq.Load() != 2 {
		t.Fatalf("routed %d, clientSeq %d, want 2 and 2", router.count(), s.inSeq.Load())
	}
}
