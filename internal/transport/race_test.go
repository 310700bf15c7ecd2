//go:build race

package transport

// raceEnabled reports whether the race detector is on; it adds
// allocations of its own, so allocation counts are not checked under it.
const raceEnabled = true
