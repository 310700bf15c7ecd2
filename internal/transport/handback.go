package transport

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gameserver/gameserver/internal/frame"
	"golang.org/x/sys/unix"
)

// HandBack wraps the handler of the http.Server a Front serves (with
// ConnContext as its ConnContext), so that a
// kept-alive connection goes back to the Front after each response
// instead of idling in net/http with a goroutine and two buffers: once the
// handler has answered a complete HTTP/1.1 request in full, the response
// is written from the epoll loop and the Front reads the connection's next
// request head (upgrading it, answering it on a QuickRoute, or passing it
// on again). The handler's response is held until it returns, so it is
// written whole with its length. A response the handler flushes, or that
// grows past 64 KiB, streams through net/http as usual; its connection
// comes back too if the response declared its length and was complete (a
// file), and stays in net/http otherwise, as does a request net/http must
// finish itself (a HEAD, a body not read to its end, Connection: close,
// HTTP/1.0). A request that did not come through a Front (an embedding
// server's) is served as usual.
func HandBack(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, _ := r.Context().Value(frontKey{}).(*Front)
		if f == nil || r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Close || r.Method == http.MethodHead || r.ContentLength < 0 {
			next.ServeHTTP(w, r)
			return
		}
		body := &countingBody{ReadCloser: r.Body}
		r.Body = body
		hw := handBackWriters.Get().(*handBackWriter)
		hw.w = w
		defer func() {
			hw.w, hw.status, hw.passing, hw.hijacked, hw.written = nil, 0, false, false, 0
			hw.buf = hw.buf[:0]
			if cap(hw.buf) <= handBackMax {
				handBackWriters.Put(hw)
			}
		}()
		next.ServeHTTP(hw, r)
		if hw.hijacked {
			return // the handler took the connection
		}
		if body.n == r.ContentLength && hw.status >= 200 && !closes(w.Header()) &&
			(!hw.passing || hw.complete()) && f.handBack(w, hw) {
			return
		}
		hw.pass()
	})
}

// handBackMax is the largest response HandBack holds.
const handBackMax = 64 << 10

var handBackWriters = sync.Pool{New: func() any { return new(handBackWriter) }}

// handBackWriter holds a response until the handler returns.
type handBackWriter struct {
	w        http.ResponseWriter
	status   int
	buf      []byte
	passing  bool  // writes go straight to w
	written  int64 // body bytes written to w while passing
	hijacked bool
}

func (hw *handBackWriter) Header() http.Header { return hw.w.Header() }

func (hw *handBackWriter) WriteHeader(code int) {
	switch {
	case hw.passing:
		hw.w.WriteHeader(code)
	case code >= 100 && code < 200:
		hw.w.WriteHeader(code) // an interim response goes at once
	case hw.status == 0:
		hw.status = code
	}
}

func (hw *handBackWriter) Write(b []byte) (int, error) {
	if hw.passing {
		n, err := hw.w.Write(b)
		hw.written += int64(n)
		return n, err
	}
	if hw.status == 0 {
		hw.status = http.StatusOK
	}
	if len(hw.buf)+len(b) > handBackMax {
		hw.pass()
		return hw.Write(b)
	}
	hw.buf = append(hw.buf, b...)
	return len(b), nil
}

// FlushError streams the response through net/http from here on.
func (hw *handBackWriter) FlushError() error {
	hw.pass()
	return http.NewResponseController(hw.w).Flush()
}

// Flush is FlushError for http.Flusher users.
func (hw *handBackWriter) Flush() { _ = hw.FlushError() }

// Hijack gives the handler the connection (a WebSocket upgrade, an event
// stream).
func (hw *handBackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(hw.w).Hijack()
	if err == nil {
		hw.hijacked = true
	}
	return nc, brw, err
}

// Unwrap lets http.ResponseController reach net/http's writer (deadlines).
func (hw *handBackWriter) Unwrap() http.ResponseWriter { return hw.w }

// pass writes what is held to net/http and streams the rest.
func (hw *handBackWriter) pass() {
	if hw.passing {
		return
	}
	hw.passing = true
	if hw.status != 0 {
		hw.w.WriteHeader(hw.status)
	}
	if len(hw.buf) > 0 {
		n, _ := hw.w.Write(hw.buf)
		hw.written = int64(n)
	}
}

// complete reports whether a streamed response declared its length and
// has all of it written.
func (hw *handBackWriter) complete() bool {
	n, err := strconv.ParseInt(hw.w.Header().Get("Content-Length"), 10, 64)
	return err == nil && n == hw.written && hw.status != http.StatusNoContent && hw.status != http.StatusNotModified
}

// closes reports whether the response asks to close the connection, or
// frames its body itself (Transfer-Encoding, trailers): HandBack leaves
// such a response to net/http.
func closes(h http.Header) bool {
	if h.Get("Transfer-Encoding") != "" || h.Get("Trailer") != "" {
		return true
	}
	for _, v := range h.Values("Connection") {
		if asciiEqualFold([]byte(v), "close") {
			return true
		}
	}
	return false
}

// countingBody counts what a handler reads of a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// handBack takes the connection of the request w answers out of net/http,
// with the response hw holds (or, once passing, after net/http has written
// all of it), and makes it a connection awaiting its next request head. It
// reports false if net/http will not let go of it.
func (f *Front) handBack(w http.ResponseWriter, hw *handBackWriter) bool {
	s := f.srv
	if s.stopped() || s.shutting.Load() {
		// net/http finishes it, and its Shutdown ends it: a connection
		// kept here now would be one Shutdown waits for.
		return false
	}
	rc := http.NewResponseController(w)
	if hw.passing && rc.Flush() != nil {
		return false
	}
	nc, brw, err := rc.Hijack()
	if err != nil {
		return false
	}
	var out *frame.Frame
	if !hw.passing {
		out = heldResponse(w.Header(), hw)
	}
	// Requests the client sent behind this one: in net/http's buffer, then
	// what the Front read and net/http did not.
	var more []byte
	if n := brw.Reader.Buffered(); n > 0 {
		more, _ = brw.Reader.Peek(n)
	}
	if pc, ok := nc.(*prefixConn); ok {
		if pre := pc.unread(); len(pre) > 0 {
			more = append(more[:len(more):len(more)], pre...)
		}
	}
	var rest *[]byte
	if len(more) > 0 {
		rest = getBuf(len(more))
		*rest = append(*rest, more...)
	}
	fd, err := dupSocket(nc)
	if err == nil && fd >= len(s.conns) {
		_ = unix.Close(fd)
		err = fmt.Errorf("descriptor %d outside the table of %d", fd, len(s.conns))
	}
	if err != nil {
		// Answered through the net.Conn, then closed: the client opens
		// another connection for its next request.
		s.logError("hand connection back", err)
		if out != nil {
			_ = nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			_, _ = nc.Write(out.Wire())
			out.Release()
		}
		_ = nc.Close()
		if rest != nil {
			putBuf(rest)
		}
		return true
	}
	_ = nc.Close() // the duplicate keeps the socket
	deadline := time.Now().Add(keepAliveIdle)
	if rest != nil {
		deadline = time.Now().Add(s.cfg.HandshakeTimeout)
	}
	c := s.newConn(fd, addrPort(nc.RemoteAddr()), kindWebSocket, stateHandshake, deadline.UnixNano())
	if out != nil {
		c.mu.Lock()
		c.pushLocked(out)
		c.flushLocked()
		c.mu.Unlock()
	}
	c.rbuf = rest
	if err := s.poller.add(fd); err != nil {
		s.logError("watch connection", err)
		c.setFlag(flagKill, true)
	}
	if s.shutting.Load() {
		c.setFlag(flagKill, true) // Shutdown began meanwhile and may have missed c
	}
	// This goroutine owns c (see Conn) until here; wake-ups that came
	// meanwhile, or requests already buffered, need a worker's turn.
	if rest != nil || c.flag(flagKill) || !c.sched.CompareAndSwap(1, 0) {
		s.handOff(c)
	}
	return true
}

// heldResponse renders the response hw holds, with its length.
func heldResponse(h http.Header, hw *handBackWriter) *frame.Frame {
	out := frame.New()
	out.Grow(len(hw.buf) + 512)
	b := out.B
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(hw.status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(hw.status)...)
	b = append(b, "\r\n"...)
	bodyless := hw.status == http.StatusNoContent || hw.status == http.StatusNotModified
	if h.Get("Date") == "" {
		b = append(b, "Date: "...)
		b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
		b = append(b, "\r\n"...)
	}
	if bodyless {
		h.Del("Content-Length")
	} else {
		if len(hw.buf) > 0 && h.Get("Content-Type") == "" {
			h.Set("Content-Type", http.DetectContentType(hw.buf))
		}
		h.Set("Content-Length", strconv.Itoa(len(hw.buf)))
	}
	hb := headerBuf{b}
	_ = h.Write(&hb)
	b = append(hb.b, "\r\n"...)
	if !bodyless {
		b = append(b, hw.buf...)
	}
	out.B = b
	return out.SealRaw()
}

// headerBuf lets http.Header.Write append to a byte slice.
type headerBuf struct{ b []byte }

func (hb *headerBuf) Write(p []byte) (int, error) {
	hb.b = append(hb.b, p...)
	return len(p), nil
}

func (hb *headerBuf) WriteString(s string) (int, error) {
	hb.b = append(hb.b, s...)
	return len(s), nil
}
