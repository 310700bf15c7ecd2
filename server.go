package gameserver

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/cluster"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gameserver/gameserver/internal/room"
	"github.com/gameserver/gameserver/internal/session"
	"github.com/gameserver/gameserver/internal/transport"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

//go:embed web
var webFS embed.FS

// Server is one gameserver node.
type Server struct {
	cfg      Config
	log      *zap.Logger
	ws       *transport.Server
	hub      *session.Hub
	rooms    *room.Manager
	fb       *fallback
	cluster  *clusterNode
	sseStats *transport.Stats // the fallback's counters (ws.StreamStats)
	http     *http.Server
	registry *prometheus.Registry
	ready    atomic.Bool
	listener net.Listener
	served   chan struct{}

	shutdownOnce sync.Once
	shutdownErr  error
}

// New builds a server; nothing listens until ListenAndServe or Serve.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("gameserver: %w", err)
	}
	if cfg.Node == "" {
		cfg.Node, _ = os.Hostname()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, served: make(chan struct{})}
	s.fb = newFallback(s)
	s.registry = prometheus.NewRegistry()
	if err := s.initBackend(); err != nil {
		return nil, fmt.Errorf("gameserver: %w", err)
	}
	var observers multiObserver
	if o := s.observer(); o != nil {
		observers = append(observers, o)
	}
	if cfg.Redis != "" {
		dir, err := newDirectory(cfg.Redis)
		if err != nil {
			return nil, fmt.Errorf("gameserver: %w", err)
		}
		s.cluster = newClusterNode(s, dir)
		observers = append(observers, clusterObserver{s.cluster})
	}
	var observer room.Observer
	if len(observers) > 0 {
		observer = observers
	}
	s.rooms = room.NewManager(room.Config{Node: cfg.Node, Logger: cfg.Logger, TickObserver: tickObserver(s.registry), Observer: observer, ResumeWindow: cfg.ResumeWindow})
	for _, d := range defaultTypes.list() {
		if err := s.rooms.Register(d.kind, d.factory, d.cfg); err != nil {
			return nil, fmt.Errorf("gameserver: %w", err)
		}
	}
	auth, err := cfg.authenticator()
	if err != nil {
		return nil, fmt.Errorf("gameserver: %w", err)
	}
	hub, err := session.NewHub(session.Config{
		Authenticator:       auth,
		RequireAuth:         cfg.RequireAuth,
		ResumeWindow:        cfg.ResumeWindow,
		ReplayMessages:      cfg.ReplayMessages,
		ReplayBytes:         cfg.ReplayBytes,
		MaxResumesPerMinute: cfg.MaxResumesPerMinute,
		Adopt:               s.adoptSession,
		Node:                cfg.Node,
		PingInterval:        cfg.PingInterval,
		PingTimeout:         cfg.PingTimeout,
		HelloTimeout:        cfg.HelloTimeout,
		RateLimit:           cfg.RateLimit,
		RateBurst:           cfg.RateBurst,
		MaxMessage:          cfg.MaxMessageBytes,
		Logger:              cfg.Logger,
	}, roomRouter{s})
	if err != nil {
		return nil, fmt.Errorf("gameserver: %w", err)
	}
	s.hub = hub
	ws, err := transport.New(transport.Config{
		MaxMessageBytes:  cfg.MaxMessageBytes,
		MaxOutboundBytes: cfg.MaxOutboundBytes,
		WriteTimeout:     cfg.WriteTimeout,
		HandshakeTimeout: cfg.HandshakeTimeout,
		MaxConns:         cfg.MaxConns,
		MaxConnsPerIP:    cfg.MaxConnsPerIP,
		AllowedOrigins:   cfg.AllowedOrigins,
		TrustedProxies:   cfg.TrustedProxies,
		HandshakeRate:    cfg.HandshakeRate,
		HandshakeBurst:   cfg.HandshakeBurst,
		Logger:           cfg.Logger,
	}, wsHandler{hub: hub})
	if err != nil {
		hub.Stop()
		return nil, fmt.Errorf("gameserver: %w", err)
	}
	s.ws = ws
	s.sseStats = ws.StreamStats()
	registerMetrics(s)
	s.http = &http.Server{
		// Connections the front passed on go back to it after each
		// response (transport.HandBack).
		Handler:           transport.HandBack(s.routes()),
		ConnContext:       transport.ConnContext,
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(cfg.Logger.Named("http")),
	}
	s.ready.Store(true)
	return s, nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	// ListenAndServe upgrades most WebSocket requests before they reach
	// net/http; this route serves the rest (see interceptUpgrade) and
	// embedders of Handler.
	mux.Handle("GET /ws", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A resume that landed on another node than its session's goes
		// there (clients name the session in the URL to allow it).
		if s.cluster != nil && s.cluster.routeSession(w, r, r.URL.Query().Get("session")) {
			return
		}
		s.ws.ServeHTTP(w, r)
	}))
	if s.cluster != nil {
		mux.Handle("GET "+cluster.LinkPath, s.cluster.mesh)
	}
	s.fb.routes(mux)
	s.mountBackend(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("draining\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry}))
	static, _ := fs.Sub(webFS, "web")
	mux.Handle("GET /", http.FileServerFS(static))
	return mux
}

// Handler returns the server's HTTP handler (all endpoints), for embedding
// in another http.Server or a test server.
func (s *Server) Handler() http.Handler { return s.http.Handler }

// Addr is the address the server listens on, once it does.
func (s *Server) Addr() net.Addr {
	if s.listener == nil {
		return nil
	}
	return s.listener.Addr()
}

// Listen binds the configured address. ListenAndServe calls it; tests call
// it first to learn the port.
func (s *Server) Listen() error {
	if s.listener != nil {
		return nil
	}
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("gameserver: listen: %w", err)
	}
	s.listener = l
	if s.cluster != nil {
		// An advertised port 0 (listening on a free port) is the one we got.
		if host, port, _ := net.SplitHostPort(s.cluster.addr); port == "0" {
			_, real, _ := net.SplitHostPort(l.Addr().String())
			s.cluster.addr = net.JoinHostPort(host, real)
		}
	}
	return nil
}

// interceptUpgrade returns the test that sends a WebSocket upgrade to the
// "GET /ws" route instead of upgrading it on the fast path: in a cluster, a
// resume (?session=) of a session this node does not hold, which the route
// may proxy to the session's node. Without a cluster, nil.
func (s *Server) interceptUpgrade() func(rawQuery string) bool {
	if s.cluster == nil {
		return nil
	}
	return func(rawQuery string) bool {
		if rawQuery == "" {
			return false
		}
		q, _ := url.ParseQuery(rawQuery)
		id := q.Get("session")
		return id != "" && !s.hub.Has(id)
	}
}

// ListenAndServe serves until Shutdown. It returns nil after a clean
// shutdown.
func (s *Server) ListenAndServe() error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.log.Info("gameserver listening", zap.String("addr", s.listener.Addr().String()), zap.String("node", s.cfg.Node), zap.Bool("cluster", s.cluster != nil))
	if s.cluster != nil {
		s.cluster.start()
	}
	defer close(s.served)
	// WebSocket upgrades and the fallback's POSTs skip net/http (see
	// transport.Front and QuickRoute); every other request, and a resume
	// whose session may live on another node, goes to s.http.
	err := s.http.Serve(s.ws.Listen(s.listener, "/ws", s.interceptUpgrade(), s.fb.quickRoute()))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown drains the node: /readyz fails at once and new connections
// are refused. In a cluster, rooms that can snapshot and every session
// move to other nodes (see drain.go); rooms that cannot run until they end
// or ctx is nearly over. Then every remaining session is told MOVE (come
// back after a jittered delay) and closed with 4002, rooms are disposed,
// and the node leaves the cluster. Without a deadline in ctx,
// ShutdownTimeout bounds it.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.shutdown(ctx) })
	return s.shutdownErr
}

func (s *Server) shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.backendDraining()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
		defer cancel()
	}
	s.ws.Drain()
	if s.cluster != nil {
		s.cluster.drain(ctx)
		s.awaitRooms(ctx)
	}
	s.rooms.Shutdown("server shutting down")
	for _, sess := range s.hub.Sessions() {
		if sess.Active() {
			sess.Control(&protocol.Move{DelayMs: moveDelay()})
		}
	}
	s.hub.Shutdown(protocol.CloseDraining, "server restarting")
	wsErr := s.ws.Shutdown(ctx, uint16(protocol.CloseDraining), "server restarting")
	httpErr := s.http.Shutdown(ctx)
	s.hub.Stop()
	if s.cluster != nil {
		s.cluster.stop(ctx)
	}
	s.stopBackend(ctx)
	return errors.Join(httpErr, wsErr)
}

// awaitRooms waits for the rooms that could not move to end, until shortly
// before ctx's deadline. A room nobody plays in or holds a seat in is not
// waited for: it would only wait for its empty timeout.
func (s *Server) awaitRooms(ctx context.Context) {
	deadline, _ := ctx.Deadline()
	margin := time.Until(deadline) / 10
	for s.roomsInUse() && time.Until(deadline) > margin {
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// roomsInUse reports whether any room has a player or a held seat.
func (s *Server) roomsInUse() bool {
	for _, r := range s.rooms.Rooms("") {
		if r.Players > 0 {
			return true
		}
	}
	return false
}

// adoptSession imports a session that moved here (cluster mode).
func (s *Server) adoptSession(id string) bool {
	if s.cluster == nil {
		return false
	}
	return s.cluster.adopt(id)
}

// Register adds a room type to this server. Call it before ListenAndServe.
func (s *Server) Register(kind string, factory game.HandlerFunc, cfg game.RoomConfig) error {
	if err := s.rooms.Register(kind, factory, cfg); err != nil {
		return fmt.Errorf("gameserver: %w", err)
	}
	return nil
}

// roomRouter hands sessions' room operations and game messages to the
// room engine, or, for a room on another node, to the cluster.
type roomRouter struct{ s *Server }

func (r roomRouter) Route(sess *session.Session, t protocol.MsgType, body []byte) error {
	c := r.s.cluster
	if c == nil {
		return r.s.rooms.Handle(sess, t, body)
	}
	switch d := sess.Data().(type) {
	case *remoteSeat:
		switch t {
		case protocol.TypeJoin:
			var j protocol.Join
			_ = j.Decode(body)
			return &roomReqError{protocol.NewError(protocol.CodeAlreadyInRoom, "already in a room: leave it first"), j.ReqID}
		case protocol.TypeList:
			return r.list(sess, body)
		}
		return d.forward(append(protocol.AppendType(nil, t), body...))
	case pendingJoin:
		if t == protocol.TypeList {
			return r.list(sess, body)
		}
		return protocol.NewError(protocol.CodeUnavailable, "a join is in progress")
	}
	switch t {
	case protocol.TypeJoin:
		var j protocol.Join
		if err := j.Decode(body); err != nil {
			return err
		}
		if sess.Data() != nil {
			return &roomReqError{protocol.NewError(protocol.CodeAlreadyInRoom, "already in a room: leave it first"), j.ReqID}
		}
		sess.SetData(pendingJoin{})
		j.Options = append([]byte(nil), j.Options...) // body is the transport's buffer
		raw := append(protocol.AppendType(nil, t), body...)
		go c.join(sess, j, raw)
		return nil
	case protocol.TypeList:
		return r.list(sess, body)
	}
	return r.s.rooms.Handle(sess, t, body)
}

// pendingJoin marks a session whose JOIN is being placed in the cluster.
type pendingJoin struct{}

type roomReqError struct {
	Err   *protocol.Error
	ReqID uint32
}

func (e *roomReqError) Error() string     { return e.Err.Error() }
func (e *roomReqError) Unwrap() error     { return e.Err }
func (e *roomReqError) RequestID() uint32 { return e.ReqID }

// list answers LIST with the rooms of every node.
func (r roomRouter) list(sess *session.Session, body []byte) error {
	var l protocol.List
	if err := l.Decode(body); err != nil {
		return err
	}
	c := r.s.cluster
	c.mu.Lock()
	entries := c.rooms
	c.mu.Unlock()
	out := protocol.Rooms{ReqID: l.ReqID}
	for _, e := range entries {
		if (l.Kind != "" && e.Kind != l.Kind) || e.Private || e.Locked || e.Players >= e.MaxPlayers {
			continue
		}
		out.Rooms = append(out.Rooms, protocol.RoomInfo{RoomID: e.ID, Kind: e.Kind, Players: uint32(e.Players), MaxPlayers: uint32(e.MaxPlayers), Metadata: e.Metadata})
		if len(out.Rooms) == protocol.MaxRooms {
			break
		}
	}
	return sess.SendMessage(&out)
}

func (r roomRouter) Started(s *session.Session) {
	if c := r.s.cluster; c != nil {
		go c.recordSession(context.Background(), s.ID())
	}
}

func (r roomRouter) Detached(s *session.Session) (time.Duration, bool) {
	if rs, ok := s.Data().(*remoteSeat); ok {
		// The room's node answers with its window (OpSeatGrace).
		rs.event(cluster.SeatDetached)
		return 0, false
	}
	return r.s.rooms.Detached(s)
}

func (r roomRouter) Resumed(s *session.Session) {
	switch d := s.Data().(type) {
	case *remoteSeat:
		d.event(cluster.SeatResumed)
		return
	case *movedSeat:
		r.s.cluster.reseat(s, d)
		return
	}
	r.s.rooms.Resumed(s)
}

func (r roomRouter) Closed(s *session.Session) {
	if rs, ok := s.Data().(*remoteSeat); ok {
		rs.event(cluster.SeatClosed)
		rs.c.forgetSeat(rs)
	} else if _, moved := s.Data().(*movedSeat); moved {
		// An adopted session that never came back: its held seat expires
		// in its room.
	} else {
		r.s.rooms.Closed(s)
	}
	r.s.fb.forget(s.ID())
	if c := r.s.cluster; c != nil {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), c.ttl)
			defer cancel()
			_ = c.dir.DropSession(ctx, s.ID(), c.self)
		}()
	}
}

// wsHandler connects transport events to sessions.
type wsHandler struct{ hub *session.Hub }

func (h wsHandler) OnOpen(c *transport.Conn) { h.hub.Open(c) }

func (h wsHandler) OnMessage(c *transport.Conn, msg []byte) {
	h.hub.Message(c.Data().(*session.Session), c, msg)
}

func (h wsHandler) OnClose(c *transport.Conn, info transport.CloseInfo) {
	h.hub.ConnClosed(c.Data().(*session.Session), c, uint16(info.Code), info.ByPeer)
}
