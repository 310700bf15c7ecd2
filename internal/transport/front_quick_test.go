package transport

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// quickEnv is a Front with one quick route, POST /other (the path the
// test mux also serves, so a request passed on shows there): it answers
// "quick <query> <body>", or passes when the query says so.
type quickEnv struct {
	*frontEnv
	calls atomic.Int64
}

func startQuick(t *testing.T, cfg Config) *quickEnv {
	t.Helper()
	q := &quickEnv{}
	route := QuickRoute{Method: http.MethodPost, Path: "/other", MaxBody: 1000, Handle: func(req *QuickRequest) (QuickResponse, bool) {
		q.calls.Add(1)
		if strings.Contains(req.Query, "pass") {
			return QuickResponse{}, true
		}
		if len(req.Body) == 0 {
			return QuickResponse{Status: http.StatusNoContent, Header: []string{"X-Quick: empty"}}, false
		}
		return QuickResponse{
			Status:      http.StatusOK,
			Header:      []string{"X-Quick: yes", "X-Auth: " + req.Authorization, "X-Origin: " + req.Origin},
			ContentType: "text/plain",
			Body:        []byte("quick " + req.Query + " " + string(req.Body)),
		}, false
	}}
	q.frontEnv = startFront(t, cfg, newEcho(), nil, route)
	return q
}

func post(target, body string, extra ...string) string {
	var b strings.Builder
	b.WriteString("POST " + target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nOrigin: https://game.example\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

func readResp(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, string(body)
}

func (q *quickEnv) conn(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", q.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

// Requests for a quick route are answered by the front, one after the
// other on one kept-alive connection, pipelined or not, and the
// connection then waits in the descriptor table.
func TestFrontQuickKeepsConnection(t *testing.T) {
	q := startQuick(t, Config{})
	c, br := q.conn(t)
	for i := 0; i < 3; i++ {
		if _, err := io.WriteString(c, post("/other?n="+strconv.Itoa(i), "body"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		resp, body := readResp(t, br)
		if resp.StatusCode != 200 || body != "quick n="+strconv.Itoa(i)+" body"+strconv.Itoa(i) ||
			resp.Header.Get("X-Quick") != "yes" || resp.Header.Get("X-Auth") != "Bearer tok" ||
			resp.Header.Get("X-Origin") != "https://game.example" || resp.Header.Get("Content-Type") != "text/plain" ||
			resp.Header.Get("Date") == "" || resp.Close {
			t.Fatalf("response %d %q %v (close %v)", resp.StatusCode, body, resp.Header, resp.Close)
		}
	}
	// Three more in one write, the last one without a body.
	if _, err := io.WriteString(c, post("/other?p=1", "a")+post("/other?p=2", "bb")+post("/other?p=3", "")); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"quick p=1 a", "quick p=2 bb", ""} {
		resp, body := readResp(t, br)
		if body != want || (i == 2 && (resp.StatusCode != 204 || resp.Header.Get("X-Quick") != "empty")) {
			t.Fatalf("pipelined %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := q.calls.Load(); n != 6 {
		t.Fatalf("%d quick calls, want 6", n)
	}
	if calls := q.muxCalls(); len(calls) != 0 {
		t.Fatalf("mux saw %v", calls)
	}
	// Idle between requests: one handshaking Conn, every answer written.
	waitFor(t, func() bool {
		var idle bool
		q.s.eachHandshake(func(k *Conn) { idle = k.Pending() == 0 })
		return idle && handshakes(q.s) == 1
	})
}

// Quick connections cost no goroutine.
func TestFrontQuickHoldsNoGoroutine(t *testing.T) {
	q := startQuick(t, Config{})
	base := runtime.NumGoroutine()
	const n = 100
	for i := 0; i < n; i++ {
		c, br := q.conn(t)
		if _, err := io.WriteString(c, post("/other", "x")); err != nil {
			t.Fatal(err)
		}
		if resp, _ := readResp(t, br); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if g := runtime.NumGoroutine(); g > base+5 || q.s.Waiting() != n {
		t.Fatalf("%d goroutines and %d connections kept for %d clients, %d goroutines before", g, q.s.Waiting(), n, base)
	}
}

// A body that arrives in pieces, and one whose head does, are read across
// wake-ups.
func TestFrontQuickBodyInPieces(t *testing.T) {
	q := startQuick(t, Config{})
	body := strings.Repeat("z", 900)
	req := post("/other?slow", body)
	c, br := q.conn(t)
	for i := 0; i < len(req); i += 37 {
		if _, err := io.WriteString(c, req[i:min(i+37, len(req))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if _, got := readResp(t, br); got != "quick slow "+body {
		t.Fatalf("got %d bytes", len(got))
	}
}

// What a quick route does not take goes to net/http, on a new connection
// or on one that had quick requests before, and so does a request its
// handler passes: net/http reads it whole.
func TestFrontQuickPassesOthers(t *testing.T) {
	q := startQuick(t, Config{})
	for _, tc := range []struct{ name, req string }{
		{"over MaxBody", post("/other", strings.Repeat("b", 1001))},
		{"Expect", post("/other", "e", "Expect: 100-continue")},
		{"chunked", "POST /other HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nc\r\n0\r\n\r\n"},
		{"two lengths", "POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nd"},
		{"HTTP/1.0", "POST /other HTTP/1.0\r\nHost: x\r\nContent-Length: 1\r\n\r\nf"},
		{"GET", "GET /other HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"handler passes", post("/other?pass", "g")},
	} {
		c, br := q.conn(t)
		// A quick request first, then the other on the same connection.
		if _, err := io.WriteString(c, post("/other", "first")); err != nil {
			t.Fatal(err)
		}
		if _, body := readResp(t, br); body != "quick  first" {
			t.Fatalf("%s: first %q", tc.name, body)
		}
		if _, err := io.WriteString(c, tc.req); err != nil {
			t.Fatal(err)
		}
		resp, body := readResp(t, br)
		if resp.StatusCode == http.StatusContinue {
			resp, body = readResp(t, br) // net/http's interim answer to Expect
		}
		if !strings.HasPrefix(body, "POST /other") && !strings.HasPrefix(body, "GET /other") {
			t.Fatalf("%s: %d %q, want net/http's answer", tc.name, resp.StatusCode, body)
		}
	}
	// A request the handler passes reaches net/http whole.
	c, br := q.conn(t)
	if _, err := io.WriteString(c, post("/other?pass", "whole body")); err != nil {
		t.Fatal(err)
	}
	if _, body := readResp(t, br); !strings.Contains(body, `body="whole body"`) {
		t.Fatalf("passed request read as %q", body)
	}
}

// Connection: close is answered, then the connection ends.
func TestFrontQuickConnectionClose(t *testing.T) {
	q := startQuick(t, Config{})
	c, br := q.conn(t)
	if _, err := io.WriteString(c, post("/other", "bye", "Connection: close")); err != nil {
		t.Fatal(err)
	}
	resp, body := readResp(t, br)
	if body != "quick  bye" || !resp.Close {
		t.Fatalf("%q close %v", body, resp.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the answer: %v, want EOF", err)
	}
}

// A body that stops arriving is dropped at the handshake deadline, and so
// is a kept-alive connection whose next head stalls.
func TestFrontQuickSlowBodyDropped(t *testing.T) {
	q := startQuick(t, Config{HandshakeTimeout: time.Second})
	for _, tc := range []struct{ name, first, stall string }{
		{"body", "", post("/other", "0123456789")[:len(post("/other", "0123456789"))-4]},
		{"next head", post("/other", "ok"), "POST /other HTTP/1.1\r\nHost"},
	} {
		c, br := q.conn(t)
		if tc.first != "" {
			if _, err := io.WriteString(c, tc.first); err != nil {
				t.Fatal(err)
			}
			readResp(t, br)
		}
		if _, err := io.WriteString(c, tc.stall); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := br.ReadByte(); err == nil || isTimeout(err) {
			t.Fatalf("%s: read %v, want the connection dropped", tc.name, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("%s: dropped after %v", tc.name, d)
		}
	}
	if n := q.calls.Load(); n != 1 {
		t.Fatalf("%d quick calls, want 1", n)
	}
}

// A connection net/http served goes back to the front after a complete
// response: its next request is the front's again (a quick one here), and
// while it idles it holds no goroutine. Requests pipelined behind one
// net/http served are answered in order.
func TestHandBackReturnsConnections(t *testing.T) {
	q := startQuick(t, Config{})
	base := runtime.NumGoroutine()
	c, br := q.conn(t)
	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }
	for i := 0; i < 2; i++ {
		if _, err := io.WriteString(c, get("/other?n="+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		resp, body := readResp(t, br)
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "GET /other?n="+strconv.Itoa(i)) || resp.ContentLength != int64(len(body)) ||
			resp.Header.Get("Content-Type") == "" || resp.Header.Get("Date") == "" || resp.Close {
			t.Fatalf("net/http's answer %d %q, length %d, headers %v", resp.StatusCode, body, resp.ContentLength, resp.Header)
		}
		if _, err := io.WriteString(c, post("/other", "after")); err != nil {
			t.Fatal(err)
		}
		if _, body := readResp(t, br); body != "quick  after" {
			t.Fatalf("after net/http: %q, want the front's quick answer", body)
		}
	}
	waitFor(t, func() bool { return handshakes(q.s) == 1 && runtime.NumGoroutine() <= base+2 })
	// Pipelined: two for net/http, then a quick one, in one write.
	if _, err := io.WriteString(c, get("/other?a")+"DELETE /nocontent HTTP/1.1\r\nHost: x\r\n\r\n"+post("/other", "z")); err != nil {
		t.Fatal(err)
	}
	if _, body := readResp(t, br); !strings.HasPrefix(body, "GET /other?a") {
		t.Fatalf("first %q", body)
	}
	if resp, body := readResp(t, br); resp.StatusCode != 204 || body != "" || resp.Header.Get("X-Seen") != "DELETE" || resp.Header.Get("Content-Length") != "" {
		t.Fatalf("second %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if _, body := readResp(t, br); body != "quick  z" {
		t.Fatalf("third %q", body)
	}
	// A file past what HandBack holds streams through net/http with its
	// length, and its connection comes back all the same.
	if _, err := io.WriteString(c, get("/file")+post("/other", "y")); err != nil {
		t.Fatal(err)
	}
	if resp, body := readResp(t, br); resp.StatusCode != 200 || len(body) != 100<<10 || resp.ContentLength != 100<<10 {
		t.Fatalf("file %d, %d bytes", resp.StatusCode, len(body))
	}
	if _, body := readResp(t, br); body != "quick  y" {
		t.Fatalf("after the file %q", body)
	}
	if n := q.calls.Load(); n != 4 {
		t.Fatalf("%d quick calls, want 4", n)
	}
}

// What HandBack cannot hold or finish stays with net/http, and works as
// before on the same connection: a flushed (streamed) response, one past
// 64 KiB, HEAD, a body the handler did not read, Connection: close.
func TestHandBackLeavesWhatItCannotHold(t *testing.T) {
	q := startQuick(t, Config{})
	for _, tc := range []struct {
		name, req, body string
		status          int
		close           bool
	}{
		{"flushed", "GET /flushed HTTP/1.1\r\nHost: x\r\n\r\n", "part0 part1 part2 ", 200, false},
		{"big", "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", strings.Repeat("b", 100<<10), 200, false},
		{"head", "HEAD /other HTTP/1.1\r\nHost: x\r\n\r\n", "", 200, false},
		{"unread body", "POST /ignorebody HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "ignored", 200, false},
		{"trailer", "GET /trailer HTTP/1.1\r\nHost: x\r\n\r\n", "with trailer", 200, false},
		{"close", "GET /close HTTP/1.1\r\nHost: x\r\n\r\n", "closing", 200, true},
	} {
		c, br := q.conn(t)
		if _, err := io.WriteString(c, tc.req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: strings.Fields(tc.req)[0]})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status || string(body) != tc.body || resp.Close != tc.close ||
			tc.name == "trailer" && resp.Trailer.Get("X-Sum") != "42" {
			t.Fatalf("%s: %d, %d bytes, close %v", tc.name, resp.StatusCode, len(body), resp.Close)
		}
		if tc.close {
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("%s: %v, want EOF", tc.name, err)
			}
			continue
		}
		// The connection still serves: net/http's or the front's.
		if _, err := io.WriteString(c, "GET /other?next HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if _, got := readResp(t, br); !strings.HasPrefix(got, "GET /other?next") {
			t.Fatalf("%s: next answered %q", tc.name, got)
		}
	}
}

// A quick handler that panics costs its request's connection only: 500,
// then closed.
func TestFrontQuickHandlerPanic(t *testing.T) {
	route := QuickRoute{Method: http.MethodPost, Path: "/boom", MaxBody: 10, Handle: func(*QuickRequest) (QuickResponse, bool) {
		panic("quick handler panic on purpose")
	}}
	e := startFront(t, Config{}, newEcho(), nil, route)
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, post("/boom", "x")); err != nil {
		t.Fatal(err)
	}
	resp, _ := readResp(t, br)
	if resp.StatusCode != http.StatusInternalServerError || !resp.Close || e.s.Stats().HandlerPanics.Load() != 1 {
		t.Fatalf("%d close %v panics %d", resp.StatusCode, resp.Close, e.s.Stats().HandlerPanics.Load())
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("%v, want EOF", err)
	}
}

// Hostile quick requests: bytes past the declared length are read as the
// next request (net/http refuses the garbage with 400), and a client that
// pipelines requests without reading the answers is dropped once 64 KiB
// of them wait.
func TestFrontQuickHostile(t *testing.T) {
	q := startQuick(t, Config{})
	c, br := q.conn(t)
	if _, err := io.WriteString(c, post("/other", "abc")+"def\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, body := readResp(t, br); body != "quick  abc" {
		t.Fatalf("declared part %q", body)
	}
	if resp, _ := readResp(t, br); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the rest answered %d, want 400", resp.StatusCode)
	}

	c2, err := net.Dial("tcp", q.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.(*net.TCPConn).SetReadBuffer(4 << 10) // the answers back up in the server
	// Enough requests to fill the kernel's buffers on a machine with large
	// ones, bounded in count and time.
	const n = 100000
	big := strings.Repeat("x", 900) // each answer is about 1 KiB
	var dropped bool
	stop := time.Now().Add(20 * time.Second)
	for i := 0; i < n && !dropped && time.Now().Before(stop); i++ {
		_ = c2.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c2, post("/other", big)); err != nil {
			dropped = true
		}
	}
	if !dropped {
		// The kernel may still hold what was written: the server must
		// have closed its end.
		_ = c2.SetReadDeadline(time.Now().Add(3 * time.Second))
		got, err := io.Copy(io.Discard, c2)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("after %d bytes of answers: %v, want the connection closed", got, err)
		}
	}
	if calls := q.calls.Load(); calls >= n {
		t.Fatalf("all %d requests answered for a client that reads nothing", calls)
	}
}

// Once Shutdown has begun, a connection that answered an HTTP request is
// not kept for the next one: a quick answer says Connection: close and
// ends the connection, and net/http keeps what it answered rather than
// handing it back. Otherwise Shutdown would wait, up to its deadline, for
// kept-alive connections (a load balancer's health checks) that arrive
// after it closed the others.
func TestShutdownKeepsNoHTTPConnection(t *testing.T) {
	q := startQuick(t, Config{CloseTimeout: time.Second})
	// A WebSocket client that never answers the close keeps Shutdown
	// waiting for CloseTimeout: the requests below come meanwhile.
	q.dial(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- q.s.Shutdown(ctx, 1001, "restarting") }()
	for !q.s.shutting.Load() {
		time.Sleep(time.Millisecond)
	}
	for _, req := range []string{
		post("/other?late", "body"),                   // quick
		"GET /other?late HTTP/1.1\r\nHost: x\r\n\r\n", // net/http's
	} {
		c, err := net.Dial("tcp", q.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, body := readResp(t, bufio.NewReader(c))
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "late") {
			t.Fatalf("%q during Shutdown: %d %q", req, resp.StatusCode, body)
		}
		if strings.HasPrefix(req, "POST") && !resp.Close {
			t.Errorf("the quick answer during Shutdown keeps the connection")
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v after %v, want nil (no connection kept for it to wait on)", err, time.Since(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}
