package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// maxHeadBytes bounds a request head read by a Front; a longer one is
// answered 431 and the connection closed.
const maxHeadBytes = 16 << 10

// firstHeadBuf is the buffer a Front reads a head into at first; a head
// that does not fit moves to one of maxHeadBytes.
const firstHeadBuf = 4 << 10

// lingerTime bounds how long a Front keeps reading (and discarding) from a
// connection it refused, after its response and FIN, so that data still
// arriving does not make the kernel reset the connection before the client
// has read the response.
const lingerTime = 500 * time.Millisecond

// Front is a net.Listener to put in front of an http.Server: it upgrades
// WebSocket requests itself, without net/http, and passes every other
// connection on to the http.Server untouched. Make one with Server.Listen.
//
// For each accepted connection, a short-lived goroutine reads the request
// head (through its blank line, within Config.HandshakeTimeout of the
// accept, at most 16 KiB) into a pooled buffer. A request the Front
// recognises as an upgrade (GET of its path, HTTP/1.1, a well-formed head
// with one Host, and intercept false) is admitted exactly as ServeHTTP
// admits one, upgraded by gobwas/ws from the bytes read, and taken over by
// the transport; the goroutine ends there. Anything else comes out of
// Accept with the bytes already read in front of the rest of the
// connection, for the http.Server to serve as usual (the WebSocket path
// included: ServeHTTP still upgrades what the Front passes on).
//
// A client that does not finish its head in time is dropped without an
// answer, as net/http drops one past its ReadHeaderTimeout.
type Front struct {
	srv       *Server
	l         net.Listener
	path      string
	intercept func(rawQuery string) bool

	conns     chan net.Conn // connections for the http.Server
	closed    chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error
	stopped   chan struct{} // closed when the accept loop ends
	err       error         // why it ended; written before stopped is closed
}

// Listen returns a Front that accepts connections from l and upgrades
// WebSocket requests for path (GET, the exact path, any query) on its own.
// intercept, if not nil, is asked about each such request's raw query (the
// part after "?", without it); true sends the request to the http.Server
// instead. Serve the Front with the http.Server that should get every other
// request. Closing the Front closes l.
func (s *Server) Listen(l net.Listener, path string, intercept func(rawQuery string) bool) *Front {
	f := &Front{
		srv:       s,
		l:         l,
		path:      path,
		intercept: intercept,
		conns:     make(chan net.Conn),
		closed:    make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	go f.acceptLoop()
	return f
}

// Accept returns the next connection that is not a WebSocket upgrade, with
// whatever the Front read from it still to be read. After Close it returns
// net.ErrClosed.
func (f *Front) Accept() (net.Conn, error) {
	select {
	case c := <-f.conns:
		return c, nil
	case <-f.closed:
		return nil, net.ErrClosed
	case <-f.stopped:
		return nil, f.err
	}
}

// Close stops accepting and closes the underlying listener. Upgrades under
// way finish; connections that were to be passed on are closed.
func (f *Front) Close() error {
	f.closeOnce.Do(func() {
		close(f.closed)
		f.closeErr = f.l.Close()
	})
	return f.closeErr
}

// Addr is the underlying listener's address.
func (f *Front) Addr() net.Addr { return f.l.Addr() }

func (f *Front) acceptLoop() {
	var delay time.Duration
	for {
		nc, err := f.l.Accept()
		if err == nil {
			delay = 0
			go f.serve(nc)
			continue
		}
		select {
		case <-f.closed:
			f.stop(net.ErrClosed)
			return
		default:
		}
		if !temporaryAcceptError(err) {
			f.stop(err)
			return
		}
		// Out of descriptors or the like: back off as net/http does.
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		f.srv.logError("accept", err)
		select {
		case <-time.After(delay):
		case <-f.closed:
			f.stop(net.ErrClosed)
			return
		}
	}
}

func (f *Front) stop(err error) {
	f.err = err
	close(f.stopped)
}

// temporaryAcceptError reports whether Accept may succeed if tried again.
func temporaryAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range [...]syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// serve reads nc's request head and either upgrades it or passes nc on.
func (f *Front) serve(nc net.Conn) {
	s := f.srv
	_ = nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	p := getBuf(firstHeadBuf)
	buf := *p // what was read; *p is brought up to date before p is handed on
	end := -1
	for end < 0 {
		if len(buf) == cap(buf) {
			if cap(buf) >= maxHeadBytes {
				if f.wsRequestLine(buf) {
					s.stats.Rejected[RejectHandshake].Add(1)
				}
				_, _ = nc.Write(appendResponse(buf[:0], http.StatusRequestHeaderFieldsTooLarge, "", "request header fields too large"))
				lingerClose(nc, buf)
				putBuf(p)
				return
			}
			np := getBuf(maxHeadBytes)
			*np = append(*np, buf...)
			putBuf(p)
			p, buf = np, *np
		}
		old := len(buf)
		n, err := nc.Read(buf[old:cap(buf)])
		buf = buf[:old+n]
		end = headEnd(buf, max(0, old-2))
		if end < 0 && err != nil {
			// Silent, half-sent or gone: dropped without an answer.
			_ = nc.Close()
			putBuf(p)
			return
		}
	}
	*p = buf
	h, ok := parseHead(buf[:end])
	if !ok || string(h.method) != http.MethodGet || string(h.path) != f.path ||
		(f.intercept != nil && f.intercept(string(h.query))) {
		f.pass(nc, p)
		return
	}
	f.upgrade(nc, p, end, &h)
}

// wsRequestLine reports whether head starts with a GET of the WebSocket
// path (a refused head is counted as a refused handshake only then).
func (f *Front) wsRequestLine(head []byte) bool {
	rest, ok := bytes.CutPrefix(head, []byte("GET "+f.path))
	return ok && len(rest) > 0 && (rest[0] == ' ' || rest[0] == '?')
}

// pass hands nc to the http.Server, *p (what was read) first. It owns p
// and nc.
func (f *Front) pass(nc net.Conn, p *[]byte) {
	_ = nc.SetDeadline(time.Time{}) // the http.Server sets its own
	pc := &prefixConn{Conn: nc, pre: append([]byte(nil), *p...)}
	putBuf(p)
	select {
	case f.conns <- pc:
	case <-f.closed:
		_ = nc.Close()
	}
}

// upgrade admits and upgrades the request whose head is (*p)[:end]; bytes
// after it are the connection's first data. It owns p and nc.
func (f *Front) upgrade(nc net.Conn, p *[]byte, end int, h *requestHead) {
	s := f.srv
	buf := *p
	remote := addrPort(nc.RemoteAddr())
	if len(s.trusted) > 0 && len(h.xff) > 0 {
		remote = clientAddr(s.trusted, remote, []string{string(h.xff)})
	}
	ip := remote.Addr().Unmap()
	var origin, host string
	if len(h.origin) > 0 {
		origin, host = string(h.origin), string(h.host)
	}
	if rf := s.admit(origin, host, ip); rf != nil {
		s.stats.Rejected[rf.reason].Add(1)
		_, _ = nc.Write(appendResponse(buf[:0], rf.status, rf.reason.String(), rf.msg))
		lingerClose(nc, buf)
		putBuf(p)
		return
	}
	hr := headReaders.Get().(*headReader)
	hr.head, hr.w = buf[:end], nc
	_, err := ws.Upgrader{}.Upgrade(hr)
	hr.head, hr.w = nil, nil
	headReaders.Put(hr)
	if err != nil {
		// The upgrader has answered 400 or 426.
		s.stats.Rejected[RejectHandshake].Add(1)
		s.releaseIP(ip)
		s.stats.Open.Add(-1)
		lingerClose(nc, buf)
		putBuf(p)
		return
	}
	s.attach(nc, remote, buf[end:]) // copies what follows the head
	putBuf(p)
}

// headReader gives the upgrader the request head already read, then EOF
// (so it never reads past the head), and writes to the connection.
type headReader struct {
	head []byte
	w    io.Writer
}

var headReaders = sync.Pool{New: func() any { return new(headReader) }}

func (r *headReader) Read(p []byte) (int, error) {
	if len(r.head) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.head)
	r.head = r.head[n:]
	return n, nil
}

func (r *headReader) Write(p []byte) (int, error) { return r.w.Write(p) }

// lingerClose ends a refused connection: FIN after the response, then
// reads until the client closes or lingerTime passes, then closes. buf is
// scratch space.
func lingerClose(nc net.Conn, buf []byte) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = nc.SetReadDeadline(time.Now().Add(lingerTime))
		for {
			if _, err := nc.Read(buf[:cap(buf)]); err != nil {
				break
			}
		}
	}
	_ = nc.Close()
}

// appendResponse appends a complete plain-text response that closes the
// connection, with the headers http.Error and ServeHTTP's refusals carry.
func appendResponse(b []byte, status int, reject, msg string) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"...)
	if reject != "" {
		b = append(b, "X-Gameserver-Reject: "...)
		b = append(b, reject...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Date: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(msg)+1), 10)
	b = append(b, "\r\nConnection: close\r\n\r\n"...)
	b = append(b, msg...)
	return append(b, '\n')
}

// addrPort converts a connection's address; IPv4 comes out unmapped, as
// netip.ParseAddrPort(r.RemoteAddr) gives it in ServeHTTP.
func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// prefixConn is a connection passed on to the http.Server: reads return
// pre, what the Front already read, before the rest of the connection.
// Reads are not concurrent (net/http has at most one outstanding), so pre
// needs no lock. Addresses, deadlines and writes are the connection's own.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		if len(c.pre) == 0 {
			c.pre = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// ReadFrom lets net/http use the connection's own (sendfile, splice).
func (c *prefixConn) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(c.Conn, r)
}

// CloseWrite passes through, for net/http's lingering close.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// SyscallConn passes through, so ServeHTTP can take over the socket of a
// connection the Front passed on (see detach).
func (c *prefixConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("connection has no descriptor")
	}
	return sc.SyscallConn()
}

// unread takes what the Front read and net/http has not: it belongs in
// front of the connection's first read after an upgrade.
func (c *prefixConn) unread() []byte {
	p := c.pre
	c.pre = nil
	return p
}

// headEnd returns the length of the request head at the start of b,
// through the empty line that ends it (lines end in LF or CRLF, as net/http
// and gobwas/ws read them), or -1 if b does not hold it all. The search
// starts at from, which must not be past any LF that may begin the
// terminator.
func headEnd(b []byte, from int) int {
	for i := from; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
	return -1
}

// requestHead is what the Front takes from a request head; the slices
// point into the head.
type requestHead struct {
	method   []byte
	path     []byte // the request target up to "?"
	query    []byte // after "?", without it
	hasQuery bool
	host     []byte // the one Host header
	origin   []byte // the first Origin header, if any
	xff      []byte // the one X-Forwarded-For header, if any
}

// parseHead parses b, a request head through its empty line. It accepts
// only what the Front upgrades itself and net/http would parse the same
// way: a request line "METHOD /target HTTP/1.1" (a token method, an
// origin-form target without controls or spaces, its path's escapes
// valid), header lines "Name:
// value" (a token name, a value without controls other than tab), and
// exactly one Host header, valid and not empty, at most one
// X-Forwarded-For, and no body (neither Content-Length nor
// Transfer-Encoding: an upgrade has none, and net/http's rules for them
// are its own). Anything else is false: it goes to net/http, which
// answers or refuses it as it always has.
func parseHead(b []byte) (h requestHead, ok bool) {
	line, rest, found := cutLine(b)
	if !found {
		return h, false
	}
	method, rl, found := bytes.Cut(line, []byte{' '})
	if !found || !isToken(method) {
		return h, false
	}
	target, proto, found := bytes.Cut(rl, []byte{' '})
	if !found || string(proto) != "HTTP/1.1" || len(target) == 0 || target[0] != '/' {
		return h, false
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return h, false
		}
	}
	h.method = method
	h.path, h.query, h.hasQuery = bytes.Cut(target, []byte{'?'})
	if !validEscapes(h.path) {
		return h, false // net/http refuses it (the query it does not check)
	}
	hostSeen, originSeen, xffSeen := false, false, false
	for {
		line, rest, found = cutLine(rest)
		if !found {
			return h, false
		}
		if len(line) == 0 {
			break
		}
		name, value, found := bytes.Cut(line, []byte{':'})
		if !found || !isToken(name) {
			return h, false
		}
		value = bytes.Trim(value, " \t")
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return h, false
			}
		}
		switch {
		case asciiEqualFold(name, "Host"):
			if hostSeen {
				return h, false
			}
			hostSeen, h.host = true, value
		case asciiEqualFold(name, "Origin"):
			if !originSeen {
				originSeen, h.origin = true, value
			}
		case asciiEqualFold(name, "X-Forwarded-For"):
			if xffSeen {
				return h, false // net/http gathers them
			}
			xffSeen, h.xff = true, value
		case asciiEqualFold(name, "Content-Length"), asciiEqualFold(name, "Transfer-Encoding"):
			return h, false
		}
	}
	if len(rest) != 0 || len(h.host) == 0 || !validHost(h.host) {
		return h, false
	}
	return h, true
}

// cutLine cuts b at its first LF; line loses the LF and a CR before it.
func cutLine(b []byte) (line, rest []byte, found bool) {
	line, rest, found = bytes.Cut(b, []byte{'\n'})
	if !found {
		return nil, nil, false
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest, true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if b[i]|0x20 != s[i]|0x20 {
			return false
		}
	}
	return true
}

// isToken reports whether b is an HTTP token (RFC 9110 section 5.6.2).
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenByte[c] {
			return false
		}
	}
	return true
}

// validEscapes reports whether every "%" in b starts a %XX escape.
func validEscapes(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] == '%' {
			if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// validHost reports whether b is made of the bytes net/http allows in a
// Host header.
func validHost(b []byte) bool {
	for _, c := range b {
		if !hostByte[c] {
			return false
		}
	}
	return true
}

var tokenByte, hostByte = func() (tok, host [256]bool) {
	for c := '0'; c <= '9'; c++ {
		tok[c], host[c] = true, true
	}
	for c := 'a'; c <= 'z'; c++ {
		tok[c], host[c] = true, true
		tok[c-'a'+'A'], host[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		tok[c] = true
	}
	for _, c := range "!$%&'()*+,-.:;=[]_~" {
		host[c] = true
	}
	return tok, host
}()
