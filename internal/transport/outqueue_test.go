package transport

import (
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gobwas/ws"
)

// numbered returns sealed frames whose payloads are their indexes.
func numbered(n int) []*frame.Frame {
	fs := make([]*frame.Frame, n)
	for i := range fs {
		f := frame.New()
		f.B = binary.BigEndian.AppendUint32(f.B, uint32(i))
		fs[i] = f.Seal()
	}
	return fs
}

// queueState reports the queue's length and the capacity of the array
// behind it.
func queueState(c *Conn) (queued, capacity int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queued()), cap(c.out)
}

// A burst larger than the inline array goes out whole and in order, in
// one flush, and the connection is back on its inline array afterwards.
// A queue that outgrows each pooled class keeps its order too.
func TestOutQueueBurstInOrder(t *testing.T) {
	d := &decoder{opened: make(chan *Conn, 1)}
	_, hs := startServer(t, Config{}, d)
	nc := dial(t, hs)
	c := <-d.opened
	for _, n := range []int{4, 17, 65, 300} {
		fs := numbered(n)
		for _, f := range fs {
			if err := c.Send(f, 0); err != nil {
				t.Fatal(err)
			}
			f.Release()
		}
		if q, _ := queueState(c); q != n {
			t.Fatalf("burst of %d: %d queued before the flush", n, q)
		}
		c.Flush()
		for i := 0; i < n; i++ {
			f := readFrame(t, nc)
			if got := binary.BigEndian.Uint32(f.Payload); got != uint32(i) {
				t.Fatalf("burst of %d: frame %d carries %d", n, i, got)
			}
		}
		if q, capacity := queueState(c); q != 0 || capacity != len(c.outInline) {
			t.Fatalf("burst of %d written: %d queued on an array of %d, want 0 on the inline %d", n, q, capacity, len(c.outInline))
		}
	}
}

// A stream to a reader that pauses backs up into the queue and still
// arrives whole and in order.
func TestOutQueueSlowReaderInOrder(t *testing.T) {
	d := &decoder{opened: make(chan *Conn, 1)}
	_, hs := startServer(t, Config{MaxOutboundBytes: 64 << 20}, d)
	nc := dial(t, hs)
	c := <-d.opened
	const total = 20000
	payload := make([]byte, 1000)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < total; i++ {
			_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			f, err := ws.ReadFrame(nc)
			if err != nil {
				done <- err
				return
			}
			if got := binary.BigEndian.Uint32(f.Payload); got != uint32(i) {
				done <- io.ErrUnexpectedEOF
				t.Errorf("frame %d carries %d", i, got)
				return
			}
			if i%500 == 0 {
				time.Sleep(time.Millisecond) // let the server's queue build up
			}
		}
		done <- nil
	}()
	for i := 0; i < total; i++ {
		f := frame.New()
		f.B = binary.BigEndian.AppendUint32(f.B, uint32(i))
		f.B = append(f.B, payload...)
		if err := c.Send(f.Seal(), 0); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		f.Release()
		if i%7 == 0 {
			c.Flush()
		}
	}
	c.Flush()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not get every frame")
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		q, capacity := queueState(c)
		if q == 0 && capacity == len(c.outInline) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the stream: %d queued on an array of %d", q, capacity)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// When the array is full and at least half of it is written, the rest
// slides down instead of moving to a larger array; the order holds. Frames
// are written by hand here (advance), as a socket would take them.
func TestOutQueueSlides(t *testing.T) {
	s, err := New(Config{}, &decoder{})
	if err != nil {
		t.Fatal(err)
	}
	c := &Conn{srv: s}
	c.out = c.outInline[:0]
	fs := numbered(40)
	defer func() {
		for _, f := range fs {
			f.Release()
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	next, written := 0, 0
	push := func(k int) {
		for ; k > 0; k-- {
			if err := c.sendLocked(fs[next]); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}
	write := func(k int) {
		for ; k > 0; k-- {
			if got := binary.BigEndian.Uint32(c.queued()[0].B); got != uint32(written) {
				t.Fatalf("frame %d at the head, want %d", got, written)
			}
			c.advance(c.queued()[0].Len())
			written++
		}
	}
	push(10) // inline 1 → 16
	if cap(c.out) != 16 {
		t.Fatalf("10 queued on an array of %d, want 16", cap(c.out))
	}
	write(8)
	push(14) // fills the 16: 8 written, 8 queued; the 17th slides
	if c.outHead != 0 || len(c.queued()) != 16 || cap(c.out) != 16 {
		t.Fatalf("after the slide: head %d, %d queued on an array of %d; want 0, 16 and 16", c.outHead, len(c.queued()), cap(c.out))
	}
	write(2)
	push(1) // 2 written, 14 queued: grows to 64 instead
	if cap(c.out) != 64 || len(c.queued()) != 15 {
		t.Fatalf("after growing: %d queued on an array of %d, want 15 and 64", len(c.queued()), cap(c.out))
	}
	write(15)
	if len(c.queued()) != 0 || cap(c.out) != len(c.outInline) || c.outBytes != 0 {
		t.Fatalf("all written: %d queued on an array of %d, %d bytes; want 0 on the inline %d, 0 bytes", len(c.queued()), cap(c.out), c.outBytes, len(c.outInline))
	}
	if written != next {
		t.Fatalf("%d written of %d sent", written, next)
	}
}

// Once its pool is warm, a burst past the inline array queues and goes
// out without allocating: the larger array is borrowed and given back.
func TestOutQueueBurstAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop some of what is put in it")
	}
	d := &decoder{opened: make(chan *Conn, 1)}
	_, hs := startServer(t, Config{}, d)
	nc := dial(t, hs)
	c := <-d.opened
	go func() { _, _ = io.Copy(io.Discard, nc) }()
	fs := numbered(40)
	burst := func() {
		for _, f := range fs {
			if err := c.Send(f, 0); err != nil {
				t.Fatal(err)
			}
		}
		c.Flush()
		for c.Pending() > 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	burst()
	if allocs := testing.AllocsPerRun(20, burst); allocs != 0 {
		t.Errorf("a burst of %d frames: %v allocations, want 0", len(fs), allocs)
	}
}

// Arrays from getOutQueue go back to their own class; the inline array and
// arrays past the classes are not pooled.
func TestOutQueueClasses(t *testing.T) {
	for _, tc := range []struct{ n, capacity int }{{1, 16}, {6, 16}, {16, 16}, {17, 64}, {64, 64}, {65, 256}, {256, 256}, {257, 257}} {
		q := getOutQueue(tc.n)
		if len(q) != 0 || cap(q) != tc.capacity {
			t.Errorf("getOutQueue(%d): len %d cap %d, want 0 and %d", tc.n, len(q), cap(q), tc.capacity)
		}
		putOutQueue(q)
	}
	var inline [3]*frame.Frame
	putOutQueue(inline[:0]) // ignored: must not panic or be handed out
	if q := getOutQueue(3); cap(q) == 3 {
		t.Fatal("the inline array was pooled")
	}
}
