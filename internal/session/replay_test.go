package session

import (
	"testing"

	"github.com/gameserver/gameserver/internal/frame"
)

func testFrame(n int) *frame.Frame {
	f := frame.New()
	f.B = append(f.B, make([]byte, n)...)
	return f.Seal()
}

// testReplay is a replay with the sequence counter a session keeps for
// it (its outSeq).
type testReplay struct {
	replay
	last uint64
}

// push pushes f as seq, which must follow the last.
func (b *testReplay) push(seq uint64, f *frame.Frame, lim bounds) bool {
	if seq != b.last+1 {
		panic("pushed out of sequence")
	}
	b.last = seq
	return b.replay.push(f, lim)
}

func (b *testReplay) ack(seq uint64) { b.replay.ack(seq, b.last) }

func (b *testReplay) each(after uint64, fn func(seq uint64, f *frame.Frame)) {
	b.replay.each(after, b.last, fn)
}

func (b *testReplay) firstSeq() uint64 { return b.first(b.last) }

func held(b *testReplay, after uint64) (seqs []uint64) {
	b.each(after, func(seq uint64, _ *frame.Frame) { seqs = append(seqs, seq) })
	return seqs
}

func TestReplayBoundsAndAcks(t *testing.T) {
	var b testReplay
	lim := newBounds(4, 1<<20)
	for seq := uint64(1); seq <= 6; seq++ {
		f := testFrame(10)
		b.push(seq, f, lim)
		f.Release()
	}
	if b.n != 4 || b.firstSeq() != 3 {
		t.Fatalf("held %d from %d, want 4 from 3", b.n, b.firstSeq())
	}
	if b.covers(1, 6) {
		t.Fatal("covers a gap: seq 2 was dropped")
	}
	if !b.covers(2, 6) || !b.covers(6, 6) {
		t.Fatal("does not cover what it holds")
	}
	if got := held(&b, 4); len(got) != 2 || got[0] != 5 || got[1] != 6 {
		t.Fatalf("after 4: %v", got)
	}
	b.ack(4)
	if b.n != 2 || b.firstSeq() != 5 {
		t.Fatalf("after ack: %d from %d", b.n, b.firstSeq())
	}
	b.ack(100)
	if b.n != 0 || b.bytes != 0 || b.head != nil || b.tail != nil {
		t.Fatal("ack of everything left frames or a chunk")
	}
	if !b.covers(6, 6) || b.covers(5, 6) {
		t.Fatal("empty buffer: covers only when nothing is missing")
	}
}

func TestReplayByteBound(t *testing.T) {
	var b testReplay
	lim := newBounds(1000, 100)
	for seq := uint64(1); seq <= 10; seq++ {
		f := testFrame(30) // 32 bytes on the wire
		b.push(seq, f, lim)
		f.Release()
	}
	if b.bytes > 100 || b.n != 3 || b.firstSeq() != 8 {
		t.Fatalf("%d bytes, %d frames from %d", b.bytes, b.n, b.firstSeq())
	}
	b.reset()
	if b.n != 0 || b.head != nil {
		t.Fatal("reset kept frames")
	}
}

func TestReplayReleasesFrames(t *testing.T) {
	var b testReplay
	lim := newBounds(2, 1<<20)
	f := testFrame(1)
	b.push(1, f, lim)
	b.push(2, f, lim)
	b.push(3, f, lim) // drops seq 1's reference
	f.Release()       // ours
	b.reset()         // the last two; a double release would panic
}

// Frames cross chunk boundaries in order: the count bound drops from the
// head chunk, acks free whole chunks, and what is held is what each
// reports.
func TestReplayAcrossChunks(t *testing.T) {
	const max = 2*chunkLen + 5
	var b testReplay
	lim := newBounds(max, 1<<20)
	frames := make([]*frame.Frame, 0, 100)
	for seq := uint64(1); seq <= 100; seq++ {
		f := testFrame(int(seq))
		frames = append(frames, f)
		b.push(seq, f, lim)
	}
	if b.n != max || b.firstSeq() != 100-max+1 {
		t.Fatalf("held %d from %d, want %d from %d", b.n, b.firstSeq(), max, 100-max+1)
	}
	chunks := 0
	for c := b.head; c != nil; c = c.next {
		chunks++
	}
	if chunks > max/chunkLen+2 {
		t.Fatalf("%d chunks for %d frames", chunks, max)
	}
	check := func(after uint64, from uint64) {
		t.Helper()
		var seqs []uint64
		b.each(after, func(seq uint64, f *frame.Frame) {
			if f != frames[seq-1] {
				t.Fatalf("seq %d: another frame", seq)
			}
			seqs = append(seqs, seq)
		})
		if len(seqs) != int(100-from+1) || seqs[0] != from || seqs[len(seqs)-1] != 100 {
			t.Fatalf("after %d: %d frames %v…, want %d..100", after, len(seqs), seqs[:min(3, len(seqs))], from)
		}
	}
	check(0, 100-max+1)
	check(90, 91)
	b.ack(80) // frees the head chunk(s) up to 80
	if b.firstSeq() != 81 || b.n != 20 {
		t.Fatalf("after ack 80: %d from %d", b.n, b.firstSeq())
	}
	check(0, 81)
	for _, f := range frames {
		f.Release() // ours; the buffer still holds 81..100
	}
	b.reset() // a double release would panic
	if b.head != nil || b.n != 0 {
		t.Fatal("reset kept a chunk")
	}
}

// A session that keeps sending and hearing acks reuses its chunks: holding
// frames costs no allocation.
func TestReplayPushAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	var b testReplay
	lim := newBounds(1024, 1<<20)
	f := testFrame(100)
	defer f.Release()
	seq := uint64(0)
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < 100; i++ {
			seq++
			b.push(seq, f, lim)
		}
		b.ack(seq - 10)
	})
	b.reset()
	if allocs != 0 {
		t.Fatalf("%.1f allocations per 100 frames held", allocs)
	}
}

// BenchmarkReplayPush measures what holding a sent frame costs a session.
func BenchmarkReplayPush(b *testing.B) {
	var r replay
	lim := newBounds(1024, 1<<20)
	f := testFrame(100)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.push(f, lim)
		if r.n == 512 {
			r.ack(uint64(i+1), uint64(i+1))
		}
	}
	r.reset()
	f.Release()
}

// The buffer asks for an ack once askEvery frames wait since the last ack
// or the last ask, and after half the bound when that is less.
func TestReplayAsksForAcks(t *testing.T) {
	var b testReplay
	lim := newBounds(1024, 1<<20)
	f := testFrame(1)
	defer f.Release()
	var asked []uint64
	push := func(from, to uint64) {
		for seq := from; seq <= to; seq++ {
			if b.push(seq, f, lim) {
				asked = append(asked, seq)
			}
		}
	}
	push(1, 100)
	if want := []uint64{32, 64, 96}; !equalSeqs(asked, want) {
		t.Fatalf("unanswered: asked at %v, want %v", asked, want)
	}
	asked = nil
	b.ack(98) // two left: ask when 32 more wait
	push(101, 140)
	if want := []uint64{132}; !equalSeqs(asked, want) {
		t.Fatalf("after an ack: asked at %v, want %v", asked, want)
	}
	b.reset()
	asked = nil
	lim = newBounds(10, 1<<20)
	push(141, 160)
	if want := []uint64{145, 150, 155, 160}; !equalSeqs(asked, want) {
		t.Fatalf("bound 10: asked at %v, want %v", asked, want)
	}
	b.reset()
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
