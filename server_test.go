package gameserver_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// startServer runs a real server on a loopback port and stops it when the
// test ends.
func startServer(t *testing.T, cfg gameserver.Config) (*gameserver.Server, string) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	srv, err := gameserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv, srv.Addr().String()
}

// client is a plain WebSocket client speaking the protocol as
// docs/protocol.md describes it.
type client struct {
	t    *testing.T
	conn net.Conn
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, _, _, err := ws.Dial(ctx, "ws://"+addr+"/ws")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn}
}

func (c *client) send(m protocol.Message) {
	c.t.Helper()
	c.sendRaw(m.Append(nil))
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	if err := wsutil.WriteClientBinary(c.conn, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next message, answering nothing on its own.
func (c *client) next(timeout time.Duration) (protocol.MsgType, []byte, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		hdr, err := ws.ReadHeader(c.conn)
		if err != nil {
			return 0, nil, err
		}
		payload := make([]byte, hdr.Length)
		if _, err := io.ReadFull(c.conn, payload); err != nil {
			return 0, nil, err
		}
		switch hdr.OpCode {
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			return 0, nil, &closed{code: uint16(code), reason: reason}
		case ws.OpBinary:
			t, body, err := protocol.Split(payload)
			return t, body, err
		}
	}
}

type closed struct {
	code   uint16
	reason string
}

func (e *closed) Error() string { return "closed " + e.reason }

// expect reads until a message of type want, skipping server pings.
func (c *client) expect(want protocol.MsgType) []byte {
	c.t.Helper()
	for {
		t, body, err := c.next(3 * time.Second)
		if err != nil {
			c.t.Fatalf("waiting for %v: %v", want, err)
		}
		if t == want {
			return body
		}
		if t != protocol.TypePing {
			c.t.Fatalf("waiting for %v: got %v", want, t)
		}
	}
}

func (c *client) expectError(code protocol.Code) protocol.ErrorMsg {
	c.t.Helper()
	var e protocol.ErrorMsg
	if err := e.Decode(c.expect(protocol.TypeError)); err != nil {
		c.t.Fatal(err)
	}
	if e.Code != code {
		c.t.Fatalf("error code %v (%q), want %v", e.Code, e.Message, code)
	}
	return e
}

// expectClose reads until the close frame and returns its code.
func (c *client) expectClose(within time.Duration) uint16 {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		_, _, err := c.next(time.Until(deadline))
		var ce *closed
		if errors.As(err, &ce) {
			return ce.code
		}
		if err != nil {
			c.t.Fatalf("waiting for close: %v", err)
		}
	}
	c.t.Fatal("no close frame in time")
	return 0
}

func (c *client) hello() protocol.Welcome {
	c.t.Helper()
	c.send(&protocol.Hello{Version: protocol.Version, Client: "test"})
	var w protocol.Welcome
	if err := w.Decode(c.expect(protocol.TypeWelcome)); err != nil {
		c.t.Fatal(err)
	}
	return w
}

func TestHelloWelcome(t *testing.T) {
	_, addr := startServer(t, gameserver.Config{Node: "n1", PingInterval: 3 * time.Second, PingTimeout: 2 * time.Second})
	c := dial(t, addr)
	w := c.hello()
	if w.Version != protocol.Version || w.Node != "n1" || len(w.SessionID) < 16 {
		t.Fatalf("welcome %+v", w)
	}
	if w.PingIntervalMs != 3000 || w.PingTimeoutMs != 2000 || w.MaxMessage != 64<<10 {
		t.Fatalf("welcome limits %+v", w)
	}
	c2 := dial(t, addr)
	if w2 := c2.hello(); w2.SessionID == w.SessionID {
		t.Fatal("two sessions share an id")
	}
}

func TestClientPingGetsPong(t *testing.T) {
	_, addr := startServer(t, gameserver.Config{})
	c := dial(t, addr)
	c.hello()
	for n := uint32(1); n <= 3; n++ {
		c.send(&protocol.Ping{Nonce: n})
		var p protocol.Pong
		if err := p.Decode(c.expect(protocol.TypePong)); err != nil || p.Nonce != n {
			t.Fatalf("pong %+v %v, want nonce %d", p, err, n)
		}
	}
}

func TestControlPingAnswered(t *testing.T) {
	_, addr := startServer(t, gameserver.Config{})
	c := dial(t, addr)
	if err := wsutil.WriteClientMessage(c.conn, ws.OpPing, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	f, err := ws.ReadFrame(c.conn)
	if err != nil || f.Header.OpCode != ws.OpPong || string(f.Payload) != "abc" {
		t.Fatalf("frame %+v %v", f.Header, err)
	}
}

func TestServerPingsAndMeasuresRTT(t *testing.T) {
	srv, addr := startServer(t, gameserver.Config{PingInterval: 100 * time.Millisecond, PingTimeout: time.Second})
	c := dial(t, addr)
	c.hello()
	var last protocol.Ping
	for i := 0; i < 3; i++ {
		var p protocol.Ping
		if err := p.Decode(c.expect(protocol.TypePing)); err != nil {
			t.Fatal(err)
		}
		if p.Nonce <= last.Nonce {
			t.Fatalf("nonce %d after %d", p.Nonce, last.Nonce)
		}
		time.Sleep(5 * time.Millisecond) // a measurable round trip
		c.send(&protocol.Pong{Nonce: p.Nonce})
		last = p
	}
	var p protocol.Ping
	if err := p.Decode(c.expect(protocol.TypePing)); err != nil {
		t.Fatal(err)
	}
	if p.RTTMicros < 5000 || p.RTTMicros > 1_000_000 {
		t.Fatalf("server reports rtt %dus, want >= 5ms", p.RTTMicros)
	}
	if got := metric(t, srv, "gameserver_pongs_received_total"); got < 3 {
		t.Fatalf("pongs counted %v", got)
	}
}

func TestSilentClientClosed(t *testing.T) {
	srv, addr := startServer(t, gameserver.Config{PingInterval: 100 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
	c := dial(t, addr)
	c.hello()
	start := time.Now()
	// Read without ever answering: the server must give up on us.
	if code := c.expectClose(3 * time.Second); code != uint16(protocol.CloseHeartbeatTimeout) {
		t.Fatalf("close %d, want 4000", code)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("closed after %v, before the timeout", d)
	}
	waitFor(t, func() bool { return metric(t, srv, "gameserver_heartbeat_timeouts_total") == 1 })
	waitFor(t, func() bool { return metric(t, srv, "gameserver_connections") == 0 })
}

func TestAnsweringClientKept(t *testing.T) {
	_, addr := startServer(t, gameserver.Config{PingInterval: 50 * time.Millisecond, PingTimeout: 50 * time.Millisecond})
	c := dial(t, addr)
	c.hello()
	end := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(end) {
		var p protocol.Ping
		if err := p.Decode(c.expect(protocol.TypePing)); err != nil {
			t.Fatal(err)
		}
		c.send(&protocol.Pong{Nonce: p.Nonce})
	}
}

func TestHelloTimeout(t *testing.T) {
	srv, addr := startServer(t, gameserver.Config{HelloTimeout: 100 * time.Millisecond})
	c := dial(t, addr)
	c.expectError(protocol.CodeHelloTimeout)
	if code := c.expectClose(3 * time.Second); code != uint16(protocol.CloseHelloTimeout) {
		t.Fatalf("close %d", code)
	}
	if metric(t, srv, "gameserver_hello_timeouts_total") != 1 {
		t.Fatal("not counted")
	}
}

func TestUnsupportedVersion(t *testing.T) {
	_, addr := startServer(t, gameserver.Config{})
	c := dial(t, addr)
	c.send(&protocol.Hello{Version: 99})
	c.expectError(protocol.CodeUnsupportedVersion)
	if code := c.expectClose(3 * time.Second); code != uint16(protocol.CloseUnsupportedVersion) {
		t.Fatalf("close %d", code)
	}
}

func TestBadInput(t *testing.T) {
	_, addr := startServer(t, gameserver.Config{})
	c := dial(t, addr)
	c.send(&protocol.Join{Kind: "arena"})
	c.expectError(protocol.CodeHelloRequired)
	c.hello()
	cases := []struct {
		name string
		msg  []byte
		code protocol.Code
	}{
		{"one byte", []byte{0x00}, protocol.CodeBadRequest},
		{"empty body", []byte{0x00, 0x03}, protocol.CodeBadRequest},
		{"truncated ping", []byte{0x00, 0x03, 0x92, 0x01}, protocol.CodeBadRequest},
		{"map for array", []byte{0x00, 0x03, 0x80}, protocol.CodeBadRequest},
		{"huge array header", []byte{0x00, 0x03, 0xdd, 0xff, 0xff, 0xff, 0xff}, protocol.CodeBadRequest},
		{"unknown system type", []byte{0x0f, 0xff, 0x90}, protocol.CodeUnknownType},
		{"server-only type", (&protocol.Welcome{Version: 1}).Append(nil), protocol.CodeUnknownType},
		{"second hello", (&protocol.Hello{Version: 1}).Append(nil), protocol.CodeBadRequest},
		{"game message outside a room", []byte{0x10, 0x00, 0x93, 1, 0, 0}, protocol.CodeNotInRoom},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.sendRaw(tc.msg)
			e := c.expectError(tc.code)
			if e.Message == "" {
				t.Fatal("error without a message")
			}
		})
	}
	// The connection survived all of it.
	c.send(&protocol.Ping{Nonce: 7})
	c.expect(protocol.TypePong)
}

func TestTooManyBadMessagesClose(t *testing.T) {
	_, addr := startServer(t, gameserver.Config{})
	c := dial(t, addr)
	c.hello()
	for i := 0; i < 20; i++ {
		c.sendRaw([]byte{0x00, 0x03, 0xc1}) // 0xc1 is never valid msgpack
	}
	if code := c.expectClose(3 * time.Second); code != uint16(protocol.ClosePolicyViolation) {
		t.Fatalf("close %d", code)
	}
}

func TestRateLimit(t *testing.T) {
	// A token every 10 s: none comes back while the test runs.
	srv, addr := startServer(t, gameserver.Config{RateLimit: 0.1, RateBurst: 5})
	c := dial(t, addr)
	c.hello() // HELLO takes one token
	ping := (&protocol.Ping{Nonce: 1}).Append(nil)
	for i := 0; i < 4; i++ {
		c.sendRaw(ping)
		c.expect(protocol.TypePong)
	}
	c.sendRaw(ping)
	e := c.expectError(protocol.CodeRateLimited)
	if e.Ref != protocol.TypePing {
		t.Fatalf("error ref %v", e.Ref)
	}
	// Sustained flooding ends the session.
	for i := 0; i < 200; i++ {
		if err := wsutil.WriteClientBinary(c.conn, ping); err != nil {
			break
		}
	}
	if code := c.expectClose(3 * time.Second); code != uint16(protocol.ClosePolicyViolation) {
		t.Fatalf("close %d", code)
	}
	if metric(t, srv, "gameserver_rate_limited_total") < 100 {
		t.Fatal("rate-limited messages not counted")
	}
}

func TestOversizedMessageClosed(t *testing.T) {
	_, addr := startServer(t, gameserver.Config{MaxMessageBytes: 1024})
	c := dial(t, addr)
	c.hello()
	c.sendRaw(make([]byte, 2000))
	if code := c.expectClose(3 * time.Second); code != 1009 {
		t.Fatalf("close %d", code)
	}
}

func TestHealthReadyMetricsAndDemo(t *testing.T) {
	_, addr := startServer(t, gameserver.Config{})
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ready",
		"/metrics": "gameserver_connections",
		"/":        "<title>gameserver",
	} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, b[:min(len(b), 200)])
		}
	}
}

func TestShutdownDrains(t *testing.T) {
	srv, err := gameserver.New(gameserver.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe() }()
	addr := srv.Addr().String()
	c := dial(t, addr)
	c.hello()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	if code := c.expectClose(3 * time.Second); code != uint16(protocol.CloseDraining) {
		t.Fatalf("close %d, want 4002", code)
	}
	_ = wsutil.WriteClientMessage(c.conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusCode(4002), ""))
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ws.Dial(context.Background(), "ws://"+addr+"/ws"); err == nil {
		t.Fatal("dial after shutdown succeeded")
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]gameserver.Config{
		"bad addr":         {Addr: "nope"},
		"tiny max message": {MaxMessageBytes: 1},
		"negative limit":   {MaxConns: -1},
		"bad origin":       {AllowedOrigins: []string{"not a url"}},
		"tiny ping":        {PingInterval: time.Microsecond},
		"negative rate":    {RateLimit: -1},
		"NaN rate":         {RateLimit: math.NaN()},
		"huge outbound":    {MaxOutboundBytes: 2 << 30},
		"bad proxy":        {TrustedProxies: []string{"10.0.0.0/33"}},
	} {
		if _, err := gameserver.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	var stderr bytes.Buffer
	if code := gameserver.Run([]string{"--addr", "127.0.0.1:0", "--max-outbound", "2147483648"}, func(string) string { return "" }, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "--max-outbound 2147483648: at most") {
		t.Errorf("--max-outbound past 1 GiB: exit %d, %q", code, stderr.String())
	}
	for _, args := range [][]string{{"--trusted-proxies", "10.0.0.0/8,proxy.example.com"}, {"--trusted-proxies", "10.0.0.1:80"}} {
		stderr.Reset()
		if code := gameserver.Run(append([]string{"--addr", "127.0.0.1:0"}, args...), func(string) string { return "" }, &stderr); code != 2 ||
			!strings.Contains(stderr.String(), "--trusted-proxies: trusted proxy") {
			t.Errorf("%v: exit %d, %q", args, code, stderr.String())
		}
	}
	stderr.Reset()
	env := func(k string) string {
		if k == "GAMESERVER_TRUSTED_PROXIES" {
			return "10.0.0.0/8, nope"
		}
		return ""
	}
	if code := gameserver.Run([]string{"--addr", "127.0.0.1:0"}, env, &stderr); code != 2 || !strings.Contains(stderr.String(), `trusted proxy "nope"`) {
		t.Errorf("GAMESERVER_TRUSTED_PROXIES with a bad entry: exit %d, %q", code, stderr.String())
	}
}
