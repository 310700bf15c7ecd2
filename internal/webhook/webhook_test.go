package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const testSecret = "whsec_0123456789abcdef"

// delivery is one request a receiver got.
type delivery struct {
	header http.Header
	body   []byte
	event  Event
	status int
	at     time.Time
}

// receiver is a webhook endpoint on loopback whose answer each test
// chooses; it records every request and checks its signature.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	got    []delivery
	answer func(n int, ev Event) (status int, sleep time.Duration)
	bad    atomic.Int64 // requests whose signature did not verify
}

func newReceiver(t *testing.T, answer func(n int, ev Event) (int, time.Duration)) *receiver {
	t.Helper()
	rc := &receiver{t: t, answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := Verify([]byte(testSecret), r.Header, body, 0, time.Now()); err != nil {
			rc.bad.Add(1)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev Event
		if err := json.Unmarshal(body, &ev); err != nil {
			rc.bad.Add(1)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		n := len(rc.got)
		rc.mu.Unlock()
		status, sleep := rc.answer(n, ev)
		if sleep > 0 {
			select {
			case <-time.After(sleep):
			case <-r.Context().Done():
			}
		}
		rc.mu.Lock()
		rc.got = append(rc.got, delivery{header: r.Header.Clone(), body: body, event: ev, status: status, at: time.Now()})
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

func ok(int, Event) (int, time.Duration) { return http.StatusNoContent, 0 }

func newDispatcher(t *testing.T, cfg Config) *Dispatcher {
	t.Helper()
	if cfg.Secret == "" {
		cfg.Secret = testSecret
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = 5 * time.Millisecond
		cfg.BackoffMax = 40 * time.Millisecond
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func roomEvent(typ, room string) Event {
	return Event{Type: typ, Room: &Room{ID: room, Kind: "chat", MaxPlayers: 8}}
}

func TestSignKnownVector(t *testing.T) {
	// openssl: printf '1700000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac whsec_0123456789abcdef
	const want = "v1=dea1657bd5053cb0f8a75ebf0bd3d22e0cdeb79563b44db6b88864e522fb8bc4"
	if got := Sign([]byte(testSecret), "1700000000", []byte(`{"id":"evt_1"}`)); got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"id":"evt_1","type":"room.created"}`)
	header := func(ts int64, sig string) http.Header {
		h := http.Header{}
		if ts != 0 {
			h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		}
		if sig != "" {
			h.Set(HeaderSignature, sig)
		}
		return h
	}
	good := Sign([]byte(testSecret), "1700000000", body)
	cases := []struct {
		name   string
		h      http.Header
		body   []byte
		secret string
		want   error
	}{
		{"valid", header(1_700_000_000, good), body, testSecret, nil},
		{"valid among several", header(1_700_000_000, "v1=00, "+good), body, testSecret, nil},
		{"within tolerance", header(1_700_000_000-299, Sign([]byte(testSecret), "1699999701", body)), body, testSecret, nil},
		{"wrong secret", header(1_700_000_000, good), body, "another secret, 16+ bytes", ErrBadSignature},
		{"tampered body", header(1_700_000_000, good), []byte(`{"id":"evt_2","type":"room.created"}`), testSecret, ErrBadSignature},
		{"timestamp changed", header(1_700_000_001, good), body, testSecret, ErrBadSignature},
		{"replayed late", header(1_700_000_000-301, Sign([]byte(testSecret), "1699999699", body)), body, testSecret, ErrBadTimestamp},
		{"from the future", header(1_700_000_000+301, Sign([]byte(testSecret), "1700000301", body)), body, testSecret, ErrBadTimestamp},
		{"no signature", header(1_700_000_000, ""), body, testSecret, ErrNoSignature},
		{"no timestamp", header(0, good), body, testSecret, ErrNoSignature},
		{"timestamp not a number", http.Header{HeaderTimestamp: {"soon"}, HeaderSignature: {good}}, body, testSecret, ErrBadTimestamp},
		{"bare hex without v1", header(1_700_000_000, good[3:]), body, testSecret, ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Verify([]byte(c.secret), c.h, c.body, 0, now); !errors.Is(err, c.want) {
				t.Fatalf("Verify: %v, want %v", err, c.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]Config{
		"no URLs":           {Secret: testSecret},
		"short secret":      {URLs: []string{"http://127.0.0.1:1/"}, Secret: "short"},
		"relative URL":      {URLs: []string{"/hook"}, Secret: testSecret},
		"other scheme":      {URLs: []string{"ftp://127.0.0.1/hook"}, Secret: testSecret},
		"unparsable URL":    {URLs: []string{"http://[::1"}, Secret: testSecret},
		"negative timeout":  {URLs: []string{"http://127.0.0.1:1/"}, Secret: testSecret, Timeout: -1},
		"cap below base":    {URLs: []string{"http://127.0.0.1:1/"}, Secret: testSecret, BackoffBase: time.Second, BackoffMax: time.Millisecond},
		"negative attempts": {URLs: []string{"http://127.0.0.1:1/"}, Secret: testSecret, MaxAttempts: -1},
		"too many lanes":    {URLs: []string{"http://127.0.0.1:1/"}, Secret: testSecret, Lanes: 65},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			if d, err := New(cfg); err == nil {
				_ = d.Close(context.Background())
				t.Fatal("accepted")
			}
		})
	}
}

func TestDeliverySignedAndDescribed(t *testing.T) {
	rc := newReceiver(t, ok)
	d := newDispatcher(t, Config{URLs: []string{rc.srv.URL + "/hooks?token=x"}, Node: "n1"})
	d.Emit(Event{Type: PlayerLeft, Room: &Room{ID: "r1", Kind: "chat", Players: 1, MaxPlayers: 8, Metadata: map[string]any{"map": "small"}},
		Player: &Player{ID: "p1", UserID: "u1"}, Reason: "dropped"})
	waitFor(t, "delivery", func() bool { return d.Stats().Delivered.Load() == 1 })
	got := rc.deliveries()
	if len(got) != 1 || rc.bad.Load() != 0 {
		t.Fatalf("%d deliveries, %d bad", len(got), rc.bad.Load())
	}
	h, ev := got[0].header, got[0].event
	if h.Get(HeaderEvent) != PlayerLeft || h.Get(HeaderEventID) != ev.ID || h.Get(HeaderAttempt) != "1" ||
		h.Get("Content-Type") != "application/json" || len(ev.ID) < 20 {
		t.Fatalf("headers %v for %+v", h, ev)
	}
	if ev.Node != "n1" || ev.Seq != 1 || ev.Reason != "dropped" || ev.Player.UserID != "u1" || ev.Room.Metadata["map"] != "small" ||
		time.Since(ev.Time) > 5*time.Second {
		t.Fatalf("event %+v", ev)
	}
}

// A receiver that fails (500), then times out, then recovers gets the
// same event, signed afresh each time, until it accepts it.
func TestRetriesThroughFailuresAndTimeouts(t *testing.T) {
	rc := newReceiver(t, func(n int, _ Event) (int, time.Duration) {
		switch n {
		case 0, 1:
			return http.StatusInternalServerError, 0
		case 2:
			return http.StatusOK, 500 * time.Millisecond // past the attempt timeout
		}
		return http.StatusOK, 0
	})
	d := newDispatcher(t, Config{URLs: []string{rc.srv.URL}, Timeout: 150 * time.Millisecond})
	d.Emit(roomEvent(RoomCreated, "r1"))
	waitFor(t, "delivery", func() bool { return d.Stats().Delivered.Load() == 1 })
	st := d.Stats()
	if st.Failures[FailStatus5xx].Load() != 2 || st.Failures[FailTimeout].Load() != 1 || st.Attempts.Load() != 4 {
		t.Fatalf("failures 5xx %d, timeout %d, attempts %d", st.Failures[FailStatus5xx].Load(), st.Failures[FailTimeout].Load(), st.Attempts.Load())
	}
	waitFor(t, "the timed-out request recorded", func() bool { return len(rc.deliveries()) == 4 })
	got := rc.deliveries()
	for i, g := range got {
		if g.header.Get(HeaderAttempt) != strconv.Itoa(i+1) || g.event.ID != got[0].event.ID {
			t.Fatalf("delivery %d: attempt %s, event %s", i, g.header.Get(HeaderAttempt), g.event.ID)
		}
	}
	if rc.bad.Load() != 0 {
		t.Fatalf("%d signatures did not verify", rc.bad.Load())
	}
	if st.Queued.Load() != 0 || st.Drops[DropRetriesExhausted].Load() != 0 {
		t.Fatalf("queued %d, dropped %d", st.Queued.Load(), st.Drops[DropRetriesExhausted].Load())
	}
}

func TestRetriesExhaustedDropped(t *testing.T) {
	rc := newReceiver(t, func(int, Event) (int, time.Duration) { return http.StatusServiceUnavailable, 0 })
	d := newDispatcher(t, Config{URLs: []string{rc.srv.URL}, MaxAttempts: 3})
	d.Emit(roomEvent(RoomCreated, "r1"))
	waitFor(t, "drop", func() bool { return d.Stats().Drops[DropRetriesExhausted].Load() == 1 })
	if n := len(rc.deliveries()); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	if d.Stats().Delivered.Load() != 0 || d.Stats().Queued.Load() != 0 {
		t.Fatal("counted as delivered or still queued")
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var followed atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Store(true) }))
	defer target.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	defer redirector.Close()
	d := newDispatcher(t, Config{URLs: []string{redirector.URL}, MaxAttempts: 2})
	d.Emit(roomEvent(RoomCreated, "r1"))
	waitFor(t, "drop", func() bool { return d.Stats().Drops[DropRetriesExhausted].Load() == 1 })
	if followed.Load() || d.Stats().Failures[FailStatusOther].Load() != 2 {
		t.Fatalf("followed %v, other failures %d", followed.Load(), d.Stats().Failures[FailStatusOther].Load())
	}
}

func TestConnectionRefusedCounted(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	d := newDispatcher(t, Config{URLs: []string{url}, MaxAttempts: 2})
	d.Emit(roomEvent(RoomCreated, "r1"))
	waitFor(t, "drop", func() bool { return d.Stats().Drops[DropRetriesExhausted].Load() == 1 })
	if d.Stats().Failures[FailConnection].Load() != 2 {
		t.Fatalf("connection failures %d", d.Stats().Failures[FailConnection].Load())
	}
}

// A full queue drops new events, counted, and Emit still returns at once.
func TestQueueFullDropsWithoutBlocking(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(int, Event) (int, time.Duration) { <-release; return http.StatusOK, 0 })
	d := newDispatcher(t, Config{URLs: []string{rc.srv.URL}, QueueSize: 2, Lanes: 1, Timeout: 10 * time.Second})
	start := time.Now()
	for i := 0; i < 1000; i++ {
		d.Emit(roomEvent(PlayerJoined, "r1"))
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("1000 Emits took %v", took)
	}
	st := d.Stats()
	if st.Queued.Load() != 2 || st.Drops[DropQueueFull].Load() != 998 {
		t.Fatalf("queued %d, dropped %d", st.Queued.Load(), st.Drops[DropQueueFull].Load())
	}
	close(release)
	waitFor(t, "the queue emptied", func() bool { return st.Delivered.Load() == 2 && st.Queued.Load() == 0 })
	d.Emit(roomEvent(PlayerJoined, "r1")) // room again
	waitFor(t, "delivery after the backlog", func() bool { return st.Delivered.Load() == 3 })
}

// Each room's events reach the receiver in the order they happened, even
// when attempts fail and several lanes deliver at once.
func TestOrderPerRoomUnderFailures(t *testing.T) {
	var n atomic.Int64
	rc := newReceiver(t, func(int, Event) (int, time.Duration) {
		if n.Add(1)%3 == 0 {
			return http.StatusBadGateway, 0
		}
		return http.StatusOK, time.Duration(n.Load()%3) * time.Millisecond
	})
	d := newDispatcher(t, Config{URLs: []string{rc.srv.URL}, Lanes: 4})
	const rooms, perRoom = 8, 15
	for i := 0; i < perRoom; i++ {
		for r := 0; r < rooms; r++ {
			d.Emit(roomEvent(PlayerJoined, fmt.Sprintf("room-%d", r)))
		}
	}
	waitFor(t, "every event", func() bool { return d.Stats().Delivered.Load() == rooms*perRoom })
	last := map[string]uint64{}
	count := map[string]int{}
	for _, g := range rc.deliveries() {
		if g.status != http.StatusOK {
			continue
		}
		id := g.event.Room.ID
		if g.event.Seq <= last[id] {
			t.Fatalf("room %s: seq %d accepted after %d", id, g.event.Seq, last[id])
		}
		last[id] = g.event.Seq
		count[id]++
	}
	for r := 0; r < rooms; r++ {
		if c := count[fmt.Sprintf("room-%d", r)]; c != perRoom {
			t.Fatalf("room-%d: %d events accepted", r, c)
		}
	}
	if d.Stats().Failures[FailStatus5xx].Load() == 0 {
		t.Fatal("no attempt failed: the test proves nothing")
	}
}

// Every URL gets every event.
func TestFanOutToEveryURL(t *testing.T) {
	a, b := newReceiver(t, ok), newReceiver(t, ok)
	d := newDispatcher(t, Config{URLs: []string{a.srv.URL, b.srv.URL}})
	for i := 0; i < 5; i++ {
		d.Emit(roomEvent(RoomCreated, "r"))
	}
	waitFor(t, "deliveries", func() bool { return d.Stats().Delivered.Load() == 10 })
	if len(a.deliveries()) != 5 || len(b.deliveries()) != 5 {
		t.Fatalf("%d and %d", len(a.deliveries()), len(b.deliveries()))
	}
}

func TestCloseFlushesQueue(t *testing.T) {
	rc := newReceiver(t, func(int, Event) (int, time.Duration) { return http.StatusOK, 20 * time.Millisecond })
	d, err := New(Config{URLs: []string{rc.srv.URL}, Secret: testSecret, Lanes: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		d.Emit(roomEvent(RoomDisposed, "r1"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Stats().Delivered.Load() != 10 || len(rc.deliveries()) != 10 {
		t.Fatalf("delivered %d before Close returned", d.Stats().Delivered.Load())
	}
	d.Emit(roomEvent(RoomDisposed, "r1"))
	if d.Stats().Drops[DropShutdown].Load() != 1 {
		t.Fatal("an event after Close was not dropped")
	}
}

func TestCloseBoundedByContext(t *testing.T) {
	rc := newReceiver(t, func(int, Event) (int, time.Duration) { return http.StatusOK, time.Minute })
	d, err := New(Config{URLs: []string{rc.srv.URL}, Secret: testSecret, Lanes: 2, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		d.Emit(roomEvent(RoomDisposed, fmt.Sprint("r", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := d.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %v", took)
	}
	st := d.Stats()
	if st.Drops[DropShutdown].Load() != 6 || st.Queued.Load() != 0 || st.Delivered.Load() != 0 {
		t.Fatalf("shutdown drops %d, queued %d, delivered %d", st.Drops[DropShutdown].Load(), st.Queued.Load(), st.Delivered.Load())
	}
}

func TestBackoffFullJitter(t *testing.T) {
	d := &Dispatcher{cfg: Config{BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second}}
	for n := 1; n <= 40; n++ {
		window := min(time.Second, 100*time.Millisecond<<(n-1))
		if n > 10 {
			window = time.Second
		}
		seen := map[time.Duration]bool{}
		for i := 0; i < 200; i++ {
			w := d.backoff(n)
			if w < 0 || w > window {
				t.Fatalf("attempt %d: wait %v outside [0, %v]", n, w, window)
			}
			seen[w] = true
		}
		if len(seen) < 100 {
			t.Fatalf("attempt %d: only %d distinct waits: no jitter", n, len(seen))
		}
	}
}

// Metadata JSON cannot carry does not lose the event.
func TestUnencodableMetadataDropped(t *testing.T) {
	rc := newReceiver(t, ok)
	d := newDispatcher(t, Config{URLs: []string{rc.srv.URL}})
	ev := roomEvent(RoomCreated, "r1")
	ev.Room.Metadata = map[string]any{"score": math.NaN()}
	d.Emit(ev)
	waitFor(t, "delivery", func() bool { return d.Stats().Delivered.Load() == 1 })
	if got := rc.deliveries()[0].event; got.Room == nil || got.Room.ID != "r1" || got.Room.Metadata != nil {
		t.Fatalf("event %+v", got)
	}
}

// Drops are logged once per interval with their counts, not once each.
func TestDropsLoggedRateLimited(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, func(int, Event) (int, time.Duration) { <-release; return http.StatusOK, 0 })
	d := newDispatcher(t, Config{URLs: []string{rc.srv.URL}, QueueSize: 1, Lanes: 1, Timeout: time.Minute, Logger: zap.New(core), logEvery: 100 * time.Millisecond})
	for i := 0; i < 50; i++ {
		d.Emit(roomEvent(PlayerLeft, "r1"))
	}
	waitFor(t, "a drop report", func() bool { return logs.Len() > 0 })
	time.Sleep(250 * time.Millisecond) // more intervals, no new drops: no new lines
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d log lines for one burst of drops", len(entries))
	}
	f := entries[0].ContextMap()
	if f["queue_full"] != uint64(49) || f["dropped"] != uint64(49) || f["last_event"] != PlayerLeft || f["url"] != rc.srv.URL {
		t.Fatalf("fields %v", f)
	}
}
