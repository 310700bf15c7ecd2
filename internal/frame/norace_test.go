//go:build !race

package frame

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
