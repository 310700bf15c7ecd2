package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gameserver/gameserver/internal/nbio"
	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
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
// connection on to the http.Server untouched. Make one with Server.Listen;
// a Server has at most one.
//
// The Front accepts connections itself, with accept4 on the listener's
// descriptor, so a connection has no net.Conn, no goroutine and no runtime
// poll descriptor while its request head arrives: it is a Conn in the
// transport's own descriptor table and epoll set from the start, and the
// workers read its head (through its blank line, within
// Config.HandshakeTimeout of the accept, at most 16 KiB) into a pooled
// buffer taken when its first bytes arrive. A request the Front recognises
// as an upgrade (GET of its path, HTTP/1.1, a well-formed head with one
// Host, and intercept false) is admitted exactly as ServeHTTP admits one,
// upgraded by gobwas/ws from the bytes read, and becomes an open Conn in
// place. Anything else comes out of Accept as a net.Conn, with the bytes
// already read in front of the rest of the connection, for the http.Server
// to serve as usual (the WebSocket path included: ServeHTTP still upgrades
// what the Front passes on). A refusal is answered and lingered over on a
// goroutine of its own.
//
// A client that does not finish its head in time is dropped without an
// answer, as net/http drops one past its ReadHeaderTimeout.
type Front struct {
	srv         *Server
	l           net.Listener
	path        string
	intercept   func(rawQuery string) bool
	quickRoutes []QuickRoute

	conns     chan net.Conn // connections for the http.Server
	closed    chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error
	stopped   chan struct{}           // closed when the accept loop ends
	err       error                   // why it ended; written before stopped is closed
	lfile     atomic.Pointer[os.File] // the accept loop's duplicate of l's descriptor
}

// Listen returns a Front that accepts connections from l and upgrades
// WebSocket requests for path (GET, the exact path, any query) on its own.
// l must give its descriptor (syscall.Conn, as *net.TCPListener does);
// otherwise Accept fails. intercept, if not nil, is asked about each such
// request's raw query (the part after "?", without it); true sends the
// request to the http.Server instead. Serve the Front with the http.Server
// that should get every other request. Closing the Front closes l.
func (s *Server) Listen(l net.Listener, path string, intercept func(rawQuery string) bool, quick ...QuickRoute) *Front {
	f := &Front{
		srv:         s,
		l:           l,
		path:        path,
		intercept:   intercept,
		quickRoutes: quick,
		conns:       make(chan net.Conn),
		closed:      make(chan struct{}),
		stopped:     make(chan struct{}),
	}
	s.front.Store(f)
	lf, err := listenerFile(l)
	if err != nil {
		f.stop(err) // Accept reports it
		return f
	}
	f.lfile.Store(lf)
	go f.acceptLoop(lf)
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
		if lf := f.lfile.Load(); lf != nil {
			_ = lf.Close() // wakes the accept loop
		}
		f.closeErr = f.l.Close()
	})
	return f.closeErr
}

// listenerFile returns a duplicate of l's descriptor as a pollable
// *os.File: the runtime does not wait for readiness on a listener's own
// syscall.RawConn, but it does on a file's.
func listenerFile(l net.Listener) (*os.File, error) {
	sc, ok := l.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("transport: listener %T has no descriptor", l)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(lfd uintptr) {
		fd, derr = unix.FcntlInt(lfd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("transport: dup listener: %w", derr)
	}
	// The duplicate shares the listener's non-blocking file status, so
	// NewFile puts it in the netpoller.
	return os.NewFile(uintptr(fd), "listener"), nil
}

// Addr is the underlying listener's address.
func (f *Front) Addr() net.Addr { return f.l.Addr() }

// acceptLoop takes connections from lf, the duplicate of the listener's
// descriptor made by Listen (so a process already out of descriptors
// fails there, not later), until the Front is closed. lf is in the
// runtime's netpoller, which wakes the loop when connections wait.
func (f *Front) acceptLoop(lf *os.File) {
	rc, err := lf.SyscallConn()
	if err != nil {
		f.stop(err)
		return
	}
	var aerr error
	accept := func(lfd uintptr) bool { // made once
		for {
			fd, remote, err := nbio.Accept(int(lfd))
			switch err {
			case nil:
				f.take(fd, remote)
			case unix.EAGAIN:
				return false // park until the listener is readable
			case unix.EINTR, unix.ECONNABORTED:
			default:
				aerr = err
				return true
			}
		}
	}
	var delay time.Duration
	for {
		aerr = nil
		err := rc.Read(accept)
		select {
		case <-f.closed:
			f.stop(net.ErrClosed)
			return
		default:
		}
		if err == nil {
			err = aerr
		}
		if err == nil {
			delay = 0
			continue
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
	if lf := f.lfile.Load(); lf != nil {
		_ = lf.Close() // the socket listens while any duplicate is open
	}
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

// take makes the accepted socket fd a Conn awaiting its request head and
// watches it. Its first bytes wake a worker (readHead).
func (f *Front) take(fd int, remote netip.AddrPort) {
	s := f.srv
	if s.stopped() {
		_ = unix.Close(fd)
		return
	}
	if fd >= len(s.conns) {
		_ = unix.Close(fd)
		s.logError("accept", fmt.Errorf("descriptor %d outside the table of %d", fd, len(s.conns)))
		return
	}
	// net/http's connections have Nagle's algorithm off; so do these.
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	c := s.newConn(fd, remote, kindWebSocket, stateHandshake, time.Now().Add(s.cfg.HandshakeTimeout).UnixNano())
	if err := s.poller.add(fd); err != nil {
		s.logError("watch connection", err)
		c.teardown(CloseInfo{})
		return
	}
	// The accept loop owned c while it was added (see Conn); wake-ups
	// that came meanwhile hand it to a worker.
	if !c.sched.CompareAndSwap(1, 0) {
		s.handOff(c)
	}
}

// readHead reads the request head of c, a connection in stateHandshake,
// on the worker that owns it, and acts on it once complete (and on a quick
// request's body; see QuickRoute). It reports whether c is now an open
// WebSocket connection, whose data the worker reads next.
func (w *worker) readHead(c *Conn) bool {
	s := w.srv
	f := s.front.Load()
	from := 0
	check := c.rbuf != nil && len(*c.rbuf) > 0 // bytes behind a request served before
	for {
		if check {
			switch f.tryServe(c, from) {
			case headOpen:
				return true
			case headDone:
				return false
			case headServed: // the buffer may hold the next request
				from = 0
				continue
			}
		}
		p := c.rbuf
		if p == nil {
			p = getBuf(firstHeadBuf)
			c.rbuf = p
		}
		buf := *p
		if len(buf) == cap(buf) {
			if cap(buf) >= maxHeadBytes {
				c.rbuf = nil
				if f.wsRequestLine(buf) {
					s.stats.Rejected[RejectHandshake].Add(1)
				}
				*p = appendRefusal(buf[:0], http.StatusRequestHeaderFieldsTooLarge, "", "request header fields too large")
				s.refuse(c, p)
				return false
			}
			np := getBuf(maxHeadBytes)
			*np = append(*np, buf...)
			putBuf(p)
			p, buf = np, *np
			c.rbuf = p
		}
		old := len(buf)
		n, err := nbio.Read(int(c.fd), buf[old:cap(buf)])
		switch {
		case err == nil && n > 0:
		case err == unix.EAGAIN:
			if old == 0 { // an idle kept-alive connection holds no buffer
				putBuf(p)
				c.rbuf = nil
			}
			return false
		case err == unix.EINTR:
			continue
		default:
			// Silent, half-sent or gone: dropped without an answer.
			c.teardown(CloseInfo{})
			return false
		}
		if old == 0 {
			// A kept-alive connection's next head has as long as a new
			// connection's first, from its first byte.
			c.mu.Lock()
			c.deadline = min(c.deadline, time.Now().Add(s.cfg.HandshakeTimeout).UnixNano())
			c.mu.Unlock()
		}
		*p = buf[:old+n]
		from, check = max(0, old-2), true
	}
}

// Outcomes of tryServe.
const (
	headMore   = iota // the request is not all there: read more
	headOpen          // upgraded: an open WebSocket connection
	headDone          // passed on, refused or torn down: no longer the worker's
	headServed        // a quick request answered; the connection awaits the next
)

// tryServe acts on the request at the start of c's buffer if it is
// complete. The search for the end of its head starts at from (see
// headEnd).
func (f *Front) tryServe(c *Conn, from int) int {
	p := c.rbuf
	if p == nil {
		return headMore
	}
	if c.rneed > 0 { // a quick request's body is arriving
		if len(*p) < int(c.rneed) {
			return headMore
		}
		from = 0
	}
	end := headEnd(*p, from)
	if end < 0 {
		return headMore
	}
	return f.serveHead(c, p, end)
}

// serveHead acts on the complete request head (*p)[:end] of c: it serves
// a quick request, upgrades it, passes c on to the http.Server or refuses
// it. It owns p unless the outcome is headMore or headServed, when p is
// (still) c's buffer.
func (f *Front) serveHead(c *Conn, p *[]byte, end int) int {
	h, ok := parseHead((*p)[:end])
	if ok {
		if r := f.quickRoute(&h); r != nil {
			return f.quick(c, p, end, &h, r)
		}
		if h.length < 0 && string(h.method) == http.MethodGet && string(h.path) == f.path &&
			(f.intercept == nil || !f.intercept(string(h.query))) {
			c.rbuf = nil
			if f.upgrade(c, p, end, &h) {
				return headOpen
			}
			return headDone
		}
	}
	c.rbuf = nil
	f.passOn(c, p)
	return headDone
}

// QuickRoute is a request a Front answers itself, without net/http, and
// keeps the connection for the next request: a POST of a few messages
// made many times a second (the HTTP fallback's), which through net/http
// would hold a goroutine and two buffers per client and allocate a
// request, its header maps and a context each time. The Front takes a
// request for Path (the exact path, any query) by Method, over HTTP/1.1,
// with a Content-Length of at most MaxBody and no Expect, reads its body
// into a pooled buffer across wake-ups (within Config.HandshakeTimeout of
// its first byte), and calls Handle on the worker that read it. Any other
// request, on a new or a kept-alive connection, goes to net/http as
// before (and its connection comes back after the response, see
// HandBack).
type QuickRoute struct {
	Method  string
	Path    string
	MaxBody int
	// Handle answers req. It runs on a transport worker: it must not
	// block. It returns pass to have net/http serve the request instead
	// (it then gets the connection, the request still unread).
	Handle func(req *QuickRequest) (resp QuickResponse, pass bool)
}

// QuickRequest is a request read by a Front for a QuickRoute. Its fields
// are only valid until Handle returns.
type QuickRequest struct {
	Query         string // the raw query, after "?"
	Host          string
	Origin        string // the first Origin header, "" if none
	Authorization string
	Body          []byte
}

// QuickResponse is the answer to a QuickRequest.
type QuickResponse struct {
	Status      int
	Header      []string // extra header lines, "Name: value"
	ContentType string   // of Body, when there is one
	Body        []byte
}

// keepAliveIdle is how long a Front keeps a connection that had a quick
// request waiting for its next one.
const keepAliveIdle = 2 * time.Minute

// maxQuickPending bounds the responses a client may leave unread on a
// kept-alive connection while sending more requests.
const maxQuickPending = 64 << 10

// quickRoute returns the quick route that takes h, or nil.
func (f *Front) quickRoute(h *requestHead) *QuickRoute {
	for i := range f.quickRoutes {
		r := &f.quickRoutes[i]
		if string(h.method) == r.Method && string(h.path) == r.Path &&
			h.length >= 0 && h.length <= int64(r.MaxBody) && !h.expect {
			return r
		}
	}
	return nil
}

// quick serves the quick request whose head is (*p)[:end], once its body
// has arrived, and answers it on c; the connection then awaits the next
// request, bytes already read behind this one kept in p.
func (f *Front) quick(c *Conn, p *[]byte, end int, h *requestHead, r *QuickRoute) int {
	s := f.srv
	need := end + int(h.length)
	if len(*p) < need {
		if cap(*p) < need {
			np := getBuf(need)
			*np = append(*np, *p...)
			putBuf(p)
			c.rbuf = np
		}
		c.rneed = int32(need)
		return headMore
	}
	c.rneed = 0
	req := QuickRequest{
		Query:         string(h.query),
		Host:          string(h.host),
		Origin:        string(h.origin),
		Authorization: string(h.auth),
		Body:          (*p)[end:need],
	}
	resp, pass, ok := f.handleQuick(r, &req)
	if !ok {
		h.close = true
		resp = QuickResponse{Status: http.StatusInternalServerError, ContentType: "text/plain; charset=utf-8", Body: []byte("internal error\n")}
	}
	if pass {
		c.rbuf = nil
		f.passOn(c, p)
		return headDone
	}
	if s.shutting.Load() {
		h.close = true // not kept for a next request: Shutdown would wait for it
	}
	out := frame.New()
	out.B = appendResponse(out.B, &resp, h.close)
	out.SealRaw()
	if h.close {
		// Answered, then ended the way a refusal is.
		c.rbuf = nil
		b := append((*p)[:0], out.B...)
		out.Release()
		*p = b
		s.refuse(c, p)
		return headDone
	}
	rest := (*p)[need:]
	c.mu.Lock()
	c.pushLocked(out)
	c.flushLocked()
	over := c.outBytes-c.outOff > maxQuickPending
	if len(rest) > 0 {
		c.deadline = time.Now().Add(s.cfg.HandshakeTimeout).UnixNano()
	} else {
		c.deadline = time.Now().Add(keepAliveIdle).UnixNano()
	}
	c.mu.Unlock()
	if over {
		c.teardown(CloseInfo{}) // requests sent, responses not read
		return headDone
	}
	if len(rest) == 0 {
		putBuf(p)
		c.rbuf = nil
		return headServed
	}
	*p = (*p)[:copy(*p, rest)]
	return headServed
}

// handleQuick calls r.Handle; a panic in it is logged and reported as
// !ok, and costs only the request's connection.
func (f *Front) handleQuick(r *QuickRoute, req *QuickRequest) (resp QuickResponse, pass, ok bool) {
	defer func() {
		if v := recover(); v != nil {
			f.srv.stats.HandlerPanics.Add(1)
			f.srv.logPanic(v)
			ok = false
		}
	}()
	resp, pass = r.Handle(req)
	return resp, pass, true
}

// appendResponse appends the complete response resp (with its Date and
// Content-Length), which closes the connection when close is set.
func appendResponse(b []byte, resp *QuickResponse, close bool) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(resp.Status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(resp.Status)...)
	b = append(b, "\r\nDate: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\n"...)
	for _, line := range resp.Header {
		b = append(b, line...)
		b = append(b, "\r\n"...)
	}
	if resp.Status != http.StatusNoContent {
		if resp.ContentType != "" {
			b = append(b, "Content-Type: "...)
			b = append(b, resp.ContentType...)
			b = append(b, "\r\n"...)
		}
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(resp.Body)), 10)
		b = append(b, "\r\n"...)
	}
	if close {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	if resp.Status != http.StatusNoContent {
		b = append(b, resp.Body...)
	}
	return b
}

// passOn hands c to the http.Server as a net.Conn, *p (what was read)
// first. It owns p.
func (f *Front) passOn(c *Conn, p *[]byte) {
	c.mu.Lock()
	unsent := c.outBytes > c.outOff
	c.mu.Unlock()
	if unsent {
		// A quick response not yet written would be lost: a client that
		// sends requests without reading the answers is dropped.
		putBuf(p)
		c.teardown(CloseInfo{})
		return
	}
	nc, err := f.srv.toNetConn(c)
	if err != nil {
		f.srv.logError("pass connection on", err)
		putBuf(p)
		return
	}
	go f.pass(nc, p)
}

// pass hands nc to the http.Server, *p (what was read) first. It owns p
// and nc.
func (f *Front) pass(nc net.Conn, p *[]byte) {
	pc := &prefixConn{Conn: nc, pre: append([]byte(nil), *p...), front: f}
	putBuf(p)
	select {
	case f.conns <- pc:
	case <-f.closed:
		_ = nc.Close()
	}
}

// refuse sends *p, a complete response, on the handshaking connection c,
// then ends it with lingerClose, on a goroutine of its own. It owns p.
func (s *Server) refuse(c *Conn, p *[]byte) {
	nc, err := s.toNetConn(c)
	if err != nil {
		s.logError("refuse connection", err)
		putBuf(p)
		return
	}
	go func() {
		_ = nc.SetWriteDeadline(time.Now().Add(lingerTime))
		_, _ = nc.Write(*p)
		lingerClose(nc, (*p)[:0])
		putBuf(p)
	}()
}

// toNetConn takes the handshaking connection c out of the transport and
// returns its socket as a net.Conn (in the runtime's netpoller, as net/http
// wants it). c is closed without a report to the handler, which never
// heard of it.
func (s *Server) toNetConn(c *Conn) (net.Conn, error) {
	c.mu.Lock()
	c.state.Store(stateClosed)
	s.unregisterLocked(c)
	c.mu.Unlock()
	file := os.NewFile(uintptr(c.fd), "")
	nc, err := net.FileConn(file) // a duplicate; file closes the original
	_ = file.Close()
	return nc, err
}

// wsRequestLine reports whether head starts with a GET of the WebSocket
// path (a refused head is counted as a refused handshake only then).
func (f *Front) wsRequestLine(head []byte) bool {
	rest, ok := bytes.CutPrefix(head, []byte("GET "+f.path))
	return ok && len(rest) > 0 && (rest[0] == ' ' || rest[0] == '?')
}

// upgrade admits and upgrades the request whose head is (*p)[:end] on the
// handshaking connection c; bytes after the head are its first data. It
// owns p, and reports whether c is now open.
func (f *Front) upgrade(c *Conn, p *[]byte, end int, h *requestHead) bool {
	s := f.srv
	buf := *p
	remote := c.RemoteAddr()
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
		*p = appendRefusal(buf[:0], rf.status, rf.reason.String(), rf.msg)
		s.refuse(c, p)
		return false
	}
	hr := headReaders.Get().(*headReader)
	hr.head, hr.out = buf[:end], hr.out[:0]
	_, err := ws.Upgrader{}.Upgrade(hr)
	resp := hr.out
	hr.head = nil
	if err != nil {
		// The upgrader has answered 400 or 426.
		s.stats.Rejected[RejectHandshake].Add(1)
		s.releaseIP(ip)
		s.stats.Open.Add(-1)
		*p = append(buf[:0], resp...)
		headReaders.Put(hr)
		s.refuse(c, p)
		return false
	}
	// A fresh socket's send buffer takes the short 101 response whole.
	n, werr := nbio.Write(int(c.fd), resp)
	headReaders.Put(hr)
	if werr != nil || n != len(resp) {
		s.releaseIP(ip)
		s.stats.Open.Add(-1)
		putBuf(p)
		c.teardown(CloseInfo{})
		return false
	}
	if rest := buf[end:]; len(rest) > 0 {
		c.keepPartial(rest, len(rest)) // copies
	}
	putBuf(p)
	c.setRemote(remote)
	c.mu.Lock()
	c.deadline = 0
	c.state.Store(stateOpen)
	c.mu.Unlock()
	s.opened(c)
	return true
}

// headReader gives the upgrader the request head already read, then EOF
// (so it never reads past the head), and keeps the response it writes.
type headReader struct {
	head []byte
	out  []byte
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

func (r *headReader) Write(p []byte) (int, error) {
	r.out = append(r.out, p...)
	return len(p), nil
}

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

// appendRefusal appends a complete plain-text response that closes the
// connection, with the headers http.Error and ServeHTTP's refusals carry.
func appendRefusal(b []byte, status int, reject, msg string) []byte {
	hdr := []string{"X-Content-Type-Options: nosniff"}
	if reject != "" {
		hdr = append(hdr, "X-Gameserver-Reject: "+reject)
	}
	return appendResponse(b, &QuickResponse{Status: status, Header: hdr, ContentType: "text/plain; charset=utf-8", Body: []byte(msg + "\n")}, true)
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
	pre   []byte
	front *Front // that passed it on (see ConnContext)
}

// ConnContext is for the ConnContext field of the http.Server a Front
// serves: it marks the requests of connections the Front passed on, which
// HandBack gives back to it.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if pc, ok := c.(*prefixConn); ok {
		return context.WithValue(ctx, frontKey{}, pc.front)
	}
	return ctx
}

type frontKey struct{}

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
	auth     []byte // the one Authorization header, if any
	length   int64  // the one Content-Length; -1 without one
	close    bool   // Connection: close
	expect   bool   // an Expect header (net/http answers 100-continue)
}

// parseHead parses b, a request head through its empty line. It accepts
// only what the Front upgrades itself and net/http would parse the same
// way: a request line "METHOD /target HTTP/1.1" (a token method, an
// origin-form target without controls or spaces, its path's escapes
// valid), header lines "Name:
// value" (a token name, a value without controls other than tab), and
// exactly one Host header, valid and not empty, at most one
// X-Forwarded-For and one Authorization, at most one Content-Length (of at
// most 10 digits) and no Transfer-Encoding (net/http's rules for chunked
// and repeated lengths are its own). Anything else is false: it goes to
// net/http, which answers or refuses it as it always has.
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
	hostSeen, originSeen, xffSeen, authSeen := false, false, false, false
	h.length = -1
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
		case asciiEqualFold(name, "Authorization"):
			if authSeen {
				return h, false
			}
			authSeen, h.auth = true, value
		case asciiEqualFold(name, "Content-Length"):
			if h.length >= 0 || len(value) == 0 || len(value) > 10 {
				return h, false
			}
			h.length = 0
			for _, c := range value {
				if c < '0' || c > '9' {
					return h, false
				}
				h.length = 10*h.length + int64(c-'0')
			}
		case asciiEqualFold(name, "Transfer-Encoding"):
			return h, false
		case asciiEqualFold(name, "Connection"):
			for _, opt := range bytes.Split(value, []byte{','}) {
				if asciiEqualFold(bytes.Trim(opt, " \t"), "close") {
					h.close = true
				}
			}
		case asciiEqualFold(name, "Expect"):
			h.expect = true
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
