package gameserver

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gameserver/gameserver/internal/session"
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
	// TrustedProxies lists the proxies and load balancers in front of the
	// server, as IP addresses or CIDR prefixes ("10.0.0.0/8"). A request
	// from one of them names its client in X-Forwarded-For; the per-IP
	// limits then count that client, not the proxy. Empty means the TCP
	// peer is the client.
	TrustedProxies []string

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

	// HandshakeRate is the WebSocket upgrades per second one IP address may
	// make, HandshakeBurst the bucket size; over it, upgrades get 429. Zero
	// means 100 and 200; a negative rate turns the limit off.
	HandshakeRate  float64
	HandshakeBurst int

	// AuthSecret is the shared secret of HS256 JWTs that clients send in
	// HELLO (at least 32 bytes). Empty means no built-in authenticator.
	AuthSecret string
	// Authenticator checks tokens in place of the built-in HS256 one.
	Authenticator Authenticator
	// RequireAuth refuses clients without a valid token. False (the
	// default) also admits anonymous sessions.
	RequireAuth bool

	// ResumeWindow is how long a session whose connection dropped waits for
	// the client to resume, when its room type does not set its own. Zero
	// means 30 s.
	ResumeWindow time.Duration
	// ReplayMessages and ReplayBytes bound each session's buffer of
	// unacknowledged messages kept for a resume. Zero means 1024 and 1 MiB.
	ReplayMessages int
	ReplayBytes    int
	// MaxResumesPerMinute bounds how often one session may be resumed, so a
	// client reconnecting in a tight loop is refused (429). Zero means 12.
	MaxResumesPerMinute int

	// RateLimit is the messages per second one session may send, RateBurst
	// the bucket size. Zero means 50 and 100.
	RateLimit float64
	RateBurst int

	// Redis, as redis://host:port/db, turns on cluster mode: the node
	// registers in Redis, owns its rooms under leases, and plays with the
	// other nodes. Empty means a single node, all in memory.
	Redis string
	// Advertise is the host:port other nodes reach this one at. Empty
	// means the listen address (with 127.0.0.1 for an empty host).
	Advertise string
	// ClusterSecret authenticates node-to-node links; every node of a
	// cluster needs the same one. Required in cluster mode.
	ClusterSecret string
	// LeaseTTL is how long a node's registration and room leases last
	// without renewal; a node that dies loses them after it. Zero means 5 s.
	LeaseTTL time.Duration

	// ShutdownTimeout bounds Shutdown when its context has no deadline.
	// Zero means 10 s.
	ShutdownTimeout time.Duration

	// Logger receives the server's logs. Nil means no logging.
	Logger *zap.Logger

	// APIKeys are the keys the backend API (/api/v1) and the monitor
	// (/monitor) accept, each at least 16 bytes. Empty turns both off
	// (404).
	APIKeys []string
	// WebhookURLs receive the node's events (rooms created and disposed,
	// players joining and leaving, the node draining) as signed JSON
	// POSTs. Empty means no webhooks.
	WebhookURLs []string
	// WebhookSecret signs webhook deliveries (HMAC-SHA256); at least 16
	// bytes, required with WebhookURLs.
	WebhookSecret string
	// WebhookTimeout bounds one delivery attempt. Zero means 5 s.
	WebhookTimeout time.Duration
	// WebhookMaxAttempts bounds the attempts per event and URL. Zero means 8.
	WebhookMaxAttempts int
	// WebhookQueueSize bounds the events waiting for each URL; past it
	// new events are dropped (and counted). Zero means 4096.
	WebhookQueueSize int
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
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 5 * time.Second
	}
	if c.Redis != "" {
		switch {
		case c.ClusterSecret == "":
			return errors.New("cluster mode needs a cluster secret")
		case c.LeaseTTL < 500*time.Millisecond:
			return errors.New("lease TTL must be at least 500ms")
		}
		if c.Advertise == "" {
			host, port, _ := net.SplitHostPort(c.Addr)
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			c.Advertise = net.JoinHostPort(host, port)
		}
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			return fmt.Errorf("advertise %q: %w", c.Advertise, err)
		}
	}
	switch {
	case c.HandshakeRate == 0:
		c.HandshakeRate = 100
	case c.HandshakeRate < 0:
		c.HandshakeRate = 0 // off
	}
	if c.HandshakeBurst == 0 {
		c.HandshakeBurst = 200
	}
	if c.HandshakeBurst < 0 {
		return errors.New("handshake burst must not be negative")
	}
	return nil
}

// Identity is who an authentication token says a client is.
type Identity struct {
	// UserID is the token's subject. It must not be empty.
	UserID string
	// Claims are passed to the room's join callback (game.JoinRequest).
	Claims map[string]any
	// Expires closes the session with 4500 when it passes; zero means never.
	Expires time.Time
}

// Authenticator checks the token a client sends in HELLO (and again in
// RESUME for an authenticated session). It is called on a transport
// worker and must not block for long. Return a *game.Error to choose the
// message the client sees; other errors read "invalid token".
type Authenticator interface {
	Authenticate(token string) (Identity, error)
}

func (c *Config) authenticator() (session.Authenticator, error) {
	switch {
	case c.Authenticator != nil:
		return authAdapter{c.Authenticator}, nil
	case c.AuthSecret != "":
		return session.NewHMAC([]byte(c.AuthSecret))
	case c.RequireAuth:
		return nil, errors.New("RequireAuth needs an AuthSecret or an Authenticator")
	}
	return nil, nil
}

type authAdapter struct{ a Authenticator }

func (a authAdapter) Authenticate(token string) (session.Identity, error) {
	id, err := a.a.Authenticate(token)
	if err != nil {
		var ge *game.Error
		if errors.As(err, &ge) {
			return session.Identity{}, protocol.NewError(protocol.CodeUnauthorized, ge.Message)
		}
		return session.Identity{}, err
	}
	return session.Identity{UserID: id.UserID, Claims: id.Claims, Expires: id.Expires}, nil
}
