package transport

import (
	"time"

	"github.com/gameserver/gameserver/internal/nbio"
	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// readsPerTurn bounds how many reads one connection gets before the worker
// moves on, so a flooding peer cannot starve the others.
const readsPerTurn = 16

// worker reads and parses frames for connections the poller hands it. Each
// worker owns one read buffer; a connection only borrows a buffer of its
// own while a frame is split across reads.
type worker struct {
	srv *Server
	buf []byte
}

func newWorker(s *Server) *worker {
	return &worker{srv: s, buf: make([]byte, 64<<10)}
}

func (w *worker) run() {
	defer w.srv.workersWG.Done()
	for {
		select {
		case c := <-w.srv.work:
			w.serve(c)
		case <-w.srv.done:
			return
		}
	}
}

// serve gives c one turn. Wake-ups that arrive during the turn are folded
// into it; if any arrived after the socket was drained, the turn repeats.
// The worker owns c for the turn: it alone reads c.fd and may close it (see
// Conn).
func (w *worker) serve(c *Conn) {
	for {
		if c.state.Load() == stateClosed {
			return
		}
		seen := c.sched.Load()
		if c.flag(flagKill) {
			c.teardown(CloseInfo{Code: CloseAbnormal, Reason: "connection lost", ByPeer: true})
			return
		}
		if c.state.Load() == stateHandshake && !w.readHead(c) {
			// Waiting for more of the head, or no longer the transport's.
			if c.state.Load() == stateClosed || c.sched.CompareAndSwap(seen, 0) {
				return
			}
			continue
		}
		if more := w.readConn(c); more {
			// Still data after readsPerTurn: go to the back of the queue.
			select {
			case w.srv.work <- c:
				return
			default:
				continue
			}
		}
		if c.flag(flagKill) {
			continue
		}
		if c.sched.CompareAndSwap(seen, 0) {
			return
		}
	}
}

// readConn reads until the socket is drained. A read that returns less
// than it asked for has drained it: the edge-triggered poller reports any
// data that arrives later, so the read that would only say EAGAIN is
// skipped (it halves read system calls). Not once the peer has shut its
// side (flagHangup): its FIN may have come with the last data, in the
// same edge, and only a read to the end finds it. It reports whether data
// may remain after its budget.
func (w *worker) readConn(c *Conn) (more bool) {
	switch c.kind {
	case kindRelay:
		return w.readRelay(c)
	case kindStreamChunked, kindStreamPlain:
		return w.readStream(c)
	}
	for i := 0; i < readsPerTurn; i++ {
		rb := c.rbuf // the frame begun earlier, or nil
		n := 0
		drained := false
		if rb == nil || len(*rb) < int(c.rneed) {
			dst := w.buf
			if rb != nil {
				dst = (*rb)[len(*rb):c.rneed]
			}
			var ok bool
			if n, ok = readSome(c, dst, "connection lost"); !ok {
				return false
			}
			c.lastActive.Store(time.Now().UnixNano())
			w.srv.stats.BytesIn.Add(uint64(n))
			drained = n < len(dst) && !c.flag(flagHangup)
		}
		var data []byte
		if rb != nil {
			*rb = (*rb)[:len(*rb)+n]
			if len(*rb) < int(c.rneed) {
				if drained {
					return false
				}
				continue
			}
			// consume may keep a new partial frame in a buffer of its
			// own; rb goes back to the pool once consume is done with it.
			data = *rb
			c.rbuf = nil
		} else {
			data = w.buf[:n]
		}
		cerr := w.consume(c, data)
		if rb != nil {
			putBuf(rb)
		}
		if cerr != nil {
			if cerr == errPeerClosed {
				c.teardown(CloseInfo{})
				return false
			}
			w.srv.stats.ProtocolErrors.Add(1)
			c.mu.Lock()
			c.closeLocked(CloseInfo{Code: cerr.code, Reason: cerr.reason}, true)
			c.mu.Unlock()
		}
		if c.state.Load() == stateClosed || drained {
			return false
		}
	}
	return true
}

// readStream reads the socket of an event stream, whose client sends
// nothing after its request: what arrives is discarded, and the end of the
// connection (the client went away) ends the stream.
func (w *worker) readStream(c *Conn) (more bool) {
	for i := 0; i < readsPerTurn; i++ {
		n, ok := readSome(c, w.buf, "stream lost")
		if !ok || n < len(w.buf) && !c.flag(flagHangup) {
			return false // gone, or drained (see readConn)
		}
	}
	return true
}

// readSome reads once from c into dst, again after EINTR. It reports
// false when the turn is over: the socket is empty (EAGAIN), or the peer
// is gone (EOF or a socket error), and then c is torn down with reason.
func readSome(c *Conn, dst []byte, reason string) (int, bool) {
	for {
		n, err := nbio.Read(int(c.fd), dst)
		switch {
		case err == nil && n > 0:
			return n, true
		case err == unix.EAGAIN:
			return 0, false
		case err == unix.EINTR:
			continue
		default:
			c.teardown(CloseInfo{Code: CloseAbnormal, Reason: reason, ByPeer: true})
			return 0, false
		}
	}
}

// errPeerClosed stops parsing after the close handshake completed.
var errPeerClosed = &closeErr{code: CloseNormal, reason: "closed by peer"}

// consume parses every complete frame in data; an incomplete tail is copied
// into a buffer of the connection's own.
func (w *worker) consume(c *Conn, data []byte) *closeErr {
	max := w.srv.cfg.MaxMessageBytes
	for len(data) > 0 {
		h, err := parseHeader(data)
		if err == errShortHeader {
			c.keepPartial(data, 14)
			return nil
		}
		if err != nil {
			return err.(*closeErr)
		}
		if cerr := checkHeader(&h, c.fragmenting, c.fragLen(), max); cerr != nil {
			return cerr
		}
		total := h.size + int(h.length)
		if len(data) < total {
			c.keepPartial(data, total)
			return nil
		}
		payload := data[h.size:total]
		ws.Cipher(payload, h.mask, 0)
		if cerr := w.frame(c, &h, payload); cerr != nil {
			return cerr
		}
		data = data[total:]
	}
	return nil
}

// fragLen is the length of the fragmented message assembled so far.
func (c *Conn) fragLen() int {
	if c.frag == nil {
		return 0
	}
	return len(*c.frag)
}

// keepPartial stores the start of a frame until need bytes are available.
func (c *Conn) keepPartial(data []byte, need int) {
	if need < len(data) {
		need = len(data)
	}
	p := getBuf(need)
	*p = append(*p, data...)
	c.rbuf = p
	c.rneed = int32(need)
}

// frame handles one complete, unmasked frame.
func (w *worker) frame(c *Conn, h *frameHeader, payload []byte) *closeErr {
	switch h.op {
	case opBinary:
		if h.fin {
			w.deliver(c, payload)
			return nil
		}
		c.fragmenting = true
		p := getBuf(len(payload))
		*p = append(*p, payload...)
		c.frag = p
	case opContinuation:
		p := c.frag // not nil: checkHeader let a continuation through
		if need := len(*p) + len(payload); need > cap(*p) {
			np := getBuf(max(need, 2*cap(*p)))
			*np = append(*np, *p...)
			putBuf(p)
			p = np
			c.frag = p
		}
		*p = append(*p, payload...)
		if h.fin {
			w.deliver(c, *p)
			putBuf(p)
			c.frag = nil
			c.fragmenting = false
		}
	case opPing:
		if c.state.Load() == stateOpen {
			f := newControlFrame(opPong, payload)
			_ = c.SendNow(f)
			f.Release()
		}
	case opPong:
		// Liveness only: lastActive is already updated.
	case opClose:
		code, cerr := parseClosePayload(payload)
		if cerr != nil {
			return cerr
		}
		c.mu.Lock()
		if c.state.Load() == stateOpen {
			// Echo the peer's code (RFC 6455 section 5.5.1) and close.
			c.closeLocked(CloseInfo{Code: code, Reason: string(payload[min(2, len(payload)):]), ByPeer: true}, true)
		}
		c.mu.Unlock()
		return errPeerClosed
	}
	return nil
}

// deliver hands one complete message to the handler. A panic in the
// handler closes this connection only.
func (w *worker) deliver(c *Conn, msg []byte) {
	if c.state.Load() != stateOpen {
		return // after a close frame, data is discarded
	}
	w.srv.stats.MessagesIn.Add(1)
	defer func() {
		if r := recover(); r != nil {
			w.srv.stats.HandlerPanics.Add(1)
			w.srv.logPanic(r)
			c.Close(uint16(CloseInternalError), "internal error")
		}
	}()
	w.srv.handler.OnMessage(c, msg)
}
