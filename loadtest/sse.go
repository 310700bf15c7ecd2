package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gameserver/gameserver/internal/nbio"
	"github.com/gameserver/gameserver/internal/protocol"
	"golang.org/x/sys/unix"
)

// The HTTP fallback (docs/protocol.md, "HTTP fallback"): a bot opens its
// session with POST /sse/open, reads the server's messages from one long
// GET /sse/stream (Server-Sent Events, base64 in `data:`, the sequence
// number in `id:`) and sends its own in POST /sse/send requests on a second
// keep-alive connection, one in flight at a time, batching what it sends
// meanwhile. Both sockets are read by the bot's poller like a WebSocket;
// the open and the stream's request run in the connector, blocking.

// Fallback limits.
const (
	maxPostMessages = 64                     // messages in one POST (the server's limit)
	postRetryDelay  = 100 * time.Millisecond // before a refused POST goes again
	maxPostResponse = 16 << 10               // longest POST response kept while incomplete
	maxEvent        = 2*maxFrame + 256       // longest stream event (base64 of a message)
)

// sseBot is a bot's fallback state. The send side is guarded by bot.mu;
// the stream parser and the response parser are reader fields.
type sseBot struct {
	sfd atomic.Int32 // the stream's socket, -1 when closed

	// Send side (bot.mu).
	postHead      []byte // POST request line and headers up to the Content-Length value
	deleteReq     []byte // the DELETE request that ends the session
	nextPost      uint64 // POST sequence number of the next batch's first message
	batch         []byte // messages waiting for the next POST, each a msgpack bin
	batchN        int
	inflight      []byte // the POST in flight (kept to retry it)
	inflightN     int
	inflightFirst uint64
	inFlight      bool
	retryAt       int64 // Unix ns when to send the in-flight POST again; 0 none
	refused       int   // the status of a POST refused as of an unknown session (401, 404) ...
	refusedAt     int64 // ... and when: an error unless the stream ends soon after
	closing       bool  // the bot ends the session: no more POSTs
	deleteWanted  bool  // send DELETE once the POST in flight is answered
	deleteSent    bool

	// Reader fields: the stream's chunked framing and the POST responses.
	chunked bool
	cstate  uint8
	cleft   int
	rin     []byte // an incomplete POST response
}

// Chunked transfer-coding states.
const (
	chunkSize    uint8 = iota // reading the chunk-size line
	chunkExt                  // skipping a chunk extension up to the line's end
	chunkData                 // cleft bytes of data left
	chunkDataEnd              // the CRLF after a chunk's data
	chunkDone                 // the last chunk arrived: the response is over
)

// openReply is the answer to POST /sse/open.
type openReply struct {
	Session   string   `json:"session"`
	Key       string   `json:"key"`
	SendToken string   `json:"sendToken"`
	NextSeq   uint64   `json:"nextSeq"` // the POST sequence number to send next
	Messages  []string `json:"messages"`
	Code      int      `json:"code"`
	Error     string   `json:"error"`
	ErrorCode int      `json:"errorCode"`
}

// connectSSE opens a fallback session (or resumes one) and its stream, and
// hands both sockets to the bot's poller.
func (e *engine) connectSSE(ctx context.Context, b *bot, start time.Time, tgt *target, fbuf *[]byte) {
	nd := net.Dialer{Timeout: e.cfg.ConnectTimeout}
	if len(e.cfg.Sources) > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: e.cfg.Sources[b.global%len(e.cfg.Sources)].AsSlice()}
		nd.Control = bindNoPort
	}
	deadline := start.Add(e.cfg.ConnectTimeout)
	var (
		post  net.Conn
		pbr   *bufio.Reader
		reply openReply
		msgs  [][]byte
	)
	fail := func(kind string) {
		if post != nil {
			post.Close()
		}
		e.connectFailed(b, kind)
	}
	for attempt := 1; ; attempt++ {
		b.mu.Lock()
		resume := b.sess.resume && b.sess.id != ""
		var first []byte
		if resume {
			m := protocol.Resume{SessionID: b.sess.id, ResumeToken: b.sess.token, LastSeq: b.recvSeq.Load(), Token: e.cfg.Token}
			first = m.Append(nil)
		} else {
			m := protocol.Hello{Version: protocol.Version, Token: e.cfg.Token, Client: "loadtest"}
			first = m.Append(nil)
		}
		b.sess.resuming = resume
		b.mu.Unlock()
		retry := func() bool {
			pause := retryPause(attempt)
			if e.stopping.Load() || !time.Now().Add(pause).Before(deadline) {
				return false
			}
			e.conn.add(cConnectRetries, 1)
			sleepCtx(ctx, pause)
			return true
		}
		if post == nil {
			c, err := nd.DialContext(ctx, "tcp", tgt.addr)
			if err != nil {
				if kind := dialErrorKind(err); resume && reconnectable(kind) && retry() {
					continue
				}
				fail(dialErrorKind(err))
				return
			}
			post, pbr = c, bufio.NewReaderSize(c, 4096)
		}
		_ = post.SetDeadline(deadline)
		status, body, keep, err := httpExchange(post, pbr, "POST", tgt.prefix+"/sse/open", tgt.addr, "application/octet-stream", first)
		if err != nil {
			post.Close()
			post = nil
			if resume && retry() {
				continue
			}
			fail(httpErrorKind(err, "open"))
			return
		}
		reply = openReply{}
		if jerr := json.Unmarshal(body, &reply); jerr != nil && status == http.StatusOK {
			fail("open_bad_reply")
			return
		}
		if !keep {
			post.Close()
			post = nil
		}
		if status == http.StatusOK {
			msgs = make([][]byte, 0, len(reply.Messages))
			for _, m := range reply.Messages {
				raw, err := base64.StdEncoding.DecodeString(m)
				if err != nil {
					fail("open_bad_reply")
					return
				}
				msgs = append(msgs, raw)
			}
			if post == nil {
				c, err := nd.DialContext(ctx, "tcp", tgt.addr)
				if err != nil {
					fail(dialErrorKind(err))
					return
				}
				post, pbr = c, bufio.NewReaderSize(c, 4096)
			}
			break
		}
		if resume && reply.ErrorCode != 0 {
			// The session cannot be resumed: start over with HELLO, as a
			// client does after ERROR 412.
			e.errs.add("resume_" + protocol.Code(reply.ErrorCode).String())
			e.resumeFailed(b)
			continue
		}
		if retryStatus(status) && retry() {
			continue
		}
		fail("open_" + strconv.Itoa(status))
		return
	}

	// The stream; a load balancer without a ready node (502, 504) or a
	// node that refuses for now (503) is asked again.
	var (
		sc   net.Conn
		sbr  *bufio.Reader
		resp *http.Response
	)
	q := tgt.prefix + "/sse/stream?session=" + url.QueryEscape(reply.Session) + "&key=" + url.QueryEscape(reply.Key)
	req := "GET " + q + " HTTP/1.1\r\nHost: " + tgt.addr + "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
	for attempt := 1; ; attempt++ {
		var err error
		sc, err = nd.DialContext(ctx, "tcp", tgt.addr)
		if err == nil {
			_ = sc.SetDeadline(deadline)
			sbr = bufio.NewReaderSize(sc, 4096)
			if _, err = io.WriteString(sc, req); err == nil {
				resp, err = http.ReadResponse(sbr, &http.Request{Method: http.MethodGet})
			}
			if err != nil {
				sc.Close()
			}
		}
		kind := ""
		switch {
		case err != nil:
			kind = httpErrorKind(err, "stream")
		case resp.StatusCode != http.StatusOK:
			resp.Body.Close()
			sc.Close()
			kind = "stream_" + strconv.Itoa(resp.StatusCode)
		}
		if kind == "" {
			break
		}
		pause := retryPause(attempt)
		again := err != nil || retryStatus(resp.StatusCode)
		if again && !e.stopping.Load() && time.Now().Add(pause).Before(deadline) {
			e.conn.add(cConnectRetries, 1)
			sleepCtx(ctx, pause)
			continue
		}
		fail(kind)
		return
	}
	chunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
	early, _ := io.ReadAll(io.LimitReader(sbr, int64(sbr.Buffered())))
	_ = sc.SetDeadline(time.Time{})
	_ = post.SetDeadline(time.Time{})
	if pbr.Buffered() > 0 {
		sc.Close()
		fail("open_bad_reply")
		return
	}
	sfd, err := takeFD(sc)
	if err != nil {
		fail("dial_fd")
		return
	}
	pfd, err := takeFD(post)
	post = nil
	if err != nil {
		_ = unix.Close(sfd)
		fail("dial_fd")
		return
	}
	if e.stopping.Load() {
		_ = unix.Close(sfd)
		_ = unix.Close(pfd)
		return
	}

	// Hand over. The poller's lock is held until the open reply's messages
	// are handled, so that the stream's events come after them.
	p := b.p
	now := time.Now().UnixNano()
	s := b.sse
	p.hs.mu.Lock()
	defer p.hs.mu.Unlock()
	b.dialStart.Store(start.UnixNano())
	b.in = b.in[:0]
	b.welcomed.Store(false)
	b.gen.Add(1)
	b.setPhase(phaseAwaitWelcome, now)
	s.chunked, s.cstate, s.cleft, s.rin = chunked, chunkSize, 0, s.rin[:0]
	b.mu.Lock()
	b.out = nil
	sid := url.QueryEscape(reply.Session)
	s.postHead = append(s.postHead[:0], "POST "+tgt.prefix+"/sse/send?session="+sid+" HTTP/1.1\r\nHost: "+tgt.addr+
		"\r\nAuthorization: Bearer "+reply.SendToken+"\r\nContent-Type: application/octet-stream\r\nContent-Length: "...)
	s.deleteReq = append(s.deleteReq[:0], "DELETE "+tgt.prefix+"/sse/session?session="+sid+" HTTP/1.1\r\nHost: "+tgt.addr+
		"\r\nAuthorization: Bearer "+reply.SendToken+"\r\nContent-Length: 0\r\n\r\n"...)
	switch {
	case reply.NextSeq > 0:
		// The server says where the session's POST numbering goes on (1
		// when the session is new here, after a move from another node).
		s.nextPost = reply.NextSeq
	case !b.sess.resuming || b.sess.id != reply.Session:
		s.nextPost = 1 // a new session numbers its POSTs from 1; a resumed one goes on
	}
	s.batch, s.batchN, s.inflight, s.inflightN, s.inFlight, s.retryAt = s.batch[:0], 0, s.inflight[:0], 0, false, 0
	s.closing, s.deleteWanted, s.deleteSent, s.refused, s.refusedAt = false, false, false, 0, 0
	s.sfd.Store(int32(sfd))
	b.fd.Store(int32(pfd))
	b.mu.Unlock()
	e.open.Add(1)
	if err := p.addSSE(b, sfd, pfd); err != nil {
		e.errs.add("epoll_add")
		b.mu.Lock()
		b.fd.Store(-1)
		s.sfd.Store(-1)
		b.mu.Unlock()
		_ = unix.Close(sfd)
		_ = unix.Close(pfd)
		e.open.Add(-1)
		b.setPhase(phaseDead, now)
		e.resolve(b)
		return
	}
	e.conn.add(cConnects, 1)
	if b.everConnected.Swap(true) {
		e.conn.add(cReconnects, 1)
	}
	// The open request carried HELLO (or RESUME): one message out.
	e.conn.add(cMsgsOut, 1)
	for _, m := range msgs {
		if b.sse.sfd.Load() < 0 || !p.message(b, m, now) {
			return
		}
	}
	if len(early) > 0 {
		p.streamData(b, early, now)
	}
}

// httpExchange sends one request with a body and reads the response. It
// reports the status, the body, and whether the connection stays open.
func httpExchange(c net.Conn, br *bufio.Reader, method, path, host, ctype string, body []byte) (int, []byte, bool, error) {
	req := make([]byte, 0, 256+len(body))
	req = append(req, method+" "+path+" HTTP/1.1\r\nHost: "+host+"\r\nContent-Type: "+ctype+"\r\nContent-Length: "...)
	req = strconv.AppendInt(req, int64(len(body)), 10)
	req = append(req, "\r\n\r\n"...)
	req = append(req, body...)
	if _, err := c.Write(req); err != nil {
		return 0, nil, false, err
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return 0, nil, false, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, false, err
	}
	return resp.StatusCode, data, !resp.Close, nil
}

// httpErrorKind classifies a failed fallback request.
func httpErrorKind(err error, what string) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return what + "_timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return what + "_eof"
	}
	return dialErrorKind(err)
}

// sseQueueLocked adds a message to the next POST and sends it now if no
// POST is in flight. b.mu is held.
func (b *bot) sseQueueLocked(msg []byte, sc *[]byte, c *counters) bool {
	s := b.sse
	if b.fd.Load() < 0 || s.closing {
		return false
	}
	if len(s.batch)+len(msg) > maxOutBacklog {
		b.p.e.errs.add("write_backlog")
		b.shutdownLocked()
		return false
	}
	s.batch = protocol.AppendBin(s.batch, msg)
	s.batchN++
	c.add(cMsgsOut, 1)
	if !s.inFlight {
		b.ssePostLocked(sc, c)
	}
	return true
}

// ssePostLocked moves up to maxPostMessages waiting messages into a POST
// and sends it.
func (b *bot) ssePostLocked(sc *[]byte, c *counters) {
	s := b.sse
	if s.batchN == 0 {
		return
	}
	n, cut := s.batchN, len(s.batch)
	if n > maxPostMessages {
		n, cut = maxPostMessages, binsLen(s.batch, maxPostMessages)
	}
	s.inflight = append(s.inflight[:0], s.batch[:cut]...)
	s.batch = s.batch[:copy(s.batch, s.batch[cut:])]
	s.batchN -= n
	s.inflightN, s.inflightFirst, s.inFlight = n, s.nextPost, true
	b.writePostLocked(sc, c)
}

// writePostLocked writes the POST in flight: [firstSeq, [bin...]].
func (b *bot) writePostLocked(sc *[]byte, c *counters) {
	s := b.sse
	var hdr [16]byte
	h := append(hdr[:0], 0x92)
	h = protocol.AppendUint(h, s.inflightFirst)
	h = protocol.AppendArrayLen(h, s.inflightN)
	buf := append((*sc)[:0], s.postHead...)
	buf = strconv.AppendInt(buf, int64(len(h)+len(s.inflight)), 10)
	buf = append(buf, "\r\n\r\n"...)
	buf = append(buf, h...)
	buf = append(buf, s.inflight...)
	*sc = buf
	s.retryAt = 0
	c.add(cPosts, 1)
	b.writeLocked(buf, c)
}

// binsLen returns the length of the first n msgpack bins of b.
func binsLen(b []byte, n int) int {
	off := 0
	for range n {
		switch b[off] {
		case 0xc4:
			off += 2 + int(b[off+1])
		case 0xc5:
			off += 3 + (int(b[off+1])<<8 | int(b[off+2]))
		default:
			off += 5 + (int(b[off+1])<<24 | int(b[off+2])<<16 | int(b[off+3])<<8 | int(b[off+4]))
		}
	}
	return off
}

// sseCloseLocked ends the session: DELETE once nothing is in flight.
func (b *bot) sseCloseLocked(c *counters) {
	s := b.sse
	s.closing = true
	s.batch, s.batchN = s.batch[:0], 0
	if s.inFlight {
		s.deleteWanted = true
		return
	}
	b.sseDeleteLocked(c)
}

func (b *bot) sseDeleteLocked(c *counters) {
	s := b.sse
	if s.deleteSent {
		return
	}
	s.deleteSent, s.deleteWanted = true, false
	if b.writeLocked(s.deleteReq, c) {
		c.add(cMsgsOut, 1)
	}
}

// refusedGrace is how long after a POST refused for an unknown session
// the stream may take to end before the refusal counts as an error.
const refusedGrace = time.Second

// sseRetry sends the POST in flight again when its retry is due, and
// counts a refusal the stream did not explain (the sender calls it on its
// visits).
func (b *bot) sseRetry(now int64, sc *[]byte, c *counters) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sse
	if s.refusedAt != 0 && now-s.refusedAt > int64(refusedGrace) {
		if b.fd.Load() >= 0 && !s.closing && !b.moving.Load() {
			b.p.e.errs.add("post_" + strconv.Itoa(s.refused))
		}
		s.refused, s.refusedAt = 0, 0
	}
	if s.retryAt == 0 || now < s.retryAt || !s.inFlight || b.fd.Load() < 0 {
		return
	}
	c.add(cPostRetries, 1)
	b.writePostLocked(sc, c)
}

// streamReadable reads once from a bot's event stream. Called with
// p.hs.mu held.
func (p *poller) streamReadable(b *bot) {
	if data := p.readOnce(b, int(b.sse.sfd.Load()), ""); data != nil {
		p.streamData(b, data, time.Now().UnixNano())
	}
}

// streamData handles raw bytes of a bot's stream: it removes the chunked
// framing in place, then handles every complete event.
func (p *poller) streamData(b *bot, raw []byte, now int64) {
	s := b.sse
	data := raw
	if s.chunked {
		var ok bool
		if data, ok = dechunk(s, raw); !ok {
			p.closeBot(b, "bad_chunk")
			return
		}
	}
	buffered := len(b.in) > 0
	if buffered {
		b.in = append(b.in, data...)
		data = b.in
	}
	off := 0
	for off < len(data) {
		end := bytes.Index(data[off:], []byte("\n\n"))
		if end < 0 {
			break
		}
		ev := data[off : off+end]
		off += end + 2
		if !p.event(b, ev, now) {
			return // closed
		}
	}
	rest := data[off:]
	if len(rest) > maxEvent {
		p.closeBot(b, "bad_event")
		return
	}
	switch {
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
	if s.cstate == chunkDone && b.sse.sfd.Load() >= 0 {
		p.closeBot(b, "eof") // the stream ended without a close event
	}
}

// dechunk removes the chunked transfer-coding from raw, in place, and
// returns the data. It reports false on a malformed encoding.
func dechunk(s *sseBot, raw []byte) ([]byte, bool) {
	w := 0
	for i := 0; i < len(raw); {
		switch s.cstate {
		case chunkSize, chunkExt:
			c := raw[i]
			i++
			switch {
			case c == '\n':
				if s.cleft == 0 {
					s.cstate = chunkDone
					return raw[:w], true
				}
				s.cstate = chunkData
			case c == '\r' || s.cstate == chunkExt:
			case c == ';':
				s.cstate = chunkExt
			default:
				v, ok := hexVal(c)
				if !ok || s.cleft > 1<<24 {
					return nil, false
				}
				s.cleft = s.cleft<<4 | v
			}
		case chunkData:
			k := min(s.cleft, len(raw)-i)
			copy(raw[w:], raw[i:i+k])
			w += k
			i += k
			s.cleft -= k
			if s.cleft == 0 {
				s.cstate = chunkDataEnd
			}
		case chunkDataEnd:
			c := raw[i]
			i++
			if c == '\n' {
				s.cstate = chunkSize
			} else if c != '\r' {
				return nil, false
			}
		case chunkDone:
			return raw[:w], true
		}
	}
	return raw[:w], true
}

func hexVal(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}

// event handles one stream event (its lines, without the blank line that
// ends it). It reports false when the connection was closed.
func (p *poller) event(b *bot, ev []byte, now int64) bool {
	var data, name, id []byte
	for len(ev) > 0 {
		line := ev
		if i := bytes.IndexByte(ev, '\n'); i >= 0 {
			line, ev = ev[:i], ev[i+1:]
		} else {
			ev = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 || line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			data = value
		case "event":
			name = value
		case "id":
			id = value
		}
	}
	if len(name) > 0 {
		if string(name) == "close" {
			p.streamClosed(b, closeCodeOf(data))
			return false
		}
		return true // an event this driver does not know
	}
	if data == nil {
		return true
	}
	n := base64.StdEncoding.DecodedLen(len(data))
	if n > maxFrame {
		p.e.errs.add("bad_event")
		return true
	}
	if n > len(p.dbuf) {
		p.dbuf = make([]byte, max(n, 2*len(p.dbuf)))
	}
	n, err := base64.StdEncoding.Decode(p.dbuf[:n], data)
	if err != nil {
		p.e.errs.add("bad_event")
		return true
	}
	if !p.message(b, p.dbuf[:n], now) {
		return false
	}
	if len(id) > 0 {
		if v, err := strconv.ParseUint(string(id), 10, 64); err != nil || v != b.recvSeq.Load() {
			p.e.errs.add("event_id_mismatch")
		}
	}
	return true
}

// closeCodeOf reads the code of a close event's data, {"code": N, ...}.
func closeCodeOf(data []byte) uint16 {
	v, ok := jsonUint(data, "code")
	if !ok || v > 0xffff {
		return 1005
	}
	return uint16(v)
}

// jsonUint finds "key": N in a small JSON object without decoding it.
func jsonUint(data []byte, key string) (uint64, bool) {
	i := bytes.Index(data, []byte(`"`+key+`"`))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(data[i+len(key)+2:], " \t")
	rest, ok := bytes.CutPrefix(rest, []byte(":"))
	if !ok {
		return 0, false
	}
	rest = bytes.TrimLeft(rest, " \t")
	var v uint64
	digits := 0
	for _, c := range rest {
		if c < '0' || c > '9' || digits == 19 {
			break
		}
		v = v*10 + uint64(c-'0')
		digits++
	}
	return v, digits > 0
}

// streamClosed handles the stream's close event: the server closed the
// session's connection with code.
func (p *poller) streamClosed(b *bot, code uint16) {
	e := p.e
	if b.phase.Load() != phaseClosing && !e.stopping.Load() && !b.moving.Load() {
		e.errs.add("server_close_" + protocol.CloseCode(code).String())
	}
	p.closeBot(b, "")
}

// postReadable reads once from a bot's POST connection and handles every
// complete response. Called with p.hs.mu held.
func (p *poller) postReadable(b *bot) {
	data := p.readOnce(b, int(b.fd.Load()), "post_")
	if data == nil {
		return
	}
	s := b.sse
	buffered := len(s.rin) > 0
	if buffered {
		s.rin = append(s.rin, data...)
		data = s.rin
	}
	off := 0
	for off < len(data) {
		status, body, used, ok := parseResponse(data[off:])
		if !ok {
			p.closeBot(b, "post_bad_response")
			return
		}
		if used == 0 {
			break
		}
		off += used
		if !p.posted(b, status, body) {
			return
		}
	}
	rest := data[off:]
	switch {
	case len(rest) > maxPostResponse:
		p.closeBot(b, "post_bad_response")
	case len(rest) == 0:
		s.rin = s.rin[:0]
	case buffered:
		s.rin = s.rin[:copy(s.rin, rest)]
	default:
		s.rin = append(s.rin[:0], rest...)
	}
}

// parseResponse parses the HTTP/1.1 response at the start of b: status,
// body and length used (0 while incomplete). It reports false for what
// it cannot read (a response without a length, or chunked).
func parseResponse(b []byte) (status int, body []byte, used int, ok bool) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return 0, nil, 0, true
	}
	head := b[:end]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, 0, false
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, 0, false
	}
	length := -1
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, _ := bytes.Cut(h, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, nil, 0, false
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, nil, 0, false
		}
	}
	if length < 0 {
		if status != http.StatusNoContent && status != http.StatusNotModified && status >= 200 {
			return 0, nil, 0, false
		}
		length = 0
	}
	total := end + 4 + length
	if len(b) < total {
		return 0, nil, 0, true
	}
	return status, b[end+4 : total], total, true
}

// posted handles the answer to the POST in flight (or to the DELETE). It
// reports false when the connection was closed.
func (p *poller) posted(b *bot, status int, body []byte) bool {
	e := p.e
	s := b.sse
	b.mu.Lock()
	defer b.mu.Unlock()
	if !s.inFlight {
		if s.deleteSent {
			return true // the DELETE's answer: the stream's close event ends the connection
		}
		e.errs.add("post_unexpected_response")
		return true
	}
	switch status {
	case http.StatusNoContent:
		s.inFlight = false
		s.nextPost = s.inflightFirst + uint64(s.inflightN)
		if s.deleteWanted {
			b.sseDeleteLocked(p.c)
		} else if !s.closing {
			b.ssePostLocked(&p.fbuf, p.c)
		}
		return true
	case http.StatusConflict, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		// Nothing applied: out of order (an earlier POST is missing), the
		// stream is not attached yet, or the node that took the request
		// could not reach the session's node (it is moving). The same
		// messages go again, numbered from what the server expects when it
		// expects less.
		if exp, ok := jsonUint(body, "expected"); ok && exp > 0 && exp < s.inflightFirst {
			s.inflightFirst = exp
		}
		if s.closing {
			s.inFlight = false
			if s.deleteWanted {
				b.sseDeleteLocked(p.c)
			}
			return true
		}
		s.retryAt = time.Now().Add(postRetryDelay).UnixNano()
		return true
	}
	// The request was refused (400, 413), or the session is unknown where
	// the request landed (401, 404): the messages are dropped. Sequenced
	// ones stay in the bot's log: if the session moved, the resume sends
	// them again. A session that is gone for good is told on the stream
	// (a close event); one that is not is an error.
	s.inFlight = false
	if !s.closing && !e.stopping.Load() && !b.moving.Load() {
		if status == http.StatusNotFound || status == http.StatusUnauthorized {
			s.refused, s.refusedAt = status, time.Now().UnixNano()
		} else {
			e.errs.add("post_" + strconv.Itoa(status))
		}
	}
	if s.deleteWanted {
		b.sseDeleteLocked(p.c)
	} else if !s.closing {
		b.ssePostLocked(&p.fbuf, p.c)
	}
	return true
}

// readFD reads once from a non-blocking socket.
func readFD(fd int, p []byte) (int, error) {
	for {
		n, err := nbio.Read(fd, p)
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}
