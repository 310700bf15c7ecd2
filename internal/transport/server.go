package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gobwas/ws"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
)

// Handler receives the events of every connection. Callbacks for one
// connection never run concurrently; callbacks for different connections do.
// None may block: they run on the transport's few workers.
type Handler interface {
	// OnOpen is called once, after the upgrade and before any message.
	OnOpen(c *Conn)
	// OnMessage is called for each complete binary message. msg is only
	// valid until OnMessage returns.
	OnMessage(c *Conn, msg []byte)
	// OnClose is called once when the connection is gone; c.Send fails from
	// then on.
	OnClose(c *Conn, info CloseInfo)
}

// Config tunes the transport. The zero value of each field means the default
// given in its comment.
type Config struct {
	// MaxMessageBytes bounds one inbound message, summed over its fragments.
	// A frame that would pass it is refused with close 1009 before its
	// payload is read. Zero means 64 KiB.
	MaxMessageBytes int
	// MaxOutboundBytes bounds a connection's unwritten queue; past it the
	// connection is closed with CloseSlowConsumer. Zero means 1 MiB; at
	// most 1 GiB.
	MaxOutboundBytes int
	// WriteTimeout is how long queued data may wait for a socket that takes
	// nothing before the connection is closed as a slow consumer. Zero means
	// 5 s.
	WriteTimeout time.Duration
	// CloseTimeout is how long a close handshake the server started waits
	// for the peer's close frame. Zero means 2 s.
	CloseTimeout time.Duration
	// HandshakeTimeout bounds an upgrade. Through a Front (see Listen) it
	// bounds reading the request head, from the accept, and writing the
	// response; through ServeHTTP only writing the response, the request
	// being bounded by the http.Server's ReadHeaderTimeout. Zero means 5 s.
	HandshakeTimeout time.Duration
	// MaxConns bounds open connections; further upgrades get 503. Zero means
	// the descriptor limit minus 256.
	MaxConns int
	// MaxConnsPerIP bounds open connections from one IP address; further
	// upgrades get 429. Zero means no bound (players behind one NAT share an
	// address).
	MaxConnsPerIP int
	// AllowedOrigins lists the browser origins that may connect, as
	// "https://game.example.com", "https://*.example.com" or "*". A request
	// without an Origin header (not a browser) is always allowed. Empty means
	// only the origin whose host equals the request's Host.
	AllowedOrigins []string
	// TrustedProxies lists the proxies (IP addresses and CIDR prefixes) whose
	// X-Forwarded-For header names the client: behind them the per-IP
	// limits and RemoteAddr use the client's address, not the proxy's. A
	// peer outside the list is the client whatever it sends. Empty means
	// the header is ignored.
	TrustedProxies []string
	// HandshakeRate is the upgrades per second one IP address may make,
	// HandshakeBurst the bucket size; over it, upgrades get 429. Zero rate
	// means no limit; zero burst means twice the rate.
	HandshakeRate  float64
	HandshakeBurst int
	// Workers is the number of goroutines reading frames. Zero means
	// 2 x GOMAXPROCS.
	Workers int
	// Logger receives transport errors. Nil means no logging.
	Logger *zap.Logger
}

func (c *Config) setDefaults() error {
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 64 << 10
	}
	if c.MaxOutboundBytes == 0 {
		c.MaxOutboundBytes = 1 << 20
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 2 * time.Second
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.Workers == 0 {
		c.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	const maxOutboundBytes = 1 << 30 // a connection counts its queue in an int32
	switch {
	case c.MaxMessageBytes < 16 || c.MaxMessageBytes > 16<<20:
		return fmt.Errorf("transport: MaxMessageBytes %d out of range [16, 16 MiB]", c.MaxMessageBytes)
	case c.MaxOutboundBytes < c.MaxMessageBytes:
		return fmt.Errorf("transport: MaxOutboundBytes %d below MaxMessageBytes %d", c.MaxOutboundBytes, c.MaxMessageBytes)
	case c.MaxOutboundBytes > maxOutboundBytes:
		return fmt.Errorf("transport: MaxOutboundBytes %d above 1 GiB", c.MaxOutboundBytes)
	case c.MaxConns < 0 || c.MaxConnsPerIP < 0 || c.Workers < 0:
		return errors.New("transport: negative limit")
	case c.WriteTimeout < 0 || c.CloseTimeout < 0 || c.HandshakeTimeout < 0:
		return errors.New("transport: negative timeout")
	}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
			return fmt.Errorf("transport: allowed origin %q: want scheme://host[:port], a *. wildcard host, or *", o)
		}
	}
	return nil
}

// RejectReason says why an upgrade was refused; it doubles as a metric label.
type RejectReason int

// Reasons an upgrade is refused.
const (
	RejectOrigin    RejectReason = iota // 403: Origin not allowed
	RejectPerIP                         // 429: too many connections from the address
	RejectFull                          // 503: MaxConns reached
	RejectDraining                      // 503: the server is shutting down
	RejectHandshake                     // 400/426: a malformed upgrade request
	RejectRate                          // 429: too many upgrades per second from the address
	numRejectReasons
)

func (r RejectReason) String() string {
	return [...]string{"origin", "per_ip", "full", "draining", "handshake", "rate"}[r]
}

// RejectReasons lists every reason, for metrics.
func RejectReasons() []RejectReason {
	r := make([]RejectReason, numRejectReasons)
	for i := range r {
		r[i] = RejectReason(i)
	}
	return r
}

// Stats are the transport's counters, updated atomically.
type Stats struct {
	Accepted       atomic.Uint64
	Open           atomic.Int64
	Rejected       [numRejectReasons]atomic.Uint64
	MessagesIn     atomic.Uint64
	BytesIn        atomic.Uint64
	FramesOut      atomic.Uint64
	BytesOut       atomic.Uint64
	SlowConsumers  atomic.Uint64
	ProtocolErrors atomic.Uint64
	HandlerPanics  atomic.Uint64
}

// Server upgrades HTTP requests to WebSocket connections and serves them
// from an epoll loop. It implements http.Handler for the upgrade path.
type Server struct {
	cfg     Config
	handler Handler
	log     *zap.Logger
	stats   Stats

	// The HTTP fallback's event streams (see SSEConn): their counters, how
	// many sockets are attached (with the relays' of tunnels, which
	// Shutdown waits for too), and when the sweeper next writes them a
	// keep-alive comment (Unix nanoseconds; the sweeper's alone).
	streamStats   Stats
	streams       atomic.Int64
	nextKeepAlive int64

	poller    *poller
	work      chan *Conn
	workersWG sync.WaitGroup
	pollersWG sync.WaitGroup
	upgrader  ws.HTTPUpgrader

	conns    []atomic.Pointer[Conn] // indexed by descriptor
	front    atomic.Pointer[Front]  // set by Listen
	draining atomic.Bool
	// shutting is set when Shutdown begins: from then on, a connection
	// that answered an HTTP request is not kept for the next (see
	// Front.quick and Front.handBack).
	shutting atomic.Bool
	stopOnce sync.Once
	done     chan struct{}

	ipMu        sync.Mutex
	perIP       map[netip.Addr]int32
	closeCode   uint16 // set by Shutdown, guarded by ipMu
	closeReason string
	ipRate      map[netip.Addr]*ipLimiter
	trusted     []netip.Prefix // Config.TrustedProxies
}

// ipLimiter is one address's upgrade-rate bucket.
type ipLimiter struct {
	lim  *rate.Limiter
	last time.Time
}

// maxRateEntries bounds the upgrade-rate table; past it, idle entries are
// dropped early.
const maxRateEntries = 1 << 16

// New starts the poller and workers. Call Shutdown to stop them.
func New(cfg Config, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("transport: nil handler")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	trusted, err := ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return nil, fmt.Errorf("transport: getrlimit: %w", err)
	}
	limit := int(min(rl.Cur, 1<<21))
	if cfg.MaxConns == 0 {
		cfg.MaxConns = max(limit-256, 1)
	}
	s := &Server{
		cfg:     cfg,
		handler: h,
		log:     cfg.Logger,
		work:    make(chan *Conn, 4096),
		conns:   make([]atomic.Pointer[Conn], limit),
		done:    make(chan struct{}),
		perIP:   make(map[netip.Addr]int32),
		ipRate:  make(map[netip.Addr]*ipLimiter),
		trusted: trusted,
	}
	if cfg.HandshakeRate > 0 && cfg.HandshakeBurst == 0 {
		s.cfg.HandshakeBurst = max(1, int(2*cfg.HandshakeRate))
	}
	s.upgrader = ws.HTTPUpgrader{Timeout: cfg.HandshakeTimeout}
	p, err := newPoller(s)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	s.poller = p
	s.pollersWG.Add(1)
	go p.run()
	s.workersWG.Add(cfg.Workers)
	for i := 0; i < cfg.Workers; i++ {
		go newWorker(s).run()
	}
	go s.sweep()
	return s, nil
}

// ClientAddr is the address of the client that sent r: its TCP peer, or
// the client a trusted proxy names in X-Forwarded-For (see
// Config.TrustedProxies). The limits apply to it.
func (s *Server) ClientAddr(r *http.Request) netip.AddrPort {
	peer, _ := netip.ParseAddrPort(r.RemoteAddr)
	if len(s.trusted) == 0 {
		return peer
	}
	return clientAddr(s.trusted, peer, r.Header.Values("X-Forwarded-For"))
}

// Stats returns the live counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Config returns the configuration in force, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// ServeHTTP checks the request against the server's limits and upgrades it.
// It serves upgrades that do not come through a Front: an embedding
// http.Server, or requests a Front passed on.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	remote := s.ClientAddr(r)
	ip := remote.Addr().Unmap()
	if rf := s.admit(r.Header.Get("Origin"), r.Host, ip); rf != nil {
		s.reject(w, rf)
		return
	}
	nc, rw, _, err := s.upgrader.Upgrade(r, w)
	if err != nil {
		s.stats.Rejected[RejectHandshake].Add(1)
		if nc != nil {
			_ = nc.Close()
		}
		s.releaseIP(ip)
		s.stats.Open.Add(-1)
		return
	}
	// Bytes the client sent right behind its request are already in the
	// HTTP server's buffer (or still in the Front's, past what the HTTP
	// server read): they become the connection's first read.
	var buffered []byte
	if n := rw.Reader.Buffered(); n > 0 {
		buffered, _ = rw.Reader.Peek(n)
	}
	if pc, ok := nc.(*prefixConn); ok {
		if rest := pc.unread(); len(rest) > 0 {
			buffered = append(buffered[:len(buffered):len(buffered)], rest...)
		}
	}
	s.attach(nc, remote, buffered)
}

// refusal is why an upgrade is refused, and the answer.
type refusal struct {
	reason RejectReason
	status int
	msg    string
}

var (
	refuseDraining = &refusal{RejectDraining, http.StatusServiceUnavailable, "server is shutting down"}
	refuseOrigin   = &refusal{RejectOrigin, http.StatusForbidden, "origin not allowed"}
	refuseRate     = &refusal{RejectRate, http.StatusTooManyRequests, "too many connection attempts from this address: retry later"}
	refuseFull     = &refusal{RejectFull, http.StatusServiceUnavailable, "server is full"}
	refusePerIP    = &refusal{RejectPerIP, http.StatusTooManyRequests, "too many connections from this address"}
)

// admit applies the server's limits to an upgrade from ip whose request
// carries origin (the Origin header, "" if none) and host (the Host header;
// read only when origin is not ""). On nil the upgrade holds a place in
// MaxConns and MaxConnsPerIP: attach keeps it for the connection, or the
// caller gives it back (releaseIP and Open) if the upgrade fails.
func (s *Server) admit(origin, host string, ip netip.Addr) *refusal {
	if s.draining.Load() {
		return refuseDraining
	}
	if !s.originAllowed(origin, host) {
		return refuseOrigin
	}
	if !s.allowRate(ip) {
		return refuseRate
	}
	if s.stats.Open.Add(1) > int64(s.cfg.MaxConns) {
		s.stats.Open.Add(-1)
		return refuseFull
	}
	if !s.acquireIP(ip) {
		s.stats.Open.Add(-1)
		return refusePerIP
	}
	return nil
}

// attach takes over an upgraded connection (the 101 response is out):
// it registers it, calls OnOpen, watches it and hands it to a worker.
// buffered is what the client sent after its request; it is copied. The
// upgrade's place in the limits (see admit) passes to the connection, or
// is given back if it cannot be registered.
func (s *Server) attach(nc net.Conn, remote netip.AddrPort, buffered []byte) {
	c, err := s.register(nc, remote, buffered)
	if err != nil {
		// The 101 response is out, so the refusal is closing the socket.
		s.logError("register connection", err)
		s.releaseIP(remote.Addr().Unmap())
		s.stats.Open.Add(-1)
		return
	}
	// This goroutine owns c (see Conn) until it hands c to a worker:
	// wake-ups until then are only counted, so no message can be delivered
	// before OnOpen and no teardown can close the descriptor before it is
	// watched.
	s.opened(c)
	if err := s.poller.add(int(c.fd)); err != nil {
		s.logError("watch connection", err)
		c.setFlag(flagKill, true)
	}
	// Data may have arrived before the descriptor was watched: the first
	// turn reads it.
	s.handOff(c)
}

// attachStream takes over the socket of sc's event stream, hijacked from
// net/http as nc: it moves the socket to a descriptor of the transport's
// own, queues head and the events sc has queued, and hands it to the
// epoll loop. nc is closed whether it succeeds or not.
func (s *Server) attachStream(sc *SSEConn, nc net.Conn, remote netip.AddrPort, kind uint8, head *frame.Frame) error {
	defer head.Release()
	if s.stopped() {
		_ = nc.Close()
		return errors.New("the transport is shut down")
	}
	fd, err := detach(nc)
	if err != nil {
		return err
	}
	if fd >= len(s.conns) {
		_ = unix.Close(fd)
		return fmt.Errorf("descriptor %d outside the table of %d", fd, len(s.conns))
	}
	c := s.newConn(fd, remote, kind, stateOpen, 0)
	c.SetData(sc)
	s.streams.Add(1)
	_ = c.Send(head, 0)
	// This goroutine owns c (see Conn) until it hands c to a worker.
	// Messages sent to sc until now are in its queue; from here on they
	// go to the socket.
	sc.mu.Lock()
	for _, it := range sc.queue {
		ev := newEvent(it.f.B, it.seq, kind == kindStreamChunked)
		_ = c.Send(ev, 0)
		ev.Release()
		it.f.Release()
	}
	sc.queue, sc.queued = nil, 0
	sc.sock = c
	closed, info := sc.closed, sc.info
	sc.mu.Unlock()
	if closed {
		c.closeWith(info) // what was queued, then the close event
	} else if s.draining.Load() {
		if code, reason := s.shutdownClose(); code != 0 {
			sc.Close(code, reason) // Shutdown may have missed it
		}
	}
	c.Flush()
	if err := s.poller.add(fd); err != nil {
		s.logError("watch event stream", err)
		c.setFlag(flagKill, true)
	}
	s.handOff(c)
	return nil
}

// stopped reports whether Shutdown has stopped the poller and workers.
func (s *Server) stopped() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// keepStreamsAlive writes a comment to every open event stream, so proxies
// that end responses idle for a while keep it.
func (s *Server) keepStreamsAlive() {
	var kf [3]*frame.Frame
	for i := range s.conns {
		c := s.conns[i].Load()
		if c == nil || !isStream(c.kind) || c.state.Load() != stateOpen {
			continue
		}
		if kf[c.kind] == nil {
			kf[c.kind] = newKeepAlive(c.kind)
		}
		_ = c.SendNow(kf[c.kind])
	}
	for _, f := range kf {
		if f != nil {
			f.Release()
		}
	}
}

// opened reports the newly open connection c to the handler; its owner
// calls it. If Shutdown began meanwhile, it may have missed c: c is closed
// as Shutdown closes the others.
func (s *Server) opened(c *Conn) {
	s.stats.Accepted.Add(1)
	s.handler.OnOpen(c)
	if s.draining.Load() {
		if code, reason := s.shutdownClose(); code != 0 {
			c.Close(code, reason)
		}
	}
}

// shutdownClose returns the close code and reason Shutdown uses, once it
// has begun.
func (s *Server) shutdownClose() (uint16, string) {
	s.ipMu.Lock()
	defer s.ipMu.Unlock()
	return s.closeCode, s.closeReason
}

func (s *Server) reject(w http.ResponseWriter, rf *refusal) {
	s.stats.Rejected[rf.reason].Add(1)
	w.Header().Set("X-Gameserver-Reject", rf.reason.String())
	http.Error(w, rf.msg, rf.status)
}

// OriginAllowed applies the Origin policy (Config.AllowedOrigins) to r.
func (s *Server) OriginAllowed(r *http.Request) bool {
	return s.originAllowed(r.Header.Get("Origin"), r.Host)
}

// OriginAllowedFor applies the Origin policy to a request with these
// Origin ("" if none) and Host headers (a QuickRequest's).
func (s *Server) OriginAllowedFor(origin, host string) bool {
	return s.originAllowed(origin, host)
}

// originAllowed applies the Origin policy to a request with these Origin
// and Host headers.
func (s *Server) originAllowed(origin, host string) bool {
	if origin == "" {
		return true // not a browser: nothing to hijack
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if len(s.cfg.AllowedOrigins) == 0 {
		return strings.EqualFold(u.Host, host)
	}
	for _, pat := range s.cfg.AllowedOrigins {
		if pat == "*" {
			return true
		}
		p, _ := url.Parse(pat)
		if !strings.EqualFold(p.Scheme, u.Scheme) {
			continue
		}
		if ok, _ := path.Match(strings.ToLower(p.Host), strings.ToLower(u.Host)); ok {
			return true
		}
	}
	return false
}

// AdmitFallback applies the upgrade limits to a request that opens a
// connection by other means (the HTTP fallback): draining, the per-IP
// rate, and MaxConns counting extra connections the caller holds. It
// returns the HTTP status and message of a refusal, or 0.
func (s *Server) AdmitFallback(r *http.Request, extra int64) (int, string) {
	if s.draining.Load() {
		s.stats.Rejected[RejectDraining].Add(1)
		return http.StatusServiceUnavailable, "server is shutting down"
	}
	if !s.allowRate(s.ClientAddr(r).Addr().Unmap()) {
		s.stats.Rejected[RejectRate].Add(1)
		return http.StatusTooManyRequests, "too many connection attempts from this address: retry later"
	}
	if s.stats.Open.Load()+extra >= int64(s.cfg.MaxConns) {
		s.stats.Rejected[RejectFull].Add(1)
		return http.StatusServiceUnavailable, "server is full"
	}
	return 0, ""
}

// allowRate takes a token from ip's upgrade-rate bucket.
func (s *Server) allowRate(ip netip.Addr) bool {
	if s.cfg.HandshakeRate <= 0 {
		return true
	}
	now := time.Now()
	s.ipMu.Lock()
	defer s.ipMu.Unlock()
	l := s.ipRate[ip]
	if l == nil {
		if len(s.ipRate) >= maxRateEntries {
			s.pruneRateLocked(now, 0)
		}
		l = &ipLimiter{lim: rate.NewLimiter(rate.Limit(s.cfg.HandshakeRate), s.cfg.HandshakeBurst)}
		s.ipRate[ip] = l
	}
	l.last = now
	return l.lim.AllowN(now, 1)
}

// pruneRateLocked forgets addresses idle for longer than idle. ipMu must be
// held.
func (s *Server) pruneRateLocked(now time.Time, idle time.Duration) {
	for ip, l := range s.ipRate {
		if now.Sub(l.last) >= idle {
			delete(s.ipRate, ip)
		}
	}
}

func (s *Server) acquireIP(ip netip.Addr) bool {
	if s.cfg.MaxConnsPerIP == 0 {
		return true
	}
	s.ipMu.Lock()
	defer s.ipMu.Unlock()
	if s.perIP[ip] >= int32(s.cfg.MaxConnsPerIP) {
		return false
	}
	s.perIP[ip]++
	return true
}

func (s *Server) releaseIP(ip netip.Addr) {
	if s.cfg.MaxConnsPerIP == 0 {
		return
	}
	s.ipMu.Lock()
	if s.perIP[ip] <= 1 {
		delete(s.perIP, ip)
	} else {
		s.perIP[ip]--
	}
	s.ipMu.Unlock()
}

// register takes over the upgraded nc: it moves the socket to a descriptor
// of the transport's own and closes nc, whether it succeeds or not.
// buffered is what the HTTP server read past the request; it is copied.
// The Conn returned is in the descriptor table, owned by the caller
// (sched is 1), and not yet watched by the poller.
func (s *Server) register(nc net.Conn, remote netip.AddrPort, buffered []byte) (*Conn, error) {
	fd, err := detach(nc)
	if err != nil {
		return nil, err
	}
	if fd >= len(s.conns) {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("descriptor %d outside the table of %d", fd, len(s.conns))
	}
	c := s.newConn(fd, remote, kindWebSocket, stateOpen, 0)
	if len(buffered) > 0 {
		c.keepPartial(buffered, len(buffered))
	}
	return c, nil
}

// newConn makes the Conn of socket fd, of kind, in state (stateOpen, or
// stateHandshake until deadline), and enters it in the descriptor table,
// owned by the caller (sched is 1) and not yet watched by the poller.
func (s *Server) newConn(fd int, remote netip.AddrPort, kind uint8, state uint32, deadline int64) *Conn {
	c := s.makeConn(fd, remote, kind, state, deadline)
	s.conns[fd].Store(c)
	return c
}

// makeConn is newConn without entering the Conn in the table.
func (s *Server) makeConn(fd int, remote netip.AddrPort, kind uint8, state uint32, deadline int64) *Conn {
	c := &Conn{srv: s, fd: int32(fd), kind: kind, deadline: deadline}
	c.setRemote(remote)
	c.out = c.outInline[:0]
	c.state.Store(state)
	c.sched.Store(1)
	c.lastActive.Store(time.Now().UnixNano())
	return c
}

// detach returns a duplicate of nc's socket descriptor, close-on-exec and
// non-blocking, and closes nc. The duplicate refers to the same socket, so
// closing nc neither ends the connection nor sends anything to the peer; it
// releases the net.Conn, its netFD and addresses, and the runtime's poll
// descriptor (taking the socket out of the Go netpoller). At steady state
// the connection still uses one descriptor; the duplicate needs a spare
// one only until nc is closed. With none left (EMFILE) the connection is
// refused.
func detach(nc net.Conn) (int, error) {
	defer nc.Close()
	return dupSocket(nc)
}

// dupSocket returns a duplicate of nc's socket descriptor, close-on-exec
// and non-blocking (see detach).
func dupSocket(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("connection %T has no descriptor", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(f uintptr) {
		fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup: %w", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("set non-blocking: %w", err)
	}
	return fd, nil
}

// unregisterLocked takes c's descriptor out of the epoll set and the
// descriptor table. c.mu must be held; the descriptor is closed next.
func (s *Server) unregisterLocked(c *Conn) {
	s.poller.del(int(c.fd))
	s.conns[c.fd].CompareAndSwap(c, nil)
}

// release gives back c's place in the connection limits.
func (s *Server) release(c *Conn) {
	s.releaseIP(c.RemoteAddr().Addr())
	s.stats.Open.Add(-1)
}

func (s *Server) lookup(fd int) *Conn {
	if fd < 0 || fd >= len(s.conns) {
		return nil
	}
	return s.conns[fd].Load()
}

// schedule hands c to a worker unless it already has an owner.
func (s *Server) schedule(c *Conn) {
	if c.sched.Add(1) == 1 {
		s.handOff(c)
	}
}

// handOff passes c, which the caller owns, to a worker.
func (s *Server) handOff(c *Conn) {
	select {
	case s.work <- c:
	case <-s.done:
	}
}

// sweep enforces write and close deadlines once a second. Heartbeats are
// the session layer's: it reads Conn.LastActive.
func (s *Server) sweep() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			s.sweepOnce(now.UnixNano())
			if now.UnixNano() >= s.nextKeepAlive {
				s.nextKeepAlive = now.Add(sseKeepAlive).UnixNano()
				if s.streams.Load() > 0 {
					s.keepStreamsAlive()
				}
			}
			if now.Second() == 0 {
				s.ipMu.Lock()
				s.pruneRateLocked(now, time.Minute)
				s.ipMu.Unlock()
			}
		}
	}
}

func (s *Server) sweepOnce(now int64) {
	for i := range s.conns {
		c := s.conns[i].Load()
		if c == nil {
			continue
		}
		switch c.state.Load() {
		case stateClosing, stateHandshake:
			c.mu.Lock()
			expired := now > c.deadline
			c.mu.Unlock()
			if expired {
				c.requestTeardown()
			}
		case stateOpen:
			if !c.flag(flagWantWrite) {
				continue
			}
			c.mu.Lock()
			stalled := c.waitingOut && now > c.deadline
			c.mu.Unlock()
			if stalled {
				c.countSlowConsumer()
				c.mu.Lock()
				c.closeLocked(CloseInfo{Code: CloseSlowConsumer, Reason: "write timeout"}, true)
				c.mu.Unlock()
			}
		}
	}
}

// Each calls fn for every connection past its handshake.
func (s *Server) Each(fn func(c *Conn)) {
	for i := range s.conns {
		if c := s.conns[i].Load(); c != nil && c.state.Load() != stateHandshake {
			fn(c)
		}
	}
}

// Waiting is the number of connections a Front holds while their next
// request head arrives: new connections, and kept-alive HTTP connections
// between requests. Each holds a descriptor and no goroutine.
func (s *Server) Waiting() int {
	n := 0
	s.eachHandshake(func(*Conn) { n++ })
	return n
}

// eachHandshake calls fn for every connection still awaiting its request
// head.
func (s *Server) eachHandshake(fn func(c *Conn)) {
	for i := range s.conns {
		if c := s.conns[i].Load(); c != nil && c.state.Load() == stateHandshake {
			fn(c)
		}
	}
}

// Drain makes further upgrades fail with 503.
func (s *Server) Drain() { s.draining.Store(true) }

// Shutdown refuses new connections, closes every open one with code and
// reason, waits until they are gone or ctx ends, then stops the poller and
// workers.
func (s *Server) Shutdown(ctx context.Context, code uint16, reason string) error {
	s.ipMu.Lock()
	s.closeCode, s.closeReason = code, reason
	s.ipMu.Unlock()
	s.Drain()
	s.shutting.Store(true)
	s.eachHandshake(func(c *Conn) { c.requestTeardown() })
	s.Each(func(c *Conn) { c.Close(code, reason) })
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
	forced := time.Time{}
	handshaking := func() (found bool) {
		s.eachHandshake(func(*Conn) { found = true })
		return found
	}
	for s.stats.Open.Load() > 0 || s.streams.Load() > 0 || handshaking() {
		if err == nil {
			select {
			case <-ctx.Done():
				// Out of time for the handshakes: drop what is left.
				err = ctx.Err()
				forced = time.Now()
				s.Each(func(c *Conn) { c.requestTeardown() })
				s.eachHandshake(func(c *Conn) { c.requestTeardown() })
			case <-tick.C:
			}
			continue
		}
		if time.Since(forced) > time.Second {
			break
		}
		<-tick.C
	}
	s.stopOnce.Do(func() {
		close(s.done)
		s.poller.stop()
		s.pollersWG.Wait()
		s.workersWG.Wait()
		s.poller.close()
	})
	return err
}

func (s *Server) logError(what string, err error) {
	s.log.Warn("transport: "+what, zap.Error(err))
}

func (s *Server) logPanic(r any) {
	s.log.Error("transport: handler panic", zap.Any("panic", r), zap.Stack("stack"))
}
