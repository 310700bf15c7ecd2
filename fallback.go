package gameserver

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gameserver/gameserver/internal/session"
	"github.com/gameserver/gameserver/internal/transport"
)

// The HTTP fallback carries a session over Server-Sent Events (server to
// client) and POST requests (client to server), for networks that block
// WebSockets. docs/protocol.md ("HTTP fallback") specifies it:
//
//	POST   /sse/open                     HELLO or RESUME in the body → session, stream key, send token
//	GET    /sse/stream?session=&key=     the event stream (Last-Event-ID resumes)
//	POST   /sse/send?session=            Authorization: Bearer <send token>; [firstSeq, [msg...]]
//	DELETE /sse/session?session=         Authorization: Bearer <send token>; ends the session
//
// A fallback session is a session like any other: the room engine cannot
// tell the transports apart.

// Fallback limits.
const (
	maxPostMessages = 64              // messages in one POST
	postOrderWait   = 2 * time.Second // how long a POST that arrived early waits for the ones before it
	maxPostWaiters  = 8               // POSTs of one session waiting for their turn
)

// fallback is the registry of sessions that use the HTTP fallback.
type fallback struct {
	srv *Server

	mu      sync.Mutex
	entries map[string]*fallbackEntry // by session ID
}

// fallbackEntry is one session's fallback state. Its mutex orders the
// session's POSTs: one is applied at a time, by client sequence number.
type fallbackEntry struct {
	sessionID string
	key       string // opens the stream
	sendToken string // authorizes POSTs

	mu      sync.Mutex
	cond    *sync.Cond
	conn    *transport.SSEConn // the current connection
	postSeq uint64             // last client message applied
	waiting int
}

func newFallback(s *Server) *fallback {
	return &fallback{srv: s, entries: make(map[string]*fallbackEntry)}
}

func (fb *fallback) routes(mux *http.ServeMux) {
	h := func(f http.HandlerFunc) http.Handler { return fb.checkOrigin(f) }
	mux.Handle("POST /sse/open", h(fb.open))
	mux.Handle("GET /sse/stream", h(fb.stream))
	mux.Handle("POST /sse/send", h(fb.send))
	mux.Handle("DELETE /sse/session", h(fb.end))
	mux.Handle("OPTIONS /sse/", h(fb.preflight))
}

// httpError is the JSON body of every fallback error.
type httpError struct {
	Code     int    `json:"code"`
	Error    string `json:"error"`
	Expected uint64 `json:"expected,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, httpError{Code: status, Error: msg})
}

// newConn makes a fallback connection bound to the session layer.
func (fb *fallback) newConn() *transport.SSEConn {
	s := fb.srv
	return s.ws.NewSSEConn(func(c *transport.SSEConn, info transport.CloseInfo) {
		s.sseStats.Open.Add(-1)
		if sess, ok := c.Data().(*session.Session); ok {
			s.hub.ConnClosed(sess, c, uint16(info.Code), info.ByPeer)
		}
	})
}

// readBody reads a request body of at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limit)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(w, http.StatusRequestEntityTooLarge, "body over "+strconv.Itoa(limit)+" bytes")
		} else {
			fail(w, http.StatusBadRequest, "body not readable")
		}
		return nil, false
	}
	return body, true
}

// openReply answers POST /sse/open.
type openReply struct {
	Session   string   `json:"session,omitempty"`
	Key       string   `json:"key,omitempty"`
	SendToken string   `json:"sendToken,omitempty"`
	NextSeq   uint64   `json:"nextSeq,omitempty"` // the POST sequence number to send next
	Messages  []string `json:"messages"`
	Code      int      `json:"code,omitempty"`      // the HTTP status, when refused
	Error     string   `json:"error,omitempty"`     // why
	ErrorCode int      `json:"errorCode,omitempty"` // the protocol error code (docs/protocol.md)
}

// open runs HELLO or RESUME for a new fallback session and answers with the
// session's credentials and the server's first messages (WELCOME or
// RESUMED, or the ERROR), base64-encoded like stream events.
func (fb *fallback) open(w http.ResponseWriter, r *http.Request) {
	s := fb.srv
	if !s.ready.Load() {
		fail(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	if status, msg := s.ws.AdmitFallback(r, s.sseStats.Open.Load()); status != 0 {
		fail(w, status, msg)
		return
	}
	body, ok := readBody(w, r, s.ws.Config().MaxMessageBytes)
	if !ok {
		return
	}
	t, _, err := protocol.Split(body)
	if err != nil || (t != protocol.TypeHello && t != protocol.TypeResume) {
		fail(w, http.StatusBadRequest, "body must be one HELLO or RESUME message")
		return
	}
	c := fb.newConn()
	s.sseStats.Open.Add(1)
	s.sseStats.Accepted.Add(1)
	c.Hold()
	pending := s.hub.Open(c)
	s.hub.Message(pending, nil, body)
	frames := c.Drain()
	reply := openReply{Messages: make([]string, len(frames))}
	var errMsg *protocol.ErrorMsg
	for i, f := range frames {
		reply.Messages[i] = base64.StdEncoding.EncodeToString(f.B)
		if tt, b, _ := protocol.Split(f.B); tt == protocol.TypeError && errMsg == nil {
			errMsg = &protocol.ErrorMsg{}
			_ = errMsg.Decode(b)
		}
		f.Release()
	}
	sess, _ := c.Data().(*session.Session)
	if sess == nil || !sess.Active() || errMsg != nil {
		// Refused: the pending session and its connection end here.
		c.Close(uint16(protocol.CloseNormal), "open refused")
		c.Unhold()
		status, msg := http.StatusBadRequest, "open refused"
		if errMsg != nil {
			status, msg = statusOf(errMsg.Code), errMsg.Message
			reply.ErrorCode = int(errMsg.Code)
		}
		reply.Code, reply.Error = status, msg
		writeJSON(w, status, reply)
		return
	}
	c.Unhold()
	e := &fallbackEntry{sessionID: sess.ID(), key: token(24), sendToken: token(24), conn: c}
	e.cond = sync.NewCond(&e.mu)
	fb.mu.Lock()
	if old := fb.entries[e.sessionID]; old != nil {
		// The session came over from another fallback stream (RESUME):
		// keep the order of its POSTs.
		old.mu.Lock()
		e.postSeq = old.postSeq
		old.mu.Unlock()
	}
	fb.entries[e.sessionID] = e
	fb.mu.Unlock()
	if c := s.cluster; c != nil {
		// The client's next request (its stream) may reach another node:
		// the session's place is in the directory before the answer, not
		// some time after it as Started records it.
		c.recordSession(r.Context(), e.sessionID)
	}
	reply.Session, reply.Key, reply.SendToken, reply.NextSeq = e.sessionID, e.key, e.sendToken, e.postSeq+1
	writeJSON(w, http.StatusOK, reply)
}

// statusOf maps a protocol error code to the HTTP status of a refused open.
func statusOf(c protocol.Code) int {
	switch c {
	case protocol.CodeUnauthorized:
		return http.StatusUnauthorized
	case protocol.CodeForbidden:
		return http.StatusForbidden
	case protocol.CodeResumeFailed, protocol.CodeAlreadyInRoom:
		return http.StatusConflict
	case protocol.CodeRateLimited:
		return http.StatusTooManyRequests
	case protocol.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case protocol.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

func token(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// entry finds a session's fallback state.
func (fb *fallback) entry(id string) *fallbackEntry {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return fb.entries[id]
}

// forget drops a session's fallback state when the session ends.
func (fb *fallback) forget(id string) {
	fb.mu.Lock()
	delete(fb.entries, id)
	fb.mu.Unlock()
}

// stream serves the event stream. The first stream of a connection just
// serves it; a stream that comes back (EventSource's own reconnect, with
// Last-Event-ID) resumes the session on a new connection from that event.
func (fb *fallback) stream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	e := fb.entry(q.Get("session"))
	if e == nil {
		if c := fb.srv.cluster; c != nil && c.routeSession(w, r, q.Get("session")) {
			return // the session lives on another node
		}
		fail(w, http.StatusNotFound, "unknown session")
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("key")), []byte(e.key)) != 1 {
		fail(w, http.StatusUnauthorized, "wrong stream key")
		return
	}
	lastID := r.Header.Get("Last-Event-ID")
	if lastID == "" {
		lastID = q.Get("lastSeq")
	}
	e.mu.Lock()
	c := e.conn
	e.mu.Unlock()
	if lastID == "" && c.Open() && !c.Served() {
		c.Serve(w, r)
		return
	}
	var lastSeq uint64
	if lastID != "" {
		n, err := strconv.ParseUint(lastID, 10, 64)
		if err != nil {
			fail(w, http.StatusBadRequest, "Last-Event-ID must be a sequence number")
			return
		}
		lastSeq = n
	}
	s := fb.srv
	nc := fb.newConn()
	s.sseStats.Open.Add(1)
	s.sseStats.Accepted.Add(1)
	nc.Hold() // a refusal's ERROR must reach the stream
	pending := s.hub.Open(nc)
	if refusal := s.hub.ResumeTrusted(pending, e.sessionID, lastSeq); refusal != nil {
		// The stream carries the ERROR, then a close event: the client
		// starts over with /sse/open.
		nc.Close(uint16(protocol.CloseResumeFailed), "resume failed: open a new session")
		nc.Serve(w, r)
		nc.Unhold()
		return
	}
	nc.Unhold()
	e.mu.Lock()
	e.conn = nc
	e.cond.Broadcast()
	e.mu.Unlock()
	nc.Serve(w, r)
}

// postBody is a POST's body: the client sequence number of its first
// message, then the messages, each one binary string holding the same
// bytes as a WebSocket message.
type postBody struct {
	firstSeq uint64
	msgs     [][]byte
}

func decodePost(b []byte) (postBody, error) {
	var p postBody
	r := protocol.NewReader(b)
	n, err := r.ReadArrayLen()
	if err != nil || n < 2 {
		return p, errors.New("body must be a msgpack array [firstSeq, [messages...]]")
	}
	if p.firstSeq, err = r.ReadUint(1<<63 - 1); err != nil || p.firstSeq == 0 {
		return p, errors.New("firstSeq must be a positive integer")
	}
	m, err := r.ReadArrayLen()
	if err != nil || m > maxPostMessages {
		return p, errors.New("messages must be an array of at most " + strconv.Itoa(maxPostMessages) + " binary strings")
	}
	p.msgs = make([][]byte, m)
	for i := range p.msgs {
		if p.msgs[i], err = r.ReadBinBytes(1 << 20); err != nil {
			return p, errors.New("message " + strconv.Itoa(i) + " must be a binary string")
		}
	}
	for i := 2; i < n; i++ {
		if err := r.Skip(); err != nil {
			return p, errors.New("body is not well-formed msgpack")
		}
	}
	if r.Len() != 0 {
		return p, errors.New("trailing bytes after the body")
	}
	return p, nil
}

// authorize finds the entry of a send or end request and checks its token.
func (fb *fallback) authorize(w http.ResponseWriter, r *http.Request) *fallbackEntry {
	id := r.URL.Query().Get("session")
	e := fb.entry(id)
	if e == nil {
		if c := fb.srv.cluster; c != nil && c.routeSession(w, r, id) {
			return nil // the session lives on another node
		}
		fail(w, http.StatusNotFound, "unknown session")
		return nil
	}
	if !e.authorized(r.Header.Get("Authorization")) {
		fail(w, http.StatusUnauthorized, "missing or wrong send token")
		return nil
	}
	return e
}

// authorized checks an Authorization header against the send token.
func (e *fallbackEntry) authorized(header string) bool {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(tok), []byte(e.sendToken)) == 1
}

// readPost decodes a POST's body and checks each message's size; on error
// it returns the status and why.
func (fb *fallback) readPost(body []byte) (postBody, *httpError) {
	p, err := decodePost(body)
	if err != nil {
		return p, &httpError{Code: http.StatusBadRequest, Error: err.Error()}
	}
	max := fb.srv.ws.Config().MaxMessageBytes
	for i, m := range p.msgs {
		if len(m) > max {
			return p, &httpError{Code: http.StatusRequestEntityTooLarge, Error: "message " + strconv.Itoa(i) + " over " + strconv.Itoa(max) + " bytes"}
		}
	}
	return p, nil
}

// maxPostBody bounds a POST's body.
func (fb *fallback) maxPostBody() int { return 4*fb.srv.ws.Config().MaxMessageBytes + 64 }

// send applies a POST's messages in client sequence order: a POST that
// arrives before the ones it follows waits for them (briefly), and
// messages already applied (a retried POST) are skipped. Most POSTs never
// reach it: the front answers those that arrive in order itself
// (quickSend), and passes the rest on to it.
func (fb *fallback) send(w http.ResponseWriter, r *http.Request) {
	e := fb.authorize(w, r)
	if e == nil {
		return
	}
	body, ok := readBody(w, r, fb.maxPostBody())
	if !ok {
		return
	}
	p, herr := fb.readPost(body)
	if herr != nil {
		writeJSON(w, herr.Code, herr)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if p.firstSeq > e.postSeq+1 {
		if e.waiting >= maxPostWaiters {
			fail(w, http.StatusTooManyRequests, "too many requests waiting for earlier ones")
			return
		}
		e.waiting++
		deadline := time.Now().Add(postOrderWait)
		timer := time.AfterFunc(postOrderWait, func() {
			e.mu.Lock()
			e.cond.Broadcast()
			e.mu.Unlock()
		})
		for p.firstSeq > e.postSeq+1 && time.Now().Before(deadline) {
			e.cond.Wait()
		}
		timer.Stop()
		e.waiting--
		if p.firstSeq > e.postSeq+1 {
			writeJSON(w, http.StatusConflict, httpError{Code: http.StatusConflict, Error: "messages before firstSeq never arrived", Expected: e.postSeq + 1})
			return
		}
	}
	if herr := fb.apply(e, p); herr != nil {
		writeJSON(w, herr.Code, herr)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// apply feeds the session the messages of p it has not had yet. e.mu is
// held and p is not ahead of them (firstSeq ≤ postSeq+1).
func (fb *fallback) apply(e *fallbackEntry, p postBody) *httpError {
	sess, _ := e.conn.Data().(*session.Session)
	if sess == nil || !sess.Connected() || !e.conn.Open() {
		return &httpError{Code: http.StatusConflict, Error: "stream not attached: retry once the stream is back", Expected: e.postSeq + 1}
	}
	e.conn.Touch()
	for i, m := range p.msgs {
		seq := p.firstSeq + uint64(i)
		if seq <= e.postSeq {
			continue // already applied: a retried request
		}
		fb.srv.sseStats.MessagesIn.Add(1)
		fb.srv.sseStats.BytesIn.Add(uint64(len(m)))
		fb.srv.hub.Message(sess, nil, m)
		e.postSeq = seq
	}
	e.cond.Broadcast()
	return nil
}

// quickRoute is POST /sse/send as the front serves it (transport.QuickRoute):
// on a transport worker, without net/http, keeping the connection for the
// client's next POST.
func (fb *fallback) quickRoute() transport.QuickRoute {
	return transport.QuickRoute{Method: http.MethodPost, Path: "/sse/send", MaxBody: fb.maxPostBody(), Handle: fb.quickSend}
}

// quickSend answers a POST /sse/send the front read, as send would. It
// never waits: a POST ahead of the ones it follows, or for a session this
// node does not hold, goes to send through net/http (pass).
func (fb *fallback) quickSend(req *transport.QuickRequest) (resp transport.QuickResponse, pass bool) {
	if !fb.srv.ws.OriginAllowedFor(req.Origin, req.Host) {
		return quickJSON(resp, httpError{Code: http.StatusForbidden, Error: "origin not allowed"}), false
	}
	if req.Origin != "" {
		resp.Header = []string{"Access-Control-Allow-Origin: " + req.Origin, "Vary: Origin"}
	}
	q, _ := url.ParseQuery(req.Query)
	e := fb.entry(q.Get("session"))
	if e == nil {
		return resp, true // another node's (cluster), or unknown: send answers
	}
	if !e.authorized(req.Authorization) {
		return quickJSON(resp, httpError{Code: http.StatusUnauthorized, Error: "missing or wrong send token"}), false
	}
	p, herr := fb.readPost(req.Body)
	if herr != nil {
		return quickJSON(resp, *herr), false
	}
	e.mu.Lock()
	if p.firstSeq > e.postSeq+1 {
		e.mu.Unlock()
		return resp, true // send waits for the POSTs before it
	}
	herr = fb.apply(e, p)
	e.mu.Unlock()
	if herr != nil {
		return quickJSON(resp, *herr), false
	}
	resp.Status = http.StatusNoContent
	return resp, false
}

// quickJSON is writeJSON for a quick response.
func quickJSON(resp transport.QuickResponse, v httpError) transport.QuickResponse {
	b, _ := json.Marshal(v)
	resp.Status, resp.ContentType, resp.Body = v.Code, "application/json", append(b, '\n')
	resp.Header = append(resp.Header, "Cache-Control: no-store")
	return resp
}

// end closes a fallback session on the client's request (like a WebSocket
// close with 1000): the session ends at once.
func (fb *fallback) end(w http.ResponseWriter, r *http.Request) {
	e := fb.authorize(w, r)
	if e == nil {
		return
	}
	e.mu.Lock()
	c := e.conn
	e.mu.Unlock()
	c.ClosePeer(uint16(protocol.CloseNormal), "closed by client")
	w.WriteHeader(http.StatusNoContent)
}

// preflight answers CORS preflights for allowed origins (checkOrigin ran).
func (fb *fallback) preflight(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
	w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// fallbackOrigin wraps the fallback endpoints with the same Origin check as
// WebSocket upgrades, and CORS headers for allowed cross-origin pages.
func (fb *fallback) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fb.srv.ws.OriginAllowed(r) {
			fail(w, http.StatusForbidden, "origin not allowed")
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			w.Header().Set("Access-Control-Allow-Origin", o)
			w.Header().Set("Vary", "Origin")
		}
		next.ServeHTTP(w, r)
	})
}
