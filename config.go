package gameserver

import (
	"errors"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"
)

// Config is a server's configuration. The zero value of every field means
// the default in its comment, so Config{} runs a single node on :8080.
type Config struct {
	// Addr is the listen address, host:port. Empty means ":8080".
	Addr string
	// Node names this server to clients and in logs. Empty means the host
	// name.
	Node string

	// MaxMessageBytes bounds one inbound message. Zero means 64 KiB.
	MaxMessageBytes int
	// MaxOutboundBytes bounds a connection's unsent queue before it is
	// closed as a slow consumer. Zero means 1 MiB.
	MaxOutboundBytes int
	// MaxConns bounds open connections. Zero means the descriptor limit
	// minus a reserve.
	MaxConns int
	// MaxConnsPerIP bounds open connections from one address. Zero means
	// no bound.
	MaxConnsPerIP int
	// AllowedOrigins lists browser origins allowed to connect
	// ("https://game.example.com", "https://*.example.com", "*"). Empty
	// means same host only.
	AllowedOrigins []string

	// HandshakeTimeout bounds reading an HTTP request's headers, the
	// WebSocket upgrade included. Zero means 5 s.
	HandshakeTimeout time.Duration
	// HelloTimeout bounds the time from upgrade to HELLO. Zero means 10 s.
	HelloTimeout time.Duration
	// PingInterval is how often the server pings each session. Zero means 10 s.
	PingInterval time.Duration
	// PingTimeout is how long past PingInterval a silent session is kept.
	// Zero means 10 s.
	PingTimeout time.Duration
	// WriteTimeout is how long a connection's socket may take nothing while
	// data waits before it is closed as a slow consumer. Zero means 5 s.
	WriteTimeout time.Duration

	// RateLimit is the messages per second one session may send, RateBurst
	// the bucket size. Zero means 50 and 100.
	RateLimit float64
	RateBurst int

	// ShutdownTimeout bounds Shutdown when its context has no deadline.
	// Zero means 10 s.
	ShutdownTimeout time.Duration

	// Logger receives the server's logs. Nil means no logging.
	Logger *zap.Logger
}

func (c *Config) setDefaults() error {
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr %q: %w", c.Addr, err)
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.HandshakeTimeout < 0 || c.ShutdownTimeout < 0 {
		return errors.New("timeouts must not be negative")
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}
