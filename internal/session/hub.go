package session

import (
	"errors"
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
	// before it is closed with 4003. Zero means 10 s.
	HelloTimeout time.Duration
	// RateLimit is the sustained number of messages per second a session
	// may send; RateBurst the bucket size. Zero means 50 and 100.
	RateLimit float64
	RateBurst int
	// MaxRejected is how many messages in a row may be refused by the rate
	// limit before the session is closed with 1008. Zero means 100.
	MaxRejected int
	// MaxBadMessages is how many malformed or refused messages in a row
	// close the session with 1008. Zero means 20.
	MaxBadMessages int
	// MaxMessage is the inbound size limit advertised in WELCOME. Zero means
	// 64 KiB.
	MaxMessage int
	// Logger receives session events. Nil means no logging.
	Logger *zap.Logger
}

func (c *Config) setDefaults() error {
	if c.Node == "" {
		c.Node = "local"
	}
	if c.PingInterval == 0 {
		c.PingInterval = 10 * time.Second
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = 10 * time.Second
	}
	if c.HelloTimeout == 0 {
		c.HelloTimeout = 10 * time.Second
	}
	if c.RateLimit == 0 {
		c.RateLimit = 50
	}
	if c.RateBurst == 0 {
		c.RateBurst = 100
	}
	if c.MaxRejected == 0 {
		c.MaxRejected = 100
	}
	if c.MaxBadMessages == 0 {
		c.MaxBadMessages = 20
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = 64 << 10
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	switch {
	case c.PingInterval < 10*time.Millisecond || c.PingTimeout < 10*time.Millisecond || c.HelloTimeout < 10*time.Millisecond:
		return errors.New("session: ping interval, ping timeout and hello timeout must be at least 10ms")
	case c.RateLimit < 0 || c.RateBurst < 1 || c.MaxRejected < 1 || c.MaxBadMessages < 1:
		return errors.New("session: rate limit, burst, max rejected and max bad messages must be positive")
	case len(c.Node) > protocol.MaxNodeLen:
		return errors.New("session: node name too long")
	}
	return nil
}

// Stats are the session layer's counters.
type Stats struct {
	Active            atomic.Int64
	Opened            atomic.Uint64
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

	mu       sync.Mutex
	sessions map[*Session]struct{}

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
		cfg:      cfg,
		router:   router,
		log:      cfg.Logger,
		sessions: make(map[*Session]struct{}),
		done:     make(chan struct{}),
	}
	h.wg.Add(1)
	go h.sweep()
	return h, nil
}

// Config returns the configuration in force, defaults filled in.
func (h *Hub) Config() Config { return h.cfg }

// Stats returns the live counters.
func (h *Hub) Stats() *Stats { return &h.stats }

// Len is the number of open sessions.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// Stop ends the heartbeat sweeper. Sessions stay open.
func (h *Hub) Stop() {
	h.stopOnce.Do(func() { close(h.done) })
	h.wg.Wait()
}

// Open creates the session for a new connection. It waits for HELLO.
func (h *Hub) Open(c Conn) *Session {
	s := &Session{
		hub:     h,
		conn:    c,
		opened:  time.Now().UnixNano(),
		limiter: rate.NewLimiter(rate.Limit(h.cfg.RateLimit), h.cfg.RateBurst),
	}
	h.mu.Lock()
	h.sessions[s] = struct{}{}
	h.mu.Unlock()
	h.stats.Opened.Add(1)
	return s
}

// Closed ends a session after its connection is gone.
func (h *Hub) Closed(s *Session) {
	prev := s.state.Swap(stateClosed)
	if prev == stateClosed {
		return
	}
	h.mu.Lock()
	delete(h.sessions, s)
	h.mu.Unlock()
	if prev == stateActive {
		h.stats.Active.Add(-1)
		h.router.Closed(s)
	}
}

// Message handles one inbound message of s.
func (h *Hub) Message(s *Session, msg []byte) {
	st := s.state.Load()
	if st == stateClosed {
		return
	}
	if !s.limiter.Allow() {
		h.stats.RateLimited.Add(1)
		s.rejectedInRow++
		if s.rejectedInRow >= h.cfg.MaxRejected {
			s.Close(protocol.ClosePolicyViolation, "message rate limit exceeded")
			return
		}
		t, _, _ := protocol.Split(msg)
		s.SendError(errRateLimited, t, 0)
		return
	}
	s.rejectedInRow = 0
	t, body, err := protocol.Split(msg)
	if err != nil {
		h.bad(s, err, 0)
		return
	}
	switch {
	case t == protocol.TypePing:
		var p protocol.Ping
		if err := p.Decode(body); err != nil {
			h.bad(s, err, t)
			return
		}
		pong := protocol.Pong{Nonce: p.Nonce}
		f := frame.New()
		f.B = pong.Append(f.B)
		_ = s.conn.SendNow(f.Seal())
		f.Release()
	case t == protocol.TypePong:
		var p protocol.Pong
		if err := p.Decode(body); err != nil {
			h.bad(s, err, t)
			return
		}
		if sent := s.pingSentAt.Load(); sent != 0 && p.Nonce == s.pingNonce.Load() {
			s.rtt.Store(time.Now().UnixNano() - sent)
			h.stats.PongsReceived.Add(1)
		}
	case t == protocol.TypeHello:
		if st != stateAwaitHello {
			h.bad(s, protocol.NewError(protocol.CodeBadRequest, "hello already received"), t)
			return
		}
		h.hello(s, body)
		return
	case st == stateAwaitHello:
		h.bad(s, protocol.NewError(protocol.CodeHelloRequired, "send hello first"), t)
		return
	case t.IsGame(), t == protocol.TypeJoin, t == protocol.TypeLeave, t == protocol.TypeList:
		if err := h.router.Route(s, t, body); err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				h.log.Warn("session: route failed", zap.String("session", s.id), zap.Stringer("type", t), zap.Error(err))
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
// many arrive in a row.
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
		s.badInRow++ // malformed or out of order: a broken or hostile client
	default:
		return // a refused request (room full, not in a room...): a normal answer
	}
	if s.badInRow >= h.cfg.MaxBadMessages {
		s.Close(protocol.ClosePolicyViolation, "too many bad messages")
	}
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
	s.id = newSessionID()
	s.client = m.Client
	if !s.state.CompareAndSwap(stateAwaitHello, stateActive) {
		return // closed meanwhile
	}
	h.stats.Active.Add(1)
	// The first ping lands at a random point in the first interval, so
	// sessions that connected together do not ping together.
	iv := int64(h.cfg.PingInterval)
	s.nextPing.Store(time.Now().UnixNano() + iv/2 + rand.Int64N(iv/2+1))
	_ = s.SendMessage(&protocol.Welcome{
		Version:        protocol.Version,
		SessionID:      s.id,
		Node:           h.cfg.Node,
		PingIntervalMs: uint32(h.cfg.PingInterval / time.Millisecond),
		PingTimeoutMs:  uint32(h.cfg.PingTimeout / time.Millisecond),
		MaxMessage:     uint32(h.cfg.MaxMessage),
	})
	s.badInRow = 0
}

// sweep runs the heartbeats: it pings sessions that are due, closes those
// silent too long, and closes connections that never said HELLO.
func (h *Hub) sweep() {
	defer h.wg.Done()
	period := min(time.Second, h.cfg.PingInterval/4, h.cfg.HelloTimeout/4, h.cfg.PingTimeout/4)
	t := time.NewTicker(period)
	defer t.Stop()
	var batch []*Session
	for {
		select {
		case <-h.done:
			return
		case now := <-t.C:
			h.mu.Lock()
			batch = batch[:0]
			for s := range h.sessions {
				batch = append(batch, s)
			}
			h.mu.Unlock()
			h.sweepSessions(now.UnixNano(), batch)
			clear(batch)
		}
	}
}

func (h *Hub) sweepSessions(now int64, sessions []*Session) {
	silentMax := int64(h.cfg.PingInterval + h.cfg.PingTimeout)
	for _, s := range sessions {
		switch s.state.Load() {
		case stateAwaitHello:
			if now-s.opened > int64(h.cfg.HelloTimeout) {
				h.stats.HelloTimeouts.Add(1)
				s.SendError(protocol.NewError(protocol.CodeHelloTimeout, "no hello within the time limit"), 0, 0)
				s.Close(protocol.CloseHelloTimeout, "hello timeout")
			}
		case stateActive:
			if now-s.conn.LastActive().UnixNano() > silentMax {
				h.stats.HeartbeatTimeouts.Add(1)
				s.Close(protocol.CloseHeartbeatTimeout, "heartbeat timeout")
				continue
			}
			if now >= s.nextPing.Load() {
				h.ping(s, now)
			}
		}
	}
}

func (h *Hub) ping(s *Session, now int64) {
	n := s.pingNonce.Add(1)
	s.pingSentAt.Store(now)
	s.nextPing.Store(now + int64(h.cfg.PingInterval))
	p := protocol.Ping{Nonce: n, RTTMicros: uint32(min(s.rtt.Load()/1000, 1<<32-1))}
	f := frame.New()
	f.B = p.Append(f.B)
	_ = s.conn.SendNow(f.Seal())
	f.Release()
	h.stats.PingsSent.Add(1)
}

// noRooms is the Router of a server without a room engine.
type noRooms struct{}

func (noRooms) Route(s *Session, t protocol.MsgType, body []byte) error {
	if t.IsGame() {
		return protocol.NewError(protocol.CodeNotInRoom, "not in a room")
	}
	return protocol.NewError(protocol.CodeRoomNotFound, "no room types are registered")
}

func (noRooms) Closed(*Session) {}
