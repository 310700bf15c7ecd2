package session

// budget is a session's allowance of client messages: a token bucket of
// burst messages refilled one every interval, kept as the generic cell rate
// algorithm keeps it, as the theoretical arrival time of the next message.
// It is one int64 in the session, where a rate.Limiter would be an 80-byte
// object with its own mutex per connection; the session's msgMu already
// serializes its messages.
type budget struct {
	tat int64 // Unix nanoseconds; the bucket is full once now reaches it
}

// allow takes one message from the budget at time now (Unix nanoseconds),
// or reports false and takes nothing when the bucket is empty.
func (b *budget) allow(now, interval int64, burst int) bool {
	tat := max(b.tat, now)
	if tat-now > int64(burst-1)*interval {
		return false
	}
	b.tat = tat + interval
	return true
}
