package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// echo is a Handler that sends every message back and records closes.
type echo struct {
	mu     sync.Mutex
	opened int
	closed []CloseInfo
	gotMsg chan []byte
}

func newEcho() *echo { return &echo{gotMsg: make(chan []byte, 1024)} }

func (e *echo) OnOpen(c *Conn) {
	e.mu.Lock()
	e.opened++
	e.mu.Unlock()
}

func (e *echo) OnMessage(c *Conn, msg []byte) {
	if bytes.Equal(msg, []byte("panic")) {
		panic("handler panic on purpose")
	}
	select {
	case e.gotMsg <- append([]byte(nil), msg...):
	default:
	}
	f := frame.New()
	f.B = append(f.B, msg...)
	_ = c.SendNow(f.Seal())
	f.Release()
}

func (e *echo) OnClose(c *Conn, info CloseInfo) {
	e.mu.Lock()
	e.closed = append(e.closed, info)
	e.mu.Unlock()
}

func (e *echo) closes() []CloseInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]CloseInfo(nil), e.closed...)
}

// startServer runs a transport Server behind a real HTTP server on a
// loopback port.
func startServer(t *testing.T, cfg Config, h Handler) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s)
	hs.Config.ReadHeaderTimeout = 500 * time.Millisecond
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx, uint16(CloseGoingAway), "test over")
	})
	return s, hs
}

func wsURL(hs *httptest.Server) string { return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws" }

func dial(t *testing.T, hs *httptest.Server) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, br, _, err := ws.Dial(ctx, wsURL(hs))
	if err != nil {
		t.Fatal(err)
	}
	if br != nil {
		t.Fatal("server sent data before the client spoke")
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawFrame builds a client frame by hand, masked unless mask is false.
func rawFrame(fin bool, rsv, op byte, payload []byte, mask bool) []byte {
	var b []byte
	b0 := op | rsv<<4
	if fin {
		b0 |= 0x80
	}
	b = append(b, b0)
	m := byte(0)
	if mask {
		m = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, m|byte(n))
	case n <= 0xFFFF:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := append([]byte(nil), payload...)
	if mask {
		key := [4]byte{0x1, 0x2, 0x3, 0x4}
		b = append(b, key[:]...)
		ws.Cipher(p, key, 0)
	}
	return append(b, p...)
}

// readFrame reads one server frame within the deadline.
func readFrame(t *testing.T, c net.Conn) ws.Frame {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	f, err := ws.ReadFrame(c)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

// expectClose reads frames until a close frame and returns its code.
func expectClose(t *testing.T, c net.Conn) ws.StatusCode {
	t.Helper()
	for i := 0; i < 100; i++ {
		f := readFrame(t, c)
		if f.Header.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(f.Payload)
			return code
		}
	}
	t.Fatal("no close frame")
	return 0
}

func TestEchoAndCoalescedBurst(t *testing.T) {
	h := newEcho()
	_, hs := startServer(t, Config{}, h)
	c := dial(t, hs)
	for i := 0; i < 200; i++ {
		msg := []byte{byte(i), 1, 2, 3}
		if err := wsutil.WriteClientBinary(c, msg); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 200; i++ {
		f := readFrame(t, c)
		if f.Header.OpCode != ws.OpBinary || !bytes.Equal(f.Payload, []byte{byte(i), 1, 2, 3}) {
			t.Fatalf("frame %d: op %v payload %v", i, f.Header.OpCode, f.Payload)
		}
		if f.Header.Masked {
			t.Fatal("server frames must not be masked")
		}
	}
}

func TestLargeMessageSplitAcrossReads(t *testing.T) {
	h := newEcho()
	_, hs := startServer(t, Config{}, h)
	c := dial(t, hs)
	msg := bytes.Repeat([]byte("abcdefgh"), 6000) // 48 KB, more than one read
	wire := rawFrame(true, 0, 0x2, msg, true)
	// Dribble it in pieces so the frame is split across many reads.
	for off := 0; off < len(wire); off += 1000 {
		end := min(off+1000, len(wire))
		if _, err := c.Write(wire[off:end]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	f := readFrame(t, c)
	if !bytes.Equal(f.Payload, msg) {
		t.Fatalf("echo of %d bytes came back as %d bytes", len(msg), len(f.Payload))
	}
}

func TestFragmentedWithPingBetween(t *testing.T) {
	h := newEcho()
	_, hs := startServer(t, Config{}, h)
	c := dial(t, hs)
	var wire []byte
	wire = append(wire, rawFrame(false, 0, 0x2, []byte("hel"), true)...)
	wire = append(wire, rawFrame(true, 0, 0x9, []byte("pp"), true)...) // ping between fragments
	wire = append(wire, rawFrame(false, 0, 0x0, []byte("lo "), true)...)
	wire = append(wire, rawFrame(true, 0, 0x0, []byte("world"), true)...)
	if _, err := c.Write(wire); err != nil {
		t.Fatal(err)
	}
	f := readFrame(t, c)
	if f.Header.OpCode != ws.OpPong || string(f.Payload) != "pp" {
		t.Fatalf("want pong 'pp' first, got %v %q", f.Header.OpCode, f.Payload)
	}
	f = readFrame(t, c)
	if string(f.Payload) != "hello world" {
		t.Fatalf("reassembled %q", f.Payload)
	}
}

func TestProtocolViolationsClose(t *testing.T) {
	cases := []struct {
		name string
		wire []byte
		want ws.StatusCode
	}{
		{"unmasked", rawFrame(true, 0, 0x2, []byte("x"), false), 1002},
		{"rsv bit", rawFrame(true, 1, 0x2, []byte("x"), true), 1002},
		{"reserved opcode 3", rawFrame(true, 0, 0x3, []byte("x"), true), 1002},
		{"reserved opcode B", rawFrame(true, 0, 0xB, []byte("x"), true), 1002},
		{"control too long", rawFrame(true, 0, 0x9, bytes.Repeat([]byte("p"), 126), true), 1002},
		{"fragmented control", rawFrame(false, 0, 0x9, []byte("p"), true), 1002},
		{"continuation first", rawFrame(true, 0, 0x0, []byte("x"), true), 1002},
		{"data mid-fragment", append(rawFrame(false, 0, 0x2, []byte("a"), true), rawFrame(true, 0, 0x2, []byte("b"), true)...), 1002},
		{"text frame", rawFrame(true, 0, 0x1, []byte("hi"), true), 1003},
		{"close one byte", rawFrame(true, 0, 0x8, []byte{3}, true), 1002},
		{"close code 1005", rawFrame(true, 0, 0x8, []byte{0x03, 0xED}, true), 1002},
		{"close code 5000", rawFrame(true, 0, 0x8, []byte{0x13, 0x88}, true), 1002},
		{"close bad utf8", rawFrame(true, 0, 0x8, []byte{0x03, 0xE8, 0xff, 0xfe}, true), 1007},
		{"length msb set", append([]byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1}, 1, 2, 3, 4), 1002},
		{"oversized frame", rawFrame(true, 0, 0x2, make([]byte, 70_000), true), 1009},
		{"oversized fragments", func() []byte {
			var b []byte
			b = append(b, rawFrame(false, 0, 0x2, make([]byte, 100), true)...)
			for i := 0; i < 700; i++ {
				b = append(b, rawFrame(false, 0, 0x0, make([]byte, 100), true)...)
			}
			return b
		}(), 1009},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newEcho()
			_, hs := startServer(t, Config{}, h)
			c := dial(t, hs)
			_, _ = c.Write(tc.wire)
			if got := expectClose(t, c); got != tc.want {
				t.Fatalf("close code %d, want %d", got, tc.want)
			}
			// The server shuts its side after the close frame.
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, net.ErrClosed) {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("server did not end the connection")
				}
			}
		})
	}
}

func TestOversizedFrameRefusedBeforePayload(t *testing.T) {
	h := newEcho()
	_, hs := startServer(t, Config{MaxMessageBytes: 1024}, h)
	c := dial(t, hs)
	// Only the header of a 1 GiB frame: the server must answer without
	// waiting for (or buffering) the payload.
	hdr := []byte{0x82, 0xFF, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4}
	if _, err := c.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if got := expectClose(t, c); got != 1009 {
		t.Fatalf("close %d, want 1009", got)
	}
}

func TestPeerCloseEchoed(t *testing.T) {
	h := newEcho()
	_, hs := startServer(t, Config{}, h)
	c := dial(t, hs)
	_, _ = c.Write(rawFrame(true, 0, 0x8, append([]byte{0x0F, 0xA0}, "bye"...), true)) // 4000
	if got := expectClose(t, c); got != 4000 {
		t.Fatalf("echoed %d, want 4000", got)
	}
	waitFor(t, func() bool { return len(h.closes()) == 1 })
	if ci := h.closes()[0]; ci.Code != 4000 || !ci.ByPeer || ci.Reason != "bye" {
		t.Fatalf("close info %+v", ci)
	}
}

func TestServerCloseHandshake(t *testing.T) {
	h := newEcho()
	s, hs := startServer(t, Config{}, h)
	c := dial(t, hs)
	waitFor(t, func() bool { return registered(s) == 1 })
	s.Each(func(cn *Conn) { cn.Close(4502, "kicked") })
	if got := expectClose(t, c); got != 4502 {
		t.Fatalf("close %d", got)
	}
	_, _ = c.Write(rawFrame(true, 0, 0x8, []byte{0x11, 0x96}, true))
	waitFor(t, func() bool { return s.Stats().Open.Load() == 0 })
	if ci := h.closes()[0]; ci.Code != 4502 || ci.ByPeer {
		t.Fatalf("close info %+v", ci)
	}
}

func TestCloseTimeoutWhenPeerSilent(t *testing.T) {
	h := newEcho()
	s, hs := startServer(t, Config{CloseTimeout: 200 * time.Millisecond}, h)
	_ = dial(t, hs) // never answers the close
	waitFor(t, func() bool { return registered(s) == 1 })
	s.Each(func(cn *Conn) { cn.Close(4000, "x") })
	waitFor(t, func() bool { return s.Stats().Open.Load() == 0 })
}

func TestHandlerPanicClosesOnlyThatConnection(t *testing.T) {
	h := newEcho()
	s, hs := startServer(t, Config{}, h)
	a, b := dial(t, hs), dial(t, hs)
	_ = wsutil.WriteClientBinary(a, []byte("panic"))
	if got := expectClose(t, a); got != 1011 {
		t.Fatalf("close %d, want 1011", got)
	}
	_ = wsutil.WriteClientBinary(b, []byte("still here"))
	if f := readFrame(t, b); string(f.Payload) != "still here" {
		t.Fatalf("other connection got %q", f.Payload)
	}
	if s.Stats().HandlerPanics.Load() != 1 {
		t.Fatal("panic not counted")
	}
}

func TestSlowConsumerCut(t *testing.T) {
	// The handler floods every connection; the client never reads.
	s, conn := nonReader(t, Config{MaxOutboundBytes: 256 << 10, MaxMessageBytes: 1024, WriteTimeout: time.Second})
	payload := make([]byte, 16<<10)
	deadline := time.Now().Add(10 * time.Second)
	for conn.Open() && time.Now().Before(deadline) {
		f := frame.New()
		f.B = append(f.B, payload...)
		_ = conn.SendNow(f.Seal())
		f.Release()
		if conn.Pending() > 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if conn.Open() {
		t.Fatal("slow consumer still open")
	}
	if s.Stats().SlowConsumers.Load() == 0 {
		t.Fatal("slow consumer not counted")
	}
}

func TestHandshakeLimits(t *testing.T) {
	t.Run("foreign origin", func(t *testing.T) {
		s, hs := startServer(t, Config{}, newEcho())
		req, _ := http.NewRequest("GET", hs.URL+"/ws", nil)
		req.Header.Set("Origin", "https://evil.example")
		for k, v := range upgradeHeaders() {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 || s.Stats().Rejected[RejectOrigin].Load() != 1 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("allowed origin list", func(t *testing.T) {
		_, hs := startServer(t, Config{AllowedOrigins: []string{"https://*.example.com"}}, newEcho())
		for origin, want := range map[string]int{"https://game.example.com": 101, "http://game.example.com": 403, "https://example.org": 403} {
			req, _ := http.NewRequest("GET", hs.URL+"/ws", nil)
			req.Header.Set("Origin", origin)
			for k, v := range upgradeHeaders() {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("%s: status %d, want %d", origin, resp.StatusCode, want)
			}
		}
	})
	t.Run("same host origin", func(t *testing.T) {
		_, hs := startServer(t, Config{}, newEcho())
		req, _ := http.NewRequest("GET", hs.URL+"/ws", nil)
		req.Header.Set("Origin", hs.URL)
		for k, v := range upgradeHeaders() {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 101 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("per ip", func(t *testing.T) {
		s, hs := startServer(t, Config{MaxConnsPerIP: 2}, newEcho())
		dial(t, hs)
		dial(t, hs)
		_, _, _, err := ws.Dial(context.Background(), wsURL(hs))
		var se ws.StatusError
		if !errors.As(err, &se) || int(se) != 429 {
			t.Fatalf("third dial: %v", err)
		}
		if s.Stats().Rejected[RejectPerIP].Load() != 1 {
			t.Fatal("not counted")
		}
	})
	t.Run("total", func(t *testing.T) {
		_, hs := startServer(t, Config{MaxConns: 1}, newEcho())
		dial(t, hs)
		_, _, _, err := ws.Dial(context.Background(), wsURL(hs))
		var se ws.StatusError
		if !errors.As(err, &se) || int(se) != 503 {
			t.Fatalf("second dial: %v", err)
		}
	})
	t.Run("bad upgrade", func(t *testing.T) {
		s, hs := startServer(t, Config{}, newEcho())
		resp, err := http.Get(hs.URL + "/ws")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		// The refusal is counted once the upgrader returns, which may be
		// just after the client has the response.
		waitFor(t, func() bool { return s.Stats().Rejected[RejectHandshake].Load() == 1 })
		h := upgradeHeaders()
		h["Sec-WebSocket-Version"] = "8"
		req, _ := http.NewRequest("GET", hs.URL+"/ws", nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 426 {
			t.Fatalf("version 8: status %d", resp.StatusCode)
		}
	})
	t.Run("silent and half handshakes dropped", func(t *testing.T) {
		_, hs := startServer(t, Config{}, newEcho())
		for _, send := range []string{"", "GET /ws HTTP/1.1\r\nHost: x\r\n"} {
			c, err := net.Dial("tcp", hs.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write([]byte(send))
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err = bufio.NewReader(c).ReadString('\n')
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("%q: server kept the connection past its header timeout", send)
			}
			c.Close()
		}
	})
}

func upgradeHeaders() map[string]string {
	return map[string]string{
		"Connection":            "Upgrade",
		"Upgrade":               "websocket",
		"Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key":     "dGhlIHNhbXBsZSBub25jZQ==",
	}
}

func TestShutdownClosesAll(t *testing.T) {
	h := newEcho()
	s, err := New(Config{}, h)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	defer hs.Close()
	var conns []net.Conn
	for i := 0; i < 20; i++ {
		conns = append(conns, dial(t, hs))
	}
	waitFor(t, func() bool { return registered(s) == 20 })
	done := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx, 4002, "restarting")
	}()
	for _, c := range conns {
		if got := expectClose(t, c); got != 4002 {
			t.Fatalf("close %d", got)
		}
		_, _ = c.Write(rawFrame(true, 0, 0x8, []byte{0x0F, 0xA2}, true))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(h.closes()); n != 20 {
		t.Fatalf("%d OnClose calls", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// registered counts the connections the server has taken over (Open counts
// upgrades from their start).
func registered(s *Server) int {
	n := 0
	s.Each(func(*Conn) { n++ })
	return n
}

// A connection whose socket takes nothing for WriteTimeout is cut as a
// slow consumer even though its queue is far under its bound.
func TestWriteTimeoutCut(t *testing.T) {
	_, conn := nonReader(t, Config{MaxOutboundBytes: 256 << 20, MaxMessageBytes: 1024, WriteTimeout: time.Second, CloseTimeout: 500 * time.Millisecond})
	f := frame.New()
	f.B = append(f.B, make([]byte, 64<<10)...)
	f.Seal()
	for i := 0; i < 1024; i++ { // 64 MiB, one frame's bytes: more than socket buffers take
		_ = conn.Send(f, 0)
	}
	f.Release()
	conn.Flush()
	start := time.Now()
	waitFor(t, func() bool { return !conn.Open() })
	conn.mu.Lock()
	info := conn.closeInfo
	conn.mu.Unlock()
	if info == nil || info.Code != CloseSlowConsumer || info.Reason != "write timeout" {
		t.Fatalf("closed with %+v, want the write timeout", info)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("cut after %v, before the write timeout", d)
	}
}

// nonReader starts a server with cfg and one client connection that
// never reads (a small receive buffer), and returns the server's side.
func nonReader(t *testing.T, cfg Config) (*Server, *Conn) {
	t.Helper()
	s, err := New(cfg, newEcho())
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx, 1001, "")
	})
	c := dial(t, hs)
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	waitFor(t, func() bool { return registered(s) == 1 })
	var conn *Conn
	s.Each(func(cn *Conn) { conn = cn })
	return s, conn
}

// A peer that sends its last message and its FIN together (one wake-up,
// a short read, then nothing more from epoll) is still seen to go: the
// message is delivered and the connection torn down at once.
func TestLastDataAndFINTogether(t *testing.T) {
	h := newEcho()
	_, hs := startServer(t, Config{}, h)
	const n = 30
	for i := 0; i < n; i++ {
		c := dial(t, hs)
		// Wait until the server is idle on this connection, so that the
		// frame and the FIN arrive in the same edge.
		time.Sleep(5 * time.Millisecond)
		if _, err := c.Write(rawFrame(true, 0, opBinary, []byte("last"), true)); err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).CloseWrite()
	}
	waitFor(t, func() bool { return len(h.closes()) == n })
}
