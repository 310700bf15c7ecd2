package transport

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
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
// An SSEConn queues until a stream (an HTTP response) serves it; Serve
// writes everything queued in one write per wake-up (at most one per
// Flush, so one per room tick). Send, SendNow, Flush and Close are safe for
// concurrent use.
type SSEConn struct {
	mu        sync.Mutex
	queue     []sseItem
	queued    int
	max       int
	closed    bool
	info      CloseInfo
	served    bool // a stream has served (or is serving) this conn
	holding   bool // an open request still reads the queue (see Hold)
	wake      chan struct{}
	done      chan struct{}
	onClose   func(*SSEConn, CloseInfo)
	closeOnce sync.Once

	lastActive atomic.Int64
	data       atomic.Pointer[any]
	stats      *Stats
}

type sseItem struct {
	f   *frame.Frame
	seq uint64
}

// NewSSEConn returns a connection with an outbound bound of maxQueue bytes.
// onClose runs once, when the connection ends (closed by either side, or
// its stream lost); stats, if not nil, receives the byte and frame counts.
func NewSSEConn(maxQueue int, stats *Stats, onClose func(*SSEConn, CloseInfo)) *SSEConn {
	c := &SSEConn{max: maxQueue, wake: make(chan struct{}, 1), done: make(chan struct{}), onClose: onClose, stats: stats}
	c.lastActive.Store(time.Now().UnixNano())
	return c
}

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
	if c.queued+f.Len() > c.max {
		if c.stats != nil {
			c.stats.SlowConsumers.Add(1)
		}
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

// Flush wakes the stream writer.
func (c *SSEConn) Flush() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Close ends the connection: the stream writes what is queued, then a
// `close` event carrying code and reason, and ends.
func (c *SSEConn) Close(code uint16, reason string) {
	c.mu.Lock()
	c.closeLocked(CloseInfo{Code: CloseCode(code), Reason: reason})
	c.mu.Unlock()
}

// ClosePeer ends the connection on the client's request.
func (c *SSEConn) ClosePeer(code uint16, reason string) {
	c.mu.Lock()
	c.closeLocked(CloseInfo{Code: CloseCode(code), Reason: reason, ByPeer: true})
	c.mu.Unlock()
}

func (c *SSEConn) closeLocked(info CloseInfo) {
	if c.closed {
		return
	}
	c.closed = true
	c.info = info
	close(c.done)
	if !c.served && !c.holding {
		// No stream will drain the queue: end now.
		c.dropLocked()
		go c.finish()
	}
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
	c.closeOnce.Do(func() {
		c.mu.Lock()
		info := c.info
		c.mu.Unlock()
		if c.onClose != nil {
			c.onClose(c, info)
		}
	})
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
	sseKeepAlive    = 15 * time.Second // comment line on an idle stream, against proxies
	sseWriteTimeout = 5 * time.Second
	sseRetryMs      = 1000
)

// Serve writes the event stream to w until the connection closes or the
// client goes away; it returns when the stream is over. A connection is
// served at most once: a client that comes back gets a new connection
// (the session layer resumes it).
func (c *SSEConn) Serve(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if c.served {
		c.mu.Unlock()
		http.Error(w, "stream already served", http.StatusConflict)
		return
	}
	c.served = true
	c.mu.Unlock()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("X-Accel-Buffering", "no")
	if r.ProtoMajor == 1 {
		h.Set("Connection", "keep-alive")
	}
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 4096)
	bw.WriteString("retry: " + strconv.Itoa(sseRetryMs) + "\n:ok\n\n")
	ok := c.write(bw, rc)
	keep := time.NewTicker(sseKeepAlive)
	defer keep.Stop()
	var b64 []byte
	for ok {
		select {
		case <-c.wake:
		case <-c.done:
		case <-keep.C:
			bw.WriteString(":\n\n")
		case <-r.Context().Done():
			// The client went away: the stream is lost, the session may resume.
			c.mu.Lock()
			c.closeLocked(CloseInfo{Code: CloseAbnormal, Reason: "stream lost", ByPeer: true})
			c.dropLocked()
			c.mu.Unlock()
			c.finish()
			return
		}
		c.mu.Lock()
		items := c.queue
		c.queue, c.queued = nil, 0
		closed, info := c.closed, c.info
		c.mu.Unlock()
		for _, it := range items {
			if it.seq != 0 {
				bw.WriteString("id: ")
				bw.Write(strconv.AppendUint(b64[:0], it.seq, 10))
				bw.WriteByte('\n')
			}
			bw.WriteString("data: ")
			n := base64.StdEncoding.EncodedLen(len(it.f.B))
			if cap(b64) < n {
				b64 = make([]byte, n)
			}
			base64.StdEncoding.Encode(b64[:n], it.f.B)
			bw.Write(b64[:n])
			bw.WriteString("\n\n")
			if c.stats != nil {
				c.stats.FramesOut.Add(1)
			}
			it.f.Release()
		}
		if closed {
			msg, _ := json.Marshal(struct {
				Code   uint16 `json:"code"`
				Reason string `json:"reason"`
			}{uint16(info.Code), info.Reason})
			bw.WriteString("event: close\ndata: ")
			bw.Write(msg)
			bw.WriteString("\n\n")
			c.write(bw, rc)
			c.finish()
			return
		}
		ok = c.write(bw, rc)
	}
	// A write failed: the stream is lost.
	c.mu.Lock()
	c.closeLocked(CloseInfo{Code: CloseAbnormal, Reason: "stream write failed", ByPeer: true})
	c.dropLocked()
	c.mu.Unlock()
	c.finish()
}

// write flushes the buffered events to the client under a deadline.
func (c *SSEConn) write(bw *bufio.Writer, rc *http.ResponseController) bool {
	if bw.Buffered() == 0 {
		return true
	}
	n := bw.Buffered()
	_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
	if err := bw.Flush(); err != nil {
		return false
	}
	if err := rc.Flush(); err != nil {
		return false
	}
	if c.stats != nil {
		c.stats.BytesOut.Add(uint64(n))
	}
	return true
}
