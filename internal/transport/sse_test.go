package transport

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
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gameserver/gameserver/internal/frame"
)

// streamRig serves SSEConns by name on GET /stream?c=NAME from a real HTTP
// server, as the fallback does, and records how each one ended.
type streamRig struct {
	s     *Server
	hs    *httptest.Server
	mu    sync.Mutex
	conns map[string]*SSEConn
	ended chan streamEnd
}

type streamEnd struct {
	name string
	info CloseInfo
}

func newStreamRig(t *testing.T, cfg Config, tls2 bool) *streamRig {
	t.Helper()
	s, err := New(cfg, newEcho())
	if err != nil {
		t.Fatal(err)
	}
	r := &streamRig{s: s, conns: make(map[string]*SSEConn), ended: make(chan streamEnd, 1024)}
	r.hs = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		c := r.conns[req.URL.Query().Get("c")]
		r.mu.Unlock()
		if c == nil {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "https://game.example")
		c.Serve(w, req)
	}))
	if tls2 {
		r.hs.EnableHTTP2 = true
		r.hs.StartTLS()
	} else {
		r.hs.Start()
	}
	t.Cleanup(func() {
		r.hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx, uint16(CloseGoingAway), "test over")
	})
	return r
}

// conn makes the named connection.
func (r *streamRig) conn(name string) *SSEConn {
	c := r.s.NewSSEConn(func(_ *SSEConn, info CloseInfo) { r.ended <- streamEnd{name, info} })
	r.mu.Lock()
	r.conns[name] = c
	r.mu.Unlock()
	return c
}

// waitEnd returns how the named connection ended.
func (r *streamRig) waitEnd(t *testing.T, name string) CloseInfo {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e := <-r.ended:
			if e.name == name {
				return e.info
			}
			r.ended <- e // someone else's
			time.Sleep(time.Millisecond)
		case <-deadline:
			t.Fatalf("stream %q did not end", name)
		}
	}
}

// stream opens the named stream over a raw TCP connection with the given
// HTTP minor version and returns the socket and the parsed response.
func (r *streamRig) stream(t *testing.T, name string, minor int) (net.Conn, *http.Response, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", r.hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, "GET /stream?c="+name+" HTTP/1."+strconv.Itoa(minor)+"\r\nHost: game.example\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	return nc, resp, bufio.NewReader(resp.Body)
}

// event is one block of an event stream: its fields, and its comments.
type event struct {
	id, name, data, retry string
	comments              int
}

// readEvent reads the next block (fields up to a blank line).
func readEvent(t *testing.T, br *bufio.Reader) event {
	t.Helper()
	var e event
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v (got %q)", err, line)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return e
		}
		if strings.HasPrefix(line, ":") {
			e.comments++
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		switch k {
		case "id":
			e.id = v
		case "event":
			e.name = v
		case "data":
			e.data = v
		case "retry":
			e.retry = v
		default:
			t.Fatalf("unexpected field %q", line)
		}
	}
}

func message(s string) *frame.Frame {
	f := frame.New()
	f.B = append(f.B, s...)
	return f.Seal()
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// What was sent before the stream arrived is written behind the response
// head, in order, then what is sent live; a close writes the close event
// and ends the chunked body properly. The socket's bytes are the
// fallback's (StreamStats), not the WebSocket counters.
func TestStreamQueuedThenLiveThenClose(t *testing.T) {
	r := newStreamRig(t, Config{}, false)
	c := r.conn("a")
	for i, m := range []string{"first", "second", "unsequenced"} {
		f := message(m)
		seq := uint64(i + 1)
		if i == 2 {
			seq = 0
		}
		if err := c.Send(f, seq); err != nil {
			t.Fatal(err)
		}
		f.Release()
	}
	nc, resp, br := r.stream(t, "a", 1)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" ||
		len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" ||
		resp.Header.Get("Access-Control-Allow-Origin") != "https://game.example" || resp.Header.Get("Cache-Control") == "" {
		t.Fatalf("response %d, headers %v, transfer encoding %v", resp.StatusCode, resp.Header, resp.TransferEncoding)
	}
	if e := readEvent(t, br); e.retry != strconv.Itoa(sseRetryMs) || e.comments != 1 {
		t.Fatalf("first block %+v, want the retry delay and a comment", e)
	}
	for _, want := range []event{{id: "1", data: b64("first")}, {id: "2", data: b64("second")}, {data: b64("unsequenced")}} {
		if e := readEvent(t, br); e != want {
			t.Fatalf("event %+v, want %+v", e, want)
		}
	}
	f := message("live")
	if err := c.Send(f, 3); err != nil {
		t.Fatal(err)
	}
	f.Release()
	c.Flush()
	if e := readEvent(t, br); e != (event{id: "3", data: b64("live")}) {
		t.Fatalf("live event %+v", e)
	}
	c.Close(4000, "bye")
	e := readEvent(t, br)
	var body struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(e.data), &body); e.name != "close" || err != nil || body.Code != 4000 || body.Reason != "bye" {
		t.Fatalf("close event %+v (%v)", e, err)
	}
	if n, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the close event: %v %v, want the end of the chunked body", n, err)
	}
	nc.Close() // as a client does once told: the server waits for it
	if info := r.waitEnd(t, "a"); info.Code != 4000 || info.ByPeer {
		t.Fatalf("ended with %+v", info)
	}
	if err := c.Send(message("late"), 4); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if st := r.s.StreamStats(); st.FramesOut.Load() < 6 || st.BytesOut.Load() == 0 || r.s.Stats().BytesOut.Load() != 0 {
		t.Fatalf("stream counters %d frames %d bytes; WebSocket counters %d bytes", st.FramesOut.Load(), st.BytesOut.Load(), r.s.Stats().BytesOut.Load())
	}
}

// A served stream costs no goroutine: net/http's goroutine leaves with the
// hijack. A client that goes away ends its stream as lost, by the peer.
func TestStreamsHoldNoGoroutine(t *testing.T) {
	r := newStreamRig(t, Config{}, false)
	const n = 100
	conns := make([]net.Conn, n)
	for i := range conns {
		r.conn("s" + strconv.Itoa(i))
	}
	time.Sleep(50 * time.Millisecond)
	base := runtime.NumGoroutine()
	for i := range conns {
		nc, _, br := r.stream(t, "s"+strconv.Itoa(i), 1)
		readEvent(t, br)
		conns[i] = nc
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= base+5 })
	if got := r.s.streams.Load(); got != n {
		t.Fatalf("%d streams attached, want %d", got, n)
	}
	for _, nc := range conns {
		nc.Close()
	}
	for i := range conns {
		if info := r.waitEnd(t, "s"+strconv.Itoa(i)); info.Code != CloseAbnormal || !info.ByPeer || info.Reason != "stream lost" {
			t.Fatalf("stream %d ended with %+v", i, info)
		}
	}
	waitFor(t, func() bool { return r.s.streams.Load() == 0 && registered(r.s) == 0 })
}

// Bytes a client sends on its stream are read and dropped; the stream
// carries on.
func TestStreamIgnoresClientBytes(t *testing.T) {
	r := newStreamRig(t, Config{}, false)
	c := r.conn("a")
	nc, _, br := r.stream(t, "a", 1)
	readEvent(t, br)
	if _, err := nc.Write(bytes.Repeat([]byte("GET / HTTP/1.1\r\n\r\n"), 5000)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	f := message("still here")
	_ = c.SendNow(f)
	f.Release()
	if e := readEvent(t, br); e.data != b64("still here") {
		t.Fatalf("event %+v", e)
	}
	if !c.Open() {
		t.Fatal("stream closed by client bytes")
	}
}

// An HTTP/1.0 client gets a body delimited by the end of the connection,
// not chunks.
func TestStreamHTTP10(t *testing.T) {
	r := newStreamRig(t, Config{}, false)
	c := r.conn("a")
	_, resp, br := r.stream(t, "a", 0)
	if len(resp.TransferEncoding) != 0 || !resp.Close {
		t.Fatalf("transfer encoding %v, close %v", resp.TransferEncoding, resp.Close)
	}
	readEvent(t, br)
	f := message("hello")
	_ = c.Send(f, 1)
	f.Release()
	c.Close(1000, "done")
	if e := readEvent(t, br); e.id != "1" || e.data != b64("hello") {
		t.Fatalf("event %+v", e)
	}
	if e := readEvent(t, br); e.name != "close" {
		t.Fatalf("event %+v, want close", e)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("body did not end: %v", err)
	}
}

// A client that stops reading is cut as a slow consumer, by the bound on
// its queue or by the write timeout, whichever comes first.
func TestStreamSlowConsumerCut(t *testing.T) {
	r := newStreamRig(t, Config{MaxMessageBytes: 4 << 10, MaxOutboundBytes: 64 << 10, WriteTimeout: time.Second}, false)
	c := r.conn("a")
	_, _, br := r.stream(t, "a", 1)
	readEvent(t, br)
	big := message(strings.Repeat("x", 4000))
	defer big.Release()
	var err error
	for i := 0; i < 20000 && err == nil; i++ {
		err = c.Send(big, uint64(i+1))
		c.Flush()
		if i%500 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	info := r.waitEnd(t, "a")
	if info.Code != CloseSlowConsumer || r.s.StreamStats().SlowConsumers.Load() == 0 {
		t.Fatalf("ended with %+v (send error %v)", info, err)
	}
}

// A connection is served once; a second request for it gets 409.
func TestStreamServedOnce(t *testing.T) {
	r := newStreamRig(t, Config{}, false)
	r.conn("a")
	_, _, br := r.stream(t, "a", 1)
	readEvent(t, br)
	resp, err := http.Get(r.hs.URL + "/stream?c=a")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("second stream got %d", resp.StatusCode)
	}
}

// The sweeper's keep-alive is a comment on every open stream.
func TestStreamKeepAlive(t *testing.T) {
	r := newStreamRig(t, Config{}, false)
	r.conn("a")
	r.conn("b")
	_, _, ba := r.stream(t, "a", 1)
	_, _, bb := r.stream(t, "b", 0)
	readEvent(t, ba)
	readEvent(t, bb)
	r.s.keepStreamsAlive()
	for _, br := range []*bufio.Reader{ba, bb} {
		if e := readEvent(t, br); e != (event{comments: 1}) {
			t.Fatalf("keep-alive block %+v", e)
		}
	}
}

// Shutdown closes every stream with its code, and waits for them.
func TestShutdownEndsStreams(t *testing.T) {
	r := newStreamRig(t, Config{}, false)
	r.conn("a")
	nc, _, br := r.stream(t, "a", 1)
	readEvent(t, br)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- r.s.Shutdown(ctx, 4002, "restarting")
	}()
	if e := readEvent(t, br); e.name != "close" || !strings.Contains(e.data, "4002") {
		t.Fatalf("event %+v, want close 4002", e)
	}
	nc.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if info := r.waitEnd(t, "a"); info.Code != 4002 {
		t.Fatalf("ended with %+v", info)
	}
}

// An HTTP/2 request cannot leave net/http: it is refused with 505, and the
// connection ends.
func TestStreamRefusesHTTP2(t *testing.T) {
	r := newStreamRig(t, Config{}, true)
	r.conn("a")
	resp, err := r.hs.Client().Get(r.hs.URL + "/stream?c=a")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusHTTPVersionNotSupported {
		t.Fatalf("HTTP/%d got %d", resp.ProtoMajor, resp.StatusCode)
	}
	if info := r.waitEnd(t, "a"); info.Code != CloseAbnormal || !strings.Contains(info.Reason, "HTTP/1") {
		t.Fatalf("ended with %+v", info)
	}
}

// An event written to an attached stream allocates nothing once the frame
// pools are warm: the event is encoded into a pooled raw frame.
func TestStreamSendAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	r := newStreamRig(t, Config{}, false)
	c := r.conn("a")
	nc, _, br := r.stream(t, "a", 1)
	readEvent(t, br)
	go func() { _, _ = io.Copy(io.Discard, nc) }()
	f := message(strings.Repeat("s", 120))
	defer f.Release()
	seq := uint64(0)
	send := func() {
		seq++
		if err := c.Send(f, seq); err != nil {
			t.Fatal(err)
		}
		c.Flush()
	}
	for i := 0; i < 100; i++ {
		send()
	}
	if n := testing.AllocsPerRun(1000, send); n > 0 {
		t.Fatalf("%.1f allocations per event", n)
	}
}

// BenchmarkStreamSend: one event encoded and written to an attached
// stream (base64, chunk framing, one write).
func BenchmarkStreamSend(b *testing.B) {
	s, err := New(Config{}, newEcho())
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx, 1001, "")
	}()
	c := s.NewSSEConn(nil)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.Serve(w, r) }))
	defer hs.Close()
	nc, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	_, _ = io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	go func() { _, _ = io.Copy(io.Discard, nc) }()
	for !c.Served() {
		time.Sleep(time.Millisecond)
	}
	f := message(strings.Repeat("s", 120))
	defer f.Release()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Send(f, uint64(i+1)); err != nil {
			b.Fatal(err)
		}
		c.Flush()
	}
}

// A stream that arrives after Shutdown is not taken over: its connection
// is closed and the SSEConn ends.
func TestStreamAfterShutdown(t *testing.T) {
	r := newStreamRig(t, Config{}, false)
	r.conn("late")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := r.s.Shutdown(ctx, 1001, "bye"); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", r.hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = io.WriteString(nc, "GET /stream?c=late HTTP/1.1\r\nHost: x\r\n\r\n")
	if n, err := nc.Read(make([]byte, 64)); err == nil || isTimeout(err) {
		t.Fatalf("read %d bytes, %v: want the connection closed", n, err)
	}
	if info := r.waitEnd(t, "late"); info.Code != CloseAbnormal {
		t.Fatalf("ended with %+v", info)
	}
}
