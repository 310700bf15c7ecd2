package session

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gameserver/gameserver/internal/protocol"
)

// Conn is what a session needs from its transport. Send and Flush never
// block on the network; Close starts an orderly close. SetData binds the
// connection to a session (a resume moves a connection to the session it
// resumes).
type Conn interface {
	// Send queues f. seq is its session sequence number (0 for unsequenced
	// messages); transports that show it to the client (SSE event ids)
	// use it.
	Send(f *frame.Frame, seq uint64) error
	SendNow(f *frame.Frame) error
	Flush()
	Close(code uint16, reason string)
	LastActive() time.Time
	SetData(v any)
}

// Router handles what the session layer does not: room operations (JOIN,
// LEAVE, LIST) and game messages. Route is called on the session's
// transport goroutine, one message at a time per session, after HELLO.
type Router interface {
	// Route handles one message. body is only valid until Route returns.
	// A returned *protocol.Error is sent to the client as ERROR; any other
	// error is reported as an internal error.
	Route(s *Session, t protocol.MsgType, body []byte) error
	// Started is called once a session has been welcomed.
	Started(s *Session)
	// Detached is called when an active session lost its connection. It
	// returns how long the session may wait for a resume, and false to use
	// the hub's default.
	Detached(s *Session) (time.Duration, bool)
	// Resumed is called when a detached session has a connection again.
	Resumed(s *Session)
	// Closed is called once when the session ends, after its last Route.
	Closed(s *Session)
}

// Session states.
const (
	stateAwaitHello uint32 = iota // connected, no HELLO or RESUME yet
	stateActive                   // attached to a connection
	stateDetached                 // connection lost; waiting for a resume
	stateClosed                   // gone
)

// ErrClosed is returned by Send on a closed session.
var ErrClosed = errors.New("session: closed")

// Session is one player's presence on the server, across the connections
// that carry it.
type Session struct {
	hub *Hub
	id  sessionID // set at WELCOME; fixed after

	state atomic.Uint32
	flags atomic.Uint32 // flagFrozen, flagHelloExpired, flagAskListed
	// pingSent is when the last server PING went, in Unix microseconds
	// mod 2^32, never 0 once one went: also the PING's nonce.
	pingSent atomic.Uint32
	resumes  uint32    // resumes here: the resume token's count (mu; see token)
	budget   budget    // messages the client may send (msgMu)
	auth     *identity // nil for an anonymous session
	// due is when the sweeper next acts on the session, in Unix
	// nanoseconds: the hello timeout while it awaits HELLO, its next PING
	// while active, the end of the resume window while detached. It is
	// set under mu when the state changes, and the next PING is moved only
	// while active (askSoon, ping).
	due atomic.Int64

	// Guarded by mu: the connection, the outbound sequence and the
	// router's value.
	mu     sync.Mutex
	conn   Conn
	outSeq uint64 // last sequence number sent
	buf    replay
	data   any

	msgMu sync.Mutex    // held while a client message is handled (see Freeze)
	inSeq atomic.Uint64 // sequenced messages received from the client
	rtt   atomic.Uint32 // microseconds; 0 until measured

	// Touched only by the goroutine that delivers this session's messages;
	// they stop counting at their cap, which the limits cannot exceed.
	rejectedInRow uint16
	badInRow      uint16

	// cold holds what few sessions need, made on first use.
	cold atomic.Pointer[coldState]
}

// Session flags.
const (
	flagFrozen       uint32 = 1 << iota // moving to another node: client messages are held
	flagHelloExpired                    // the hello timeout fired (once)
	flagAskListed                       // in the hub's asks (see askSoon)
)

// setFlag sets f and reports whether this call set it.
func (s *Session) setFlag(f uint32) bool { return s.flags.Or(f)&f == 0 }

// coldState is the part of a session that only some sessions use.
type coldState struct {
	resumes *rate.Limiter // resumes allowed (mu)
	// token, unless zero, is the resume token a session moved here
	// brought; its first resume here replaces it with the hub's (mu).
	token token
	held  *heldMsgs // client messages that arrived while frozen (msgMu)
	// bounds, when set, replace the hub's replay bounds: a session moved
	// here holding more than they allow keeps what it brought. Set before
	// the session is published, then fixed.
	bounds bounds
}

// coldPart returns s's cold state, making it on first use.
func (s *Session) coldPart() *coldState {
	if c := s.cold.Load(); c != nil {
		return c
	}
	s.cold.CompareAndSwap(nil, new(coldState))
	return s.cold.Load()
}

// bounds are the session's replay bounds.
func (s *Session) bounds() bounds {
	if c := s.cold.Load(); c != nil && c.bounds.msgs != 0 {
		return c.bounds
	}
	return s.hub.bounds
}

// attachedTo reports whether c is the session's connection.
func (s *Session) attachedTo(c Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn == c
}

// ID is the session id sent in WELCOME (empty before HELLO). It makes
// the text each call.
func (s *Session) ID() string { return s.id.String() }

// UserID is the authenticated user, "" for an anonymous session.
func (s *Session) UserID() string {
	if s.auth == nil {
		return ""
	}
	return s.auth.userID
}

// Claims are the authenticated token's claims, nil when anonymous.
func (s *Session) Claims() map[string]any {
	if s.auth == nil {
		return nil
	}
	return s.auth.claims
}

// RTT is the latest round-trip time the server measured with its own pings,
// or 0 before the first pong.
func (s *Session) RTT() time.Duration { return time.Duration(s.rtt.Load()) * time.Microsecond }

// Active reports whether the session completed HELLO and has a connection.
func (s *Session) Active() bool { return s.state.Load() == stateActive }

// Detached reports whether the session lost its connection and waits for
// a resume.
func (s *Session) Detached() bool { return s.state.Load() == stateDetached }

// Control sends an unsequenced message (MOVE, KICK) on the current
// connection at once.
func (s *Session) Control(m protocol.Message) { s.control(m) }

// Connected reports whether the session has a connection (it may be
// waiting for a resume otherwise).
func (s *Session) Connected() bool { return s.state.Load() == stateActive }

// Data returns the router's value stored with SetData.
func (s *Session) Data() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

// SetData stores a value of the router's with the session.
func (s *Session) SetData(v any) {
	s.mu.Lock()
	s.data = v
	s.mu.Unlock()
}

// Send queues a sealed frame as the session's next sequenced message: it is
// kept for replay until the client acknowledges it, and goes out at the
// next Flush if a connection is attached. It is safe for concurrent use and
// never blocks.
func (s *Session) Send(f *frame.Frame) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state.Load() {
	case stateClosed:
		return ErrClosed
	case stateAwaitHello:
		// Before WELCOME nothing is sequenced (errors about the handshake).
		return s.conn.Send(f, 0)
	}
	s.outSeq++
	ask := s.buf.push(f, s.bounds())
	if s.conn == nil {
		return nil // detached: kept for the resume
	}
	switch {
	case ask:
	case s.buf.n == 1:
		s.askSoon(true)
	case s.due.Load() <= time.Now().UnixNano():
		// The PING due rides with this message, in its write.
		ask, s.buf.sinceAsk = true, 0
	}
	if err := s.conn.Send(f, s.outSeq); err != nil || !ask {
		return err
	}
	// Ask for an ack, in the same write.
	p := s.newPing(time.Now().UnixNano())
	err := s.conn.Send(p, 0)
	p.Release()
	return err
}

// askSoon brings the next PING, whose PONG carries the client's ack,
// forward, so what a session holds for replay is released soon after it was
// sent, not a whole ping interval later. It is called when a message is
// held with nothing before it (first: see firstAsk) and when an ack
// leaves messages held (within askNext: a stream is asked about once a
// second, or every askEvery messages). A session with traffic gets that
// PING in the write of its next message (Send); the sweeper pings a quiet
// one. mu must be held.
func (s *Session) askSoon(first bool) {
	if s.state.Load() != stateActive {
		return // due is not the next PING (an ack raced a detach)
	}
	now := time.Now().UnixNano()
	delay := s.hub.askNext
	if first {
		delay = s.firstAsk(now)
	}
	if due := now + delay; due < s.due.Load() {
		s.due.Store(due)
		if delay <= s.hub.askFirst {
			// Sooner than the sweep of every session would see it.
			s.hub.listAsk(s)
		}
	}
}

// firstAsk is the delay of the ask for a message held with nothing
// before it: askFirst after a quiet spell, so a burst such as a join's is
// released within a fraction of a second; but no sooner than askNext
// after the last PING, so a steady stream whose every ack empties the
// buffer (a game's states) is still asked about once a second.
func (s *Session) firstAsk(now int64) int64 {
	h := s.hub
	if sent := s.pingSent.Load(); sent != 0 {
		since := int64(uint32(now/1e3)-sent) * 1e3 // wrap-safe, as the RTT
		if rest := h.askNext - since; rest > h.askFirst {
			return rest
		}
	}
	return h.askFirst
}

// newPing makes the session's next PING: it carries the ack of the
// client's messages, and its PONG measures the round trip and brings the
// client's ack.
func (s *Session) newPing(now int64) *frame.Frame {
	h := s.hub
	sent := max(uint32(now/1e3), 1)
	m := protocol.Ping{Nonce: sent, RTTMicros: s.rtt.Load(), Ack: s.inSeq.Load()}
	s.pingSent.Store(sent)
	s.due.Store(now + int64(h.cfg.PingInterval))
	h.stats.PingsSent.Add(1)
	f := frame.New()
	f.B = m.Append(f.B)
	return f.Seal()
}

// Flush writes what Send queued.
func (s *Session) Flush() {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		c.Flush()
	}
}

// SendMessage encodes m as the next sequenced message and flushes it.
func (s *Session) SendMessage(m protocol.Message) error {
	f := frame.New()
	f.B = m.Append(f.B)
	err := s.Send(f.Seal())
	f.Release()
	s.Flush()
	return err
}

// SendError sends an ERROR message. ref is the type of the message that
// caused it (0 for none) and reqID the request it answers (0 for none).
func (s *Session) SendError(e *protocol.Error, ref protocol.MsgType, reqID uint32) {
	_ = s.SendMessage(&protocol.ErrorMsg{Code: e.Code, Message: e.Message, Ref: ref, ReqID: reqID})
}

// control sends an unsequenced message (PING, PONG, WELCOME, RESUMED) on
// the current connection at once.
func (s *Session) control(m protocol.Message) {
	f := frame.New()
	f.B = m.Append(f.B)
	s.sendNow(f.Seal())
}

// sendNow sends the unsequenced frame f on the current connection at once
// and releases it.
func (s *Session) sendNow(f *frame.Frame) {
	s.mu.Lock()
	if c := s.conn; c != nil {
		_ = c.SendNow(f)
	}
	s.mu.Unlock()
	f.Release()
}

// Close ends the session's connection with a close code. Whether the
// session then waits for a resume depends on the code (see detachable).
func (s *Session) Close(code protocol.CloseCode, reason string) {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		c.Close(uint16(code), reason)
	}
}

// Kick sends KICK and closes the connection with 4502; the session does
// not wait for a resume.
func (s *Session) Kick(code protocol.Code, reason string) {
	s.control(&protocol.Kick{Code: code, Reason: reason})
	s.Close(protocol.CloseKicked, reason)
}

// ack forgets replayable messages up to seq (the client's PING or PONG
// ack).
func (s *Session) ack(seq uint64) {
	s.mu.Lock()
	if seq <= s.outSeq {
		s.buf.ack(seq, s.outSeq)
		if s.buf.n > 0 {
			s.askSoon(false) // what came after the ask, in turn
		}
	}
	s.mu.Unlock()
}

// identity is who an authenticated session's client is; kept apart so an
// anonymous session does not carry it.
type identity struct {
	userID  string
	claims  map[string]any
	expires atomic.Int64 // Unix nanoseconds; 0 = never
}

// newIdentity returns nil for an anonymous session (all three empty).
func newIdentity(userID string, claims map[string]any, expires int64) *identity {
	if userID == "" && claims == nil && expires == 0 {
		return nil
	}
	id := &identity{userID: userID, claims: claims}
	id.expires.Store(expires)
	return id
}

// unixNano is t in Unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// expiry is when the session's token expires, in Unix nanoseconds; 0 for
// never.
func (s *Session) expiry() int64 {
	if s.auth == nil {
		return 0
	}
	return s.auth.expires.Load()
}
