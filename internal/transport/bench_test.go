package transport

import (
	"context"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gobwas/ws"
)

// decoder is a Handler that decodes every message as an arena input, the
// way the session layer and a room route would, and counts them.
type decoder struct {
	n      atomic.Int64
	bad    atomic.Int64
	opened chan *Conn
}

func (d *decoder) OnOpen(c *Conn) { d.opened <- c }
func (d *decoder) OnMessage(c *Conn, msg []byte) {
	t, body, err := protocol.Split(msg)
	var in protocol.ArenaInput
	if err != nil || t != protocol.TypeArenaInput || in.Decode(body) != nil {
		d.bad.Add(1)
	}
	d.n.Add(1)
}
func (d *decoder) OnClose(*Conn, CloseInfo) {}

func benchServer(b *testing.B, h Handler) (*Server, string) {
	b.Helper()
	s, err := New(Config{}, h)
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(s)
	b.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx, uint16(CloseGoingAway), "bench over")
	})
	return s, "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
}

func benchDial(b *testing.B, url string) net.Conn {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, br, _, err := ws.Dial(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	if br != nil {
		ws.PutReader(br)
	}
	return c
}

// BenchmarkReadDecode measures the inbound path per message over a real
// loopback connection: the socket read, frame parsing, unmasking, and the
// protocol decode of an arena input. The client writes masked frames in
// batches of 64, so reads carry several frames, as under load.
func BenchmarkReadDecode(b *testing.B) {
	d := &decoder{opened: make(chan *Conn, 1)}
	_, url := benchServer(b, d)
	c := benchDial(b, url)
	defer c.Close()
	<-d.opened
	msg := (&protocol.ArenaInput{Seq: 7, DX: 0.5, DY: -0.5}).Append(nil)
	one := ws.MustCompileFrame(ws.MaskFrame(ws.NewBinaryFrame(msg)))
	const batch = 64
	buf := make([]byte, 0, batch*len(one))
	for i := 0; i < batch; i++ {
		buf = append(buf, one...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		n := min(batch, b.N-sent)
		if _, err := c.Write(buf[:n*len(one)]); err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	deadline := time.Now().Add(10 * time.Second)
	for d.n.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages arrived", d.n.Load(), b.N)
		}
		time.Sleep(50 * time.Microsecond)
	}
	b.StopTimer()
	if d.bad.Load() != 0 {
		b.Fatalf("%d messages did not decode", d.bad.Load())
	}
}

// BenchmarkSendFlush measures the outbound path per recipient: one shared
// STATE frame queued on each of 8 connections and flushed, one write
// system call per connection, as a room's tick does. Readers on the client
// side drain the sockets.
func BenchmarkSendFlush(b *testing.B) {
	const players = 8
	d := &decoder{opened: make(chan *Conn, players)}
	_, url := benchServer(b, d)
	conns := make([]*Conn, players)
	var wg sync.WaitGroup
	for i := range conns {
		nc := benchDial(b, url)
		defer nc.Close()
		conns[i] = <-d.opened
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = io.Copy(io.Discard, nc)
		}()
	}
	state := frame.New()
	state.B = protocol.AppendType(state.B, protocol.TypeState)
	state.B = append(state.B, make([]byte, 120)...) // a STATE of 8 players is about this size
	state.Seal()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += players {
		for _, c := range conns {
			if err := c.Send(state, 0); err != nil {
				b.Fatal(err)
			}
			c.Flush()
		}
		if i%4096 == 0 {
			// Let the readers keep up, so no queue grows to its bound.
			for _, c := range conns {
				for c.Pending() > 0 {
					time.Sleep(10 * time.Microsecond)
				}
			}
		}
	}
	b.StopTimer()
	state.Release()
	for _, c := range conns {
		c.Close(uint16(CloseNormal), "")
	}
	wg.Wait()
}
