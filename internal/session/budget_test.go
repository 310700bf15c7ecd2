package session

import "testing"

// The budget behaves as a token bucket: a full bucket lets burst messages
// through at once, then one per interval; a refused message costs nothing;
// a quiet session refills up to burst and no further.
func TestBudget(t *testing.T) {
	const ms = int64(1e6)
	const interval, burst = 20 * ms, 5 // 50 messages a second, bucket of 5
	var b budget
	now := int64(1_700_000_000_000) * ms
	for i := 0; i < burst; i++ {
		if !b.allow(now, interval, burst) {
			t.Fatalf("message %d of a full bucket refused", i+1)
		}
	}
	for i := 0; i < 3; i++ {
		if b.allow(now, interval, burst) {
			t.Fatal("a message past the burst allowed")
		}
	}
	if b.allow(now+interval-1, interval, burst) {
		t.Fatal("allowed before a token came back")
	}
	if !b.allow(now+interval, interval, burst) {
		t.Fatal("refused once a token came back (refusals must not cost tokens)")
	}
	if b.allow(now+interval, interval, burst) {
		t.Fatal("one token came back, two messages allowed")
	}
	// An hour of silence refills the bucket to burst, not beyond.
	later := now + 3600*1000*ms
	n := 0
	for b.allow(later, interval, burst) {
		n++
		if n > 100 {
			break
		}
	}
	if n != burst {
		t.Fatalf("after a long silence %d messages allowed at once, want %d", n, burst)
	}
	// Sustained sending at exactly the rate is never refused.
	for i := int64(1); i <= 1000; i++ {
		if !b.allow(later+i*interval, interval, burst) {
			t.Fatalf("message %d at the sustained rate refused", i)
		}
	}
	// A clock step backwards does not refill or underflow.
	if b.allow(now, interval, burst) {
		t.Fatal("a clock step backwards allowed a message past the burst")
	}
}
