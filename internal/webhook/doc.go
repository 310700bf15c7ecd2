// Package webhook tells a game's backend what happens on a node: rooms
// created and disposed, players joining and leaving, the node draining.
//
// Each event is POSTed as JSON to every configured URL and signed with
// HMAC-SHA256 over the timestamp and the body (see [Sign] and [Verify]), so
// a receiver can reject forgeries and replays; the event ID lets it drop
// duplicates, since an event can be delivered more than once (a receiver
// that stored it but answered too late is sent it again).
//
// Delivery is asynchronous. [Dispatcher.Emit] only queues: it never blocks
// and it never does I/O, so it is safe to call from a room's goroutine.
// Each URL has a bounded queue split into lanes by room; a lane delivers
// one event at a time, in order, retrying a failed attempt with
// exponential backoff and full jitter, so the events of one room reach a
// receiver in the order they happened. What cannot be delivered (queue
// full, attempts exhausted, shutdown) is dropped, counted in [Stats] and
// logged at most once per ten seconds per reason.
package webhook
