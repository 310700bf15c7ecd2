package main

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// Sampling several server processes (a cluster's nodes) adds their RSS
// and CPU up.
func TestSamplerAddsProcessesUp(t *testing.T) {
	self, parent := os.Getpid(), os.Getppid()
	one, err := newServerSampler([]int{self})
	if err != nil {
		t.Fatal(err)
	}
	one.close()
	both, err := newServerSampler([]int{self, parent})
	if err != nil {
		t.Fatal(err)
	}
	defer both.close()
	prss, err := readRSS(strconv.Itoa(parent))
	if err != nil {
		t.Fatal(err)
	}
	// RSS moves a little between reads; the parent's share must show.
	if both.BaseRSS < one.BaseRSS+prss/2 {
		t.Fatalf("two processes %d bytes; self %d + parent %d", both.BaseRSS, one.BaseRSS, prss)
	}
	both.windowStart()
	deadline := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(deadline) { // burn some CPU in the window
	}
	both.windowEnd()
	if both.Gone() || both.CPUPct <= 0 || both.EndRSS < both.BaseRSS/2 {
		t.Fatalf("gone %v, cpu %.1f%%, end RSS %d", both.Gone(), both.CPUPct, both.EndRSS)
	}
	if _, err := newServerSampler([]int{self, 999999999}); err == nil {
		t.Fatal("a missing process was accepted")
	}
}
