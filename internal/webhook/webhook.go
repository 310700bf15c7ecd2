package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Event types.
const (
	RoomCreated  = "room.created"
	RoomDisposed = "room.disposed"
	RoomMoved    = "room.moved"
	PlayerJoined = "player.joined"
	PlayerLeft   = "player.left"
	NodeDraining = "node.draining"
)

// Event is one notification, the JSON body of a delivery.
type Event struct {
	// ID identifies the event; a receiver drops a second delivery of an ID
	// it already has. Emit sets it when empty.
	ID string `json:"id"`
	// Type is one of the event type constants.
	Type string `json:"type"`
	// Seq numbers the events of one node in the order they happened; Emit
	// sets it.
	Seq uint64 `json:"seq"`
	// Time is when the event happened; Emit sets it when zero.
	Time time.Time `json:"time"`
	// Node is the node the event happened on; Emit sets it when empty.
	Node string `json:"node"`
	// Room is the room concerned (not set for node events).
	Room *Room `json:"room,omitempty"`
	// Player is the player concerned (player events only).
	Player *Player `json:"player,omitempty"`
	// Reason says why: for player.left "left" (the player asked to),
	// "dropped" (the connection was lost and not resumed in time),
	// "kicked" or "disposed"; for room.disposed the reason the room ended
	// with ("empty", "server shutting down"...).
	Reason string `json:"reason,omitempty"`
}

// Room is a room as events describe it, after the event.
type Room struct {
	ID         string         `json:"id"`
	Kind       string         `json:"kind"`
	Players    int            `json:"players"`
	MaxPlayers int            `json:"maxPlayers"`
	Locked     bool           `json:"locked"`
	Private    bool           `json:"private"`
	Metadata   map[string]any `json:"metadata,omitempty"`
	Created    time.Time      `json:"created"`
}

// Player is a player as events describe it.
type Player struct {
	ID     string `json:"id"`
	UserID string `json:"userId,omitempty"`
}

// Config configures a Dispatcher. Zero values mean the defaults in the
// comments.
type Config struct {
	// URLs receive every event (http or https).
	URLs []string
	// Secret signs every delivery; at least 16 bytes.
	Secret string
	// Node is set on events that name none.
	Node string
	// QueueSize bounds the events waiting for each URL; past it new events
	// are dropped. Zero means 4096.
	QueueSize int
	// Lanes is how many deliveries to one URL may be in flight at once;
	// events of one room always share a lane. Zero means 4.
	Lanes int
	// Timeout bounds one attempt, from connecting to the response
	// headers. Zero means 5 s.
	Timeout time.Duration
	// MaxAttempts bounds the attempts per event and URL. Zero means 8.
	MaxAttempts int
	// BackoffBase and BackoffMax shape the wait before a retry: a random
	// duration between zero and min(BackoffMax, BackoffBase × 2^(n-1))
	// after the nth failed attempt. Zero means 250 ms and 30 s.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Client sends the requests. Nil means a client that follows no
	// redirects (a redirect counts as a failed attempt).
	Client *http.Client
	// Logger receives drop reports. Nil means no logging.
	Logger *zap.Logger

	// logEvery is how often dropped events are reported. Zero means 10 s.
	logEvery time.Duration
}

// Failure is why an attempt failed.
type Failure int

// Failure reasons.
const (
	FailTimeout     Failure = iota // no response within Config.Timeout
	FailConnection                 // the request could not be sent or the response read
	FailStatus4xx                  // the receiver answered 4xx
	FailStatus5xx                  // the receiver answered 5xx
	FailStatusOther                // the receiver answered 1xx or 3xx
	numFailures
)

func (f Failure) String() string {
	return [...]string{"timeout", "connection", "status_4xx", "status_5xx", "status_other"}[f]
}

// Failures lists every failure reason, for metrics.
func Failures() []Failure {
	return []Failure{FailTimeout, FailConnection, FailStatus4xx, FailStatus5xx, FailStatusOther}
}

// Drop is why an event was given up for a URL.
type Drop int

// Drop reasons.
const (
	DropQueueFull        Drop = iota // the URL's queue was full when the event came
	DropRetriesExhausted             // every attempt failed
	DropShutdown                     // the dispatcher stopped before the event was delivered
	numDrops
)

func (d Drop) String() string {
	return [...]string{"queue_full", "retries_exhausted", "shutdown"}[d]
}

// Drops lists every drop reason, for metrics.
func Drops() []Drop { return []Drop{DropQueueFull, DropRetriesExhausted, DropShutdown} }

// Stats are a dispatcher's counters, each counting per URL (an event sent
// to two URLs counts twice).
type Stats struct {
	Delivered atomic.Uint64 // deliveries answered with 2xx
	Attempts  atomic.Uint64 // requests made
	Failures  [numFailures]atomic.Uint64
	Drops     [numDrops]atomic.Uint64
	Queued    atomic.Int64 // events waiting or being delivered
}

// Dispatcher delivers events. Its methods are safe for concurrent use.
type Dispatcher struct {
	cfg     Config
	secret  []byte
	log     *zap.Logger
	client  *http.Client
	ownTr   *http.Transport
	targets []*target
	stats   Stats
	seq     atomic.Uint64

	mu       sync.RWMutex // Emit holds it shared; Close sets closed under it
	closed   bool
	stopping chan struct{} // closed by Close: lanes finish what they hold, then exit
	abortCtx context.Context
	abort    context.CancelFunc
	lanesWG  sync.WaitGroup
	reportWG sync.WaitGroup
	lastDrop atomic.Pointer[dropInfo]
}

type target struct {
	url    string
	label  string // scheme, host and path: safe to log
	queued atomic.Int64
	lanes  []chan *payload
}

type dropInfo struct {
	reason Drop
	event  string
	url    string
}

// payload is an event and its JSON, encoded once for every URL.
type payload struct {
	ev   Event
	once sync.Once
	body []byte
}

func (p *payload) encode() []byte {
	p.once.Do(func() {
		b, err := json.Marshal(&p.ev)
		if err != nil && p.ev.Room != nil {
			// Metadata JSON cannot carry (NaN, a map with non-string
			// keys): send the event without it.
			r := *p.ev.Room
			r.Metadata = nil
			ev := p.ev
			ev.Room = &r
			b, err = json.Marshal(&ev)
		}
		if err != nil {
			b = []byte(`{}`) // unreachable: every other field is plain
		}
		p.body = b
	})
	return p.body
}

// Validate reports what New would refuse in cfg.
func Validate(cfg Config) error {
	_, err := withDefaults(cfg)
	return err
}

func withDefaults(cfg Config) (Config, error) {
	if len(cfg.URLs) == 0 {
		return cfg, errors.New("webhook: no URLs")
	}
	if len(cfg.Secret) < 16 {
		return cfg, errors.New("webhook: the secret must be at least 16 bytes")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.Timeout, 5*time.Second)
	def(&cfg.BackoffBase, 250*time.Millisecond)
	def(&cfg.BackoffMax, 30*time.Second)
	def(&cfg.logEvery, 10*time.Second)
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 4096
	}
	if cfg.Lanes == 0 {
		cfg.Lanes = 4
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 8
	}
	switch {
	case cfg.Timeout < 0 || cfg.BackoffBase < 0 || cfg.BackoffMax < cfg.BackoffBase:
		return cfg, errors.New("webhook: timeouts must be positive and the backoff cap at least its base")
	case cfg.QueueSize < 1 || cfg.Lanes < 1 || cfg.Lanes > 64 || cfg.MaxAttempts < 1:
		return cfg, errors.New("webhook: queue size, attempts and lanes (at most 64) must be positive")
	}
	for _, raw := range cfg.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, fmt.Errorf("webhook: URL %q: want an absolute http or https URL", redact(raw))
		}
	}
	return cfg, nil
}

// New starts a dispatcher; Close stops it.
func New(cfg Config) (*Dispatcher, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	d := &Dispatcher{cfg: cfg, secret: []byte(cfg.Secret), log: cfg.Logger, client: cfg.Client, stopping: make(chan struct{})}
	if d.client == nil {
		d.ownTr = http.DefaultTransport.(*http.Transport).Clone()
		d.ownTr.MaxIdleConnsPerHost = cfg.Lanes
		d.client = &http.Client{
			Transport:     d.ownTr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	for _, raw := range cfg.URLs {
		u, _ := url.Parse(raw) // checked by withDefaults
		t := &target{url: raw, label: u.Scheme + "://" + u.Host + u.Path, lanes: make([]chan *payload, cfg.Lanes)}
		for i := range t.lanes {
			t.lanes[i] = make(chan *payload, cfg.QueueSize)
		}
		d.targets = append(d.targets, t)
	}
	d.abortCtx, d.abort = context.WithCancel(context.Background())
	for _, t := range d.targets {
		for _, ch := range t.lanes {
			d.lanesWG.Add(1)
			go d.lane(t, ch)
		}
	}
	d.reportWG.Add(1)
	go d.reporter()
	return d, nil
}

// redact keeps a URL that does not parse out of error messages beyond its
// first characters (it may carry a credential).
func redact(s string) string {
	if len(s) > 12 {
		return s[:12] + "..."
	}
	return s
}

// Stats returns the live counters.
func (d *Dispatcher) Stats() *Stats { return &d.stats }

// Emit queues ev for every URL and returns at once; it never blocks. It
// sets ev's ID, Time and Node when empty, and its Seq.
func (d *Dispatcher) Emit(ev Event) {
	if ev.ID == "" {
		ev.ID = "evt_" + rand.Text()
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	if ev.Node == "" {
		ev.Node = d.cfg.Node
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	ev.Seq = d.seq.Add(1)
	p := &payload{ev: ev}
	for _, t := range d.targets {
		if d.closed {
			d.dropped(DropShutdown, t, p)
			continue
		}
		if t.queued.Add(1) > int64(d.cfg.QueueSize) {
			t.queued.Add(-1)
			d.dropped(DropQueueFull, t, p)
			continue
		}
		d.stats.Queued.Add(1)
		// Never blocks: each lane holds QueueSize, and queued bounds the
		// sum over the lanes.
		t.lanes[laneOf(&ev, len(t.lanes))] <- p
	}
}

// laneOf keeps the events of one room in one lane, so they stay in order.
func laneOf(ev *Event, n int) int {
	if ev.Room == nil || n == 1 {
		return 0
	}
	h := uint32(2166136261) // FNV-1a, inline: Emit allocates nothing for it
	for i := 0; i < len(ev.Room.ID); i++ {
		h = (h ^ uint32(ev.Room.ID[i])) * 16777619
	}
	return int(h % uint32(n))
}

func (d *Dispatcher) dropped(r Drop, t *target, p *payload) {
	d.stats.Drops[r].Add(1)
	d.lastDrop.Store(&dropInfo{reason: r, event: p.ev.Type, url: t.label})
}

// lane delivers the events of one channel one at a time, until Close.
func (d *Dispatcher) lane(t *target, ch chan *payload) {
	defer d.lanesWG.Done()
	for {
		select {
		case p := <-ch:
			d.deliver(t, p)
		case <-d.stopping:
			// Emit queues nothing once stopping is closed: finish what is
			// here (or drop it, once Close's context has ended).
			for {
				select {
				case p := <-ch:
					d.deliver(t, p)
				default:
					return
				}
			}
		}
	}
}

// deliver tries p until it is accepted, its attempts run out, or the
// dispatcher is aborted.
func (d *Dispatcher) deliver(t *target, p *payload) {
	defer func() {
		t.queued.Add(-1)
		d.stats.Queued.Add(-1)
	}()
	body := p.encode()
	for attempt := 1; ; attempt++ {
		if d.abortCtx.Err() != nil {
			d.dropped(DropShutdown, t, p)
			return
		}
		fail, ok := d.attempt(t, p, body, attempt)
		if ok {
			d.stats.Delivered.Add(1)
			return
		}
		if d.abortCtx.Err() != nil {
			d.dropped(DropShutdown, t, p)
			return
		}
		d.stats.Failures[fail].Add(1)
		if attempt >= d.cfg.MaxAttempts {
			d.dropped(DropRetriesExhausted, t, p)
			return
		}
		timer := time.NewTimer(d.backoff(attempt))
		select {
		case <-timer.C:
		case <-d.abortCtx.Done():
			timer.Stop()
		}
	}
}

// backoff is the wait after the nth failed attempt: full jitter over an
// exponentially growing, capped window.
func (d *Dispatcher) backoff(n int) time.Duration {
	window := d.cfg.BackoffMax
	if n < 32 {
		if w := d.cfg.BackoffBase << (n - 1); w > 0 && w < window {
			window = w
		}
	}
	return time.Duration(mrand.Int64N(int64(window) + 1))
}

func (d *Dispatcher) attempt(t *target, p *payload, body []byte, n int) (Failure, bool) {
	ctx, cancel := context.WithTimeout(d.abortCtx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return FailConnection, false
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "gameserver-webhook/1")
	h.Set(HeaderEventID, p.ev.ID)
	h.Set(HeaderEvent, p.ev.Type)
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, Sign(d.secret, ts, body))
	h.Set(HeaderAttempt, strconv.Itoa(n))
	d.stats.Attempts.Add(1)
	resp, err := d.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return FailTimeout, false
		}
		return FailConnection, false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return 0, true
	case c >= 400 && c < 500:
		return FailStatus4xx, false
	case c >= 500:
		return FailStatus5xx, false
	}
	return FailStatusOther, false
}

// Close stops taking events and delivers what is queued until ctx ends;
// then it abandons the rest (counted as DropShutdown) and returns
// ctx.Err(). It waits for every lane to stop either way.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	first := !d.closed
	d.closed = true
	d.mu.Unlock()
	if first {
		close(d.stopping)
	}
	done := make(chan struct{})
	go func() {
		d.lanesWG.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	d.abort()
	<-done
	d.reportWG.Wait()
	if d.ownTr != nil {
		d.ownTr.CloseIdleConnections()
	}
	return err
}

// reporter logs dropped events at most once per logEvery, and once more
// when the dispatcher stops.
func (d *Dispatcher) reporter() {
	defer d.reportWG.Done()
	var seen [numDrops]uint64
	report := func() {
		fields := make([]zap.Field, 0, numDrops+3)
		var total uint64
		for _, r := range Drops() {
			n := d.stats.Drops[r].Load()
			if n > seen[r] {
				fields = append(fields, zap.Uint64(r.String(), n-seen[r]))
				total += n - seen[r]
				seen[r] = n
			}
		}
		if total == 0 {
			return
		}
		if last := d.lastDrop.Load(); last != nil {
			fields = append(fields, zap.String("last_reason", last.reason.String()), zap.String("last_event", last.event), zap.String("url", last.url))
		}
		d.log.Warn("webhook events dropped", append(fields, zap.Uint64("dropped", total))...)
	}
	t := time.NewTicker(d.cfg.logEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			report()
		case <-d.abortCtx.Done():
			report()
			return
		}
	}
}
