package gameserver

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/gameserver/gameserver/game"
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
	sseStats *transport.Stats
	http     *http.Server
	registry *prometheus.Registry
	ready    atomic.Bool
	listener net.Listener
	served   chan struct{}
}

// New builds a server; nothing listens until ListenAndServe or Serve.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("gameserver: %w", err)
	}
	if cfg.Node == "" {
		cfg.Node, _ = os.Hostname()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, served: make(chan struct{}), sseStats: new(transport.Stats)}
	s.fb = newFallback(s)
	s.registry = prometheus.NewRegistry()
	if err := s.initBackend(); err != nil {
		return nil, fmt.Errorf("gameserver: %w", err)
	}
	s.rooms = room.NewManager(room.Config{Node: cfg.Node, Logger: cfg.Logger, TickObserver: tickObserver(s.registry), Observer: s.observer()})
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
		Node:                cfg.Node,
		PingInterval:        cfg.PingInterval,
		PingTimeout:         cfg.PingTimeout,
		HelloTimeout:        cfg.HelloTimeout,
		RateLimit:           cfg.RateLimit,
		RateBurst:           cfg.RateBurst,
		MaxMessage:          cfg.MaxMessageBytes,
		Logger:              cfg.Logger,
	}, roomRouter{s.rooms, s.fb})
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
		HandshakeRate:    cfg.HandshakeRate,
		HandshakeBurst:   cfg.HandshakeBurst,
		Logger:           cfg.Logger,
	}, wsHandler{hub: hub})
	if err != nil {
		hub.Stop()
		return nil, fmt.Errorf("gameserver: %w", err)
	}
	s.ws = ws
	registerMetrics(s)
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(cfg.Logger.Named("http")),
	}
	s.ready.Store(true)
	return s, nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ws", s.ws)
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
	return nil
}

// ListenAndServe serves until Shutdown. It returns nil after a clean
// shutdown.
func (s *Server) ListenAndServe() error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.log.Info("gameserver listening", zap.String("addr", s.listener.Addr().String()), zap.String("node", s.cfg.Node))
	defer close(s.served)
	err := s.http.Serve(s.listener)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown drains the node: /readyz fails at once, new connections are
// refused, every session is closed with 4002 (reconnect later), and the
// process may exit when Shutdown returns. It waits for the closes until ctx
// ends (or ShutdownTimeout when ctx has no deadline).
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.backendDraining()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
		defer cancel()
	}
	s.ws.Drain()
	httpErr := s.http.Shutdown(ctx)
	s.rooms.Shutdown("server shutting down")
	wsErr := s.ws.Shutdown(ctx, uint16(protocol.CloseDraining), "server restarting")
	s.hub.Stop()
	s.stopBackend(ctx)
	return errors.Join(httpErr, wsErr)
}

// Register adds a room type to this server. Call it before ListenAndServe.
func (s *Server) Register(kind string, factory game.HandlerFunc, cfg game.RoomConfig) error {
	if err := s.rooms.Register(kind, factory, cfg); err != nil {
		return fmt.Errorf("gameserver: %w", err)
	}
	return nil
}

// roomRouter hands sessions' room operations and game messages to the
// room engine.
type roomRouter struct {
	m  *room.Manager
	fb *fallback
}

func (r roomRouter) Route(s *session.Session, t protocol.MsgType, body []byte) error {
	return r.m.Handle(s, t, body)
}

func (r roomRouter) Detached(s *session.Session) (time.Duration, bool) { return r.m.Detached(s) }
func (r roomRouter) Resumed(s *session.Session)                        { r.m.Resumed(s) }
func (r roomRouter) Closed(s *session.Session) {
	r.m.Closed(s)
	r.fb.forget(s.ID())
}

// wsHandler connects transport events to sessions.
type wsHandler struct{ hub *session.Hub }

func (h wsHandler) OnOpen(c *transport.Conn) { h.hub.Open(c) }

func (h wsHandler) OnMessage(c *transport.Conn, msg []byte) {
	h.hub.Message(c.Data().(*session.Session), msg)
}

func (h wsHandler) OnClose(c *transport.Conn, info transport.CloseInfo) {
	h.hub.ConnClosed(c.Data().(*session.Session), c, uint16(info.Code), info.ByPeer)
}
