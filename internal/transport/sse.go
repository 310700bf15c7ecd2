package transport

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gameserver/gameserver/internal/frame"
)

// SSEConn is the downstream half of the HTTP fallback: the messages of one
// session written as a Server-Sent Events stream, one event per message,
// `data:` being the base64 of the message bytes and `id:` its sequence
// number (absent for unsequenced messages), so a browser's EventSource can
// reconnect with Last-Event-ID. The upstream half is plain POST requests,
// which the caller feeds to the session and marks with Touch.
//
// An SSEConn queues until a stream (a GET request) serves it. Serve takes
// the request's connection out of net/http, writes the response head and
// what is queued, and gives the socket to the epoll loop, as an upgrade
// gives a WebSocket's: from then on each message is encoded as an event
// straight into the socket's queue, written with the same coalescing (one
// write per Flush, so per room tick), bounds and write timeout, and the
// stream holds no goroutine and no buffer while idle. Send, SendNow, Flush
// and Close are safe for concurrent use.
type SSEConn struct {
	srv *Server

	mu      sync.Mutex
	queue   []sseItem // before a stream serves the connection
	queued  int
	closed  bool
	info    CloseInfo
	served  bool  // a stream has served (or is serving) this conn
	holding bool  // an open request still reads the queue (see Hold)
	sock    *Conn // the stream's socket while it is attached
	onClose func(*SSEConn, CloseInfo)
	ended   atomic.Bool // onClose has run

	lastActive atomic.Int64
	data       atomic.Pointer[any]
}

type sseItem struct {
	f   *frame.Frame
	seq uint64
}

// Kinds of socket a Conn serves. A stream's socket carries the events of
// an SSEConn; its response is chunked unless the request was HTTP/1.0, in
// which case the end of the connection ends it. A relay's socket is one
// end of a Tunnel.
const (
	kindWebSocket uint8 = iota
	kindStreamChunked
	kindStreamPlain
	kindRelay
)

// isStream reports whether kind is an event stream's.
func isStream(kind uint8) bool { return kind == kindStreamChunked || kind == kindStreamPlain }

// NewSSEConn returns a connection whose queue is bounded by
// Config.MaxOutboundBytes. onClose runs once, when the connection ends
// (closed by either side, or its stream lost); the server's StreamStats
// count its bytes and events.
func (s *Server) NewSSEConn(onClose func(*SSEConn, CloseInfo)) *SSEConn {
	c := &SSEConn{srv: s, onClose: onClose}
	c.lastActive.Store(time.Now().UnixNano())
	return c
}

// StreamStats are the HTTP fallback's counters: the transport counts the
// bytes and events its streams write; the fallback's HTTP handlers keep
// the rest (Open, Accepted, MessagesIn, BytesIn).
func (s *Server) StreamStats() *Stats { return &s.streamStats }

// Data returns the value stored with SetData, or nil.
func (c *SSEConn) Data() any {
	if p := c.data.Load(); p != nil {
		return *p
	}
	return nil
}

// SetData stores a value of the caller's (the session) with the connection.
func (c *SSEConn) SetData(v any) { c.data.Store(&v) }

// Touch records inbound activity (a POST from the client).
func (c *SSEConn) Touch() { c.lastActive.Store(time.Now().UnixNano()) }

// LastActive is when the client last sent something.
func (c *SSEConn) LastActive() time.Time { return time.Unix(0, c.lastActive.Load()) }

// Open reports whether the connection can still send.
func (c *SSEConn) Open() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed
}

// Send queues f with its sequence number (0 = unsequenced).
func (c *SSEConn) Send(f *frame.Frame, seq uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.sock != nil {
		ev := newEvent(f.B, seq, c.sock.kind == kindStreamChunked)
		err := c.sock.Send(ev, 0)
		ev.Release()
		if err != nil {
			// The socket is closing (over its bound, or stalled): it
			// reports why when it is gone (streamEnded).
			c.closed = true
		}
		return err
	}
	if c.queued+f.Len() > c.srv.cfg.MaxOutboundBytes {
		c.srv.streamStats.SlowConsumers.Add(1)
		c.closeLocked(CloseInfo{Code: CloseSlowConsumer, Reason: "outbound queue over its bound"})
		return ErrSlowConsumer
	}
	f.Retain()
	c.queue = append(c.queue, sseItem{f, seq})
	c.queued += f.Len()
	return nil
}

// SendNow queues an unsequenced frame and flushes.
func (c *SSEConn) SendNow(f *frame.Frame) error {
	err := c.Send(f, 0)
	c.Flush()
	return err
}

// Flush writes what is queued, once a stream serves the connection.
func (c *SSEConn) Flush() {
	c.mu.Lock()
	sock := c.sock
	c.mu.Unlock()
	if sock != nil {
		sock.Flush()
	}
}

// Close ends the connection: the stream writes what is queued, then a
// `close` event carrying code and reason, and ends.
func (c *SSEConn) Close(code uint16, reason string) {
	c.closeWith(CloseInfo{Code: CloseCode(code), Reason: reason})
}

// ClosePeer ends the connection on the client's request.
func (c *SSEConn) ClosePeer(code uint16, reason string) {
	c.closeWith(CloseInfo{Code: CloseCode(code), Reason: reason, ByPeer: true})
}

func (c *SSEConn) closeWith(info CloseInfo) {
	c.mu.Lock()
	sock := c.closeLocked(info)
	c.mu.Unlock()
	if sock != nil {
		sock.closeWith(info)
	}
}

// closeLocked marks the connection closed. It returns the stream's socket,
// which the caller closes with info after unlocking; with no stream to
// drain the queue, the connection ends now.
func (c *SSEConn) closeLocked(info CloseInfo) *Conn {
	if c.closed {
		return nil
	}
	c.closed = true
	c.info = info
	if c.sock != nil {
		return c.sock
	}
	if !c.served && !c.holding {
		c.dropLocked()
		go c.finish() // onClose may take locks the caller holds
	}
	return nil
}

// Hold keeps a close from discarding the queue until Unhold: the request
// that opens a session reads the server's first messages (an ERROR before
// a refusal's close included) with Drain.
func (c *SSEConn) Hold() {
	c.mu.Lock()
	c.holding = true
	c.mu.Unlock()
}

// Unhold ends Hold; a connection closed meanwhile ends now.
func (c *SSEConn) Unhold() {
	c.mu.Lock()
	c.holding = false
	end := c.closed && !c.served
	if end {
		c.dropLocked()
	}
	c.mu.Unlock()
	if end {
		c.finish()
	}
}

func (c *SSEConn) dropLocked() {
	for _, it := range c.queue {
		it.f.Release()
	}
	c.queue, c.queued = nil, 0
}

func (c *SSEConn) finish() {
	if !c.ended.CompareAndSwap(false, true) {
		return
	}
	c.mu.Lock()
	info := c.info
	c.mu.Unlock()
	if c.onClose != nil {
		c.onClose(c, info)
	}
}

// streamEnded is called by the stream's socket when it is torn down: the
// connection ends with the socket's close information.
func (c *SSEConn) streamEnded(info CloseInfo) {
	c.mu.Lock()
	c.closed = true
	c.info = info
	c.sock = nil
	c.mu.Unlock()
	c.finish()
}

// Drain removes and returns what is queued, for answering in another way
// than a stream (the reply to the request that opened the session). The
// caller releases the frames.
func (c *SSEConn) Drain() []*frame.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*frame.Frame, len(c.queue))
	for i, it := range c.queue {
		out[i] = it.f
	}
	c.queue, c.queued = nil, 0
	return out
}

// Closed returns the close information once the connection is closed.
func (c *SSEConn) Closed() (CloseInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info, c.closed
}

// Served reports whether a stream has already served this connection.
func (c *SSEConn) Served() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.served
}

// SSE stream parameters.
const (
	sseKeepAlive = 15 * time.Second // comment line on every stream, against proxies that end idle responses
	sseRetryMs   = 1000
)

// errStreamProto is why Serve refuses a request it cannot take over.
var errStreamProto = errors.New("the event stream needs HTTP/1.x")

// Serve answers r with the event stream: it takes the request's connection
// out of net/http (a hijack), writes the response head and what is
// queued, and hands the socket to the epoll loop. It returns at once; the
// stream ends when the connection is closed, or when its socket is lost or
// stalls past Config.WriteTimeout, or over Config.MaxOutboundBytes. A
// connection is served at most once: a client that comes back gets a new
// connection (the session layer resumes it). Only HTTP/1.x connections
// can be taken over; an HTTP/2 request is refused with 505.
func (c *SSEConn) Serve(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if c.served {
		c.mu.Unlock()
		http.Error(w, "stream already served", http.StatusConflict)
		return
	}
	c.served = true
	c.mu.Unlock()
	if r.ProtoMajor != 1 {
		http.Error(w, errStreamProto.Error(), http.StatusHTTPVersionNotSupported)
		c.streamEnded(CloseInfo{Code: CloseAbnormal, Reason: "stream refused: " + errStreamProto.Error(), ByPeer: true})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("X-Accel-Buffering", "no")
	kind := kindStreamChunked
	if r.ProtoMinor == 0 {
		kind = kindStreamPlain
		h.Set("Connection", "close")
	} else {
		h.Set("Transfer-Encoding", "chunked")
	}
	nc, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		h.Del("Transfer-Encoding")
		http.Error(w, errStreamProto.Error(), http.StatusHTTPVersionNotSupported)
		c.streamEnded(CloseInfo{Code: CloseAbnormal, Reason: "stream refused: " + err.Error(), ByPeer: true})
		return
	}
	// Whatever the client sent after the request is not read: a stream
	// only writes.
	if err := c.srv.attachStream(c, nc, c.srv.ClientAddr(r), kind, streamHead(h, kind)); err != nil {
		c.srv.logError("attach event stream", err)
		c.streamEnded(CloseInfo{Code: CloseAbnormal, Reason: "stream lost", ByPeer: true})
	}
}

// streamHead builds the response head and the stream's first event (the
// reconnection delay, then a comment so the client sees the stream open).
func streamHead(h http.Header, kind uint8) *frame.Frame {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(&b)
	b.WriteString("\r\n")
	f := frame.New()
	f.Grow(b.Len() + 64)
	f.B = append(f.B, b.Bytes()...)
	f.B = appendChunk(f.B, kind, "retry: "+strconv.Itoa(sseRetryMs)+"\n:ok\n\n")
	return f.SealRaw()
}

// appendChunk appends text as one piece of the response body.
func appendChunk(b []byte, kind uint8, text string) []byte {
	if kind == kindStreamChunked {
		b = strconv.AppendInt(b, int64(len(text)), 16)
		b = append(b, "\r\n"...)
		b = append(b, text...)
		return append(b, "\r\n"...)
	}
	return append(b, text...)
}

// newEvent encodes one message as an event, in a frame of its own (one
// per recipient: the id is the recipient's sequence number).
func newEvent(msg []byte, seq uint64, chunked bool) *frame.Frame {
	var num [20]byte
	var id []byte
	n := len("data: ") + base64.StdEncoding.EncodedLen(len(msg)) + len("\n\n")
	if seq != 0 {
		id = strconv.AppendUint(num[:0], seq, 10)
		n += len("id: ") + len(id) + 1
	}
	f := frame.New()
	f.Grow(n + 20)
	b := f.B
	if chunked {
		b = strconv.AppendInt(b, int64(n), 16)
		b = append(b, "\r\n"...)
	}
	if id != nil {
		b = append(b, "id: "...)
		b = append(b, id...)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = base64.StdEncoding.AppendEncode(b, msg)
	b = append(b, "\n\n"...)
	if chunked {
		b = append(b, "\r\n"...)
	}
	f.B = b
	return f.SealRaw()
}

// newStreamClose encodes the `close` event, and the end of a chunked body.
func newStreamClose(info CloseInfo, kind uint8) *frame.Frame {
	msg, _ := json.Marshal(struct {
		Code   uint16 `json:"code"`
		Reason string `json:"reason"`
	}{uint16(info.Code), info.Reason})
	f := frame.New()
	f.B = appendChunk(f.B, kind, "event: close\ndata: "+string(msg)+"\n\n")
	if kind == kindStreamChunked {
		f.B = append(f.B, "0\r\n\r\n"...)
	}
	return f.SealRaw()
}

// newKeepAlive encodes the comment that keeps a stream from looking idle.
func newKeepAlive(kind uint8) *frame.Frame {
	f := frame.New()
	f.B = appendChunk(f.B, kind, ":\n\n")
	return f.SealRaw()
}
