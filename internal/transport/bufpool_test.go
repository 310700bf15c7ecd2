package transport

import "testing"

// A buffer goes back to its pool in the box it came out in: once a class
// is warm, a getBuf and putBuf round trip allocates nothing.
func TestBufPoolRoundTripAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop some of what is put in it")
	}
	for _, n := range []int{1, 256, 257, firstHeadBuf, maxHeadBytes, bufClasses[len(bufClasses)-1]} {
		putBuf(getBuf(n))
		allocs := testing.AllocsPerRun(100, func() {
			p := getBuf(n)
			if len(*p) != 0 || cap(*p) < n {
				t.Fatalf("getBuf(%d): len %d cap %d", n, len(*p), cap(*p))
			}
			*p = append(*p, 'x')
			putBuf(p)
		})
		if allocs != 0 {
			t.Errorf("getBuf(%d) and putBuf: %v allocations, want 0", n, allocs)
		}
	}
}

// A request past the largest class gets a buffer of its own, which putBuf
// does not keep.
func TestBufPoolOversize(t *testing.T) {
	n := bufClasses[len(bufClasses)-1] + 1
	p := getBuf(n)
	if len(*p) != 0 || cap(*p) != n {
		t.Fatalf("getBuf(%d): len %d cap %d, want 0 and %d", n, len(*p), cap(*p), n)
	}
	putBuf(p)
	if q := getBuf(n); q == p {
		t.Fatal("an oversize buffer came back from the pool")
	}
}
