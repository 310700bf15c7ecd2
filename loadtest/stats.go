package main

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histograms record microseconds from 1 µs to 60 s with three
// significant digits.
const (
	histMinUs = 1
	histMaxUs = 60_000_000
	histSig   = 3
)

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMinUs, histMaxUs, histSig)
}

// record adds one nanosecond duration to h, clamped to the histogram's
// range.
func record(h *hdrhistogram.Histogram, ns int64) {
	us := ns / 1000
	if us < histMinUs {
		us = histMinUs
	} else if us > histMaxUs {
		us = histMaxUs
	}
	_ = h.RecordValue(us)
}

// Histogram names, as reported.
const (
	histInput   = "input_to_state" // arena input sent → first state acknowledging it
	histTick    = "tick_to_client" // state's server send time → received
	histRTT     = "rtt"            // client PING → PONG
	histChat    = "chat_delivery"  // chat message sent → broadcast received
	histConnect = "connect"        // dial → WELCOME (or RESUMED)
	histJoin    = "join"           // JOIN → JOINED
	// --redis: input_to_state of players on their room's node, and of
	// players whose node forwards their messages to the room's node.
	histInputLocal     = "input_to_state_local"
	histInputForwarded = "input_to_state_forwarded"
	// histPause is, per bot, the longest time between two states in the
	// measured window (one sample per bot).
	histPause = "state_pause"
)

var histNames = []string{histInput, histTick, histRTT, histChat, histConnect, histJoin, histInputLocal, histInputForwarded, histPause}

// histSet is one goroutine's histograms, guarded by mu.
type histSet struct {
	mu       sync.Mutex
	h        map[string]*hdrhistogram.Histogram
	interval *hdrhistogram.Histogram // the scenario's main latency since the last progress line
}

func newHistSet() *histSet {
	s := &histSet{h: make(map[string]*hdrhistogram.Histogram, len(histNames)), interval: newHist()}
	for _, n := range histNames {
		s.h[n] = newHist()
	}
	return s
}

// Counters of the run. Each goroutine that counts (a poller, a sender,
// the connectors together) has its own counters; the run's figure is their
// sum.
const (
	cMsgsIn         = iota // WebSocket data messages received
	cBytesIn               // bytes read from sockets
	cMsgsOut               // messages sent
	cBytesOut              // bytes written to sockets
	cConnects              // connections that completed the upgrade
	cReconnects            // of which not a bot's first
	cClosedClean           // connections the driver closed with a close handshake or an orderly end
	cStatesIn              // STATE messages received
	cInputsSent            // arena inputs sent
	cInputsAcked           // inputs whose input-to-state latency was recorded
	cInputsExpired         // inputs acknowledged too late to know their send time
	cChatSent              // chat messages sent
	cChatIn                // chat broadcasts received
	cPingsSent             // client pings sent
	cPongsIn               // pongs received for them
	cServerPings           // server pings received (and answered)
	cJoins                 // JOINED received
	cRejoins               // churn: JOIN again after LEFT on the same connection
	cLeaves                // churn: LEAVE sent
	cDrops                 // churn: connections ended without a close frame
	cCloses                // churn: connections ended with a close frame
	cConnectRetries        // upgrades asked again after 429 or 503
	cMoves                 // MOVE received
	cResumes               // RESUMED received
	cResent                // sequenced messages sent again after RESUMED
	cInputsLost            // inputs the rooms did not count (arena's received), at the end
	cInputsDup             // inputs the rooms counted more often than they were sent
	cPosts                 // fallback POSTs sent (retries included)
	cPostRetries           // fallback POSTs sent again after 409 or 429
	cBotsLocal             // --redis: bots connected to their room's node
	cBotsForwarded         // --redis: bots connected to another node
	cJoinRetries           // --forward: joins by ID asked again after 404
	nCounters
)

var counterNames = [nCounters]string{
	"msgs_in", "bytes_in", "msgs_out", "bytes_out", "connects", "reconnects",
	"closed_clean", "states_in", "inputs_sent", "inputs_acked", "inputs_expired",
	"chat_sent", "chat_in", "pings_sent", "pongs_in", "server_pings", "joins",
	"rejoins", "leaves", "drops", "closes", "connect_retries",
	"moves", "resumes", "resent", "inputs_lost", "inputs_duplicated", "posts", "post_retries",
	"bots_local", "bots_forwarded", "join_retries",
}

// counters are one goroutine's counters. They are atomics so that the
// progress line can read them while they change.
type counters struct {
	v [nCounters]atomic.Uint64
	_ [64]byte // keep the next goroutine's counters off these cache lines
}

func (c *counters) add(i int, n uint64) { c.v[i].Add(n) }

// sumCounters adds up several goroutines' counters.
func sumCounters(cs []*counters) [nCounters]uint64 {
	var out [nCounters]uint64
	for _, c := range cs {
		for i := range out {
			out[i] += c.v[i].Load()
		}
	}
	return out
}

// errorCounts counts errors by kind.
type errorCounts struct {
	mu sync.Mutex
	m  map[string]uint64
}

func (e *errorCounts) add(kind string) {
	e.mu.Lock()
	if e.m == nil {
		e.m = make(map[string]uint64)
	}
	e.m[kind]++
	e.mu.Unlock()
}

func (e *errorCounts) snapshot() map[string]uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]uint64, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}

func (e *errorCounts) total() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n uint64
	for _, v := range e.m {
		n += v
	}
	return n
}

// latencySummary is a histogram's summary in milliseconds.
type latencySummary struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

func summarize(h *hdrhistogram.Histogram) latencySummary {
	if h == nil || h.TotalCount() == 0 {
		return latencySummary{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return latencySummary{
		Count: h.TotalCount(),
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
		Mean:  h.Mean() / 1000,
	}
}

// importHist turns a snapshot received from a worker into a histogram,
// refusing malformed ones.
func importHist(s *hdrhistogram.Snapshot) (*hdrhistogram.Histogram, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("histogram snapshot: %w", err)
	}
	return hdrhistogram.Import(s), nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
