package frame

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"
)

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

// The header in front of the payload follows RFC 6455's three length
// encodings, and the payload is intact whatever buffer it ended up in.
func TestSealHeaders(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 200, 246, 247, 1000, 65535, 65536, 70000} {
		p := payload(n)
		for _, grow := range []bool{false, true} {
			f := New()
			if grow {
				f.Grow(n)
			}
			f.B = append(f.B, p...)
			w := f.Seal().Wire()
			if w[0] != 0x82 {
				t.Fatalf("n=%d: first byte %#x, want FIN|binary", n, w[0])
			}
			var hl, got int
			switch {
			case n <= 125:
				hl, got = 2, int(w[1])
			case n <= 0xFFFF:
				hl, got = 4, int(binary.BigEndian.Uint16(w[2:4]))
				if w[1] != 126 {
					t.Fatalf("n=%d: length byte %d, want 126", n, w[1])
				}
			default:
				hl, got = 10, int(binary.BigEndian.Uint64(w[2:10]))
				if w[1] != 127 {
					t.Fatalf("n=%d: length byte %d, want 127", n, w[1])
				}
			}
			if got != n || len(w) != hl+n || !bytes.Equal(w[hl:], p) || f.Len() != len(w) {
				t.Fatalf("n=%d grow=%v: header says %d, frame %d bytes, payload intact %v", n, grow, got, len(w), bytes.Equal(w[hl:], p))
			}
			f.Release()
		}
	}
}

// Grow moves the payload to the smallest class that fits, keeping what
// was already appended, so the next appends do not reallocate.
func TestGrowPicksClass(t *testing.T) {
	f := New()
	f.B = append(f.B, "head"...)
	f.Grow(900)
	if cap(f.raw) != 1<<10 {
		t.Fatalf("after Grow(900) the buffer holds %d, want the 1 KiB class", cap(f.raw))
	}
	before := &f.raw[0]
	f.B = append(f.B, payload(900)...)
	if &f.raw[0] != before || &f.B[0] != &f.raw[Headroom] {
		t.Fatal("appending what Grow made room for reallocated")
	}
	if string(f.B[:4]) != "head" {
		t.Fatalf("payload start %q after Grow", f.B[:4])
	}
	f.Grow(10) // room enough already
	if cap(f.raw) != 1<<10 {
		t.Fatal("Grow with room to spare moved the payload")
	}
	f.Release()

	g := New()
	g.Grow(100 << 10) // past the largest class
	if cap(g.raw) < Headroom+100<<10 {
		t.Fatalf("huge Grow: %d bytes", cap(g.raw))
	}
	g.B = append(g.B, payload(100<<10)...)
	g.Seal()
	g.Release() // not pooled; must not panic
}

// A small frame never carries a large buffer: a frame released from a
// large class goes back to that class, and New always starts small.
func TestNewIsSmallAfterLargeRelease(t *testing.T) {
	for i := 0; i < 100; i++ {
		f := New()
		f.Grow(10 << 10)
		f.B = append(f.B, payload(10<<10)...)
		f.Seal()
		f.Release()
	}
	for i := 0; i < 100; i++ {
		f := New()
		if cap(f.raw) != classes[startClass] {
			t.Fatalf("New returned a buffer of %d bytes", cap(f.raw))
		}
		defer f.Release()
	}
}

// Seal moves a payload to the smallest class that fits it: a PRESENCE or
// a PING held for seconds in a replay buffer takes 64 bytes, not 256.
func TestSealFitsSmallPayloads(t *testing.T) {
	for _, c := range []struct{ n, class int }{{0, 64}, {20, 64}, {54, 64}, {55, 80}, {100, 112}, {200, 224}, {246, 256}, {270, 320}} {
		f := New()
		p := payload(c.n)
		f.B = append(f.B, p...)
		w := f.Seal().Wire()
		if cap(f.raw) != c.class || !bytes.Equal(w[len(w)-c.n:], p) || f.Len() != len(w) {
			t.Fatalf("%d-byte payload: %d-byte buffer (want %d), payload intact %v", c.n, cap(f.raw), c.class, bytes.Equal(w[len(w)-c.n:], p))
		}
		f.Release()
	}
}

// A payload that outgrew its buffer through plain append is moved behind
// the headroom at Seal.
func TestSealAfterAppendGrowth(t *testing.T) {
	f := New()
	p := payload(3000)
	f.B = append(f.B, p...) // reallocates: B leaves raw
	w := f.Seal().Wire()
	if !bytes.Equal(w[4:], p) || cap(f.raw) != 3<<10 {
		t.Fatalf("payload intact %v, buffer %d", bytes.Equal(w[4:], p), cap(f.raw))
	}
	f.Release()
}

func TestReferenceCounting(t *testing.T) {
	f := New()
	f.B = append(f.B, 1, 2, 3)
	f.Seal()
	f.Retain()
	f.Release()
	if f.refs.Load() != 1 {
		t.Fatalf("refs %d, want 1", f.refs.Load())
	}
	f.Release()
	defer func() {
		if recover() == nil {
			t.Fatal("a release past zero did not panic")
		}
	}()
	f.Release()
}

func TestNewAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	for _, n := range []int{20, 2000} {
		p := payload(n)
		allocs := testing.AllocsPerRun(1000, func() {
			f := New()
			f.Grow(len(p))
			f.B = append(f.B, p...)
			f.Seal()
			f.Release()
		})
		if allocs != 0 {
			t.Fatalf("%.1f allocations per %d-byte frame, want 0", allocs, n)
		}
	}
}

// Classes rise by at most a quarter, so no message wastes more than a
// fifth of its buffer.
func TestClassesAreClose(t *testing.T) {
	for i := 1; i < len(classes); i++ {
		if classes[i] <= classes[i-1] || classes[i] > classes[i-1]+classes[i-1]/4+Headroom {
			t.Fatalf("class %d (%d) after %d", i, classes[i], classes[i-1])
		}
	}
	f := New()
	f.Grow(270) // an 8-player arena STATE
	if cap(f.raw) != 320 {
		t.Fatalf("a 270-byte payload took a %d-byte buffer", cap(f.raw))
	}
	f.Release()
}

// A Frame fits the allocator's 64-byte class: frames are the most numerous
// objects a busy node makes, and every replay buffer holds them.
func TestFrameSize(t *testing.T) {
	if n := unsafe.Sizeof(Frame{}); n > 64 {
		t.Fatalf("Frame is %d bytes, over its budget of 64 (an allocator size class)", n)
	}
}

// A raw frame goes on the wire as its bytes, with no header, from the
// class that fits it, including after B outgrew its buffer.
func TestSealRaw(t *testing.T) {
	for _, n := range []int{0, 1, 54, 200, 3000, 70000} {
		f := New()
		p := payload(n)
		f.B = append(f.B, p...)
		if f.Sealed() {
			t.Fatal("sealed before SealRaw")
		}
		w := f.SealRaw().Wire()
		if !f.Sealed() || !bytes.Equal(w, p) || f.Len() != n || len(w) != n {
			t.Fatalf("n=%d: sealed %v, wire %d bytes (Len %d), payload intact %v", n, f.Sealed(), len(w), f.Len(), bytes.Equal(w, p))
		}
		if k := classOf(Headroom + n); k >= 0 && cap(f.raw) != classes[k] {
			t.Fatalf("n=%d: %d-byte buffer, want the %d-byte class", n, cap(f.raw), classes[k])
		}
		f.Release()
	}
}
