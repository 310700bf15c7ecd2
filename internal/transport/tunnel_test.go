package transport

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// tunnelRig is a transport Server behind an HTTP server whose handler
// tunnels every request to upstream, a listener the test serves.
type tunnelRig struct {
	s        *Server
	hs       *httptest.Server
	upstream net.Listener
}

func newTunnelRig(t *testing.T) *tunnelRig {
	t.Helper()
	s, err := New(Config{}, newEcho())
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &tunnelRig{s: s, upstream: up}
	r.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		uc, err := net.Dial("tcp", up.Addr().String())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if err := s.Tunnel(w, req, uc); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}))
	t.Cleanup(func() {
		r.hs.Close()
		up.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx, 1001, "")
	})
	return r
}

// accept takes the next upstream connection and reads the request head
// the tunnel wrote.
func (r *tunnelRig) accept(t *testing.T) (net.Conn, *bufio.Reader, *http.Request) {
	t.Helper()
	c, err := r.upstream.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, req
}

func (r *tunnelRig) dial(t *testing.T, head string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", r.hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	return c
}

// httpServing counts goroutines net/http runs for connections.
func httpServing() (n int) {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(g, "net/http.(*conn).serve") {
			n++
		}
	}
	return n
}

// The request reaches upstream with the client named in X-Forwarded-For
// and what the client sent behind it; then bytes go both ways, and no
// goroutine serves the tunnel.
func TestTunnelRelaysBothWays(t *testing.T) {
	r := newTunnelRig(t)
	c := r.dial(t, "GET /ws?session=abc HTTP/1.1\r\nHost: game.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Forwarded-For: 203.0.113.9\r\n\r\nearly bytes")
	uc, ubr, req := r.accept(t)
	if req.URL.RequestURI() != "/ws?session=abc" || req.Host != "game.example" || req.Header.Get("Upgrade") != "websocket" ||
		req.Header.Get("X-Forwarded-For") != "203.0.113.9, 127.0.0.1" {
		t.Fatalf("upstream got %s %s host %q headers %v", req.Method, req.URL.RequestURI(), req.Host, req.Header)
	}
	early := make([]byte, len("early bytes"))
	if _, err := io.ReadFull(ubr, early); err != nil || string(early) != "early bytes" {
		t.Fatalf("upstream read %q, %v", early, err)
	}
	if _, err := io.WriteString(uc, "HTTP/1.1 101 Switching Protocols\r\n\r\nfrom upstream"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("HTTP/1.1 101 Switching Protocols\r\n\r\nfrom upstream"))
	if _, err := io.ReadFull(c, got); err != nil || !strings.HasSuffix(string(got), "from upstream") {
		t.Fatalf("client read %q, %v", got, err)
	}
	if _, err := io.WriteString(c, "from client"); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, len("from client"))
	if _, err := io.ReadFull(ubr, back); err != nil || string(back) != "from client" {
		t.Fatalf("upstream read %q, %v", back, err)
	}
	waitFor(t, func() bool { return httpServing() == 0 })
	if n := r.s.streams.Load(); n != 2 {
		t.Fatalf("%d relay sockets, want 2", n)
	}
	// The client leaves: upstream sees the end, and both sockets go.
	c.Close()
	if n, err := ubr.ReadByte(); err != io.EOF {
		t.Fatalf("upstream read %v, %v after the client left", n, err)
	}
	uc.Close()
	waitFor(t, func() bool { return r.s.streams.Load() == 0 && registered(r.s) == 0 })
}

// A client that does not read holds upstream back: what waits in the
// client's queue stays near relayHigh instead of growing, and every byte
// arrives, in order, once the client reads; upstream's end then ends the
// client's connection after the last byte.
func TestTunnelBackpressure(t *testing.T) {
	r := newTunnelRig(t)
	c := r.dial(t, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	uc, _, _ := r.accept(t)
	const total = 32 << 20
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = byte(i % 251)
	}
	wrote := make(chan error, 1)
	go func() {
		for sent := 0; sent < total; sent += len(chunk) {
			if _, err := uc.Write(chunk); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- uc.Close()
	}()
	// Let upstream fill what it can while the client reads nothing.
	maxQueued := 0
	for i := 0; i < 20; i++ {
		time.Sleep(25 * time.Millisecond)
		r.s.Each(func(k *Conn) {
			if k.kind == kindRelay {
				maxQueued = max(maxQueued, k.Pending())
			}
		})
	}
	if maxQueued > relayHigh+len(chunk)+(64<<10) {
		t.Fatalf("%d bytes queued for a client that does not read", maxQueued)
	}
	br := bufio.NewReaderSize(c, 256<<10)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n := 0
	for {
		b, err := br.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		if b != byte((n%len(chunk))%251) {
			t.Fatalf("byte %d is %d, want %d", n, b, byte((n%len(chunk))%251))
		}
		n++
	}
	if n != total {
		t.Fatalf("client got %d bytes, want %d", n, total)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, func() bool { return r.s.streams.Load() == 0 })
}

// A request with a body, or one the server has shut down for, is not
// tunnelled, and nothing is written to it: the caller answers it.
func TestTunnelRefuses(t *testing.T) {
	r := newTunnelRig(t)
	resp, err := http.Post(r.hs.URL+"/x", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("a POST with a body got %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := r.s.Shutdown(ctx, 1001, ""); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(r.hs.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("after Shutdown got %d", resp.StatusCode)
	}
}
