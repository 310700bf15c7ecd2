package transport

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gameserver/gameserver/internal/nbio"
	"golang.org/x/sys/unix"
)

// Errors returned by Conn.Send.
var (
	// ErrClosed means the connection is closing or closed; the frame was not queued.
	ErrClosed = errors.New("transport: connection closed")
	// ErrSlowConsumer means the outbound queue was over its bound; the
	// connection is being closed with CloseSlowConsumer.
	ErrSlowConsumer = errors.New("transport: outbound queue over its bound")
)

// Connection states. Transitions happen under Conn.mu and only go
// forward: handshake (a connection the Front accepted), open, closing,
// closed.
const (
	stateOpen      uint32 = iota // messages flow both ways
	stateClosing                 // a close frame is queued or sent; inbound data is discarded
	stateClosed                  // torn down; the descriptor is closed
	stateHandshake               // held by the Front until its next request head is read: new, or kept alive between HTTP requests (deadline ends it)
)

// Conn.flags.
const (
	flagWantWrite uint32 = 1 << iota // a flush is waiting for EPOLLOUT
	flagKill                         // tear down at the next worker turn
	flagPaused                       // a relay stopped reading until its peer's queue drains (see Tunnel)
	flagHangup                       // the peer shut its side: read to the end, not just to a short read
)

// flag reports whether f is set.
func (c *Conn) flag(f uint32) bool { return c.flags.Load()&f != 0 }

// setFlag sets or clears f.
func (c *Conn) setFlag(f uint32, on bool) {
	if on {
		c.flags.Or(f)
	} else {
		c.flags.And(^f)
	}
}

// maxIovecs bounds the frames gathered into one writev.
const maxIovecs = 64

// CloseInfo says why a connection ended.
type CloseInfo struct {
	// Code is the close code that was sent or received; CloseAbnormal when
	// the connection dropped without a close frame.
	Code CloseCode
	// Reason is the close reason text, if any.
	Reason string
	// ByPeer is true when the client started the close or dropped.
	ByPeer bool
}

// Conn is one upgraded WebSocket connection, or the socket of an HTTP
// fallback's event stream (see SSEConn), which is written the same way
// and whose reads are only watched for its end.
//
// Send, Flush, SendNow and Close are safe for concurrent use. Handler
// callbacks for one Conn never run concurrently.
//
// A Conn holds its socket as a bare descriptor, fd: right after the upgrade
// the server duplicates the hijacked socket and closes the net.Conn (see
// detach), so no net.Conn, netFD, syscall.RawConn or runtime poll
// descriptor stays behind. Nothing in the runtime guards a system call on
// fd against the descriptor being closed, and its number reused, under it;
// these rules do:
//
//   - The connection has one owner at a time: the goroutine that raised
//     sched from 0 (the Front's accept loop until the socket is watched,
//     or ServeHTTP, SSEConn.Serve or HandBack from registering the socket
//     until it hands the connection to a worker; then the worker serving
//     it). Reads happen only on the
//     owner, and so does teardown, the only place fd is closed: a read
//     never overlaps the close, and no read follows it (state is
//     stateClosed from then on, which serve checks first).
//   - Every write, writev and shutdown on fd happens with mu held, after
//     checking that state is not stateClosed. Teardown sets stateClosed,
//     removes fd from the epoll set, clears its slot in the descriptor
//     table and closes fd, all with mu held, so no write can run on a
//     closed descriptor or on its number once reused by another
//     connection. epoll_ctl ADD runs on the owner before the first
//     hand-off, so it cannot meet a teardown either.
//   - The sweeper, Shutdown and the poller's EPOLLOUT flush reach fd only
//     through methods that take mu (closeLocked, flushLocked) or through
//     requestTeardown, which only asks the owner to tear down.
//   - The poller finds connections by descriptor number. An event read from
//     epoll before a teardown, for a number reused since, reaches whatever
//     Conn is registered under that number now (or none): a spurious
//     wake-up. Its read returns EAGAIN, or data that was due anyway, and its
//     flush runs under mu like any other. A Conn enters the table complete
//     (the bytes the HTTP server had buffered already in rbuf) and owned by
//     ServeHTTP, so such a wake-up cannot read ahead of those bytes nor
//     deliver a message before OnOpen.
type Conn struct {
	srv *Server
	// The peer's address (the client's, past trusted proxies), as 16
	// bytes and a port rather than a netip.AddrPort: that is 16 bytes
	// more, for an IPv6 zone a TCP peer does not have. See RemoteAddr.
	ip [16]byte

	// data is the handler's value (SetData). Only the connection's owner
	// touches it: the handler's callbacks, which run one at a time, and
	// whoever registers the connection before its first hand-off. A
	// relay's is its peer, set before either is in the table and fixed.
	data any

	lastActive atomic.Int64  // Unix nanoseconds of the last inbound frame
	fd         int32         // the socket; closed by teardown, see above
	sched      atomic.Int32  // pending read wake-ups; > 0 while owned
	state      atomic.Uint32 // stateOpen, stateClosing, stateClosed
	flags      atomic.Uint32 // flagWantWrite, flagKill, flagPaused, flagHangup

	mu         sync.Mutex // guards the write side
	waitingOut bool       // EAGAIN seen; the poller will flush when writable
	shutWrite  bool       // our write side is shut after the close frame

	kind uint8 // kindWebSocket, or an event stream's (see SSEConn); fixed

	// Read side, touched only by the connection's owner. These two sit
	// here to share a word with the flags above; rbuf and frag are below.
	fragmenting bool
	rneed       int32 // bytes rbuf must hold before it can be parsed again

	// Write side, guarded by mu. The queued frames are out[outHead:]. out
	// is backed by outInline while it fits, by a pooled array past that
	// (see outQueues), given back when the queue empties.
	outHead   int32
	port      uint16 // the peer's, with ip above; not mu's, here to fill a gap
	out       []*frame.Frame
	outInline [1]*frame.Frame // a tick's frame queues here; more take a pooled array
	outOff    int32           // bytes of out[0] already written
	outBytes  int32           // at most MaxOutboundBytes (≤ 1 GiB)
	// deadline, in Unix nanoseconds, is when the sweeper acts: in
	// stateOpen, while waitingOut, the end of Config.WriteTimeout (the
	// connection is cut as a slow consumer); in stateClosing and
	// stateHandshake, when it is torn down.
	deadline  int64
	closeInfo *CloseInfo // set when the close handshake begins

	// Read side: pooled buffers (see getBuf), nil when none, as they are
	// on an idle connection.
	rbuf *[]byte // an incomplete frame
	frag *[]byte // a fragmented message being assembled
}

// Data returns the value stored with SetData, or nil. Like SetData, it is
// for the handler's callbacks (OnOpen, OnMessage, OnClose) only.
func (c *Conn) Data() any { return c.data }

// SetData stores a value of the caller's (the session) with the
// connection.
func (c *Conn) SetData(v any) { c.data = v }

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(c.ip).Unmap(), c.port)
}

// setRemote records the peer's address; an IPv4 one reads back unmapped.
func (c *Conn) setRemote(a netip.AddrPort) {
	c.ip, c.port = a.Addr().As16(), a.Port()
}

// LastActive is when the last frame of any kind arrived from the peer.
func (c *Conn) LastActive() time.Time { return time.Unix(0, c.lastActive.Load()) }

// Open reports whether messages can still be sent.
func (c *Conn) Open() bool { return c.state.Load() == stateOpen }

// Send queues f for writing and takes a reference to it. It never blocks
// on the network: frames go out at the next Flush. If the queue would grow
// past Config.MaxOutboundBytes the connection is closed with
// CloseSlowConsumer and ErrSlowConsumer returned. seq is the session's
// sequence number of f; WebSocket frames do not carry it.
func (c *Conn) Send(f *frame.Frame, seq uint64) error {
	c.mu.Lock()
	err := c.sendLocked(f)
	c.mu.Unlock()
	return err
}

// SendNow queues f and flushes at once.
func (c *Conn) SendNow(f *frame.Frame) error {
	c.mu.Lock()
	err := c.sendLocked(f)
	if err == nil {
		c.flushLocked()
	}
	c.mu.Unlock()
	return err
}

// Flush writes every queued frame with as few system calls as the socket
// allows (one writev in the common case). It does not block: what the
// socket cannot take now is written when it becomes writable.
func (c *Conn) Flush() {
	c.mu.Lock()
	c.flushLocked()
	c.mu.Unlock()
	c.resumePeer()
}

// Pending is the number of bytes queued and not yet written.
func (c *Conn) Pending() int {
	c.mu.Lock()
	n := int(c.outBytes - c.outOff)
	c.mu.Unlock()
	return n
}

// Close starts the closing handshake: what is queued is still written,
// then a close frame with code and reason; inbound messages are no longer
// delivered. The descriptor is released when the peer answers, or after
// Config.CloseTimeout.
func (c *Conn) Close(code uint16, reason string) {
	c.mu.Lock()
	c.closeLocked(CloseInfo{Code: CloseCode(code), Reason: reason}, false)
	c.mu.Unlock()
}

func (c *Conn) sendLocked(f *frame.Frame) error {
	if c.state.Load() != stateOpen {
		return ErrClosed
	}
	if int(c.outBytes-c.outOff)+f.Len() > c.srv.cfg.MaxOutboundBytes {
		c.countSlowConsumer()
		c.closeLocked(CloseInfo{Code: CloseSlowConsumer, Reason: "outbound queue over its bound"}, true)
		return ErrSlowConsumer
	}
	f.Retain()
	c.pushLocked(f)
	return nil
}

// pushLocked appends f, whose reference the queue now holds, to the queue.
func (c *Conn) pushLocked(f *frame.Frame) {
	if len(c.out) == cap(c.out) {
		q := c.out[c.outHead:]
		if c.outHead > 0 && int(c.outHead) >= len(q) {
			// Half the array or more is written: slide the rest down.
			n := copy(c.out, q)
			clear(c.out[n:])
			c.out = c.out[:n]
		} else {
			next := append(getOutQueue(2*cap(c.out)), q...)
			clear(q)
			putOutQueue(c.out)
			c.out = next
		}
		c.outHead = 0
	}
	c.out = append(c.out, f)
	c.outBytes += int32(f.Len())
}

// queued returns the frames waiting to be written. Lock must be held.
func (c *Conn) queued() []*frame.Frame { return c.out[c.outHead:] }

// closeWith starts closing with info (see Close).
func (c *Conn) closeWith(info CloseInfo) {
	c.mu.Lock()
	c.closeLocked(info, false)
	c.mu.Unlock()
}

// countSlowConsumer counts a cut for a slow reader, a relay's in no
// counter (its other side is another server's).
func (c *Conn) countSlowConsumer() {
	if c.kind != kindRelay {
		c.stats().SlowConsumers.Add(1)
	}
}

// stats are the counters the connection adds to: the WebSocket's, or the
// HTTP fallback's for an event stream.
func (c *Conn) stats() *Stats {
	if c.kind != kindWebSocket {
		return &c.srv.streamStats
	}
	return &c.srv.stats
}

// closeLocked moves an open connection to stateClosing and queues the close
// frame. With drop, frames not yet started are discarded first (a slow
// consumer would never read them).
func (c *Conn) closeLocked(info CloseInfo, drop bool) {
	if c.state.Load() != stateOpen {
		return
	}
	c.state.Store(stateClosing)
	ci := info // escapes only on this path
	c.closeInfo = &ci
	c.deadline = time.Now().Add(c.srv.cfg.CloseTimeout).UnixNano()
	if q := c.queued(); drop && len(q) > 0 {
		keep := 0
		if c.outOff > 0 {
			keep = 1 // a frame already begun must be finished to keep the stream valid
		}
		for _, f := range q[keep:] {
			c.outBytes -= int32(f.Len())
			f.Release()
		}
		clear(q[keep:])
		c.out = c.out[:int(c.outHead)+keep]
	}
	var f *frame.Frame
	switch {
	case c.kind == kindWebSocket:
		f = newCloseFrame(info.Code, info.Reason)
	case isStream(c.kind):
		f = newStreamClose(info, c.kind)
	default: // a relay ends with what its peer sent, then FIN
		c.flushLocked()
		return
	}
	f.Retain()
	c.pushLocked(f)
	f.Release()
	c.flushLocked()
}

// flushLocked writes queued frames until the queue is empty or the socket
// is full. Lock must be held.
func (c *Conn) flushLocked() {
	if c.waitingOut || c.state.Load() == stateClosed {
		return
	}
	for len(c.out) > int(c.outHead) {
		n, err := c.writeQueued()
		if n > 0 {
			c.advance(n)
		}
		switch {
		case err == nil, err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if !c.waitingOut {
				// Arm the poller, then try once more: writability that
				// arrived between the first EAGAIN and the flag would
				// otherwise go unnoticed by the edge-triggered poller.
				c.waitingOut = true
				if c.state.Load() == stateOpen {
					c.deadline = time.Now().Add(c.srv.cfg.WriteTimeout).UnixNano()
				}
				c.setFlag(flagWantWrite, true)
				continue
			}
			return
		default:
			c.dropQueueLocked()
			c.requestTeardown()
			return
		}
	}
	if c.waitingOut {
		c.waitingOut = false
		c.setFlag(flagWantWrite, false)
	}
	if c.state.Load() == stateClosing && !c.shutWrite {
		// Our close frame is out: send FIN after it and wait for the
		// peer's close frame or EOF, so the kernel never resets a
		// connection whose last bytes the peer has not read.
		c.shutWrite = true
		_ = unix.Shutdown(int(c.fd), unix.SHUT_WR)
	}
}

// writeQueued writes from the head of the queue, gathering up to maxIovecs
// frames into one writev, and returns the bytes written. Lock must be held
// and the state checked not closed (see Conn).
func (c *Conn) writeQueued() (int, error) {
	q := c.queued()
	if len(q) == 1 {
		return nbio.Write(int(c.fd), q[0].Wire()[c.outOff:])
	}
	var iov [maxIovecs]unix.Iovec
	n := 0
	for i, f := range q {
		if n == maxIovecs {
			break
		}
		b := f.Wire()
		if i == 0 {
			b = b[c.outOff:]
		}
		iov[n].Base = &b[0]
		iov[n].SetLen(len(b))
		n++
	}
	return nbio.Writev(int(c.fd), iov[:n])
}

// advance drops n written bytes from the head of the queue. Lock must be held.
func (c *Conn) advance(n int) {
	// The HTTP answers a Front writes on a connection awaiting its next
	// request (quick requests, HandBack) are no WebSocket's or stream's.
	counted := c.state.Load() != stateHandshake && c.kind != kindRelay
	st := c.stats()
	if counted {
		st.BytesOut.Add(uint64(n))
	}
	for n > 0 && len(c.out) > int(c.outHead) {
		f := c.out[c.outHead]
		rest := f.Len() - int(c.outOff)
		if n < rest {
			c.outOff += int32(n)
			return
		}
		n -= rest
		c.outOff = 0
		c.outBytes -= int32(f.Len())
		if counted {
			st.FramesOut.Add(1)
		}
		f.Release()
		c.out[c.outHead] = nil
		c.outHead++
	}
	if len(c.out) == int(c.outHead) {
		// Back to the inline array: a tick's single frame then queues
		// without allocating, and a burst's array goes back to its pool
		// rather than idling with the connection.
		c.resetOutLocked()
	}
}

// resetOutLocked empties the queue, whose frames were released, onto the
// inline array.
func (c *Conn) resetOutLocked() {
	putOutQueue(c.out)
	c.out, c.outHead = c.outInline[:0], 0
}

func (c *Conn) dropQueueLocked() {
	for _, f := range c.queued() {
		f.Release()
	}
	clear(c.out)
	c.resetOutLocked()
	c.outOff, c.outBytes = 0, 0
}

// flushWritable is called by the poller when the socket became writable.
func (c *Conn) flushWritable() {
	c.mu.Lock()
	if c.waitingOut {
		c.waitingOut = false
		c.setFlag(flagWantWrite, false)
		c.flushLocked()
	}
	c.mu.Unlock()
	c.resumePeer()
}

// requestTeardown makes the next worker turn release the connection.
func (c *Conn) requestTeardown() {
	c.setFlag(flagKill, true)
	c.srv.schedule(c)
}

// teardown releases everything the connection holds and reports the close
// to the handler. It runs on the worker that owns the connection, once. The
// descriptor is closed with mu held, after stateClosed is set and after it
// has left the epoll set and the descriptor table (see Conn).
func (c *Conn) teardown(info CloseInfo) {
	c.mu.Lock()
	if c.state.Load() == stateClosed {
		c.mu.Unlock()
		return
	}
	if c.closeInfo != nil {
		info = *c.closeInfo // the close handshake began: report its reason
	}
	opened := c.state.Load() != stateHandshake
	c.state.Store(stateClosed)
	c.dropQueueLocked()
	c.setFlag(flagWantWrite, false)
	c.srv.unregisterLocked(c)
	_ = unix.Close(int(c.fd))
	c.mu.Unlock()
	if c.rbuf != nil {
		putBuf(c.rbuf)
		c.rbuf = nil
	}
	if c.frag != nil {
		putBuf(c.frag)
		c.frag = nil
	}
	switch {
	case c.kind == kindRelay:
		c.srv.streams.Add(-1)
		c.data.(*Conn).closeWith(CloseInfo{}) // the peer, once what it holds is written
	case c.kind != kindWebSocket:
		c.srv.streams.Add(-1)
		if sc, ok := c.Data().(*SSEConn); ok {
			sc.streamEnded(info)
		}
	case opened: // the handler and the limits never heard of a handshake
		c.srv.release(c)
		c.srv.handler.OnClose(c, info)
	}
}
