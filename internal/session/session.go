package session

import (
	"crypto/rand"
	"encoding/base64"
	"sync/atomic"
	"time"

	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gameserver/gameserver/internal/protocol"
	"golang.org/x/time/rate"
)

// Conn is what a session needs from its transport. Send and Flush never
// block on the network; Close starts an orderly close.
type Conn interface {
	Send(f *frame.Frame) error
	SendNow(f *frame.Frame) error
	Flush()
	Close(code uint16, reason string)
	LastActive() time.Time
}

// Router handles what the session layer does not: room operations (JOIN,
// LEAVE, LIST) and game messages. It is called on the session's transport
// goroutine, one message at a time per session, after HELLO.
type Router interface {
	// Route handles one message. body is only valid until Route returns.
	// A returned *protocol.Error is sent to the client as ERROR; any other
	// error is reported as an internal error.
	Route(s *Session, t protocol.MsgType, body []byte) error
	// Closed is called once when the session ends, after its last Route.
	Closed(s *Session)
}

// Session states.
const (
	stateAwaitHello uint32 = iota
	stateActive
	stateClosed
)

// Session is one player's connection to the server.
type Session struct {
	hub     *Hub
	conn    Conn
	id      string
	opened  int64 // Unix nanoseconds
	state   atomic.Uint32
	limiter *rate.Limiter

	// Touched only by the goroutine that delivers this session's messages.
	rejectedInRow int
	badInRow      int
	client        string
	userID        string
	claims        map[string]any

	// Heartbeat: the sweeper writes pings, the message goroutine reads pongs.
	nextPing   atomic.Int64 // Unix nanoseconds
	pingNonce  atomic.Uint32
	pingSentAt atomic.Int64
	rtt        atomic.Int64 // nanoseconds; 0 until measured

	data atomic.Pointer[any]
}

// ID is the session id sent in WELCOME (empty before HELLO).
func (s *Session) ID() string { return s.id }

// UserID is the authenticated user, "" for an anonymous session.
func (s *Session) UserID() string { return s.userID }

// Claims are the authenticated token's claims, nil when anonymous.
func (s *Session) Claims() map[string]any { return s.claims }

// RTT is the latest round-trip time the server measured with its own pings,
// or 0 before the first pong.
func (s *Session) RTT() time.Duration { return time.Duration(s.rtt.Load()) }

// Active reports whether the session completed HELLO and is not closed.
func (s *Session) Active() bool { return s.state.Load() == stateActive }

// Data returns the router's value stored with SetData.
func (s *Session) Data() any {
	if p := s.data.Load(); p != nil {
		return *p
	}
	return nil
}

// SetData stores a value of the router's with the session.
func (s *Session) SetData(v any) { s.data.Store(&v) }

// Send queues a sealed frame; it goes out at the next Flush. It is safe for
// concurrent use and never blocks.
func (s *Session) Send(f *frame.Frame) error { return s.conn.Send(f) }

// Flush writes what Send queued.
func (s *Session) Flush() { s.conn.Flush() }

// SendMessage encodes m into a new frame and writes it at once.
func (s *Session) SendMessage(m protocol.Message) error {
	f := frame.New()
	f.B = m.Append(f.B)
	err := s.conn.SendNow(f.Seal())
	f.Release()
	return err
}

// SendError sends an ERROR message. ref is the type of the message that
// caused it (0 for none) and reqID the request it answers (0 for none).
func (s *Session) SendError(e *protocol.Error, ref protocol.MsgType, reqID uint32) {
	m := protocol.ErrorMsg{Code: e.Code, Message: e.Message, Ref: ref, ReqID: reqID}
	f := frame.New()
	f.B = m.Append(f.B)
	_ = s.conn.SendNow(f.Seal())
	f.Release()
}

// Close ends the session with a WebSocket close code and reason.
func (s *Session) Close(code protocol.CloseCode, reason string) {
	s.conn.Close(uint16(code), reason)
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
