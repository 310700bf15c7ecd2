package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"golang.org/x/sys/unix"
)

// frontEnv is a transport Server behind a Front, with an http.Server for
// what the Front passes on. Its mux has the WebSocket route (recorded, then
// ServeHTTP, as the root package has it) and a few plain endpoints.
type frontEnv struct {
	s     *Server
	front *Front
	hs    *http.Server
	addr  string

	mu     sync.Mutex
	viaMux []string // requests that reached the mux's WebSocket route
}

func startFront(t *testing.T, cfg Config, h Handler, intercept func(string) bool, quick ...QuickRoute) *frontEnv {
	t.Helper()
	s, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &frontEnv{s: s, addr: l.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.viaMux = append(e.viaMux, r.Proto+" "+r.URL.RequestURI())
		e.mu.Unlock()
		s.ServeHTTP(w, r)
	})
	mux.HandleFunc("/other", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s body=%q from=%s", r.Method, r.URL.RequestURI(), r.Proto, body, r.RemoteAddr)
	})
	mux.HandleFunc("/flushed", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "part%d ", i)
			http.NewResponseController(w).Flush()
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte("b"), 100<<10))
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "file.txt", time.Time{}, bytes.NewReader(bytes.Repeat([]byte("f"), 100<<10)))
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen", r.Method)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/ignorebody", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ignored")
	})
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "with trailer")
		w.Header().Set("X-Sum", "42")
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "closing")
	})
	e.hs = &http.Server{Handler: HandBack(mux), ConnContext: ConnContext, ReadHeaderTimeout: 2 * time.Second}
	e.front = s.Listen(l, "/ws", intercept, quick...)
	served := make(chan error, 1)
	go func() { served <- e.hs.Serve(e.front) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = e.hs.Shutdown(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		_ = s.Shutdown(ctx, uint16(CloseGoingAway), "test over")
	})
	return e
}

func (e *frontEnv) muxCalls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.viaMux...)
}

func (e *frontEnv) dial(t *testing.T, query string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, br, _, err := ws.Dial(ctx, "ws://"+e.addr+"/ws"+query)
	if err != nil {
		t.Fatal(err)
	}
	if br != nil {
		t.Fatal("server sent data before the client spoke")
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes raw on a new connection and reads one response.
func (e *frontEnv) roundTrip(t *testing.T, raw string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp
}

// read101 reads the upgrade's response from c and checks it is 101; the
// reader returned holds what follows it.
func read101(t *testing.T, c net.Conn) *bufio.Reader {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return br
}

func upgradeRequest(target, host string, extra ...string) string {
	var b strings.Builder
	b.WriteString("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n")
	for k, v := range upgradeHeaders() {
		b.WriteString(k + ": " + v + "\r\n")
	}
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

func TestFrontUpgradeEchoes(t *testing.T) {
	h := newEcho()
	e := startFront(t, Config{}, h, nil)
	c := e.dial(t, "?session=abc")
	for i := 0; i < 3; i++ {
		msg := []byte{byte(i), 'x'}
		if err := wsutil.WriteClientBinary(c, msg); err != nil {
			t.Fatal(err)
		}
		if f := readFrame(t, c); f.Header.OpCode != ws.OpBinary || !bytes.Equal(f.Payload, msg) {
			t.Fatalf("echo %d: %v %q", i, f.Header.OpCode, f.Payload)
		}
	}
	if calls := e.muxCalls(); len(calls) != 0 {
		t.Fatalf("the upgrade went through net/http: %v", calls)
	}
	conn := onlyConn(t, e.s)
	if got, want := conn.RemoteAddr().String(), c.LocalAddr().String(); got != want {
		t.Fatalf("remote address %s, want %s", got, want)
	}
	if e.s.Stats().Accepted.Load() != 1 {
		t.Fatal("upgrade not counted")
	}
	// The Front accepts sockets itself: Nagle's algorithm is off, as
	// net/http turns it off for its own.
	conn.mu.Lock()
	nodelay, err := unix.GetsockoptInt(int(conn.fd), unix.IPPROTO_TCP, unix.TCP_NODELAY)
	conn.mu.Unlock()
	if err != nil || nodelay != 1 {
		t.Fatalf("TCP_NODELAY %d, %v; want 1", nodelay, err)
	}
}

// handshakes counts the connections still awaiting their request head.
func handshakes(s *Server) int {
	n := 0
	s.eachHandshake(func(*Conn) { n++ })
	return n
}

// A connection whose request head is still arriving costs no goroutine:
// the poller and the workers read heads as they read frames. Shutdown
// drops such connections at once, not at their handshake deadline.
func TestFrontHandshakesHoldNoGoroutine(t *testing.T) {
	e := startFront(t, Config{HandshakeTimeout: 10 * time.Second}, newEcho(), nil)
	base := runtime.NumGoroutine()
	const n = 200
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\n"); err != nil { // unfinished
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitFor(t, func() bool { return handshakes(e.s) == n })
	if g := runtime.NumGoroutine(); g > base+5 {
		t.Fatalf("%d goroutines with %d heads arriving, %d before", g, n, base)
	}
	if got := e.s.Stats().Open.Load(); got != 0 {
		t.Fatalf("%d open before any head was complete", got)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := e.s.Shutdown(ctx, uint16(CloseGoingAway), "bye"); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
			t.Fatalf("connection %d: read %d, %v: want it dropped", i, n, err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("dropped after %v, want at once", d)
	}
	if calls := e.muxCalls(); len(calls) != 0 {
		t.Fatalf("mux saw %v", calls)
	}
}

func TestFrontRefusals(t *testing.T) {
	type tc struct {
		name   string
		cfg    Config
		setup  func(t *testing.T, e *frontEnv) // before the request
		req    func(e *frontEnv) string
		status int
		reason string // X-Gameserver-Reject, and the counter; "" for neither
	}
	plain := func(e *frontEnv) string { return upgradeRequest("/ws", e.addr) }
	cases := []tc{
		{
			name:   "origin",
			req:    func(e *frontEnv) string { return upgradeRequest("/ws", e.addr, "Origin: https://evil.example") },
			status: 403,
			reason: "origin",
		},
		{
			name: "rate",
			cfg:  Config{HandshakeRate: 1, HandshakeBurst: 1},
			setup: func(t *testing.T, e *frontEnv) {
				e.dial(t, "")
			},
			req:    plain,
			status: 429,
			reason: "rate",
		},
		{
			name: "full",
			cfg:  Config{MaxConns: 1},
			setup: func(t *testing.T, e *frontEnv) {
				e.dial(t, "")
			},
			req:    plain,
			status: 503,
			reason: "full",
		},
		{
			name: "per ip",
			cfg:  Config{MaxConnsPerIP: 1},
			setup: func(t *testing.T, e *frontEnv) {
				e.dial(t, "")
			},
			req:    plain,
			status: 429,
			reason: "per_ip",
		},
		{
			name:   "draining",
			setup:  func(t *testing.T, e *frontEnv) { e.s.Drain() },
			req:    plain,
			status: 503,
			reason: "draining",
		},
		{
			name: "bad version",
			req: func(e *frontEnv) string {
				return strings.Replace(upgradeRequest("/ws", e.addr), "Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", 1)
			},
			status: 426,
			reason: "handshake",
		},
		{
			name:   "not an upgrade",
			req:    func(e *frontEnv) string { return "GET /ws HTTP/1.1\r\nHost: " + e.addr + "\r\n\r\n" },
			status: 400,
			reason: "handshake",
		},
		{
			name: "oversized head",
			req: func(e *frontEnv) string {
				return upgradeRequest("/ws", e.addr, "X-Pad: "+strings.Repeat("a", 20<<10))
			},
			status: 431,
			reason: "handshake",
		},
		{
			name: "oversized head elsewhere",
			req: func(e *frontEnv) string {
				return "GET /other HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 20<<10) + "\r\n\r\n"
			},
			status: 431,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := startFront(t, tc.cfg, newEcho(), nil)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			resp := e.roundTrip(t, tc.req(e))
			if resp.StatusCode != tc.status {
				body, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tc.status)
			}
			if got := resp.Header.Get("X-Gameserver-Reject"); tc.reason != "handshake" && got != tc.reason {
				t.Fatalf("X-Gameserver-Reject %q, want %q", got, tc.reason)
			}
			// A refusal the upgrader answers (400, 426) is counted when it
			// returns, which may be just after the client has the response.
			want := map[bool]uint64{true: 1, false: 0}[tc.reason != ""]
			var total uint64
			for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
				total = 0
				for _, r := range RejectReasons() {
					total += e.s.Stats().Rejected[r].Load()
				}
				if total >= want || time.Now().After(deadline) {
					break
				}
			}
			for _, r := range RejectReasons() {
				if n := e.s.Stats().Rejected[r].Load(); r.String() == tc.reason && n != 1 {
					t.Fatalf("Rejected[%s] = %d, want 1", r, n)
				}
			}
			if total != want {
				t.Fatalf("%d refusals counted, want %d", total, want)
			}
			if calls := e.muxCalls(); len(calls) != 0 {
				t.Fatalf("the refusal went through net/http: %v", calls)
			}
			// A connection set up by the case registers just after its 101
			// is written, so the two counts may meet a moment later.
			deadline := time.Now().Add(2 * time.Second)
			for e.s.Stats().Open.Load() != int64(registered(e.s)) {
				if time.Now().After(deadline) {
					t.Fatalf("Open %d with %d connections: a refusal kept its place", e.s.Stats().Open.Load(), registered(e.s))
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}

func TestFrontPassesOtherRequests(t *testing.T) {
	intercept := func(q string) bool { return strings.Contains(q, "session=elsewhere") }
	h := newEcho()
	e := startFront(t, Config{}, h, intercept)

	// Two requests on one connection, the second with a body: keep-alive
	// through the Front.
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	for i, req := range []string{
		"GET /other?a=1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /other HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
	} {
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := []string{
			`GET /other?a=1 HTTP/1.1 body="" from=` + c.LocalAddr().String(),
			`POST /other HTTP/1.1 body="hello world" from=` + c.LocalAddr().String(),
		}[i]
		if resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("request %d: %d %q, want %q", i, resp.StatusCode, body, want)
		}
	}

	// The same through net/http's client, body and all.
	resp, err := http.Post("http://"+e.addr+"/other", "text/plain", strings.NewReader(strings.Repeat("z", 100<<10)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), `POST /other HTTP/1.1 body="zzz`) || len(body) < 100<<10 {
		t.Fatalf("big POST: %d %.60q", resp.StatusCode, body)
	}

	// HTTP/1.0 and other methods on the WebSocket path are net/http's.
	if resp := e.roundTrip(t, "GET /ws HTTP/1.0\r\nHost: x\r\n\r\n"); resp.StatusCode != 505 { // ServeHTTP refuses it
		t.Fatalf("HTTP/1.0 upgrade: %d", resp.StatusCode)
	}
	if resp := e.roundTrip(t, "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"); resp.StatusCode != 405 {
		t.Fatalf("POST /ws: %d", resp.StatusCode)
	}
	if resp := e.roundTrip(t, "nonsense\r\n\r\n"); resp.StatusCode != 400 {
		t.Fatalf("garbage: %d", resp.StatusCode)
	}

	// An intercepted query is upgraded by net/http (the mux's route), and
	// works the same.
	ws1 := e.dial(t, "?session=elsewhere")
	if err := wsutil.WriteClientBinary(ws1, []byte("via mux")); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, ws1); string(f.Payload) != "via mux" {
		t.Fatalf("echo %q", f.Payload)
	}
	want := []string{"HTTP/1.0 /ws", "HTTP/1.1 /ws?session=elsewhere"}
	if calls := e.muxCalls(); fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Fatalf("mux saw %v, want %v", calls, want)
	}
	// A query intercept does not want stays on the fast path.
	e.dial(t, "?session=here")
	if calls := e.muxCalls(); len(calls) != 2 {
		t.Fatalf("mux saw %v", calls)
	}
}

func TestFrontSlowHeadDropped(t *testing.T) {
	e := startFront(t, Config{HandshakeTimeout: 300 * time.Millisecond}, newEcho(), nil)
	base := runtime.NumGoroutine()
	var conns []net.Conn
	for _, send := range []string{"", "GET /ws HTTP/1.1\r\nHost: x\r\n", "GET /other HTTP/1.1\r\n", "G"} {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, send)
		conns = append(conns, c)
	}
	start := time.Now()
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := c.Read(make([]byte, 1))
		if n != 0 || err == nil || isTimeout(err) {
			t.Fatalf("connection %d: read %d, %v: want the server to drop it", i, n, err)
		}
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Fatalf("dropped after %v, want about 300ms", d)
	}
	// No goroutine stays behind for them.
	waitFor(t, func() bool { return runtime.NumGoroutine() <= base })
	if calls := e.muxCalls(); len(calls) != 0 {
		t.Fatalf("mux saw %v", calls)
	}
}

// TestFrontPipelinedFrames sends frames in the same write as the upgrade
// request: they must be the connection's first data, on the fast path and
// through net/http (with a head long enough that the Front read more than
// net/http's buffer holds).
func TestFrontPipelinedFrames(t *testing.T) {
	h := newEcho()
	e := startFront(t, Config{}, h, func(q string) bool { return q == "via=mux" })
	for _, tc := range []struct{ target, pad string }{
		{"/ws", ""},
		{"/ws", strings.Repeat("p", 6000)},
		{"/ws?via=mux", ""},
		{"/ws?via=mux", strings.Repeat("p", 6000)},
	} {
		t.Run(fmt.Sprintf("%s pad %d", tc.target, len(tc.pad)), func(t *testing.T) {
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var extra []string
			if tc.pad != "" {
				extra = append(extra, "X-Pad: "+tc.pad)
			}
			var req bytes.Buffer
			req.WriteString(upgradeRequest(tc.target, e.addr, extra...))
			want := []string{"first", strings.Repeat("second", 1000), "third"}
			for _, m := range want {
				req.Write(rawFrame(true, 0, 0x2, []byte(m), true))
			}
			if _, err := c.Write(req.Bytes()); err != nil {
				t.Fatal(err)
			}
			br := read101(t, c)
			for _, w := range want {
				f, err := ws.ReadFrame(br)
				if err != nil {
					t.Fatal(err)
				}
				if string(f.Payload) != w {
					t.Fatalf("got %.20q (%d bytes), want %.20q", f.Payload, len(f.Payload), w)
				}
			}
		})
	}
	if calls := e.muxCalls(); len(calls) != 2 {
		t.Fatalf("mux saw %v, want the two intercepted", calls)
	}
}

func TestFrontClose(t *testing.T) {
	s, err := New(Config{}, newEcho())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx, 1001, "")
	}()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := s.Listen(l, "/ws", nil)
	if f.Addr().String() != l.Addr().String() {
		t.Fatalf("Addr %v, want %v", f.Addr(), l.Addr())
	}
	accepted := make(chan error, 1)
	go func() {
		_, err := f.Accept()
		accepted <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if _, err := f.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Accept: %v", err)
	}
	if c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after Close")
	}
	_ = f.Close() // twice is fine
}

func TestParseHead(t *testing.T) {
	for _, tc := range []struct {
		head, path, query, host, origin string
		ok                              bool
	}{
		{head: "GET /ws HTTP/1.1\r\nHost: a:1\r\n\r\n", path: "/ws", host: "a:1", ok: true},
		{head: "GET /ws?session=x&y HTTP/1.1\nhost:  a \nORIGIN: https://a\nOrigin: https://b\n\n", path: "/ws", query: "session=x&y", host: "a", origin: "https://a", ok: true},
		{head: "GET /ws HTTP/1.0\r\nHost: a\r\n\r\n"},
		{head: "GET /ws HTTP/1.1\r\n\r\n"},                          // no Host
		{head: "GET /ws HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},    // two
		{head: "GET /ws HTTP/1.1\r\nHost: a b\r\n\r\n"},             // bad Host
		{head: "GET /ws HTTP/1.1\r\nHost: a\r\n X: folded\r\n\r\n"}, // obs-fold
		{head: "GET /ws HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n"},      // space in name
		{head: "GET /ws HTTP/1.1\r\nHost: a\r\nX: y\x00\r\n\r\n"},   // control in value
		{head: "GET http://a/ws HTTP/1.1\r\nHost: a\r\n\r\n"},       // absolute form
		{head: "GET  /ws HTTP/1.1\r\nHost: a\r\n\r\n"},              // two spaces
		{head: "GET /ws HTTP/1.1\r\nHost: a\r\n\r\nx"},              // past the head
		{head: "GET /ws HTTP/1.1\r\nHost: a\r\n"},                   // unfinished
		{head: "GET /w\x7fs HTTP/1.1\r\nHost: a\r\n\r\n"},           // control in target
		{head: "G(T /ws HTTP/1.1\r\nHost: a\r\n\r\n"},               // bad method
		{head: "GET /ws HTTP/1.1 \r\nHost: a\r\n\r\n"},              // trailing space
		{head: "\r\nGET /ws HTTP/1.1\r\nHost: a\r\n\r\n"},           // leading line
		{head: "GET /ws HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n", path: "/ws", host: "a", ok: true},
	} {
		h, ok := parseHead([]byte(tc.head))
		if ok != tc.ok {
			t.Errorf("%q: ok %v, want %v", tc.head, ok, tc.ok)
			continue
		}
		if ok && (string(h.path) != tc.path || string(h.query) != tc.query || string(h.host) != tc.host || string(h.origin) != tc.origin) {
			t.Errorf("%q: path %q query %q host %q origin %q", tc.head, h.path, h.query, h.host, h.origin)
		}
	}
	// What a quick request needs: its length, authorization, close, Expect.
	for _, tc := range []struct {
		head   string
		length int64
		auth   string
		close  bool
		expect bool
		ok     bool
	}{
		{head: "POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nAuthorization: Bearer x\r\n\r\n", length: 12, auth: "Bearer x", ok: true},
		{head: "POST /s HTTP/1.1\r\nHost: a\r\ncontent-length: 007\r\nConnection: keep-alive, Close\r\nExpect: 100-continue\r\n\r\n", length: 7, close: true, expect: true, ok: true},
		{head: "GET /s HTTP/1.1\r\nHost: a\r\n\r\n", length: -1, ok: true},
		{head: "POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"}, // two lengths
		{head: "POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n"},
		{head: "POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n"},
		{head: "POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 12345678901\r\n\r\n"},
		{head: "POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{head: "POST /s HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n"},
	} {
		h, ok := parseHead([]byte(tc.head))
		if ok != tc.ok || ok && (h.length != tc.length || string(h.auth) != tc.auth || h.close != tc.close || h.expect != tc.expect) {
			t.Errorf("%q: ok %v, length %d auth %q close %v expect %v", tc.head, ok, h.length, h.auth, h.close, h.expect)
		}
	}
	for _, tc := range []struct {
		b    string
		from int
		want int
	}{
		{"GET / HTTP/1.1\r\n\r\n", 0, 18},
		{"GET / HTTP/1.1\n\nrest", 0, 16},
		{"GET / HTTP/1.1\n\r\nrest", 0, 17},
		{"GET / HTTP/1.1\r\nA: b\r\n", 0, -1},
		{"GET / HTTP/1.1\r\nA: b\r\n\r", 0, -1},
		{"GET / HTTP/1.1\r\nA: b\r\n\r\n", 20, 24},
		{"\r\n\r\n", 0, 4},
		{"", 0, -1},
	} {
		if got := headEnd([]byte(tc.b), tc.from); got != tc.want {
			t.Errorf("headEnd(%q, %d) = %d, want %d", tc.b, tc.from, got, tc.want)
		}
	}
}

// FuzzParseHead checks that the head parser never panics, that what it
// accepts is a complete head whose request line it splits faithfully, and
// that net/http reads an accepted head the same way (so the Front never
// upgrades what net/http would have refused or read otherwise).
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		"GET /ws?session=abc&x=%20 HTTP/1.1\r\nHost: [::1]:80\r\nOrigin: https://game.example.com\r\n\r\n",
		"GET /ws? HTTP/1.1\nHost: a\n\n",
		"POST /other HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST /sse/send?session=x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nAuthorization: Bearer t\r\nConnection: close\r\n\r\n",
		"GET /ws HTTP/1.0\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: a\r\nx-forwarded-for: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n",
		"\r\n\r\n",
		"",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end := headEnd(b, 0)
		if end > len(b) || end < -1 {
			t.Fatalf("headEnd %d of %d bytes", end, len(b))
		}
		if end > 0 {
			// A search resumed later finds the same end.
			if e2 := headEnd(b, max(0, end-3)); e2 != end {
				t.Fatalf("headEnd from %d = %d, from 0 = %d", end-3, e2, end)
			}
		}
		h, ok := parseHead(b)
		if !ok {
			return
		}
		if end != len(b) {
			t.Fatalf("accepted a head that ends at %d of %d", end, len(b))
		}
		target := string(h.path)
		if h.hasQuery {
			target += "?" + string(h.query)
		}
		line := string(h.method) + " " + target + " HTTP/1.1"
		if first, _, _ := cutLine(b); string(first) != line {
			t.Fatalf("request line %q split as %q", first, line)
		}
		// Rebuilt from its parts, the head parses to the same parts.
		rebuilt := line + "\r\nHost: " + string(h.host) + "\r\n"
		if len(h.origin) > 0 {
			rebuilt += "Origin: " + string(h.origin) + "\r\n"
		}
		if len(h.xff) > 0 {
			rebuilt += "X-Forwarded-For: " + string(h.xff) + "\r\n"
		}
		h2, ok := parseHead([]byte(rebuilt + "\r\n"))
		if !ok || string(h2.method) != string(h.method) || string(h2.path) != string(h.path) ||
			string(h2.query) != string(h.query) || h2.hasQuery != h.hasQuery ||
			string(h2.host) != string(h.host) || string(h2.origin) != string(h.origin) || string(h2.xff) != string(h.xff) {
			t.Fatalf("round trip of %q: %+v, %v", rebuilt, h2, ok)
		}
		// net/http agrees.
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("net/http refuses a head the front accepts: %v", err)
		}
		if r.Method != string(h.method) || r.RequestURI != target || r.URL.RawQuery != string(h.query) ||
			r.Host != string(h.host) || r.Header.Get("Origin") != string(h.origin) || r.ProtoMinor != 1 {
			t.Fatalf("net/http reads %s %q host %q origin %q", r.Method, r.RequestURI, r.Host, r.Header.Get("Origin"))
		}
		// So do the length, the authorization and the wish to close.
		if r.ContentLength != max(h.length, 0) && !(h.length < 0 && r.ContentLength == -1) ||
			r.Header.Get("Authorization") != string(h.auth) || r.Close != h.close {
			t.Fatalf("net/http reads length %d authorization %q close %v, the front %d %q %v", r.ContentLength, r.Header.Get("Authorization"), r.Close, h.length, h.auth, h.close)
		}
		// The one X-Forwarded-For the front read is the one net/http reads
		// (two or more go to net/http, which gathers them).
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 1 || len(xff) == 1 && xff[0] != string(h.xff) || len(xff) == 0 && len(h.xff) > 0 {
			t.Fatalf("net/http reads X-Forwarded-For %q, the front %q", xff, h.xff)
		}
	})
}

// A request head that arrives in pieces, down to one byte per segment and
// with its blank line split across reads, is read across wake-ups and
// upgraded; so is one that outgrows the first head buffer on the way.
func TestFrontHeadInPieces(t *testing.T) {
	h := newEcho()
	e := startFront(t, Config{}, h, nil)
	long := "X-Pad: " + strings.Repeat("p", 6000)
	for _, tc := range []struct {
		name  string
		head  string
		piece int
	}{
		{"byte by byte", upgradeRequest("/ws", "x"), 1},
		{"LF line ends, byte by byte", strings.ReplaceAll(upgradeRequest("/ws", "x"), "\r\n", "\n"), 1},
		{"past the first buffer", upgradeRequest("/ws", "x", long), 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := 0; i < len(tc.head); i += tc.piece {
				if _, err := io.WriteString(c, tc.head[i:min(i+tc.piece, len(tc.head))]); err != nil {
					t.Fatal(err)
				}
				if i%16 == 0 || tc.piece > 1 {
					time.Sleep(time.Millisecond) // separate reads on the server
				}
			}
			br := read101(t, c)
			msg := []byte("pieces")
			if err := wsutil.WriteClientBinary(c, msg); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			f, err := ws.ReadFrame(br)
			if err != nil || !bytes.Equal(f.Payload, msg) {
				t.Fatalf("echo %q, %v", f.Payload, err)
			}
		})
	}
	if calls := e.muxCalls(); len(calls) != 0 {
		t.Fatalf("the upgrades went through net/http: %v", calls)
	}
}
