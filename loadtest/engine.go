package main

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gameserver/gameserver/internal/protocol"
	"golang.org/x/sys/unix"
)

// Run phases, as shown on the progress line.
const (
	runRamp int32 = iota
	runMeasure
	runClose
	runDone
)

var runPhaseNames = [...]string{"ramp", "measure", "close", "done"}

// reconnectDelay is how long a churn bot waits before it connects again.
const reconnectDelay = 100 * time.Millisecond

// descriptorReserve is what a process keeps for itself beyond one
// descriptor per bot.
const descriptorReserve = 200

// engine runs one process's bots.
type engine struct {
	cfg      *config
	kind     string // room kind joined, "" for none
	joinOpts []byte // msgpack {"size": N}
	mainHist string // the scenario's main latency

	bots    []bot
	pollers []*poller
	senders []*sender
	conn    counters // the connectors'
	errs    errorCounts

	measuring    atomic.Bool
	stopping     atomic.Bool
	roomsMissing atomic.Bool
	phase        atomic.Int32
	connected    atomic.Int64 // bots whose connection received WELCOME
	joined       atomic.Int64 // bots in a room
	open         atomic.Int64 // open descriptors
	resolved     atomic.Int64 // bots whose first connection attempt is decided

	dialq   chan int32
	reconnq chan reconnectReq

	// --forward: the room groups of this process's bots.
	groups     []group
	firstGroup int
}

type reconnectReq struct {
	idx int32
	at  time.Time
}

// hooks let the caller act at the run's milestones.
type hooks struct {
	// ramped is called once every bot's first connection attempt has
	// succeeded or failed (or the ramp timed out).
	ramped func()
	// waitMeasure blocks until the measured window should start.
	waitMeasure func(ctx context.Context)
	// measureStart and measureEnd bracket the measured window.
	measureStart func()
	measureEnd   func()
}

func (h *hooks) fill() {
	if h.ramped == nil {
		h.ramped = func() {}
	}
	if h.waitMeasure == nil {
		h.waitMeasure = func(context.Context) {}
	}
	if h.measureStart == nil {
		h.measureStart = func() {}
	}
	if h.measureEnd == nil {
		h.measureEnd = func() {}
	}
}

func newEngine(cfg *config) (*engine, error) {
	e := &engine{
		cfg:     cfg,
		kind:    cfg.roomKind(),
		bots:    make([]bot, cfg.Bots),
		dialq:   make(chan int32, cfg.Bots),
		reconnq: make(chan reconnectReq, cfg.Bots),
	}
	opts := protocol.AppendMapLen(nil, 1)
	opts = protocol.AppendString(opts, "size")
	e.joinOpts = protocol.AppendUint(opts, uint64(cfg.RoomSize))
	switch {
	case cfg.Scenario == scenarioChat && e.kind != "":
		e.mainHist = histChat
	case (cfg.Scenario == scenarioArena || cfg.Scenario == scenarioChurn) && e.kind != "":
		e.mainHist = histInput
	default:
		e.mainHist = histRTT
	}
	n := max(1, min(runtime.GOMAXPROCS(0), 4))
	if cfg.Forward {
		e.firstGroup = cfg.WorkerOffset / cfg.RoomSize
		last := (cfg.WorkerOffset + cfg.Bots - 1) / cfg.RoomSize
		e.groups = make([]group, last-e.firstGroup+1)
	}
	for range n {
		p, err := newPoller(e)
		if err != nil {
			e.closePollers()
			return nil, err
		}
		e.pollers = append(e.pollers, p)
		e.senders = append(e.senders, newSender(e))
	}
	arena := cfg.Scenario == scenarioArena || cfg.Scenario == scenarioChurn
	for i := range e.bots {
		b := &e.bots[i]
		b.idx = int32(i)
		b.global = cfg.WorkerOffset + i
		b.p = e.pollers[i%n]
		b.fd.Store(-1)
		b.reconnect.Store(cfg.Scenario == scenarioChurn)
		if arena {
			b.sent = new([seqRing]atomic.Int64)
		}
		if cfg.Transport == transportSSE {
			b.sse = &sseBot{}
			b.sse.sfd.Store(-1)
		}
		s := e.senders[i%n]
		slot := (i / n) % wheelSlots
		s.slots[slot] = append(s.slots[slot], int32(i))
	}
	return e, nil
}

func (e *engine) closePollers() {
	for _, p := range e.pollers {
		_ = unix.Close(p.epfd)
	}
}

// resolve notes that a bot's first connection attempt is decided.
func (e *engine) resolve(b *bot) {
	if b.resolved.CompareAndSwap(false, true) {
		e.resolved.Add(1)
	}
}

// scheduleReconnect queues a bot to connect again after reconnectDelay.
func (e *engine) scheduleReconnect(b *bot) {
	select {
	case e.reconnq <- reconnectReq{idx: b.idx, at: time.Now().Add(reconnectDelay)}:
	default:
		e.errs.add("reconnect_queue_full")
	}
}

// reconnector moves queued reconnects to the dial queue when due. All
// delays are equal, so the queue is in due order.
func (e *engine) reconnector(ctx context.Context, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-e.reconnq:
			if d := time.Until(r.at); d > 0 {
				t.Reset(d)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
			select {
			case e.dialq <- r.idx:
			case <-ctx.Done():
				return
			}
		}
	}
}

// pace queues every bot's first connection at the ramp rate.
func (e *engine) pace(ctx context.Context, start time.Time, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	t := time.NewTimer(0)
	defer t.Stop()
	for i := range e.bots {
		due := start.Add(time.Duration(float64(i) / e.cfg.Ramp * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			t.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		select {
		case e.dialq <- int32(i):
		case <-ctx.Done():
			return
		}
	}
}

// procResult is what one process measured. Workers send it to their parent
// as JSON.
type procResult struct {
	Bots            int                               `json:"bots"`
	Connected       int64                             `json:"connected"`
	Joined          int64                             `json:"joined"`
	Totals          map[string]uint64                 `json:"totals"`
	Window          map[string]uint64                 `json:"window"`
	WindowSec       float64                           `json:"window_s"`
	RampSec         float64                           `json:"ramp_s"`
	Errors          map[string]uint64                 `json:"errors"`
	Hists           map[string]*hdrhistogram.Snapshot `json:"hists"`
	RoomsMissing    bool                              `json:"rooms_missing"`
	DriverCPUSec    float64                           `json:"driver_cpu_s"`
	DriverRSSBase   int64                             `json:"driver_rss_base"`
	DriverRSSEnd    int64                             `json:"driver_rss_end"`
	DriverRSSPeak   int64                             `json:"driver_rss_peak"`
	DriverHeapInuse uint64                            `json:"driver_heap_inuse"`
}

// run drives the bots: ramp, measured window, orderly close. It returns
// what was measured; cancelling ctx cuts the run short but still closes
// every connection and returns a result.
func (e *engine) run(ctx context.Context, h hooks) (*procResult, error) {
	h.fill()
	perBot := 1
	if e.cfg.Transport == transportSSE {
		perBot = 2 // the event stream and the POST connection
	}
	if err := ensureDescriptors(perBot*len(e.bots) + descriptorReserve); err != nil {
		e.closePollers()
		return nil, err
	}
	rssBase, _ := readRSS("self")
	start := time.Now()

	stopPollers := make(chan struct{})
	for _, p := range e.pollers {
		go p.run(stopPollers)
	}
	stopSenders := make(chan struct{})
	sendersDone := make(chan struct{}, len(e.senders))
	for _, s := range e.senders {
		go s.run(stopSenders, sendersDone)
	}
	cctx, cancelConnect := context.WithCancel(ctx)
	nconn := min(connectors, len(e.bots))
	connDone := make(chan struct{}, nconn+2)
	for range nconn {
		go e.connector(cctx, connDone)
	}
	go e.reconnector(cctx, connDone)
	go e.pace(cctx, start, connDone)

	// Ramp: until every first attempt is decided, within a bound.
	rampBound := time.Duration(float64(len(e.bots))/e.cfg.Ramp*float64(time.Second)) + 2*e.cfg.ConnectTimeout + 5*time.Second
	rampEnd := start.Add(rampBound)
	for e.resolved.Load() < int64(len(e.bots)) && time.Now().Before(rampEnd) && ctx.Err() == nil {
		sleepCtx(ctx, 20*time.Millisecond)
	}
	rampSec := time.Since(start).Seconds()
	if e.resolved.Load() < int64(len(e.bots)) && ctx.Err() == nil {
		e.errs.add("ramp_timeout")
	}
	if e.cfg.Redis != "" && e.kind != "" && ctx.Err() == nil {
		local, fwd, err := e.classify(ctx)
		if err != nil {
			e.errs.add("directory_unavailable")
		}
		e.conn.add(cBotsLocal, local)
		e.conn.add(cBotsForwarded, fwd)
	}
	h.ramped()
	h.waitMeasure(ctx)

	// Measured window.
	c0 := e.counters()
	cpu0 := selfCPU()
	t0 := time.Now()
	e.measuring.Store(true)
	e.phase.Store(runMeasure)
	h.measureStart()
	if ctx.Err() == nil {
		sleepCtx(ctx, e.cfg.Duration)
	}
	e.measuring.Store(false)
	window := time.Since(t0).Seconds()
	c1 := e.counters()
	cpu1 := selfCPU()
	connected, joined := e.connected.Load(), e.joined.Load()
	rssEnd, _ := readRSS("self")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.measureEnd()
	e.recordPauses()

	// Orderly close: the senders stop, the rooms' counts of the inputs
	// catch up, then every connection closes.
	e.phase.Store(runClose)
	close(stopSenders)
	for range e.senders {
		<-sendersDone
	}
	e.settleInputs(ctx)
	e.stopping.Store(true)
	cancelConnect()
	for range nconn + 2 {
		<-connDone
	}
	e.closeAll()
	close(stopPollers)
	for _, p := range e.pollers {
		<-p.done
	}
	e.phase.Store(runDone)
	rssPeak, _ := readHWM("self")

	res := &procResult{
		Bots:            len(e.bots),
		Connected:       connected,
		Joined:          joined,
		Totals:          map[string]uint64{},
		Window:          map[string]uint64{},
		WindowSec:       window,
		RampSec:         rampSec,
		Errors:          e.errs.snapshot(),
		Hists:           map[string]*hdrhistogram.Snapshot{},
		RoomsMissing:    e.roomsMissing.Load(),
		DriverCPUSec:    (cpu1 - cpu0).Seconds(),
		DriverRSSBase:   rssBase,
		DriverRSSEnd:    rssEnd,
		DriverRSSPeak:   rssPeak,
		DriverHeapInuse: ms.HeapInuse,
	}
	total := e.counters()
	for i, name := range counterNames {
		res.Totals[name] = total[i]
		res.Window[name] = c1[i] - c0[i]
	}
	for _, name := range histNames {
		h := newHist()
		for _, p := range e.pollers {
			p.hs.mu.Lock()
			h.Merge(p.hs.h[name])
			p.hs.mu.Unlock()
		}
		res.Hists[name] = h.Export()
	}
	return res, nil
}

// closeAll closes every open connection with a close handshake, then ends
// those that did not finish it in time.
func (e *engine) closeAll() {
	fbuf := make([]byte, 0, 64)
	now := time.Now().UnixNano()
	for i := range e.bots {
		b := &e.bots[i]
		if b.fd.Load() < 0 {
			continue
		}
		if b.phase.Load() != phaseClosing {
			b.setPhase(phaseClosing, now)
			e.closeConn(b, &fbuf, &e.conn)
		}
	}
	deadline := time.Now().Add(closeGrace)
	for e.open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.open.Load() == 0 {
		return
	}
	for i := range e.bots {
		e.bots[i].shutdown()
	}
	deadline = time.Now().Add(time.Second)
	for e.open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// closeConn starts closing a bot's connection in order: a close frame
// (1000), or over the fallback DELETE /sse/session.
func (e *engine) closeConn(b *bot, sc *[]byte, c *counters) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sse != nil {
		b.sseCloseLocked(c)
		return
	}
	*sc = appendCloseFrame((*sc)[:0], 1000, "load test done")
	if b.writeLocked(*sc, c) {
		c.add(cMsgsOut, 1)
	}
}

// settleBound bounds the wait, after the senders stop, for the rooms'
// input counts to catch up with what the bots sent.
const settleBound = 2 * time.Second

// settleInputs waits until the room of every seated bot has counted every
// input the bot sent (the arena state's received), within settleBound,
// then counts the inputs the rooms did not receive (inputs_lost) and
// those they received twice (inputs_duplicated).
func (e *engine) settleInputs(ctx context.Context) {
	if e.kind != "arena" || (e.cfg.Scenario != scenarioArena && e.cfg.Scenario != scenarioChurn) {
		return
	}
	diff := func() (lost, dup uint64, settled bool) {
		settled = true
		for i := range e.bots {
			b := &e.bots[i]
			if !b.inRoom.Load() || b.phase.Load() != phaseInRoom {
				continue
			}
			sent, got := b.seq.Load()-b.joinSeq.Load(), b.recvd.Load()
			switch {
			case sent > got:
				lost += uint64(sent - got)
				settled = false
			case got > sent:
				dup += uint64(got - sent)
			}
		}
		return lost, dup, settled
	}
	deadline := time.Now().Add(settleBound)
	for {
		lost, dup, settled := diff()
		if settled || !time.Now().Before(deadline) || ctx.Err() != nil {
			e.conn.add(cInputsLost, lost)
			e.conn.add(cInputsDup, dup)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recordPauses records every bot's longest time between two states in the
// measured window (one sample per bot that received states).
func (e *engine) recordPauses() {
	hs := e.pollers[0].hs
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for i := range e.bots {
		if g := e.bots[i].maxGap.Load(); g > 0 {
			record(hs.h[histPause], g)
		}
	}
}

// counters sums every goroutine's counters.
func (e *engine) counters() [nCounters]uint64 {
	cs := []*counters{&e.conn}
	for _, p := range e.pollers {
		cs = append(cs, p.c)
	}
	for _, s := range e.senders {
		cs = append(cs, s.c)
	}
	return sumCounters(cs)
}

// progressSnap is the state shown on the progress line.
type progressSnap struct {
	Phase     string `json:"phase"`
	Bots      int    `json:"bots"`
	Connected int64  `json:"connected"`
	Joined    int64  `json:"joined"`
	MsgsIn    uint64 `json:"msgs_in"`
	MsgsOut   uint64 `json:"msgs_out"`
	Errors    uint64 `json:"errors"`
	P99us     int64  `json:"p99_us"` // main latency since the previous snapshot
	Samples   int64  `json:"samples"`
}

// progress returns the current state and starts a new latency interval.
func (e *engine) progress() progressSnap {
	c := e.counters()
	h := newHist()
	for _, p := range e.pollers {
		p.hs.mu.Lock()
		h.Merge(p.hs.interval)
		p.hs.interval.Reset()
		p.hs.mu.Unlock()
	}
	return progressSnap{
		Phase:     runPhaseNames[e.phase.Load()],
		Bots:      len(e.bots),
		Connected: e.connected.Load(),
		Joined:    e.joined.Load(),
		MsgsIn:    c[cMsgsIn],
		MsgsOut:   c[cMsgsOut],
		Errors:    e.errs.total(),
		P99us:     h.ValueAtQuantile(99),
		Samples:   h.TotalCount(),
	}
}

// ensureDescriptors raises the descriptor limit as far as allowed and
// fails when it still cannot hold n.
func ensureDescriptors(n int) error {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("descriptor limit: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
		_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &rl)
	}
	if uint64(n) > rl.Cur {
		return fmt.Errorf("%d bots need about %d descriptors but this process may open %d; run fewer bots per process (--processes)", n-descriptorReserve, n, rl.Cur)
	}
	return nil
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
