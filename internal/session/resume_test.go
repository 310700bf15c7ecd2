package session

import (
	"math"
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

// pings counts the PINGs c was sent and decodes the last.
func (c *fakeConn) pings(t *testing.T) (n int, last protocol.Ping) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if tp, body, err := protocol.Split(m); err == nil && tp == protocol.TypePing {
			n++
			if err := last.Decode(body); err != nil {
				t.Fatal(err)
			}
		}
	}
	return n, last
}

// sendErrors sends s k sequenced messages.
func sendErrors(t *testing.T, s *Session, k int) {
	t.Helper()
	for i := 0; i < k; i++ {
		if err := s.SendMessage(&protocol.ErrorMsg{Code: protocol.CodeRoomNotFound}); err != nil {
			t.Fatal(err)
		}
	}
}

// heldFrames is how many messages s holds for replay.
func heldFrames(s *Session) int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.n
}

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
	h := testHub(t, Config{}, router)
	game := (&protocol.ArenaInput{Seq: 1, DX: 1}).Append(nil)

	s, oldConn, w := welcomed(t, h)
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

// routedTypes records the types of the messages routed, in order.
type routedTypes struct {
	countingRouter
	types []protocol.MsgType
}

func (r *routedTypes) Route(s *Session, t protocol.MsgType, b []byte) error {
	r.mu.Lock()
	r.types = append(r.types, t)
	r.mu.Unlock()
	return r.countingRouter.Route(s, t, b)
}

// testHub starts a hub that stops when the test ends.
func testHub(t *testing.T, cfg Config, router Router) *Hub {
	t.Helper()
	h, err := NewHub(cfg, router)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return h
}

// welcomed opens a session on a new fake connection and says HELLO.
func welcomed(t *testing.T, h *Hub) (*Session, *fakeConn, protocol.Welcome) {
	t.Helper()
	c := &fakeConn{}
	s := h.Open(c)
	h.Message(s, c, (&protocol.Hello{Version: protocol.Version}).Append(nil))
	var w protocol.Welcome
	if err := w.Decode(c.find(t, protocol.TypeWelcome)); err != nil {
		t.Fatal(err)
	}
	return s, c, w
}

// What a client sends while its session is frozen for a move is held,
// not counted: a move that does not happen (Thaw) hands it on in order; a
// move that does (Retire) drops it, for the client to send again after its
// resume. Heartbeats are not held.
func TestFrozenMessagesHeld(t *testing.T) {
	router := &routedTypes{}
	h := testHub(t, Config{}, router)
	s, c, _ := welcomed(t, h)
	h.Message(s, c, protocol.AppendType(nil, 0x1000)) // before: counted at once
	s.Freeze()
	for _, tp := range []protocol.MsgType{0x1001, 0x1002, 0x1003} {
		h.Message(s, c, append(protocol.AppendType(nil, tp), 0xc0))
	}
	h.Message(s, c, (&protocol.Ping{Nonce: 7}).Append(nil))
	if router.count() != 1 || s.inSeq.Load() != 1 {
		t.Fatalf("while frozen: routed %d, clientSeq %d; want 1 and 1", router.count(), s.inSeq.Load())
	}
	s.Thaw()
	want := []protocol.MsgType{0x1000, 0x1001, 0x1002, 0x1003}
	if router.count() != 4 || s.inSeq.Load() != 4 || len(router.types) != 4 {
		t.Fatalf("after Thaw: routed %v, clientSeq %d; want %v", router.types, s.inSeq.Load(), want)
	}
	for i := range want {
		if router.types[i] != want[i] {
			t.Fatalf("after Thaw: routed %v, want %v (in order)", router.types, want)
		}
	}
	h.Message(s, c, append(protocol.AppendType(nil, 0x1004), 0xc0))
	if router.count() != 5 {
		t.Fatalf("a message after Thaw: routed %d, want 5", router.count())
	}

	// A session that moves drops what it held.
	m, mc, _ := welcomed(t, h)
	m.Freeze()
	h.Message(m, mc, append(protocol.AppendType(nil, 0x1005), 0xc0))
	h.Retire(m, protocol.CloseDraining, "moved")
	m.Thaw() // a late Thaw finds nothing to hand on, and a closed session
	if router.count() != 5 || m.inSeq.Load() != 0 {
		t.Fatalf("a retired session's held message was handled: routed %d, clientSeq %d", router.count(), m.inSeq.Load())
	}
}

// The held messages are bounded by the replay bytes; past the bound the
// rest are dropped, not a message in the middle (the order is kept).
func TestFrozenMessagesBounded(t *testing.T) {
	router := &routedTypes{}
	h := testHub(t, Config{ReplayBytes: 100}, router)
	s, c, _ := welcomed(t, h)
	s.Freeze()
	body := make([]byte, 40) // 42-byte messages: two fit in 100
	for i := 0; i < 4; i++ {
		tp := protocol.MsgType(0x1000 + i)
		if i == 3 {
			body = body[:1] // small enough to fit, but after the gap
		}
		h.Message(s, c, append(protocol.AppendType(nil, tp), body...))
	}
	s.Thaw()
	if len(router.types) != 2 || router.types[0] != 0x1000 || router.types[1] != 0x1001 {
		t.Fatalf("routed %v after the bound, want [0x1000 0x1001]", router.types)
	}
}

// Once askEvery sequenced messages wait, the session sends a PING right
// after the message; the PONG's ack trims the replay buffer.
func TestSessionAsksForAck(t *testing.T) {
	h := testHub(t, Config{}, &countingRouter{})
	s, c, _ := welcomed(t, h)
	sendErrors(t, s, askEvery-1)
	if n, _ := c.pings(t); n != 0 {
		t.Fatalf("%d pings before %d messages waited", n, askEvery)
	}
	sendErrors(t, s, 1)
	n, ping := c.pings(t)
	if n != 1 {
		t.Fatalf("%d pings after %d messages, want 1", n, askEvery)
	}
	c.mu.Lock()
	lastTwo := c.msgs[len(c.msgs)-2:]
	c.mu.Unlock()
	if tp, _, _ := protocol.Split(lastTwo[1]); tp != protocol.TypePing {
		t.Fatalf("the ask is not right after the message: %v", tp)
	}
	if got := heldFrames(s); got != askEvery {
		t.Fatalf("%d held before the PONG, want %d", got, askEvery)
	}
	// A PONG without ack (an older client) trims nothing, nor does one
	// acking more than was sent.
	h.Message(s, c, (&protocol.Pong{Nonce: ping.Nonce}).Append(nil))
	if got := heldFrames(s); got != askEvery {
		t.Fatalf("%d held after a PONG without ack", got)
	}
	h.Message(s, c, (&protocol.Pong{Nonce: ping.Nonce, Ack: 1 << 40}).Append(nil))
	if got := heldFrames(s); got != askEvery {
		t.Fatalf("%d held after a PONG acking past what was sent", got)
	}
	h.Message(s, c, (&protocol.Pong{Nonce: ping.Nonce, Ack: askEvery - 2}).Append(nil))
	if got := heldFrames(s); got != 2 {
		t.Fatalf("%d held after ack %d, want 2", got, askEvery-2)
	}
	if s.RTT() <= 0 {
		t.Fatal("the PONG of an ask measured no round trip")
	}
	// The next ask comes askEvery messages after the ack.
	sendErrors(t, s, askEvery-1)
	if n, _ := c.pings(t); n != 1 {
		t.Fatalf("%d pings, want still 1", n)
	}
	sendErrors(t, s, 1)
	if n, _ := c.pings(t); n != 2 {
		t.Fatalf("%d pings, want 2", n)
	}
}

// A session that was sent fewer than askEvery messages is asked for its
// ack soon, not a whole ping interval later, so what it holds for replay
// is released: a burst after a quiet spell within askFirst (the PING rides
// with the next message, or the sweeper sends it), messages an ack left
// held within askNext. A session sent nothing is not pinged early. A PING
// due when a message goes out is written with it.
func TestQuietSessionAskedForAck(t *testing.T) {
	h := testHub(t, Config{PingInterval: time.Minute, PingTimeout: time.Minute}, &countingRouter{})
	if h.askFirst >= h.askNext {
		t.Fatalf("askFirst %v, askNext %v: the first ask should come sooner", time.Duration(h.askFirst), time.Duration(h.askNext))
	}
	s, c, _ := welcomed(t, h)
	_, idle, _ := welcomed(t, h)
	sendErrors(t, s, 3)
	if n, _ := c.pings(t); n != 0 {
		t.Fatalf("%d pings right after 3 messages, want 0 (the ask waits for quiet)", n)
	}
	// Past askFirst, the next message carries the ask if the sweeper has
	// not sent it yet.
	time.Sleep(time.Duration(h.askFirst) + 50*time.Millisecond)
	sendErrors(t, s, 1)
	n, ping := c.pings(t)
	if n != 1 {
		t.Fatalf("%d pings %v after the first message, want 1 (the ping interval is a minute)", n, time.Duration(h.askFirst)+50*time.Millisecond)
	}
	if n, _ := idle.pings(t); n != 0 {
		t.Fatalf("a session sent nothing was pinged %d times", n)
	}
	// Two more go out before the PONG: the ack leaves them, and they are
	// asked for within askNext: not by a message sent right after, by the
	// sweeper later.
	sendErrors(t, s, 2)
	h.Message(s, c, (&protocol.Pong{Nonce: ping.Nonce, Ack: 4}).Append(nil))
	if got := heldFrames(s); got != 2 {
		t.Fatalf("%d held after ack 4 of 6, want 2", got)
	}
	time.Sleep(time.Duration(h.askFirst) + 50*time.Millisecond)
	sendErrors(t, s, 1)
	if n, _ = c.pings(t); n != 1 {
		t.Fatalf("%d pings %v after an ack that left messages held, want 1 (the next ask waits askNext)", n, time.Duration(h.askFirst)+50*time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for n < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n, ping = c.pings(t)
	}
	if n != 2 {
		t.Fatalf("%d pings 5 s after an ack that left 2 held, want 2", n)
	}
	h.Message(s, c, (&protocol.Pong{Nonce: ping.Nonce, Ack: 7}).Append(nil))
	s.mu.Lock()
	chunk := s.buf.head
	s.mu.Unlock()
	if got := heldFrames(s); got != 0 || chunk != nil {
		t.Fatalf("after the last ack: %d held, chunk %p; want none", got, chunk)
	}

	// A message right after an ack that emptied the buffer is not a burst
	// after a quiet spell: as in a steady stream, the next ask waits
	// askNext after the last PING, not askFirst.
	sendErrors(t, s, 1)
	time.Sleep(time.Duration(h.askFirst) + 50*time.Millisecond)
	sendErrors(t, s, 1)
	if n, _ = c.pings(t); n != 2 {
		t.Fatalf("%d pings %v after a message that followed an ack, want 2 (no ask before askNext)", n, time.Duration(h.askFirst)+50*time.Millisecond)
	}
	// That ask is sent by the sweeper, the session being quiet.
	deadline = time.Now().Add(5 * time.Second)
	for n < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		n, _ = c.pings(t)
	}
	if n != 3 {
		t.Fatalf("%d pings 5 s after one message to a quiet session, want 3", n)
	}

	// A PING that is due when a message goes out rides in its write.
	sendErrors(t, s, 2)
	s.due.Store(time.Now().UnixNano() - 1)
	sendErrors(t, s, 1)
	c.mu.Lock()
	last := c.msgs[len(c.msgs)-1]
	c.mu.Unlock()
	if tp, _, _ := protocol.Split(last); tp != protocol.TypePing {
		t.Fatalf("the message sent when a PING was due is followed by %v, want PING", tp)
	}
}

// The server's PONG acknowledges the client's sequenced messages, as its
// PING does.
func TestPongCarriesAck(t *testing.T) {
	h := testHub(t, Config{}, &countingRouter{})
	s, c, _ := welcomed(t, h)
	game := (&protocol.ArenaInput{Seq: 1}).Append(nil)
	h.Message(s, c, game)
	h.Message(s, c, game)
	h.Message(s, c, (&protocol.Ping{Nonce: 9}).Append(nil)) // not sequenced
	var pong protocol.Pong
	if err := pong.Decode(c.find(t, protocol.TypePong)); err != nil {
		t.Fatal(err)
	}
	if pong.Nonce != 9 || pong.Ack != 2 {
		t.Fatalf("PONG %+v, want nonce 9 and ack 2", pong)
	}
}

// pongCounter counts what is sent to it and keeps nothing.
type pongCounter struct {
	fakeConn
	pongs int
}

func (c *pongCounter) SendNow(f *frame.Frame) error {
	if tp, _, err := protocol.Split(f.B); err == nil && tp == protocol.TypePong {
		c.pongs++
	}
	return nil
}

// Answering a client's PING allocates nothing. Idle clients ping every
// few seconds for as long as they stay, and garbage made at idle is what
// grows a quiet node's heap to its collection goal.
func TestPingAnswerAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	h := testHub(t, Config{RateBurst: 1000}, &countingRouter{})
	c := &pongCounter{}
	s := h.Open(c)
	h.Message(s, c, (&protocol.Hello{Version: protocol.Version}).Append(nil))
	ping := (&protocol.Ping{Nonce: 7, Ack: 0}).Append(nil)
	allocs := testing.AllocsPerRun(100, func() { h.Message(s, c, ping) })
	if c.pongs != 101 {
		t.Fatalf("%d PONGs for 101 PINGs", c.pongs)
	}
	if allocs != 0 {
		t.Fatalf("%.1f allocations per PING answered", allocs)
	}
}

// A hub refuses a configuration it cannot honour, with an error saying
// which; the counters' cap is accepted.
func TestHubConfigRefused(t *testing.T) {
	for name, cfg := range map[string]Config{
		"ping interval under 10ms": {PingInterval: time.Millisecond},
		"negative resume window":   {ResumeWindow: -time.Second},
		"NaN rate limit":           {RateLimit: math.NaN()},
		"max rejected past 65535":  {MaxRejected: 1 << 16},
		"max bad past 65535":       {MaxBadMessages: 1 << 16},
		"negative replay bound":    {ReplayMessages: -1},
		"auth without checker":     {RequireAuth: true},
	} {
		if h, err := NewHub(cfg, nil); err == nil {
			h.Stop()
			t.Errorf("%s: accepted", name)
		}
	}
	h, err := NewHub(Config{MaxRejected: 1<<16 - 1, MaxBadMessages: 1<<16 - 1}, nil)
	if err != nil {
		t.Fatalf("the counters' cap refused: %v", err)
	}
	h.Stop()
}

// A quiet session's ask goes within askFirst and a tick of the asks'
// sweep, whenever in the second it falls: the asks are not left to the
// sweep of every session, which comes once a second.
func TestQuietAskSentPromptly(t *testing.T) {
	h := testHub(t, Config{PingInterval: time.Minute, PingTimeout: time.Minute}, &countingRouter{})
	const n = 5
	var sessions [n]*Session
	var conns [n]*fakeConn
	for i := range sessions {
		sessions[i], conns[i], _ = welcomed(t, h)
	}
	var sent, pinged [n]time.Time
	poll := func() {
		for i, c := range conns {
			if !sent[i].IsZero() && pinged[i].IsZero() {
				if k, _ := c.pings(t); k > 0 {
					pinged[i] = time.Now()
				}
			}
		}
	}
	// One message each, 200 ms apart: their asks fall all over a second.
	for i, s := range sessions {
		sent[i] = time.Now()
		sendErrors(t, s, 1)
		for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			poll()
		}
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		poll()
	}
	limit := time.Duration(h.askFirst) + askTick + 250*time.Millisecond
	for i := range sessions {
		if pinged[i].IsZero() {
			t.Fatalf("session %d: no PING 3 s after its message", i)
		}
		if d := pinged[i].Sub(sent[i]); d > limit {
			t.Errorf("session %d: asked %v after its message, want within %v", i, d, limit)
		}
	}
}

// Grace sets a detached session's window from now, whatever the hub's
// default: the session waits longer, or ends sooner; an active session's
// timing is left alone.
func TestGraceSetsTheResumeWindow(t *testing.T) {
	h := testHub(t, Config{ResumeWindow: 100 * time.Millisecond}, &countingRouter{})

	// Longer than the hub's 100 ms: still resumable after 400 ms.
	s, c, w := welcomed(t, h)
	h.ConnClosed(s, c, 1006, true)
	if !s.Detached() {
		t.Fatal("the session did not detach")
	}
	h.Grace(s, 5*time.Second)
	time.Sleep(400 * time.Millisecond)
	if !s.Detached() {
		t.Fatal("the session ended within its 5 s grace")
	}
	nc := &fakeConn{}
	h.Message(h.Open(nc), nc, (&protocol.Resume{SessionID: w.SessionID, ResumeToken: w.ResumeToken}).Append(nil))
	nc.find(t, protocol.TypeResumed)

	// Once active again, Grace changes nothing.
	due := s.due.Load()
	h.Grace(s, time.Hour)
	if s.due.Load() != due {
		t.Fatal("Grace moved an active session's next PING")
	}

	// Shorter than the default: a 5 s hub, a 50 ms grace.
	h2 := testHub(t, Config{ResumeWindow: 5 * time.Second}, &countingRouter{})
	s2, c2, _ := welcomed(t, h2)
	h2.ConnClosed(s2, c2, 1006, true)
	h2.Grace(s2, 50*time.Millisecond)
	deadline := time.Now().Add(3 * time.Second)
	for s2.Detached() {
		if time.Now().After(deadline) {
			t.Fatal("the session outlived its 50 ms grace by 3 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
