package session

import (
	"crypto/subtle"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gameserver/gameserver/internal/protocol"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Config tunes sessions. The zero value of each field means the default in
// its comment.
type Config struct {
	// Node names this server in WELCOME. Empty means "local".
	Node string
	// PingInterval is how often the server pings each session. Zero means 10 s.
	PingInterval time.Duration
	// PingTimeout is how long past PingInterval a silent session is kept:
	// a session that sends nothing for PingInterval+PingTimeout is closed
	// with 4000. Zero means 10 s.
	PingTimeout time.Duration
	// HelloTimeout is how long a new connection may take to send HELLO
	// (or RESUME) before it is closed with 4003. Zero means 10 s.
	HelloTimeout time.Duration
	// RateLimit is the sustained number of messages per second a session
	// may send; RateBurst the bucket size. Zero means 50 and 100.
	RateLimit float64
	RateBurst int
	// MaxRejected is how many messages in a row may be refused by the rate
	// limit before the session is closed with 1008. Zero means 100; at
	// most 65535.
	MaxRejected int
	// MaxBadMessages is how many malformed messages in a row close the
	// session with 1008. Zero means 20; at most 65535.
	MaxBadMessages int
	// MaxMessage is the inbound size limit advertised in WELCOME. Zero means
	// 64 KiB.
	MaxMessage int
	// Authenticator checks tokens. Nil means tokens are refused.
	Authenticator Authenticator
	// RequireAuth refuses sessions without a token. False allows anonymous
	// sessions (a client that sends a token is still authenticated).
	RequireAuth bool
	// ResumeWindow is how long a session whose connection dropped waits
	// for a resume when its room does not say otherwise. Zero means 30 s.
	ResumeWindow time.Duration
	// ReplayMessages and ReplayBytes bound a session's buffer of
	// unacknowledged messages kept for a resume. Zero means 1024 and 1 MiB.
	ReplayMessages int
	ReplayBytes    int
	// Adopt, if set, is asked for a session a RESUME names that is not
	// here (it may have moved from another node); it returns whether it
	// imported the session.
	Adopt func(sessionID string) bool
	// MaxResumesPerMinute bounds how often one session may be resumed; a
	// client reconnecting in a tight loop is refused with 429. Zero means 12.
	MaxResumesPerMinute int
	// Logger receives session events. Nil means no logging.
	Logger *zap.Logger
}

func (c *Config) setDefaults() error {
	if c.Node == "" {
		c.Node = "local"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.PingInterval, 10*time.Second)
	def(&c.PingTimeout, 10*time.Second)
	def(&c.HelloTimeout, 10*time.Second)
	def(&c.ResumeWindow, 30*time.Second)
	defInt := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	if c.RateLimit == 0 {
		c.RateLimit = 50
	}
	defInt(&c.RateBurst, 100)
	defInt(&c.MaxRejected, 100)
	defInt(&c.MaxBadMessages, 20)
	defInt(&c.MaxMessage, 64<<10)
	defInt(&c.ReplayMessages, 1024)
	defInt(&c.ReplayBytes, 1<<20)
	defInt(&c.MaxResumesPerMinute, 12)
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	switch {
	case c.PingInterval < 10*time.Millisecond || c.PingTimeout < 10*time.Millisecond || c.HelloTimeout < 10*time.Millisecond:
		return errors.New("session: ping interval, ping timeout and hello timeout must be at least 10ms")
	case c.ResumeWindow < 0:
		return errors.New("session: negative resume window")
	case !(c.RateLimit >= 0) || c.RateBurst < 1 || // !(>=) also refuses NaN
		c.MaxRejected < 1 || c.MaxBadMessages < 1:
		return errors.New("session: rate limit, burst, max rejected and max bad messages must be positive")
	case c.MaxRejected > math.MaxUint16 || c.MaxBadMessages > math.MaxUint16:
		return errors.New("session: max rejected and max bad messages must be at most 65535")
	case c.ReplayMessages < 1 || c.ReplayBytes < 1 || c.MaxResumesPerMinute < 1:
		return errors.New("session: replay bounds and resume rate must be positive")
	case len(c.Node) > protocol.MaxNodeLen:
		return errors.New("session: node name too long")
	case c.RequireAuth && c.Authenticator == nil:
		return errors.New("session: authentication required but no authenticator configured")
	}
	return nil
}

// Stats are the session layer's counters.
type Stats struct {
	Active            atomic.Int64
	Detached          atomic.Int64
	Opened            atomic.Uint64
	Resumed           atomic.Uint64
	ResumeFailed      atomic.Uint64
	Expired           atomic.Uint64 // detached sessions whose resume window ran out
	AuthFailed        atomic.Uint64
	HelloTimeouts     atomic.Uint64
	HeartbeatTimeouts atomic.Uint64
	RateLimited       atomic.Uint64
	BadMessages       atomic.Uint64
	PingsSent         atomic.Uint64
	PongsReceived     atomic.Uint64
}

// Hub owns the sessions of one node and runs their heartbeats.
type Hub struct {
	cfg    Config
	router Router
	log    *zap.Logger
	stats  Stats

	msgInterval int64 // nanoseconds per message of the rate limit
	askFirst    int64 // nanoseconds: see Session.askSoon
	askNext     int64
	bounds      bounds
	tokens      *tokenMACs

	askMu sync.Mutex
	asks  []*Session // whose ask is due soon (listAsk)

	// Every session is in one of the two maps until it ends: the sweeper
	// goes over both.
	mu      sync.Mutex
	pending map[*Session]struct{}  // sessions awaiting HELLO or RESUME
	byID    map[sessionID]*Session // sessions past WELCOME, for resumes

	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// NewHub starts the heartbeat sweeper; Stop ends it.
func NewHub(cfg Config, router Router) (*Hub, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if router == nil {
		router = noRooms{}
	}
	h := &Hub{
		cfg:     cfg,
		router:  router,
		log:     cfg.Logger,
		pending: make(map[*Session]struct{}),
		byID:    make(map[sessionID]*Session),
		done:    make(chan struct{}),

		msgInterval: int64(float64(time.Second) / cfg.RateLimit),
		askFirst:    int64(min(150*time.Millisecond, cfg.PingInterval)),
		askNext:     int64(min(time.Second, cfg.PingInterval)),
		bounds:      newBounds(cfg.ReplayMessages, cfg.ReplayBytes),
		tokens:      newTokenMACs(),
	}
	h.wg.Add(1)
	go h.sweep()
	return h, nil
}

// Config returns the configuration in force, defaults filled in.
func (h *Hub) Config() Config { return h.cfg }

// Stats returns the live counters.
func (h *Hub) Stats() *Stats { return &h.stats }

// Len is the number of sessions, pending and detached ones included.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.pending) + len(h.byID)
}

// appendAllLocked appends every session to dst. h.mu must be held.
func (h *Hub) appendAllLocked(dst []*Session) []*Session {
	for s := range h.pending {
		dst = append(dst, s)
	}
	for _, s := range h.byID {
		dst = append(dst, s)
	}
	return dst
}

// forgetLocked takes s out of the maps. h.mu must be held.
func (h *Hub) forgetLocked(s *Session) {
	delete(h.pending, s)
	if s.id != (sessionID{}) && h.byID[s.id] == s {
		delete(h.byID, s.id)
	}
}

// Get returns the session with this ID, or nil.
func (h *Hub) Get(id string) *Session {
	key, ok := parseSessionID(id)
	if !ok {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byID[key]
}

// Sessions returns every session past WELCOME.
func (h *Hub) Sessions() []*Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Session, 0, len(h.byID))
	for _, s := range h.byID {
		out = append(out, s)
	}
	return out
}

// Has reports whether a session with this ID lives here.
func (h *Hub) Has(id string) bool { return h.Get(id) != nil }

// Stop ends the heartbeat sweeper. Sessions stay as they are.
func (h *Hub) Stop() {
	h.stopOnce.Do(func() { close(h.done) })
	h.wg.Wait()
}

// Open creates the session of a new connection. It waits for HELLO or
// RESUME.
func (h *Hub) Open(c Conn) *Session {
	s := &Session{hub: h, conn: c}
	s.due.Store(time.Now().Add(h.cfg.HelloTimeout).UnixNano())
	h.mu.Lock()
	h.pending[s] = struct{}{}
	h.mu.Unlock()
	h.stats.Opened.Add(1)
	c.SetData(s)
	return s
}

// detachable tells whether a connection that ended with code may be
// resumed: a drop or a server-side timeout may; a deliberate close, a
// protocol violation or a refusal may not.
func detachable(code uint16, byPeer bool) bool {
	if byPeer {
		return code != uint16(protocol.CloseNormal)
	}
	switch protocol.CloseCode(code) {
	case protocol.CloseHeartbeatTimeout, protocol.CloseSlowConsumer, protocol.CloseDraining,
		protocol.CloseGoingAway, protocol.CloseInternalError:
		return true
	}
	return false
}

// ConnClosed tells the hub that connection c of session s is gone.
func (h *Hub) ConnClosed(s *Session, c Conn, code uint16, byPeer bool) {
	s.mu.Lock()
	if s.conn != c {
		s.mu.Unlock()
		return // a connection the session already left for a newer one
	}
	s.conn = nil
	if s.state.Load() != stateActive || !detachable(code, byPeer) {
		s.mu.Unlock()
		h.destroy(s)
		return
	}
	// The sweeper may look before the router answers: until then the
	// session has the default window.
	at := time.Now()
	s.due.Store(at.Add(h.cfg.ResumeWindow).UnixNano())
	s.state.Store(stateDetached)
	s.mu.Unlock()
	h.stats.Active.Add(-1)
	h.stats.Detached.Add(1)
	if grace, ok := h.router.Detached(s); ok {
		s.mu.Lock()
		if s.state.Load() == stateDetached { // not resumed meanwhile
			s.due.Store(at.Add(grace).UnixNano())
		}
		s.mu.Unlock()
	}
}

// Grace sets how long a detached session waits for a resume, from now. It
// is for a router that learns the window after Detached has returned (a
// seat in a room on another node); a session that is no longer detached
// is left alone.
func (h *Hub) Grace(s *Session, d time.Duration) {
	s.mu.Lock()
	if s.state.Load() == stateDetached {
		s.due.Store(time.Now().Add(d).UnixNano())
	}
	s.mu.Unlock()
}

// destroy ends a session for good.
func (h *Hub) destroy(s *Session) {
	prev := s.state.Swap(stateClosed)
	if prev == stateClosed {
		return
	}
	h.mu.Lock()
	h.forgetLocked(s)
	h.mu.Unlock()
	s.mu.Lock()
	s.buf.reset()
	s.mu.Unlock()
	switch prev {
	case stateActive:
		h.stats.Active.Add(-1)
	case stateDetached:
		h.stats.Detached.Add(-1)
	}
	if s.id != (sessionID{}) {
		h.router.Closed(s)
	}
}

// sequenced reports whether a client message type counts in the client's
// sequence (what RESUMED's clientSeq counts).
func sequenced(t protocol.MsgType) bool {
	switch t {
	case protocol.TypeHello, protocol.TypeResume, protocol.TypePing, protocol.TypePong:
		return false
	}
	return true
}

// Message handles one inbound message of s that arrived on connection c.
// A message from a connection the session has left (a resume moved it to
// a newer one while the message was on its way) is dropped: RESUMED told
// the client which messages were counted, and the client sends the rest
// again on the new connection. c is nil for transports that order and
// deduplicate messages themselves (the HTTP fallback's POSTs).
func (h *Hub) Message(s *Session, c Conn, msg []byte) {
	s.msgMu.Lock()
	defer s.msgMu.Unlock()
	h.message(s, c, msg)
}

// message is Message with msgMu held.
func (h *Hub) message(s *Session, c Conn, msg []byte) {
	st := s.state.Load()
	if st == stateClosed || st == stateDetached {
		return
	}
	if c != nil && !s.attachedTo(c) {
		return
	}
	t, body, err := protocol.Split(msg)
	if s.flags.Load()&flagFrozen != 0 {
		if err != nil || sequenced(t) {
			s.hold(msg, h.cfg.ReplayBytes)
		}
		return
	}
	if err != nil {
		h.bad(s, err, 0)
		return
	}
	if st == stateActive && sequenced(t) {
		s.inSeq.Add(1)
	}
	if !s.budget.allow(time.Now().UnixNano(), h.msgInterval, h.cfg.RateBurst) {
		h.stats.RateLimited.Add(1)
		if s.rejectedInRow < math.MaxUint16 {
			s.rejectedInRow++
		}
		if int(s.rejectedInRow) >= h.cfg.MaxRejected {
			s.Close(protocol.ClosePolicyViolation, "message rate limit exceeded")
			return
		}
		s.SendError(errRateLimited, t, 0)
		return
	}
	s.rejectedInRow = 0
	switch {
	case t == protocol.TypePing:
		var p protocol.Ping
		if err := p.Decode(body); err != nil {
			h.bad(s, err, t)
			return
		}
		if p.Ack != 0 {
			s.ack(p.Ack)
		}
		pong := protocol.Pong{Nonce: p.Nonce, Ack: s.inSeq.Load()}
		f := frame.New()
		f.B = pong.Append(f.B) // not through control: a Message would escape
		s.sendNow(f.Seal())
	case t == protocol.TypePong:
		var p protocol.Pong
		if err := p.Decode(body); err != nil {
			h.bad(s, err, t)
			return
		}
		if p.Ack != 0 {
			s.ack(p.Ack)
		}
		if sent := s.pingSent.Load(); sent != 0 && p.Nonce == sent {
			// Unsigned arithmetic: right across the clock's wrap.
			s.rtt.Store(max(uint32(time.Now().UnixNano()/1e3)-sent, 1))
			h.stats.PongsReceived.Add(1)
		}
	case t == protocol.TypeHello || t == protocol.TypeResume:
		if st != stateAwaitHello {
			h.bad(s, protocol.NewError(protocol.CodeBadRequest, t.String()+" after the session started"), t)
			return
		}
		if t == protocol.TypeHello {
			h.hello(s, body)
		} else {
			h.resume(s, body)
		}
		return
	case st == stateAwaitHello:
		h.bad(s, protocol.NewError(protocol.CodeHelloRequired, "send hello first"), t)
		return
	case t.IsGame(), t == protocol.TypeJoin, t == protocol.TypeLeave, t == protocol.TypeList:
		if err := h.router.Route(s, t, body); err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				h.log.Warn("session: route failed", zap.Stringer("session", s.id), zap.Stringer("type", t), zap.Error(err))
				pe = protocol.NewError(protocol.CodeInternal, "internal error")
			}
			var reqID uint32
			var rq interface{ RequestID() uint32 }
			if errors.As(err, &rq) {
				reqID = rq.RequestID()
			}
			h.badReq(s, pe, t, reqID)
			return
		}
	default:
		h.bad(s, protocol.NewError(protocol.CodeUnknownType, "unknown or server-only message type "+t.String()), t)
		return
	}
	s.badInRow = 0
}

var errRateLimited = protocol.NewError(protocol.CodeRateLimited, "message rate limit exceeded, message dropped")

// bad answers a refused message with ERROR and closes the session once too
// many malformed ones arrive in a row.
func (h *Hub) bad(s *Session, err error, t protocol.MsgType) { h.badReq(s, err, t, 0) }

func (h *Hub) badReq(s *Session, err error, t protocol.MsgType, reqID uint32) {
	h.stats.BadMessages.Add(1)
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		pe = protocol.NewError(protocol.CodeBadRequest, err.Error())
	}
	s.SendError(pe, t, reqID)
	switch pe.Code {
	case protocol.CodeBadRequest, protocol.CodeUnknownType, protocol.CodeHelloRequired, protocol.CodeTooLarge:
		if s.badInRow < math.MaxUint16 { // malformed or out of order: a broken or hostile client
			s.badInRow++
		}
	default:
		return // a refused request (room full, not in a room...): a normal answer
	}
	if int(s.badInRow) >= h.cfg.MaxBadMessages {
		s.Close(protocol.ClosePolicyViolation, "too many bad messages")
	}
}

// authenticate checks a token against the configuration.
func (h *Hub) authenticate(token string) (Identity, error) {
	switch {
	case token == "" && h.cfg.RequireAuth:
		return Identity{}, ErrTokenMissing
	case token == "":
		return Identity{}, nil // anonymous
	case h.cfg.Authenticator == nil:
		return Identity{}, ErrNoAuth
	}
	id, err := h.cfg.Authenticator.Authenticate(token)
	if err != nil {
		var pe *protocol.Error
		if !errors.As(err, &pe) {
			pe = protocol.NewError(protocol.CodeUnauthorized, "invalid token")
		}
		return Identity{}, pe
	}
	if id.UserID == "" {
		return Identity{}, ErrTokenClaims
	}
	return id, nil
}

func (h *Hub) refuseAuth(s *Session, err error, t protocol.MsgType) {
	h.stats.AuthFailed.Add(1)
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		pe = protocol.NewError(protocol.CodeUnauthorized, err.Error())
	}
	s.SendError(pe, t, 0)
	s.Close(protocol.CloseUnauthorized, pe.Message)
}

func (h *Hub) hello(s *Session, body []byte) {
	var m protocol.Hello
	if err := m.Decode(body); err != nil {
		h.bad(s, err, protocol.TypeHello)
		return
	}
	if m.Version != protocol.Version {
		s.SendError(protocol.NewError(protocol.CodeUnsupportedVersion, "protocol version not supported; this server speaks version 1"), protocol.TypeHello, 0)
		s.Close(protocol.CloseUnsupportedVersion, "unsupported protocol version")
		return
	}
	id, err := h.authenticate(m.Token)
	if err != nil {
		h.refuseAuth(s, err, protocol.TypeHello)
		return
	}
	s.auth = newIdentity(id.UserID, id.Claims, unixNano(id.Expires))
	s.id = newSessionID()
	h.mu.Lock()
	delete(h.pending, s)
	h.byID[s.id] = s
	h.mu.Unlock()
	s.mu.Lock()
	h.schedulePing(s) // due: from the hello timeout to the first PING
	ok := s.state.CompareAndSwap(stateAwaitHello, stateActive)
	s.mu.Unlock()
	if !ok { // closed meanwhile
		h.mu.Lock()
		h.forgetLocked(s)
		h.mu.Unlock()
		return
	}
	h.stats.Active.Add(1)
	h.router.Started(s)
	w := protocol.Welcome{
		Version:        protocol.Version,
		SessionID:      s.id.String(),
		Node:           h.cfg.Node,
		PingIntervalMs: uint32(h.cfg.PingInterval / time.Millisecond),
		PingTimeoutMs:  uint32(h.cfg.PingTimeout / time.Millisecond),
		MaxMessage:     uint32(h.cfg.MaxMessage),
		ResumeToken:    h.tokens.token(s.id, 0).String(),
	}
	f := frame.New()
	f.B = w.Append(f.B) // not through control: a Message would escape
	s.sendNow(f.Seal())
	s.badInRow = 0
}

// schedulePing puts the first ping at a random point in the first
// interval, so sessions that connected together do not ping together.
func (h *Hub) schedulePing(s *Session) {
	iv := int64(h.cfg.PingInterval)
	s.due.Store(time.Now().UnixNano() + iv/2 + rand.Int64N(iv/2+1))
}

// tokenOf returns s's resume token (see token). s.mu must be held.
func (h *Hub) tokenOf(s *Session) token {
	if c := s.cold.Load(); c != nil && c.token != (token{}) {
		return c.token
	}
	return h.tokens.token(s.id, s.resumes)
}

var errResume = protocol.NewError(protocol.CodeResumeFailed, "session cannot be resumed: start a new one with hello")

// resume handles RESUME on the pending session p: it checks the resume
// token (and, for an authenticated session, that the token names the same
// user), then moves p's connection to the session.
func (h *Hub) resume(p *Session, body []byte) {
	var m protocol.Resume
	if err := m.Decode(body); err != nil {
		h.bad(p, err, protocol.TypeResume)
		return
	}
	s := h.Get(m.SessionID)
	if s == nil && h.cfg.Adopt != nil && m.SessionID != "" && h.cfg.Adopt(m.SessionID) {
		s = h.Get(m.SessionID)
	}
	var want token
	if s != nil {
		s.mu.Lock()
		want = h.tokenOf(s)
		s.mu.Unlock()
	}
	got, ok := parseToken(m.ResumeToken)
	if s == nil || subtle.ConstantTimeCompare(want[:], got[:]) != 1 || !ok {
		h.failResume(p, errResume)
		return
	}
	if userID := s.UserID(); userID != "" {
		id, err := h.authenticate(m.Token)
		if err == nil && id.UserID != userID {
			err = protocol.NewError(protocol.CodeForbidden, "token is for another user")
		}
		if err == nil && id.UserID == "" {
			err = ErrTokenMissing
		}
		if err != nil {
			h.refuseAuth(p, err, protocol.TypeResume)
			return
		}
		if !id.Expires.IsZero() {
			s.auth.expires.Store(id.Expires.UnixNano())
		}
	}
	if e := h.attach(p, s, m.LastSeq); e != nil {
		h.failResume(p, e)
	}
}

// ResumeTrusted moves the connection of the pending session p to the
// session with the given id, replaying what followed lastSeq, without a
// resume token: for transports that authenticated the client themselves
// (the SSE fallback's stream key). It returns the refusal, if any.
func (h *Hub) ResumeTrusted(p *Session, sessionID string, lastSeq uint64) *protocol.Error {
	s := h.Get(sessionID)
	if s == nil {
		h.failResume(p, errResume)
		return errResume
	}
	if e := h.attach(p, s, lastSeq); e != nil {
		h.failResume(p, e)
		return e
	}
	return nil
}

func (h *Hub) failResume(p *Session, e *protocol.Error) {
	h.stats.ResumeFailed.Add(1)
	p.SendError(e, protocol.TypeResume, 0)
}

// attach gives s the connection of p: RESUMED, then every held message
// after lastSeq, then live traffic, and tells the room the player is back.
func (h *Hub) attach(p, s *Session, lastSeq uint64) *protocol.Error {
	// Hold s's messages while the connection changes hands: one from the
	// old connection is either counted in RESUMED's clientSeq or, arriving
	// later, dropped (Message checks the connection) and sent again by the
	// client. Lock order: a pending session's msgMu (held by our caller),
	// then the resumed session's msgMu, then its mu.
	s.msgMu.Lock()
	defer s.msgMu.Unlock()
	s.mu.Lock()
	st := s.state.Load()
	switch {
	case st == stateClosed || st == stateAwaitHello:
		s.mu.Unlock()
		return errResume
	case lastSeq > s.outSeq:
		s.mu.Unlock()
		return protocol.NewError(protocol.CodeBadRequest, "lastSeq is ahead of what the server sent")
	case !s.buf.covers(lastSeq, s.outSeq):
		s.mu.Unlock()
		return protocol.NewError(protocol.CodeResumeFailed, "messages after lastSeq are no longer held: start a new session")
	case !h.allowResume(s):
		s.mu.Unlock()
		return protocol.NewError(protocol.CodeRateLimited, "resumed too often: wait before reconnecting")
	}
	old := s.conn
	c := p.conn
	s.conn = c
	c.SetData(s)
	// A resume token works once: the next is the hub's, one resume on.
	s.resumes++
	if c := s.cold.Load(); c != nil {
		c.token = token{}
	}
	// The lock keeps room sends out until the replay is queued.
	f := frame.New()
	resumed := protocol.Resumed{SessionID: s.id.String(), FromSeq: lastSeq + 1, ClientSeq: s.inSeq.Load(), ResumeToken: h.tokenOf(s).String()}
	f.B = resumed.Append(f.B)
	_ = c.Send(f.Seal(), 0)
	f.Release()
	s.buf.each(lastSeq, s.outSeq, func(seq uint64, f *frame.Frame) { _ = c.Send(f, seq) })
	s.state.Store(stateActive)
	// due was the resume window's end: now the next PING, soon if the
	// replay left messages to acknowledge.
	s.due.Store(time.Now().UnixNano() + int64(h.cfg.PingInterval))
	if s.buf.n > 0 {
		s.askSoon(false)
	}
	s.mu.Unlock()
	c.Flush()

	// The pending session has handed its connection over.
	p.mu.Lock()
	p.conn = nil
	p.mu.Unlock()
	h.destroy(p)
	h.stats.Resumed.Add(1)
	if st == stateDetached {
		h.stats.Detached.Add(-1)
		h.stats.Active.Add(1)
		h.router.Resumed(s)
	}
	h.schedulePing(s)
	if old != nil {
		old.Close(uint16(protocol.CloseNormal), "session resumed on another connection")
	}
	return nil
}

// allowResume takes a token from s's resume bucket (MaxResumesPerMinute,
// refilled evenly over the minute). Lock must be held.
func (h *Hub) allowResume(s *Session) bool {
	c := s.coldPart()
	if c.resumes == nil {
		n := h.cfg.MaxResumesPerMinute
		c.resumes = rate.NewLimiter(rate.Every(time.Minute/time.Duration(n)), n)
	}
	return c.resumes.Allow()
}

// askTick is how often the sweeper looks at the sessions whose ask for an
// ack is due soon (see listAsk).
const askTick = 100 * time.Millisecond

// sweep runs the heartbeats: it pings sessions that are due, closes those
// silent too long or whose token expired, closes connections that never
// said HELLO, and ends detached sessions whose resume window ran out. It
// goes over every session about once a second (more often for short
// intervals), and over the listed asks every askTick, so a quiet
// session's ask goes within a tenth of a second of its due time: what a
// join burst left held is released a few hundred milliseconds after it,
// without a sweep of every session ten times a second.
func (h *Hub) sweep() {
	defer h.wg.Done()
	period := min(time.Second, h.cfg.PingInterval/4, h.cfg.HelloTimeout/4, h.cfg.PingTimeout/4, max(h.cfg.ResumeWindow/4, 10*time.Millisecond))
	tick := min(askTick, period)
	every := max(1, int(period/tick)) // ticks per full sweep
	t := time.NewTicker(tick)
	defer t.Stop()
	var batch, asks []*Session
	for n := 1; ; n++ {
		select {
		case <-h.done:
			return
		case now := <-t.C:
			asks = h.sweepAsks(now.UnixNano(), asks)
			if n%every != 0 {
				continue
			}
			h.mu.Lock()
			batch = h.appendAllLocked(batch[:0])
			h.mu.Unlock()
			h.sweepSessions(now.UnixNano(), batch)
			clear(batch)
		}
	}
}

// listAsk lists s, whose next PING askSoon brought to within askFirst,
// for the sweeper's next look at the asks (unless it is listed already).
// Asks due later (a stream's, once a second) are left to the sweep of
// every session.
func (h *Hub) listAsk(s *Session) {
	if !s.setFlag(flagAskListed) {
		return
	}
	h.askMu.Lock()
	h.asks = append(h.asks, s)
	h.askMu.Unlock()
}

// sweepAsks pings the listed sessions whose ask is due. One not due yet
// stays listed; one whose PING went meanwhile (with a message) is done.
// It returns batch, emptied, for reuse.
func (h *Hub) sweepAsks(now int64, batch []*Session) []*Session {
	h.askMu.Lock()
	batch, h.asks = h.asks, batch[:0]
	h.askMu.Unlock()
	for _, s := range batch {
		s.flags.And(^flagAskListed)
		if s.state.Load() != stateActive {
			continue
		}
		switch next := s.due.Load(); {
		case now >= next:
			h.ping(s, now)
		case next-now < h.askNext:
			// Still to come (listed within askFirst of a moment ago). A
			// PING that went with a message put the next a ping interval
			// away, at least askNext: that session is done.
			h.listAsk(s)
		}
	}
	clear(batch)
	return batch[:0]
}

func (h *Hub) sweepSessions(now int64, sessions []*Session) {
	silentMax := int64(h.cfg.PingInterval + h.cfg.PingTimeout)
	for _, s := range sessions {
		switch s.state.Load() {
		case stateAwaitHello:
			if now > s.due.Load() && s.setFlag(flagHelloExpired) {
				h.stats.HelloTimeouts.Add(1)
				s.SendError(protocol.NewError(protocol.CodeHelloTimeout, "no hello within the time limit"), 0, 0)
				s.Close(protocol.CloseHelloTimeout, "hello timeout")
			}
		case stateActive:
			if exp := s.expiry(); exp != 0 && now > exp {
				h.stats.AuthFailed.Add(1)
				s.SendError(ErrTokenExpired, 0, 0)
				s.Close(protocol.CloseUnauthorized, "token expired")
				continue
			}
			s.mu.Lock()
			c := s.conn
			s.mu.Unlock()
			if c == nil {
				continue
			}
			if now-c.LastActive().UnixNano() > silentMax {
				h.stats.HeartbeatTimeouts.Add(1)
				s.Close(protocol.CloseHeartbeatTimeout, "heartbeat timeout")
				continue
			}
			if now >= s.due.Load() {
				h.ping(s, now)
			}
		case stateDetached:
			if now > s.due.Load() {
				h.stats.Expired.Add(1)
				h.destroy(s)
			}
		}
	}
}

// ping sends s its next PING, which the sweeper found due at now, if it
// still is under the lock: the session may have detached (due is its next
// PING only while active), or sent that PING with a message meanwhile.
func (h *Hub) ping(s *Session, now int64) {
	s.mu.Lock()
	c := s.conn
	if c == nil || s.state.Load() != stateActive || now < s.due.Load() {
		s.mu.Unlock()
		return
	}
	f := s.newPing(now)
	_ = c.SendNow(f)
	s.mu.Unlock()
	f.Release()
}

// Shutdown closes every session's connection with code and ends the
// detached ones.
func (h *Hub) Shutdown(code protocol.CloseCode, reason string) {
	h.mu.Lock()
	all := h.appendAllLocked(make([]*Session, 0, len(h.pending)+len(h.byID)))
	h.mu.Unlock()
	for _, s := range all {
		if s.state.Load() == stateDetached {
			h.destroy(s)
		} else {
			s.Close(code, reason)
		}
	}
}

// noRooms is the Router of a server without a room engine.
type noRooms struct{}

func (noRooms) Route(s *Session, t protocol.MsgType, body []byte) error {
	if t.IsGame() {
		return protocol.NewError(protocol.CodeNotInRoom, "not in a room")
	}
	return protocol.NewError(protocol.CodeRoomNotFound, "no room types are registered")
}

func (noRooms) Started(*Session)                        {}
func (noRooms) Detached(*Session) (time.Duration, bool) { return 0, false }
func (noRooms) Resumed(*Session)                        {}
func (noRooms) Closed(*Session)                         {}
