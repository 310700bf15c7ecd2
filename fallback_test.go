package gameserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

// sseClient speaks the HTTP fallback as docs/protocol.md describes it.
type sseClient struct {
	t                    *testing.T
	base                 string
	session, key, sendTk string
	nextSeq              uint64 // client sequence of the next message sent
	events               chan sseEvent
	cancel               context.CancelFunc
	lastID               uint64
	mu                   sync.Mutex
}

type sseEvent struct {
	id    uint64 // 0 when the event had none
	name  string // "" for messages, "close"
	data  string
	typ   protocol.MsgType
	body  []byte
	ended bool // the stream ended
}

type openReply struct {
	Session, Key, SendToken string
	Messages                []string
	Code                    int
	Error                   string
}

func sseOpen(t *testing.T, base string, hello protocol.Message) (*sseClient, openReply, int) {
	t.Helper()
	resp, err := http.Post(base+"/sse/open", "application/octet-stream", bytes.NewReader(hello.Append(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r openReply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("open reply: %v", err)
	}
	c := &sseClient{t: t, base: base, session: r.Session, key: r.Key, sendTk: r.SendToken, nextSeq: 1}
	return c, r, resp.StatusCode
}

// connect opens the stream; lastSeq (if not empty) goes in Last-Event-ID.
func (c *sseClient) connect(lastEventID string) int {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/sse/stream?session="+c.session+"&key="+c.key, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		c.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		cancel()
		return resp.StatusCode
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" || resp.Header.Get("X-Accel-Buffering") != "no" || !strings.Contains(resp.Header.Get("Cache-Control"), "no-cache") {
		c.t.Fatalf("stream headers %v", resp.Header)
	}
	c.cancel = cancel
	events := make(chan sseEvent, 4096)
	c.events = events
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != "" {
					if ev.name == "" {
						b, err := base64.StdEncoding.DecodeString(ev.data)
						if err == nil {
							ev.typ, ev.body, _ = protocol.Split(b)
						}
					}
					events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id, _ = strconv.ParseUint(line[4:], 10, 64)
			case strings.HasPrefix(line, "event: "):
				ev.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
		events <- sseEvent{ended: true}
	}()
	c.t.Cleanup(cancel)
	return 200
}

// next returns the next event (skipping pings, which it answers).
func (c *sseClient) next() sseEvent {
	c.t.Helper()
	for {
		select {
		case ev := <-c.events:
			if ev.id != 0 {
				c.lastID = ev.id
			}
			if ev.typ == protocol.TypePing && ev.name == "" {
				var p protocol.Ping
				_ = p.Decode(ev.body)
				c.post(&protocol.Pong{Nonce: p.Nonce})
				continue
			}
			return ev
		case <-time.After(5 * time.Second):
			c.t.Fatal("no event within 5s")
		}
	}
}

func (c *sseClient) expect(want protocol.MsgType) []byte {
	c.t.Helper()
	for {
		ev := c.next()
		if ev.ended || ev.name == "close" {
			c.t.Fatalf("stream ended waiting for %v: %+v", want, ev)
		}
		if ev.typ == want {
			return ev.body
		}
	}
}

// postRaw sends messages with an explicit first sequence number.
func (c *sseClient) postRaw(firstSeq uint64, msgs ...[]byte) (int, map[string]any) {
	c.t.Helper()
	body, _ := msgpack.Marshal([]any{firstSeq, msgs})
	return c.postBody(body, c.sendTk)
}

func (c *sseClient) postBody(body []byte, tok string) (int, map[string]any) {
	req, _ := http.NewRequest(http.MethodPost, c.base+"/sse/send?session="+c.session, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &out); err != nil {
			c.t.Fatalf("status %d with a body that is not JSON: %q", resp.StatusCode, b)
		}
	}
	return resp.StatusCode, out
}

// post sends messages as the next sequenced batch (PONG and PING count
// too: POST sequence numbers order requests, not sessions).
func (c *sseClient) post(msgs ...protocol.Message) {
	c.t.Helper()
	raw := make([][]byte, len(msgs))
	for i, m := range msgs {
		raw[i] = m.Append(nil)
	}
	c.mu.Lock()
	seq := c.nextSeq
	c.nextSeq += uint64(len(msgs))
	c.mu.Unlock()
	if code, body := c.postRaw(seq, raw...); code != http.StatusNoContent {
		c.t.Fatalf("post: %d %v", code, body)
	}
}

func startFallback(t *testing.T, cfg gameserver.Config) (*gameserver.Server, string) {
	srv, addr := startCounter(t, cfg, 5*time.Second)
	return srv, "http://" + addr
}

func welcomeOf(t *testing.T, r openReply) protocol.Welcome {
	t.Helper()
	if len(r.Messages) == 0 {
		t.Fatalf("open reply without messages: %+v", r)
	}
	b, _ := base64.StdEncoding.DecodeString(r.Messages[0])
	tp, body, _ := protocol.Split(b)
	var w protocol.Welcome
	if tp != protocol.TypeWelcome || w.Decode(body) != nil {
		t.Fatalf("first message %v", tp)
	}
	return w
}

func TestFallbackPlaysWithWebSocketPlayers(t *testing.T) {
	srv, base := startFallback(t, gameserver.Config{})
	c, r, code := sseOpen(t, base, &protocol.Hello{Version: 1, Client: "sse-test"})
	if code != 200 || r.Session == "" || r.Key == "" || r.SendToken == "" {
		t.Fatalf("open: %d %+v", code, r)
	}
	if w := welcomeOf(t, r); w.SessionID != r.Session || w.ResumeToken == "" {
		t.Fatalf("welcome %+v", w)
	}
	if c.connect("") != 200 {
		t.Fatal("stream refused")
	}
	c.post(&protocol.Join{ReqID: 1, Mode: protocol.JoinCreate, Kind: "counter"})
	var j protocol.Joined
	if err := j.Decode(c.expect(protocol.TypeJoined)); err != nil {
		t.Fatal(err)
	}
	// A WebSocket player joins the same room; each sees the other.
	ws := player(t, strings.TrimPrefix(base, "http://"))
	ws.join(protocol.JoinByID, "", j.RoomID, nil)
	var pr protocol.Presence
	if err := pr.Decode(c.expect(protocol.TypePresence)); err != nil || pr.Event != protocol.PresenceJoin {
		t.Fatalf("presence %+v", pr)
	}
	c.expect(protocol.MsgType(msgCount))
	ws.expectSkipping(protocol.MsgType(msgCount))
	if metric(t, srv, "gameserver_sse_streams_total") < 1 {
		t.Fatal("stream not counted")
	}
	// Errors reach the fallback client the same way.
	c.post(&protocol.Join{ReqID: 2, Mode: protocol.JoinCreate, Kind: "counter"})
	var e protocol.ErrorMsg
	if err := e.Decode(c.expect(protocol.TypeError)); err != nil || e.Code != protocol.CodeAlreadyInRoom || e.ReqID != 2 {
		t.Fatalf("error %+v", e)
	}
}

func TestFallbackEndpointErrors(t *testing.T) {
	_, base := startFallback(t, gameserver.Config{MaxMessageBytes: 1024, AuthSecret: secret})
	status := func(method, path string, body []byte, hdr map[string]string) (int, map[string]any) {
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	check := func(name string, got int, body map[string]any, want int) {
		t.Helper()
		if got != want {
			t.Errorf("%s: status %d, want %d (%v)", name, got, want, body)
			return
		}
		if body == nil || body["error"] == "" || int(body["code"].(float64)) != want {
			t.Errorf("%s: JSON error body %v", name, body)
		}
	}
	code, body := status("POST", "/sse/open", []byte{0x00}, nil)
	check("open garbage", code, body, 400)
	code, body = status("POST", "/sse/open", (&protocol.Join{}).Append(nil), nil)
	check("open with JOIN", code, body, 400)
	code, body = status("POST", "/sse/open", make([]byte, 5000), nil)
	check("open too large", code, body, 413)
	code, body = status("POST", "/sse/open", (&protocol.Hello{Version: 1, Token: "garbage"}).Append(nil), nil)
	check("open bad token", code, body, 401)
	code, body = status("POST", "/sse/open", (&protocol.Resume{SessionID: "x", ResumeToken: "y"}).Append(nil), nil)
	check("open resume unknown", code, body, 409)
	code, body = status("POST", "/sse/open", (&protocol.Hello{Version: 1}).Append(nil), map[string]string{"Origin": "https://evil.example"})
	check("foreign origin", code, body, 403)

	c, _, _ := sseOpen(t, base, &protocol.Hello{Version: 1})
	code, body = status("GET", "/sse/stream?session=nope&key="+c.key, nil, nil)
	check("stream unknown session", code, body, 404)
	code, body = status("GET", "/sse/stream?session="+c.session+"&key=wrong", nil, nil)
	check("stream wrong key", code, body, 401)
	code, body = c.postBody([]byte{0x92, 0x01}, "wrong")
	check("send wrong token", code, body, 401)
	code, body = status("POST", "/sse/send?session=nope", nil, map[string]string{"Authorization": "Bearer x"})
	check("send unknown session", code, body, 404)
	c.connect("")
	for name, b := range map[string][]byte{
		"not msgpack":    {0xc1},
		"not an array":   {0x80},
		"seq zero":       {0x92, 0x00, 0x90},
		"strings":        {0x92, 0x01, 0x91, 0xa1, 'x'},
		"trailing bytes": {0x92, 0x01, 0x90, 0x00},
		"huge array":     {0x92, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff},
	} {
		code, body = c.postBody(b, c.sendTk)
		check("send "+name, code, body, 400)
	}
	code, body = c.postRaw(1, make([]byte, 2000))
	check("send message too large", code, body, 413)
	code, body = c.postBody(make([]byte, 10000), c.sendTk)
	check("send body too large", code, body, 413)
	// A gap that never fills: 409 with the sequence expected.
	code, body = c.postRaw(5, (&protocol.Ping{Nonce: 1}).Append(nil))
	check("send gap", code, body, 409)
	if body["expected"].(float64) != 1 {
		t.Fatalf("expected %v", body["expected"])
	}
}

func TestFallbackPostsOrderedAndIdempotent(t *testing.T) {
	_, base := startFallback(t, gameserver.Config{})
	c, _, _ := sseOpen(t, base, &protocol.Hello{Version: 1})
	c.connect("")
	c.post(&protocol.Join{ReqID: 1, Mode: protocol.JoinCreate, Kind: "test-none"})
	c.expect(protocol.TypeError) // unknown kind: the room engine answered
	ping := func(n uint32) []byte { return (&protocol.Ping{Nonce: n}).Append(nil) }
	// Seq 3 arrives before seq 2: it waits for it, then both apply in order.
	done := make(chan int)
	go func() {
		code, _ := c.postRaw(3, ping(3))
		done <- code
	}()
	time.Sleep(50 * time.Millisecond)
	if code, body := c.postRaw(2, ping(2)); code != 204 {
		t.Fatalf("seq 2: %d %v", code, body)
	}
	if code := <-done; code != 204 {
		t.Fatalf("seq 3: %d", code)
	}
	// Retrying seq 2 and 3 (a lost response) applies nothing twice; seq 4
	// in the same batch applies once.
	if code, body := c.postRaw(2, ping(2), ping(3), ping(4)); code != 204 {
		t.Fatalf("retry: %d %v", code, body)
	}
	var got []uint32
	deadline := time.Now().Add(2 * time.Second)
	for len(got) < 3 && time.Now().Before(deadline) {
		var p protocol.Pong
		_ = p.Decode(c.expect(protocol.TypePong))
		got = append(got, p.Nonce)
	}
	if len(got) != 3 || got[0] != 2 || got[1] != 3 || got[2] != 4 {
		t.Fatalf("pongs %v, want [2 3 4]", got)
	}
	select {
	case ev := <-c.events:
		if ev.typ == protocol.TypePong {
			t.Fatalf("a retried message was applied twice: %+v", ev)
		}
	case <-time.After(200 * time.Millisecond):
	}
}

func TestFallbackResumeAcrossDroppedStreams(t *testing.T) {
	_, base := startFallback(t, gameserver.Config{MaxResumesPerMinute: 1000})
	c, _, _ := sseOpen(t, base, &protocol.Hello{Version: 1})
	c.connect("")
	c.post(&protocol.Join{ReqID: 1, Mode: protocol.JoinCreate, Kind: "counter"})
	var values []int
	read := func(n int) {
		for len(values) < n {
			ev := c.next()
			if ev.ended || ev.name == "close" {
				t.Fatalf("stream ended: %+v", ev)
			}
			if ev.typ == protocol.MsgType(msgCount) {
				var v int
				_ = msgpack.Unmarshal(ev.body, &v)
				values = append(values, v)
			}
		}
	}
	for i := 0; i < 15; i++ {
		read(len(values) + 1 + i%7)
		// The stream drops; EventSource comes back with Last-Event-ID.
		c.cancel()
		for ev := range c.events {
			if ev.ended {
				break
			}
		}
		time.Sleep(time.Duration(i%4) * 10 * time.Millisecond)
		if code := c.connect(strconv.FormatUint(c.lastID, 10)); code != 200 {
			t.Fatalf("reconnect %d: %d", i, code)
		}
		var rs protocol.Resumed
		if err := rs.Decode(c.expect(protocol.TypeResumed)); err != nil || rs.FromSeq != c.lastID+1 {
			t.Fatalf("resumed %+v after id %d", rs, c.lastID)
		}
	}
	read(len(values) + 50)
	for i, v := range values {
		if v != i+1 {
			t.Fatalf("value %d is %d: lost or duplicated around a reconnect", i, v)
		}
	}
}

func TestFallbackHeartbeatTimeout(t *testing.T) {
	_, base := startFallback(t, gameserver.Config{PingInterval: 100 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
	c, _, _ := sseOpen(t, base, &protocol.Hello{Version: 1})
	c.connect("")
	// Read without answering the pings: the server gives up on us.
	for {
		select {
		case ev := <-c.events:
			if ev.name == "close" {
				var cl struct{ Code int }
				_ = json.Unmarshal([]byte(ev.data), &cl)
				if cl.Code != int(protocol.CloseHeartbeatTimeout) {
					t.Fatalf("close %+v", ev)
				}
				return
			}
			if ev.ended {
				t.Fatal("stream ended without a close event")
			}
		case <-time.After(3 * time.Second):
			t.Fatal("no close")
		}
	}
}

func TestFallbackEndSession(t *testing.T) {
	srv, base := startFallback(t, gameserver.Config{})
	c, _, _ := sseOpen(t, base, &protocol.Hello{Version: 1})
	c.connect("")
	req, _ := http.NewRequest(http.MethodDelete, base+"/sse/session?session="+c.session, nil)
	req.Header.Set("Authorization", "Bearer "+c.sendTk)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("delete: %v %v", resp, err)
	}
	resp.Body.Close()
	waitFor(t, func() bool {
		return metric(t, srv, "gameserver_sessions") == 0 && metric(t, srv, "gameserver_sessions_detached") == 0
	})
	if code, _ := c.postRaw(1, (&protocol.Ping{Nonce: 1}).Append(nil)); code != 404 {
		t.Fatalf("post after end: %d", code)
	}
}

// A fallback player holds no goroutine of the server's: its event stream
// is written from the epoll loop, and its POST connection, whichever
// request it began with, goes back to the front after each answer.
func TestFallbackHoldsNoGoroutine(t *testing.T) {
	// Goroutines of servers that earlier tests stopped may still be on
	// their way out: count against what there is before this test's own.
	// A goroutine that holds a player is in every sample; one passing
	// through a stream's methods (the hub's sweeper writing a PING, a
	// handler returning after its answer) is not: take the fewest of a few.
	serving := func() int {
		least := -1
		for i := 0; i < 5; i++ {
			if n := goroutinesIn("net/http.(*conn).serve", "SSEConn"); least < 0 || n < least {
				least = n
			}
			time.Sleep(10 * time.Millisecond)
		}
		return least
	}
	before := serving()
	srv, base := startFallback(t, gameserver.Config{})
	const n = 20
	for i := 0; i < n; i++ {
		c, r, code := sseOpen(t, base, &protocol.Hello{Version: 1})
		if code != 200 {
			t.Fatalf("open %d: %d %+v", i, code, r)
		}
		if c.connect("") != 200 {
			t.Fatal("stream refused")
		}
		// A request net/http serves first, on the connection the POST
		// then reuses.
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		c.post(&protocol.Join{ReqID: 1, Mode: protocol.JoinCreate, Kind: "counter"})
		c.expect(protocol.TypeJoined)
	}
	// The clients' idle connections are kept by http.DefaultClient; the
	// server's side of each must not be a goroutine in net/http.
	deadline := time.Now().Add(5 * time.Second)
	for serving() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := serving(); got > before {
		t.Fatalf("%d server goroutines serve HTTP connections of %d idle fallback players (%d before)", got, n, before)
	}
	// The client keeps two idle connections; the server holds them.
	if got := metric(t, srv, "gameserver_http_connections_waiting"); got < 1 {
		t.Fatalf("%v connections waiting for a request", got)
	}
}

// A page on an allowed origin gets the CORS headers it needs from every
// fallback endpoint, whichever part of the server answers (net/http, the
// stream, the front's quick POSTs); a foreign origin gets 403 and none.
func TestFallbackCORS(t *testing.T) {
	const origin = "https://game.example"
	_, base := startFallback(t, gameserver.Config{AllowedOrigins: []string{origin}})
	do := func(method, path, org string, body []byte, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		if org != "" {
			req.Header.Set("Origin", org)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if req.URL.Path != "/sse/stream" {
			_, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		return resp
	}
	allowed := func(name string, resp *http.Response, status int) {
		t.Helper()
		if resp.StatusCode != status || resp.Header.Get("Access-Control-Allow-Origin") != origin || resp.Header.Get("Vary") != "Origin" {
			t.Errorf("%s: %d, headers %v", name, resp.StatusCode, resp.Header)
		}
	}
	pre := do(http.MethodOptions, "/sse/send", origin, nil, "Access-Control-Request-Method", "POST")
	allowed("preflight", pre, http.StatusNoContent)
	if !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Authorization") || !strings.Contains(pre.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight headers %v", pre.Header)
	}
	open := do(http.MethodPost, "/sse/open", origin, (&protocol.Hello{Version: 1}).Append(nil))
	allowed("open", open, http.StatusOK)
	c, _, _ := sseOpen(t, base, &protocol.Hello{Version: 1})
	stream := do(http.MethodGet, "/sse/stream?session="+c.session+"&key="+c.key, origin, nil)
	allowed("stream", stream, http.StatusOK)
	stream.Body.Close()
	c.connect("") // the stream the session keeps
	body, _ := msgpack.Marshal([]any{1, [][]byte{(&protocol.Ping{Nonce: 1}).Append(nil)}})
	send := do(http.MethodPost, "/sse/send?session="+c.session, origin, body, "Authorization", "Bearer "+c.sendTk)
	allowed("send", send, http.StatusNoContent)
	gap, _ := msgpack.Marshal([]any{9, [][]byte{(&protocol.Ping{Nonce: 2}).Append(nil)}})
	allowed("send ahead (net/http)", do(http.MethodPost, "/sse/send?session="+c.session, origin, gap, "Authorization", "Bearer "+c.sendTk), http.StatusConflict)
	allowed("send wrong token", do(http.MethodPost, "/sse/send?session="+c.session, origin, body, "Authorization", "Bearer nope"), http.StatusUnauthorized)
	for _, path := range []string{"/sse/open", "/sse/send?session=" + c.session} {
		resp := do(http.MethodPost, path, "https://evil.example", body, "Authorization", "Bearer "+c.sendTk)
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("foreign origin on %s: %d, headers %v", path, resp.StatusCode, resp.Header)
		}
	}
}
