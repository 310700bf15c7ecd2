package gameserver

import (
	"runtime/debug"
	"testing"
)

// The server collects at GOGC=50 unless GOGC is set, which the runtime
// has applied before the server starts and which the server leaves alone.
func TestTuneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)

	tuneGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Fatalf("GC percent %d without GOGC, want %d", got, defaultGCPercent)
	}
	env := func(k string) string {
		if k == "GOGC" {
			return "200"
		}
		return ""
	}
	debug.SetGCPercent(200) // as the runtime would have set it
	tuneGC(env)
	if got := debug.SetGCPercent(100); got != 200 {
		t.Fatalf("GC percent %d with GOGC=200, want it left at 200", got)
	}
}
