package transport

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/gameserver/gameserver/internal/frame"
	"golang.org/x/sys/unix"
)

// relayHigh is how many bytes a relay lets wait in its peer's queue before
// it stops reading; the peer's drain resumes it.
const relayHigh = 256 << 10

// Tunnel hands the request r to upstream, a connection to the server that
// is to answer it (in a cluster, the node holding r's session), and then
// moves bytes both ways between the client and upstream from the epoll
// loop, as they come, until either side ends: a WebSocket or an event
// stream passes through without a goroutine, a buffer or a copy loop of
// its own. r must have no body (a GET). It takes over the client's
// connection (a hijack), writes r's head to upstream with the client's
// address appended to X-Forwarded-For, then what the client sent behind
// it. Each side's socket is a Conn of the relay kind whose reads become
// raw frames on the other's queue; a side stops reading while its peer
// holds more than 256 KiB unwritten, so a slow reader holds back a fast
// writer instead of growing a queue, and a side that ends closes the other
// once what it sent is written. Tunnel closes upstream. It returns an
// error, having written nothing to w, when the request cannot be tunnelled
// (the caller can still answer it another way).
func (s *Server) Tunnel(w http.ResponseWriter, r *http.Request, upstream net.Conn) error {
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 || r.ProtoMajor != 1 {
		_ = upstream.Close()
		return errors.New("transport: only a bodiless HTTP/1.x request can be tunnelled")
	}
	if s.stopped() {
		_ = upstream.Close()
		return errors.New("transport: shut down")
	}
	var head bytes.Buffer
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\n", r.Method, r.URL.RequestURI(), r.Host)
	// X-Forwarded-For gets the client's address appended, as net/http's
	// reverse proxy appends it.
	h := r.Header.Clone()
	client := r.RemoteAddr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		client = ap.Addr().Unmap().String()
	}
	if prior := h.Values("X-Forwarded-For"); len(prior) > 0 {
		h.Set("X-Forwarded-For", strings.Join(prior, ", ")+", "+client)
	} else {
		h.Set("X-Forwarded-For", client)
	}
	_ = h.Write(&head)
	head.WriteString("\r\n")

	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		_ = upstream.Close()
		return err
	}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		head.Write(b)
	}
	if pc, ok := nc.(*prefixConn); ok {
		head.Write(pc.unread())
	}
	cfd, err := dupSocket(nc)
	_ = nc.Close()
	if err != nil {
		_ = upstream.Close()
		return fmt.Errorf("transport: tunnel: %w", err)
	}
	ufd, err := dupSocket(upstream)
	_ = upstream.Close()
	if err != nil {
		_ = unix.Close(cfd)
		return fmt.Errorf("transport: tunnel: %w", err)
	}
	if cfd >= len(s.conns) || ufd >= len(s.conns) {
		_ = unix.Close(cfd)
		_ = unix.Close(ufd)
		return errors.New("transport: tunnel: descriptor outside the table")
	}
	// Both ends are linked before either is in the table, so whoever
	// finds one finds its peer.
	a := s.makeConn(cfd, addrPort(nc.RemoteAddr()), kindRelay, stateOpen, 0)
	b := s.makeConn(ufd, addrPort(upstream.RemoteAddr()), kindRelay, stateOpen, 0)
	a.data, b.data = b, a
	s.streams.Add(2)
	s.conns[cfd].Store(a)
	s.conns[ufd].Store(b)
	f := frame.New()
	f.Grow(head.Len())
	f.B = append(f.B, head.Bytes()...)
	_ = b.Send(f.SealRaw(), 0)
	f.Release()
	b.Flush()
	// This goroutine owns both (see Conn) until it hands them off.
	for _, c := range [...]*Conn{a, b} {
		if err := s.poller.add(int(c.fd)); err != nil {
			s.logError("watch tunnel", err)
			c.setFlag(flagKill, true)
		}
		s.handOff(c) // the first turn reads what arrived meanwhile
	}
	return nil
}

// readRelay moves what arrives on c, one end of a tunnel, to its peer's
// queue, until the socket is drained or the peer holds relayHigh bytes
// unwritten (then c pauses until the peer's drain resumes it).
func (w *worker) readRelay(c *Conn) (more bool) {
	peer := c.data.(*Conn)
	for i := 0; i < readsPerTurn; i++ {
		if peer.Pending() > relayHigh {
			c.setFlag(flagPaused, true)
			if peer.Pending() > relayHigh {
				return false // resumePeer schedules c again
			}
			c.setFlag(flagPaused, false)
		}
		// At the end of c, the peer ends once it has written what it holds.
		n, ok := readSome(c, w.buf, "tunnel ended")
		if !ok {
			return false
		}
		f := frame.New()
		f.Grow(n)
		f.B = append(f.B, w.buf[:n]...)
		err := peer.Send(f.SealRaw(), 0)
		f.Release()
		if err != nil {
			c.teardown(CloseInfo{Code: CloseAbnormal, Reason: "tunnel ended", ByPeer: true})
			return false
		}
		peer.Flush()
		if n < len(w.buf) && !c.flag(flagHangup) {
			return false // drained (see readConn)
		}
	}
	return true
}

// resumePeer gives the peer of c, a relay, its turn again if it paused
// for c's queue and the queue has drained below relayHigh.
func (c *Conn) resumePeer() {
	if c.kind != kindRelay {
		return
	}
	peer := c.data.(*Conn)
	if peer.flag(flagPaused) && c.Pending() <= relayHigh && peer.flags.And(^flagPaused)&flagPaused != 0 {
		c.srv.schedule(peer)
	}
}
