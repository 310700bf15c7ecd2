package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/gameserver/gameserver/internal/protocol"
	"golang.org/x/sys/unix"
)

// Chat message types (the chat example game).
const (
	typeChatSend      protocol.MsgType = 0x1100 // C: [text]
	typeChatBroadcast protocol.MsgType = 0x1101 // S: [playerID, name, text]
)

// chatStamp prefixes the send time in the bots' chat texts.
const chatStamp = "lt:"

// Reader limits.
const (
	readBufSize = 64 << 10
	maxFrame    = 1 << 20 // largest server message the driver accepts
	pollBatch   = 256
)

// poller reads the connections of its bots with one epoll instance
// (level-triggered): one read per readable socket into a shared buffer,
// then every complete frame in it is handled in place. Only a poller closes
// its bots' descriptors, so a descriptor number is never reused under a
// read.
type poller struct {
	e     *engine
	epfd  int
	rbuf  []byte
	c     *counters
	hs    *histSet
	arena protocol.ArenaState // decode scratch
	wbuf  []byte              // encode scratch
	fbuf  []byte              // frame scratch
	dbuf  []byte              // base64 decode scratch (the fallback's events)
	done  chan struct{}
}

func newPoller(e *engine) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	p := &poller{
		e:    e,
		epfd: epfd,
		rbuf: make([]byte, readBufSize),
		c:    new(counters),
		hs:   newHistSet(),
		wbuf: make([]byte, 0, 512),
		fbuf: make([]byte, 0, 512+maxClientFrameHeader),
		done: make(chan struct{}),
	}
	if e.cfg.Transport == transportSSE {
		p.dbuf = make([]byte, 4<<10)
	}
	return p, nil
}

// Which of a fallback bot's sockets an epoll event is for (in the event's
// Pad field; the Fd field holds the bot's index).
const (
	sockMain int32 = iota // the WebSocket, or the fallback's event stream
	sockPost              // the fallback's POST connection
)

// add registers a connected bot's descriptor.
func (p *poller) add(b *bot, fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: b.idx, Pad: sockMain}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
}

// addSSE registers a fallback bot's two descriptors.
func (p *poller) addSSE(b *bot, sfd, pfd int) error {
	if err := p.add(b, sfd); err != nil {
		return err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: b.idx, Pad: sockPost}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, pfd, &ev); err != nil {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, sfd, nil)
		return err
	}
	return nil
}

// run reads until stop is closed, then closes every descriptor left.
func (p *poller) run(stop <-chan struct{}) {
	defer close(p.done)
	events := make([]unix.EpollEvent, pollBatch)
	for {
		select {
		case <-stop:
			p.closeAll()
			return
		default:
		}
		n, err := unix.EpollWait(p.epfd, events, 100)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			p.e.errs.add("epoll_wait")
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if n == 0 {
			continue
		}
		p.hs.mu.Lock()
		for i := 0; i < n; i++ {
			idx := events[i].Fd
			if idx < 0 || int(idx) >= len(p.e.bots) {
				continue
			}
			b := &p.e.bots[idx]
			switch {
			case b.sse == nil:
				p.readable(b)
			case events[i].Pad == sockPost:
				p.postReadable(b)
			default:
				p.streamReadable(b)
			}
		}
		p.hs.mu.Unlock()
	}
}

// closeAll closes what is still open when the run ends.
func (p *poller) closeAll() {
	for i := range p.e.bots {
		if b := &p.e.bots[i]; b.p == p && b.fd.Load() >= 0 {
			p.closeBot(b, "")
		}
	}
	_ = unix.Close(p.epfd)
}

// readable reads once from a bot's socket and handles every complete
// frame. Called with p.hs.mu held.
func (p *poller) readable(b *bot) {
	data := p.readOnce(b, int(b.fd.Load()), "")
	if data == nil {
		return
	}
	now := time.Now().UnixNano()
	buffered := len(b.in) > 0
	if buffered {
		b.in = append(b.in, data...)
		data = b.in
	}
	off := 0
	for off < len(data) {
		f, used := parseServerFrame(data[off:], maxFrame)
		if used == 0 {
			break
		}
		if used < 0 {
			p.closeBot(b, "bad_frame")
			return
		}
		off += used
		if !p.frame(b, f, now) {
			return // closed
		}
	}
	switch rest := data[off:]; {
	case len(rest) == 0:
		if cap(b.in) > 4<<10 {
			b.in = nil
		} else {
			b.in = b.in[:0]
		}
	case buffered:
		b.in = b.in[:copy(b.in, rest)]
	default:
		b.in = append(b.in[:0], rest...)
	}
}

// frame handles one frame. It reports false when the connection was
// closed.
func (p *poller) frame(b *bot, f serverFrame, now int64) bool {
	switch f.op {
	case opBinary, opText:
		if f.op == opText {
			p.e.errs.add("text_frame")
		}
		if b.fragging {
			p.closeBot(b, "bad_fragment")
			return false
		}
		if !f.fin {
			b.frag = append(b.frag[:0], f.payload...)
			b.fragging = true
			return true
		}
		return p.message(b, f.payload, now)
	case opContinuation:
		if !b.fragging || len(b.frag)+len(f.payload) > maxFrame {
			p.closeBot(b, "bad_fragment")
			return false
		}
		b.frag = append(b.frag, f.payload...)
		if !f.fin {
			return true
		}
		b.fragging = false
		ok := p.message(b, b.frag, now)
		b.frag = nil
		return ok
	case opPing:
		p.fbuf = appendClientFrame(p.fbuf[:0], opPong, f.payload)
		b.write(p.fbuf, p.c)
		return true
	case opPong:
		return true
	case opClose:
		code := uint16(1005)
		if len(f.payload) >= 2 {
			code = binary.BigEndian.Uint16(f.payload)
		}
		if b.phase.Load() != phaseClosing {
			if !p.e.stopping.Load() && !b.moving.Load() {
				p.e.errs.add("server_close_" + protocol.CloseCode(code).String())
			}
			if code == 1005 {
				code = 1000
			}
			p.fbuf = appendCloseFrame(p.fbuf[:0], code, "")
			b.write(p.fbuf, p.c)
		}
		b.closeSeen = true
		p.closeBot(b, "")
		return false
	}
	p.closeBot(b, "bad_opcode")
	return false
}

// message handles one protocol message. It reports false when the
// connection was closed.
func (p *poller) message(b *bot, msg []byte, now int64) bool {
	p.c.add(cMsgsIn, 1)
	e := p.e
	t, body, err := protocol.Split(msg)
	if err != nil {
		e.errs.add("bad_message")
		return true
	}
	switch t {
	case protocol.TypePing, protocol.TypePong, protocol.TypeResumed, protocol.TypeKick, protocol.TypeMove, protocol.TypeWelcome:
	default:
		// Every other message the server sends after WELCOME is sequenced.
		b.recvSeq.Add(1)
	}
	switch t {
	case protocol.TypePing:
		var m protocol.Ping
		if m.Decode(body) != nil {
			e.errs.add("bad_ping")
			return true
		}
		p.c.add(cServerPings, 1)
		if m.Ack != 0 {
			b.mu.Lock()
			b.log.ack(m.Ack)
			b.mu.Unlock()
		}
		pong := protocol.Pong{Nonce: m.Nonce}
		if e.cfg.Ack {
			pong.Ack = b.recvSeq.Load()
		}
		b.sendMsg(pong.Append(p.wbuf[:0]), &p.fbuf, p.c)
	case protocol.TypePong:
		var m protocol.Pong
		if m.Decode(body) != nil {
			e.errs.add("bad_pong")
			return true
		}
		if m.Ack != 0 {
			// The server's answer to the bot's own PING acknowledges too.
			b.mu.Lock()
			b.log.ack(m.Ack)
			b.mu.Unlock()
		}
		if m.Nonce == b.pingNonce.Load() {
			if sent := b.pingSent.Load(); sent > 0 {
				p.c.add(cPongsIn, 1)
				p.latency(histRTT, now-sent)
			}
		}
	case protocol.TypeState:
		p.state(b, body, now)
	case typeChatBroadcast:
		p.chat(body, now)
	case protocol.TypeWelcome:
		var m protocol.Welcome
		if err := m.Decode(body); err != nil {
			e.errs.add("bad_welcome")
			p.closeBot(b, "")
			return false
		}
		if ph := b.phase.Load(); ph != phaseAwaitWelcome {
			if ph != phaseClosing {
				e.errs.add("unexpected_welcome")
			}
			return true
		}
		b.mu.Lock()
		b.sess = session{id: m.SessionID, token: m.ResumeToken, node: m.Node}
		b.log.reset()
		b.mu.Unlock()
		b.welcomed.Store(true)
		b.recvSeq.Store(0)
		e.connected.Add(1)
		record(p.hs.h[histConnect], now-b.dialStart.Load())
		if e.kind != "" {
			p.join(b, now)
		} else {
			b.setPhase(phaseReady, now)
			e.resolve(b)
		}
	case protocol.TypeResumed:
		return p.resumed(b, body, now)
	case protocol.TypeMove:
		p.move(b, body, now)
	case protocol.TypeJoined:
		var m protocol.Joined
		if err := m.Decode(body); err != nil {
			e.errs.add("bad_joined")
			return true
		}
		if ph := b.phase.Load(); ph != phaseJoining || m.ReqID != b.reqID.Load() {
			if ph != phaseClosing {
				e.errs.add("unexpected_joined")
			}
			return true
		}
		b.playerID = append(b.playerID[:0], m.PlayerID...)
		b.acked = b.seq.Load()
		b.joinSeq.Store(b.acked)
		b.recvd.Store(0)
		b.lastStateAt = 0
		b.sawSelf, b.countedMis = false, false
		b.joinTries = 0
		b.mu.Lock()
		b.sess.room = m.RoomID
		b.mu.Unlock()
		if e.cfg.Forward {
			e.roomCreated(b, m.RoomID)
		}
		record(p.hs.h[histJoin], now-b.joinStart.Load())
		p.c.add(cJoins, 1)
		if !b.inRoom.Swap(true) {
			e.joined.Add(1)
		}
		b.setPhase(phaseInRoom, now)
		e.resolve(b)
	case protocol.TypeError:
		var m protocol.ErrorMsg
		if err := m.Decode(body); err != nil {
			e.errs.add("bad_error")
			return true
		}
		ph := b.phase.Load()
		b.mu.Lock()
		resuming := b.sess.resuming
		b.mu.Unlock()
		switch {
		case ph == phaseAwaitWelcome && resuming:
			// The session cannot be resumed (ERROR 412, or 429 past the
			// resume rate): the connection stays open and the bot starts
			// over with HELLO.
			e.errs.add("resume_" + m.Code.String())
			e.resumeFailed(b)
			hello := protocol.Hello{Version: protocol.Version, Token: e.cfg.Token, Client: "loadtest"}
			b.sendMsg(hello.Append(p.wbuf[:0]), &p.fbuf, p.c)
		case ph == phaseJoining && (m.Ref == protocol.TypeJoin || (m.ReqID != 0 && m.ReqID == b.reqID.Load())):
			if e.retryJoin(b, m.Code, now) {
				p.c.add(cJoinRetries, 1)
				return true
			}
			if m.Code == protocol.CodeRoomNotFound {
				e.roomsMissing.Store(true)
			}
			e.errs.add("join_" + m.Code.String())
			b.setPhase(phaseReady, now)
			e.resolve(b)
		case ph == phaseLeaving && m.Ref == protocol.TypeLeave:
			e.errs.add("leave_" + m.Code.String())
			p.leftRoom(b)
			b.setPhase(phaseReady, now)
		default:
			e.errs.add("error_" + m.Code.String())
		}
	case protocol.TypeLeft:
		var m protocol.Left
		if err := m.Decode(body); err != nil {
			e.errs.add("bad_left")
			return true
		}
		switch b.phase.Load() {
		case phaseLeaving:
			p.leftRoom(b)
			if e.kind != "" && !e.stopping.Load() {
				p.c.add(cRejoins, 1)
				p.join(b, now)
			} else {
				b.setPhase(phaseReady, now)
			}
		case phaseInRoom:
			p.leftRoom(b)
			e.errs.add("left_" + m.Reason.String())
			b.setPhase(phaseReady, now)
		}
	case protocol.TypeKick:
		var m protocol.Kick
		if m.Decode(body) == nil {
			e.errs.add("kick_" + m.Code.String())
		}
	}
	return true
}

// leftRoom notes that a bot is no longer in a room.
func (p *poller) leftRoom(b *bot) {
	if b.inRoom.Swap(false) {
		p.e.joined.Add(-1)
	}
}

// join sends JOIN for the scenario's room kind.
func (p *poller) join(b *bot, now int64) {
	p.e.join(b, now, &p.wbuf, &p.fbuf, p.c)
}

// latency records a sample of one of the histograms, and of the progress
// line's when it is the scenario's main one. Called with p.hs.mu held.
func (p *poller) latency(name string, ns int64) {
	if name == p.e.mainHist {
		record(p.hs.interval, ns)
	}
	if p.e.measuring.Load() {
		record(p.hs.h[name], ns)
	}
}

// state handles a STATE message: tick-to-client latency for every state,
// input-to-state latency for the inputs it acknowledges.
func (p *poller) state(b *bot, body []byte, now int64) {
	var st protocol.State
	if err := st.Decode(body); err != nil {
		p.e.errs.add("bad_state")
		return
	}
	p.c.add(cStatesIn, 1)
	if d := now - st.ServerTimeNs; d >= 0 {
		p.latency(histTick, d)
	} else {
		p.latency(histTick, 0)
	}
	if b.sent == nil || b.phase.Load() != phaseInRoom {
		return
	}
	if last := b.lastStateAt; last != 0 && p.e.measuring.Load() && now-last > b.maxGap.Load() {
		b.maxGap.Store(now - last)
	}
	b.lastStateAt = now
	if err := p.arena.Decode(st.Body); err != nil {
		p.e.errs.add("bad_arena_state")
		return
	}
	var self *protocol.ArenaPlayer
	for i := range p.arena.Players {
		if bytes.Equal(p.arena.Players[i].ID, b.playerID) {
			self = &p.arena.Players[i]
			break
		}
	}
	if self == nil {
		if b.sawSelf && !b.countedMis {
			p.e.errs.add("state_without_self")
			b.countedMis = true
		}
		return
	}
	b.sawSelf = true
	b.recvd.Store(self.Received)
	last := self.LastSeq
	sent := b.seq.Load()
	if last <= b.acked {
		return
	}
	if last > sent {
		p.e.errs.add("last_seq_ahead")
		b.acked = last
		return
	}
	first := b.acked + 1
	if sent-first >= seqRing {
		expired := sent - seqRing + 1 - first
		p.c.add(cInputsExpired, uint64(expired))
		first += expired
	}
	class := ""
	switch b.class.Load() {
	case classLocal:
		class = histInputLocal
	case classForwarded:
		class = histInputForwarded
	}
	for k := first; k <= last; k++ {
		p.c.add(cInputsAcked, 1)
		d := now - b.sent[k%seqRing].Load()
		p.latency(histInput, d)
		if class != "" {
			p.latency(class, d)
		}
	}
	b.acked = last
}

// chat handles a chat broadcast [playerID, name, text] (or [playerID,
// text]): a text sent by a bot carries its send time.
func (p *poller) chat(body []byte, now int64) {
	r := protocol.NewReader(body)
	n, err := r.ReadArrayLen()
	if err != nil || n < 2 {
		p.e.errs.add("bad_chat")
		return
	}
	for range n - 1 {
		if err := r.Skip(); err != nil {
			p.e.errs.add("bad_chat")
			return
		}
	}
	text, err := r.ReadStringBytes(4096)
	if err != nil {
		p.e.errs.add("bad_chat")
		return
	}
	p.c.add(cChatIn, 1)
	if ts, ok := parseStamp(text); ok {
		p.latency(histChat, now-ts)
	}
}

// parseStamp reads the send time from a bot's chat text.
func parseStamp(text []byte) (int64, bool) {
	if !bytes.HasPrefix(text, []byte(chatStamp)) {
		return 0, false
	}
	var v int64
	digits := text[len(chatStamp):]
	if len(digits) == 0 || len(digits) > 19 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// closeBot closes a bot's connection. reason, when not empty, is counted
// as an error unless the driver was closing the connection itself or the
// server had told the bot to move. Only the bot's poller calls it (and the
// connector, holding the poller's lock).
func (p *poller) closeBot(b *bot, reason string) {
	e := p.e
	b.mu.Lock()
	fd := int(b.fd.Swap(-1))
	sfd := -1
	if b.sse != nil {
		sfd = int(b.sse.sfd.Swap(-1))
		b.sse.inFlight, b.sse.retryAt, b.sse.refusedAt = false, 0, 0
	}
	b.out = nil
	b.hasOut.Store(false)
	b.mu.Unlock()
	if fd < 0 && sfd < 0 {
		return
	}
	for _, d := range [2]int{fd, sfd} {
		if d >= 0 {
			_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, d, nil)
			_ = unix.Close(d)
		}
	}
	e.open.Add(-1)
	moving := b.moving.Swap(false)
	ph := b.phase.Load()
	switch {
	case ph == phaseClosing || moving:
		p.c.add(cClosedClean, 1)
	case reason != "" && !e.stopping.Load() && !moving:
		e.errs.add(reason)
	}
	if b.welcomed.Swap(false) {
		e.connected.Add(-1)
	}
	p.leftRoom(b)
	b.in, b.frag, b.fragging, b.closeSeen = nil, nil, false, false
	now := time.Now().UnixNano()
	if moving && ph != phaseClosing && !e.stopping.Load() {
		// MOVE: reconnect after its delay and resume the session.
		b.mu.Lock()
		b.sess.resume = true
		b.mu.Unlock()
		b.setPhase(phaseIdle, now)
		e.reconnectAfter(b, time.Duration(b.moveDelayNs))
		return
	}
	if b.reconnect.Load() && !e.stopping.Load() {
		b.setPhase(phaseIdle, now)
		e.scheduleReconnect(b)
		return
	}
	b.setPhase(phaseDead, now)
	e.resolve(b)
}

// errnoName names a socket error for the error counts.
func errnoName(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		switch errno {
		case unix.ECONNRESET:
			return "reset"
		case unix.EPIPE:
			return "broken_pipe"
		case unix.ETIMEDOUT:
			return "timeout"
		}
		return fmt.Sprintf("errno_%d", int(errno))
	}
	return "error"
}

// readOnce reads what fd holds into the poller's buffer. It returns nil
// when there is nothing to handle: the descriptor was closed earlier in
// this batch, the read would block, or the connection ended (the bot is
// then closed, its reason prefixed with what, e.g. "post_").
func (p *poller) readOnce(b *bot, fd int, what string) []byte {
	if fd < 0 {
		return nil
	}
	n, err := readFD(fd, p.rbuf)
	if err != nil {
		if !errors.Is(err, unix.EAGAIN) {
			p.closeBot(b, what+"read_"+errnoName(err))
		}
		return nil
	}
	if n == 0 {
		p.closeBot(b, what+"eof")
		return nil
	}
	p.c.add(cBytesIn, uint64(n))
	return p.rbuf[:n]
}
