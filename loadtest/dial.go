package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// connectors is how many connections are dialled at once.
const connectors = 64

// connector dials the bots it takes from e.dialq until ctx ends.
func (e *engine) connector(ctx context.Context, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	fbuf := make([]byte, 0, 256)
	for {
		select {
		case <-ctx.Done():
			return
		case idx := <-e.dialq:
			e.connect(ctx, &e.bots[idx], &fbuf)
		}
	}
}

// connect dials a bot's server, upgrades to WebSocket, hands the socket to
// the bot's poller and sends HELLO.
func (e *engine) connect(ctx context.Context, b *bot, fbuf *[]byte) {
	if e.stopping.Load() {
		return
	}
	start := time.Now()
	b.setPhase(phaseConnecting, start.UnixNano())
	b.mu.Lock()
	tgt := b.sess.target
	resume := b.sess.resume && b.sess.id != ""
	sid, token := b.sess.id, b.sess.token
	b.mu.Unlock()
	if tgt == nil {
		tgt = e.targetOf(b)
	}
	if b.sse != nil {
		e.connectSSE(ctx, b, start, tgt, fbuf)
		return
	}
	wsURL := tgt.wsURL
	if resume {
		// Name the session, so that any node of a cluster can route the
		// connection to the session's node.
		wsURL += "?session=" + url.QueryEscape(sid)
	}
	nd := net.Dialer{Timeout: e.cfg.ConnectTimeout}
	if len(e.cfg.Sources) > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: e.cfg.Sources[b.global%len(e.cfg.Sources)].AsSlice()}
		nd.Control = bindNoPort
	}
	d := ws.Dialer{Timeout: e.cfg.ConnectTimeout, NetDial: nd.DialContext}
	var conn net.Conn
	var br *bufio.Reader
	for attempt := 1; ; attempt++ {
		dctx, cancel := context.WithTimeout(ctx, e.cfg.ConnectTimeout)
		var err error
		conn, br, _, err = d.Dial(dctx, wsURL)
		cancel()
		if err == nil {
			break
		}
		// A server that limits upgrades per address (429) or is full or
		// draining (503), or a load balancer without a ready node (502,
		// 504), is asked again after a growing pause, as a browser client
		// would, within the connect timeout; so is a refused connection
		// when the bot comes back after MOVE (the node may be restarting).
		var se ws.StatusError
		kind := dialErrorKind(err)
		retry := (errors.As(err, &se) && retryStatus(int(se))) || (resume && reconnectable(kind))
		if pause := retryPause(attempt); retry && !e.stopping.Load() && time.Since(start)+pause < e.cfg.ConnectTimeout {
			e.conn.add(cConnectRetries, 1)
			sleepCtx(ctx, pause)
			continue
		}
		e.connectFailed(b, kind)
		return
	}
	var early []byte
	if br != nil {
		// The server spoke first; keep what was read past the handshake.
		early, _ = io.ReadAll(io.LimitReader(br, int64(br.Buffered())))
		ws.PutReader(br)
	}
	fd, err := takeFD(conn)
	if err != nil {
		e.connectFailed(b, "dial_fd")
		return
	}
	if e.stopping.Load() {
		_ = unix.Close(fd)
		return
	}
	now := time.Now().UnixNano()
	b.dialStart.Store(start.UnixNano())
	b.in = append(b.in[:0], early...)
	b.welcomed.Store(false)
	b.gen.Add(1)
	b.setPhase(phaseAwaitWelcome, now)
	e.open.Add(1)
	b.mu.Lock()
	b.out = nil
	b.sess.resuming = resume
	b.fd.Store(int32(fd))
	b.mu.Unlock()
	if err := b.p.add(b, fd); err != nil {
		e.errs.add("epoll_add")
		b.mu.Lock()
		b.fd.Store(-1)
		b.mu.Unlock()
		_ = unix.Close(fd)
		e.open.Add(-1)
		b.setPhase(phaseDead, now)
		e.resolve(b)
		return
	}
	e.conn.add(cConnects, 1)
	if b.everConnected.Swap(true) {
		e.conn.add(cReconnects, 1)
	}
	var first []byte
	if resume {
		m := protocol.Resume{SessionID: sid, ResumeToken: token, LastSeq: b.recvSeq.Load(), Token: e.cfg.Token}
		first = m.Append(make([]byte, 0, 64+len(sid)+len(token)+len(e.cfg.Token)))
	} else {
		hello := protocol.Hello{Version: protocol.Version, Token: e.cfg.Token, Client: "loadtest"}
		first = hello.Append(make([]byte, 0, 64+len(e.cfg.Token)))
	}
	*fbuf = appendClientFrame((*fbuf)[:0], opBinary, first)
	b.write(*fbuf, &e.conn)
}

// retryStatus reports whether an HTTP status refusing a connection is
// worth asking again: 429 (too many from this address), 502 and 504 (a
// load balancer without a ready node), 503 (full or draining).
func retryStatus(code int) bool {
	return code == 429 || code == 502 || code == 503 || code == 504
}

// reconnectable reports whether a failed dial is worth trying again when
// the bot comes back after MOVE.
func reconnectable(kind string) bool {
	switch kind {
	case "dial_refused", "dial_reset", "dial_error":
		return true
	}
	return false
}

// retryPause is the pause before connection attempt attempt+1.
func retryPause(attempt int) time.Duration {
	return time.Duration(attempt) * (50*time.Millisecond + rand.N(100*time.Millisecond))
}

// connectFailed counts a failed connection attempt; a churn bot tries
// again later, any other bot gives up.
func (e *engine) connectFailed(b *bot, kind string) {
	if !e.stopping.Load() {
		e.errs.add(kind)
	}
	if b.reconnect.Load() && !e.stopping.Load() {
		b.setPhase(phaseIdle, time.Now().UnixNano())
		e.scheduleReconnect(b)
		return
	}
	b.setPhase(phaseDead, time.Now().UnixNano())
	e.resolve(b)
}

// takeFD takes the socket out of the Go network poller: the descriptor is
// duplicated (close-on-exec, still non-blocking, as the flags belong to
// the shared socket) and the original closed, which does not end the
// connection.
func takeFD(conn net.Conn) (int, error) {
	defer conn.Close()
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// bindNoPort lets the kernel choose the source port at connect time, per
// destination, so that a source address is not limited to one set of
// ephemeral ports across all servers.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// dialErrorKind classifies a failed dial or upgrade for the error counts.
func dialErrorKind(err error) string {
	var se ws.StatusError
	if errors.As(err, &se) {
		return "upgrade_" + strconv.Itoa(int(se))
	}
	switch {
	case errors.Is(err, unix.ECONNREFUSED):
		return "dial_refused"
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return "dial_no_source_port"
	case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE):
		return "dial_too_many_files"
	case errors.Is(err, unix.ECONNRESET):
		return "dial_reset"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "dial_timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "dial_timeout"
	}
	return "dial_error"
}
