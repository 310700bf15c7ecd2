package room

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/protocol"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// counter is a room handler that counts its ticks and checks that the
// game messages it gets carry increasing sequence numbers.
type counter struct {
	game.Base
	ticks   *atomic.Int64
	panicAt uint64 // panic in this tick, when set
	lastSeq uint32
	got     *atomic.Int64
	order   *atomic.Int64 // messages out of order
}

func (c *counter) OnTick(r game.Room, _ time.Duration) {
	c.ticks.Add(1)
	if c.panicAt != 0 && r.Tick() == c.panicAt {
		panic("boom")
	}
}

func (c *counter) OnMessage(_ game.Room, _ game.Player, m game.Message) error {
	seq := binary.BigEndian.Uint32(m.Body)
	if seq <= c.lastSeq {
		c.order.Add(1)
	}
	c.lastSeq = seq
	c.got.Add(1)
	return nil
}

type counters struct {
	mu    sync.Mutex
	rooms map[string]*counter
}

// register adds a kind whose rooms are counters; a room created with the
// option "boom" set panics in its third tick.
func (cs *counters) register(t *testing.T, m *Manager, name string, cfg game.RoomConfig) {
	t.Helper()
	err := m.Register(name, func() game.Handler {
		return &roomCounter{cs: cs}
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
}

// roomCounter records itself under its room id at OnCreate.
type roomCounter struct {
	counter
	cs *counters
}

func (c *roomCounter) OnCreate(r game.Room, opts game.Options) error {
	c.ticks, c.got, c.order = new(atomic.Int64), new(atomic.Int64), new(atomic.Int64)
	if v, _ := opts["boom"].(bool); v {
		c.panicAt = 3
	}
	c.cs.mu.Lock()
	c.cs.rooms[r.ID()] = &c.counter
	c.cs.mu.Unlock()
	return nil
}

func (cs *counters) get(id string) *counter {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.rooms[id]
}

// Rooms run on a fixed set of shards: creating hundreds of rooms starts no
// goroutine, every room ticks, and Shutdown stops the shards.
func TestShardsKeepGoroutinesConstant(t *testing.T) {
	before := runtime.NumGoroutine()
	m := NewManager(Config{})
	cs := &counters{rooms: map[string]*counter{}}
	cs.register(t, m, "c", game.RoomConfig{TickRate: 50, MaxPlayers: 4})
	withShards := runtime.NumGoroutine()
	if withShards-before > runtime.GOMAXPROCS(0)+1 {
		t.Fatalf("NewManager started %d goroutines, want about GOMAXPROCS = %d", withShards-before, runtime.GOMAXPROCS(0))
	}
	const n = 300
	ids := make([]string, n)
	for i := range ids {
		info, err := m.Create(context.Background(), "c", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = info.ID
	}
	if g := runtime.NumGoroutine(); g > withShards+2 {
		t.Fatalf("%d rooms: %d goroutines, want at most %d", n, g, withShards+2)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		for cs.get(id).ticks.Load() < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("room %s ticked %d times in 5 s at 50 Hz", id, cs.get(id).ticks.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	m.Shutdown("test")
	if got := m.stats.Rooms.Load(); got != 0 {
		t.Fatalf("%d rooms left after Shutdown", got)
	}
	deadline = time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Shutdown, %d before NewManager", runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A room that panics is disposed; the rooms sharing its shard go on
// ticking.
func TestShardPanicLeavesNeighboursRunning(t *testing.T) {
	m := NewManager(Config{})
	defer m.Shutdown("test")
	cs := &counters{rooms: map[string]*counter{}}
	cs.register(t, m, "c", game.RoomConfig{TickRate: 50})
	var ids []string
	for i := 0; i < 4*len(m.shards); i++ {
		info, err := m.Create(context.Background(), "c", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	createPanicking(t, m)
	if m.stats.Panics.Load() != 1 {
		t.Fatalf("panics = %d, want 1", m.stats.Panics.Load())
	}
	after := make([]int64, len(ids))
	for i, id := range ids {
		after[i] = cs.get(id).ticks.Load()
	}
	time.Sleep(200 * time.Millisecond)
	for i, id := range ids {
		if got := cs.get(id).ticks.Load(); got <= after[i] {
			t.Fatalf("room %s stopped ticking after its neighbour panicked (%d ticks, then %d)", id, after[i], got)
		}
	}
}

// A room flooded with messages takes them in bounded turns, in order, and
// the rooms beside it keep their ticks; refused messages are refused, not
// lost silently.
func TestShardFloodedRoomDoesNotStarveOthers(t *testing.T) {
	m := NewManager(Config{})
	defer m.Shutdown("test")
	cs := &counters{rooms: map[string]*counter{}}
	cs.register(t, m, "c", game.RoomConfig{TickRate: 50, InboxSize: 64})
	var ids []string
	for i := 0; i < 2*len(m.shards); i++ {
		info, err := m.Create(context.Background(), "c", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	s := &sink{id: "flooder"}
	join(t, m, s, protocol.JoinByID, "", ids[0])
	flooded := cs.get(ids[0])
	others := ids[1:]
	start := make([]int64, len(others))
	for i, id := range others {
		start[i] = cs.get(id).ticks.Load()
	}
	var sent, refused int64
	body := make([]byte, 4)
	stop := time.Now().Add(400 * time.Millisecond)
	for seq := uint32(1); time.Now().Before(stop) && seq < 1<<22; seq++ {
		binary.BigEndian.PutUint32(body, seq)
		err := m.Handle(s, protocol.FirstGameType, body)
		switch {
		case err == nil:
			sent++
		case errors.Is(err, errBusy):
			refused++
		default:
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for flooded.got.Load() < sent {
		if time.Now().After(deadline) {
			t.Fatalf("room handled %d of %d accepted messages", flooded.got.Load(), sent)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if flooded.order.Load() != 0 {
		t.Fatalf("%d messages out of order", flooded.order.Load())
	}
	t.Logf("accepted %d, refused %d (inbox full)", sent, refused)
	for i, id := range others {
		// 400 ms at 50 Hz is 20 ticks; a starved room would have none.
		if got := cs.get(id).ticks.Load() - start[i]; got < 5 {
			t.Fatalf("room %s ticked %d times while its neighbour was flooded", id, got)
		}
	}
}

// Posts that must not be lost are taken past the inbox bound and never
// block, even when the room is busy.
func TestPostPastBoundNeverBlocks(t *testing.T) {
	m := NewManager(Config{})
	defer m.Shutdown("test")
	cs := &counters{rooms: map[string]*counter{}}
	cs.register(t, m, "c", game.RoomConfig{TickRate: 10, InboxSize: 16})
	info, err := m.Create(context.Background(), "c", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := m.lookup(info.ID)
	started, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	defer free() // before Shutdown, which waits for the shard
	var ran atomic.Int64
	// Hold the room's shard in a call while posting: the posts below then
	// queue in the inbox rather than joining the shard's current turn.
	if !r.post(event{kind: evCall, fn: func(game.Room) { close(started); <-release }}, true) {
		t.Fatal("post refused")
	}
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("the room's shard never ran the call")
	}
	for i := 0; i < 100; i++ {
		if !r.post(event{kind: evCall, fn: func(game.Room) { ran.Add(1) }}, true) {
			t.Fatal("a waiting post was refused")
		}
	}
	if r.post(event{kind: evCall, fn: func(game.Room) {}}, false) {
		t.Fatal("a bounded post was taken past the bound")
	}
	free()
	deadline := time.Now().Add(2 * time.Second)
	for ran.Load() != 100 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 100 posted calls ran", ran.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

type panicOnCreate struct{ game.Base }

func (panicOnCreate) OnCreate(game.Room, game.Options) error { panic("no") }

// A panic in OnCreate answers the creator with an internal error at once
// rather than leaving it waiting.
func TestPanicInCreateAnswersCreator(t *testing.T) {
	m := NewManager(Config{})
	defer m.Shutdown("test")
	if err := m.Register("p", func() game.Handler { return panicOnCreate{} }, game.RoomConfig{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := m.Create(ctx, "p", nil, nil)
	var ge *game.Error
	if !errors.As(err, &ge) || ge.Code != game.ErrInternal.Code {
		t.Fatalf("Create = %v, want the internal error", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for m.stats.Rooms.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d rooms left", m.stats.Rooms.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// A room makes its logger only when it logs, and what it logs carries the
// room's fields: a quiet room holds none, a panicking one logs with its id,
// kind and node.
func TestRoomLoggerMadeWhenItLogs(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	m := NewManager(Config{Logger: zap.New(core), Node: "n1"})
	defer m.Shutdown("test")
	cs := &counters{rooms: map[string]*counter{}}
	cs.register(t, m, "c", game.RoomConfig{TickRate: 50})
	quiet, err := m.Create(context.Background(), "c", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := createPanicking(t, m)
	entries := logs.FilterMessage("room panicked: disposing it").All()
	if len(entries) != 1 {
		t.Fatalf("%d panic entries, want 1", len(entries))
	}
	fields := entries[0].ContextMap()
	if fields["room"] != bad.ID || fields["kind"] != "c" || fields["node"] != "n1" {
		t.Fatalf("panic entry fields %v, want room %s, kind c, node n1", fields, bad.ID)
	}
	r := m.lookup(quiet.ID)
	if r == nil {
		t.Fatal("the quiet room is gone")
	}
	if r.log.Load() != nil {
		t.Fatal("a room that never logged made a logger")
	}
	if l := r.Logger(); l != r.Logger() {
		t.Fatal("Logger made a second logger")
	}
}

// createPanicking creates a room of the counters' kind "c" with the option
// that makes it panic in its third tick, and waits until the manager has
// disposed it.
func createPanicking(t *testing.T, m *Manager) RoomInfo {
	t.Helper()
	bad, err := m.Create(context.Background(), "c", game.Options{"boom": true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for m.lookup(bad.ID) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the panicking room was not disposed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return bad
}
