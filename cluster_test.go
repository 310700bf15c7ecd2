package gameserver_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/examples/arena"
	"github.com/gameserver/gameserver/examples/chat"
	"github.com/gameserver/gameserver/internal/cluster/redistest"
	"github.com/gameserver/gameserver/internal/protocol"
	"go.uber.org/zap/zaptest"
)

// node is one cluster node running in this process.
type node struct {
	srv     *gameserver.Server
	addr    string
	done    chan error
	stopped sync.Once
}

func startNode(t *testing.T, redisURL, id string, cfg gameserver.Config) *node {
	t.Helper()
	return startNodeWith(t, redisURL, id, cfg, func(srv *gameserver.Server) error {
		return srv.Register("arena", arena.New, arena.Config)
	})
}

// startNodeWith starts a node whose room types register registers.
func startNodeWith(t *testing.T, redisURL, id string, cfg gameserver.Config, register func(*gameserver.Server) error) *node {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	cfg.Node = id
	cfg.Redis = redisURL
	cfg.ClusterSecret = "test-cluster-secret"
	cfg.LeaseTTL = 3 * time.Second // generous: these nodes share a loaded test process
	cfg.MaxResumesPerMinute = 1000
	cfg.HandshakeRate = -1
	cfg.ShutdownTimeout = 3 * time.Second
	if os.Getenv("GAMESERVER_TEST_LOG") != "" {
		cfg.Logger = zaptest.NewLogger(t).Named(id)
	}
	srv, err := gameserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := register(srv); err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	n := &node{srv: srv, addr: srv.Addr().String(), done: make(chan error, 1)}
	go func() { n.done <- srv.ListenAndServe() }()
	t.Cleanup(func() { n.stop() })
	return n
}

// stop shuts the node down; calls after the first return at once.
func (n *node) stop() {
	n.stopped.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.srv.Shutdown(ctx)
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
		}
	})
}

// arenaBot plays arena and checks its stream: state ticks increase with no
// gap, and its own lastSeq never goes back.
type arenaBot struct {
	*resumer
	playerID string
	roomID   string
	seq      uint32
	lastTick uint64
	applied  uint32
}

func (b *arenaBot) readStates(t *testing.T, n int) {
	t.Helper()
	for got := 0; got < n; {
		tp, body, err := b.read(3 * time.Second)
		if err != nil {
			t.Fatalf("bot %s: %v", b.playerID, err)
		}
		if tp != protocol.TypeState {
			continue
		}
		var st protocol.State
		if err := st.Decode(body); err != nil {
			t.Fatal(err)
		}
		if b.lastTick != 0 && st.Tick != b.lastTick+1 {
			t.Fatalf("bot %s: tick %d after %d: a state was lost or repeated", b.playerID, st.Tick, b.lastTick)
		}
		b.lastTick = st.Tick
		var as protocol.ArenaState
		if err := as.Decode(st.Body); err != nil {
			t.Fatal(err)
		}
		for _, p := range as.Players {
			if string(p.ID) == b.playerID {
				if p.LastSeq < b.applied {
					t.Fatalf("bot %s: lastSeq went back from %d to %d", b.playerID, b.applied, p.LastSeq)
				}
				b.applied = p.LastSeq
			}
		}
		got++
	}
}

func (b *arenaBot) input() {
	b.seq++
	b.sendRaw((&protocol.ArenaInput{Seq: b.seq, DX: 1}).Append(nil))
}

func joinArena(t *testing.T, addr string, mode protocol.JoinMode, roomID string) *arenaBot {
	t.Helper()
	b, err := tryJoinArena(t, addr, mode, roomID)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// joinByIDThrough joins room id, on another node, through the node at
// addr, trying again while the room's lease is being taken (just after
// the room's creation).
func joinByIDThrough(t *testing.T, addr, id string) *arenaBot {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := tryJoinArena(t, addr, protocol.JoinByID, id)
		if err == nil {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tryJoinArena joins, returning the ERROR as an error.
func tryJoinArena(t *testing.T, addr string, mode protocol.JoinMode, roomID string) (*arenaBot, error) {
	t.Helper()
	r := newResumer(t, addr, "")
	r.send(&protocol.Join{ReqID: 1, Mode: mode, Kind: "arena", RoomID: roomID})
	for {
		tp, body, err := r.read(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		switch tp {
		case protocol.TypeJoined:
			var j protocol.Joined
			_ = j.Decode(body)
			return &arenaBot{resumer: r, playerID: j.PlayerID, roomID: j.RoomID}, nil
		case protocol.TypeError:
			var e protocol.ErrorMsg
			_ = e.Decode(body)
			return nil, fmt.Errorf("join on %s: %+v", addr, e)
		}
	}
}

func TestClusterForwardsAndMovesRooms(t *testing.T) {
	redis := redistest.StartServer(t)
	n1 := startNode(t, redis.URL(), "n1", gameserver.Config{})
	n2 := startNode(t, redis.URL(), "n2", gameserver.Config{})
	time.Sleep(300 * time.Millisecond) // both registered

	// a plays on n1, where the room is; b connects to n2 and is forwarded.
	a := joinArena(t, n1.addr, protocol.JoinCreate, "")
	b := joinByIDThrough(t, n2.addr, a.roomID)
	if b.roomID != a.roomID {
		t.Fatalf("b joined %s, not %s", b.roomID, a.roomID)
	}
	for i := 0; i < 5; i++ {
		a.input()
		b.input()
	}
	a.readStates(t, 10)
	b.readStates(t, 10)
	deadline := time.Now().Add(3 * time.Second)
	for b.applied < 5 {
		b.readStates(t, 1)
		if time.Now().After(deadline) {
			t.Fatalf("b's inputs (forwarded) not applied: lastSeq %d", b.applied)
		}
	}

	// Drain n1: the room moves to n2; a is told to move and resumes on n2
	// (the test is the load balancer); b, forwarded from n2, follows the
	// room there.
	stopStart := time.Now()
	go func() { n1.stop(); t.Logf("n1 drained in %v", time.Since(stopStart)) }()
	for {
		tp, body, err := a.next(5 * time.Second)
		if err != nil {
			t.Fatalf("waiting for MOVE: %v", err)
		}
		if !unsequenced(tp) {
			a.lastSeq++
		}
		if tp == protocol.TypeState {
			var st protocol.State
			_ = st.Decode(body)
			if st.Tick != a.lastTick+1 {
				t.Fatalf("tick %d after %d", st.Tick, a.lastTick)
			}
			a.lastTick = st.Tick
		}
		if tp == protocol.TypeMove {
			var m protocol.Move
			_ = m.Decode(body)
			a.token = m.ResumeToken
			break
		}
	}
	a.conn.Close()
	var resumed protocol.Resumed
	var code protocol.Code
	deadline = time.Now().Add(5 * time.Second)
	for {
		resumed, code = a.resume(n2.addr, "")
		if code == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != 0 {
		t.Fatalf("resume on n2: %v", code)
	}
	if resumed.FromSeq != a.lastSeq+1 {
		t.Fatalf("resumed from %d after %d", resumed.FromSeq, a.lastSeq)
	}
	// Both keep playing in the moved room, with the same seats.
	for i := 0; i < 3; i++ {
		a.input()
		b.input()
	}
	a.readStates(t, 20)
	b.readStates(t, 20)
	deadline = time.Now().Add(5 * time.Second)
	for a.applied < 8 || b.applied < 8 {
		a.readStates(t, 1)
		b.readStates(t, 1)
		if time.Now().After(deadline) {
			t.Fatalf("after the move: a applied %d, b applied %d; want 8", a.applied, b.applied)
		}
	}
	if !n2.srv.Owns(a.roomID) {
		t.Fatal(fmt.Sprintf("n2 does not own room %s after the move", a.roomID))
	}
}

// A room that cannot snapshot stays on a draining node until the drain
// deadline; its players hear nothing before it, then LEFT and a close with
// the reconnect hint.
func TestDrainKeepsRoomsThatCannotMove(t *testing.T) {
	redis := redistest.StartServer(t)
	n1 := startNode(t, redis.URL(), "d1", gameserver.Config{})
	startNode(t, redis.URL(), "d2", gameserver.Config{})
	if err := n1.srv.Register("chat", chat.New, chat.Config); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	p := player(t, n1.addr)
	p.join(protocol.JoinCreate, "chat", "", nil)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = n1.srv.Shutdown(ctx)
	}()
	var left protocol.Left
	if err := left.Decode(p.expectSkipping(protocol.TypeLeft)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("LEFT after %v: before the drain deadline", d)
	}
	if left.Reason != protocol.LeftDisposed || left.Code != protocol.CodeUnavailable {
		t.Fatalf("left %+v", left)
	}
	var mv protocol.Move
	if err := mv.Decode(p.expectSkipping(protocol.TypeMove)); err != nil {
		t.Fatal(err)
	}
	if code := p.expectClose(3 * time.Second); code != uint16(protocol.CloseDraining) {
		t.Fatalf("close %d", code)
	}
}

// A room whose move fails (the target cannot restore it: here it has no
// such room type) stays on the draining node, and its players, frozen for
// the move, take their seats again and keep playing there until the drain
// deadline instead of hearing nothing.
func TestDrainFailedMoveKeepsPlayersPlaying(t *testing.T) {
	redis := redistest.StartServer(t)
	n1 := startNode(t, redis.URL(), "f1", gameserver.Config{})
	startNode(t, redis.URL(), "f2", gameserver.Config{})
	if err := n1.srv.Register("arena-here", arena.New, arena.Config); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // both registered
	r := newResumer(t, n1.addr, "")
	r.send(&protocol.Join{ReqID: 1, Mode: protocol.JoinCreate, Kind: "arena-here"})
	a := &arenaBot{resumer: r}
	for a.playerID == "" {
		tp, body, err := r.read(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if tp == protocol.TypeJoined {
			var j protocol.Joined
			_ = j.Decode(body)
			a.playerID, a.roomID = j.PlayerID, j.RoomID
		}
	}
	a.input()
	a.readStates(t, 5)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		_ = n1.srv.Shutdown(ctx)
	}()
	// The move fails at once (f2 refuses the room); the room is restored on
	// f1 with a's seat held, and a is reseated. Inputs sent from then on
	// are applied, and states keep coming, before the deadline's MOVE.
	time.Sleep(500 * time.Millisecond)
	want := a.seq + 3
	for i := 0; i < 3; i++ {
		a.input()
	}
	deadline := time.Now().Add(2 * time.Second)
	for a.applied < want {
		tp, body, err := a.next(2 * time.Second)
		if err != nil {
			t.Fatalf("%v after the drain began: no state (applied %d, want %d)", time.Since(start), a.applied, want)
		}
		if tp == protocol.TypeMove || tp == protocol.TypeLeft {
			t.Fatalf("%s %v after the drain began, before the inputs were applied (applied %d, want %d)", tp, time.Since(start), a.applied, want)
		}
		if tp == protocol.TypeState {
			var st protocol.State
			_ = st.Decode(body)
			var as protocol.ArenaState
			_ = as.Decode(st.Body)
			for _, p := range as.Players {
				if string(p.ID) == a.playerID && p.LastSeq > a.applied {
					a.applied = p.LastSeq
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("inputs not applied after the failed move: applied %d, want %d", a.applied, want)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("played again only after %v", d)
	}
}

// A player forwarded to a room on another node is held for the room
// type's resume window, as a player of a local room is, not for its own
// node's default: the room's node tells the session's node the window.
func TestForwardedSeatKeepsTheRoomsResumeWindow(t *testing.T) {
	redis := redistest.StartServer(t)
	long := arena.Config
	long.ResumeWindow = 6 * time.Second
	register := func(srv *gameserver.Server) error { return srv.Register("arena", arena.New, long) }
	cfg := gameserver.Config{ResumeWindow: 300 * time.Millisecond} // the nodes' default
	n1 := startNodeWith(t, redis.URL(), "n1", cfg, register)
	n2 := startNodeWith(t, redis.URL(), "n2", cfg, register)

	a := joinArena(t, n1.addr, protocol.JoinCreate, "")
	b := joinByIDThrough(t, n2.addr, a.roomID)
	b.readStates(t, 2)

	// b's connection drops for 2.5 s: past its node's 300 ms, within the
	// room's 6 s (the sweeper ends expired sessions within a second).
	rst(b.conn)
	time.Sleep(2500 * time.Millisecond)
	if _, code := b.resume(n2.addr, ""); code != 0 {
		t.Fatalf("resume on n2 after 2.5 s: error %d; the room holds the seat for 6 s", code)
	}
	b.lastTick = 0
	for i := 0; i < 3; i++ {
		b.input()
	}
	deadline := time.Now().Add(3 * time.Second)
	for b.applied < b.seq {
		b.readStates(t, 1)
		if time.Now().After(deadline) {
			t.Fatalf("b's inputs after the resume not applied: lastSeq %d of %d", b.applied, b.seq)
		}
	}
}

// A player of another node keeps sending while its room moves: each
// input reaches the room once, before the move or after it, none lost in
// between. The room's node bounces what arrives from the moment it marks
// the room moving until the player's node knows where the room went.
func TestForwardedInputsSurviveAMove(t *testing.T) {
	redis := redistest.StartServer(t)
	// A short resume window: a, told to move, never resumes, and its held
	// seat would keep n2's shutdown waiting for the room.
	cfg := gameserver.Config{RateLimit: 100000, RateBurst: 100000, ResumeWindow: time.Second}
	n1 := startNode(t, redis.URL(), "n1", cfg)
	n2 := startNode(t, redis.URL(), "n2", cfg)

	a := joinArena(t, n1.addr, protocol.JoinCreate, "")
	b := joinByIDThrough(t, n2.addr, a.roomID)
	b.readStates(t, 2)

	// b sends an input every half millisecond from before the drain of n1
	// until after the room runs on n2.
	stop := make(chan struct{})
	sent := make(chan uint32)
	go func() {
		defer func() { sent <- b.seq }()
		for i := 0; i < 6000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b.input()
			time.Sleep(500 * time.Microsecond)
		}
	}()
	time.Sleep(200 * time.Millisecond)
	n1.stop() // the room moves to n2
	waitFor(t, func() bool { return n2.srv.Owns(a.roomID) })
	time.Sleep(200 * time.Millisecond)
	close(stop)
	total := <-sent

	// The room's count of b's inputs reaches what b sent, and stops there.
	var received uint32
	deadline := time.Now().Add(5 * time.Second)
	for received != total {
		if time.Now().After(deadline) {
			t.Fatalf("the room received %d of b's %d inputs", received, total)
		}
		tp, body, err := b.read(3 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if tp == protocol.TypeError {
			var e protocol.ErrorMsg
			_ = e.Decode(body)
			t.Fatalf("b got an error: %+v", e)
		}
		if tp != protocol.TypeState {
			continue
		}
		var st protocol.State
		var as protocol.ArenaState
		if st.Decode(body) != nil || as.Decode(st.Body) != nil {
			t.Fatal("bad state")
		}
		for _, p := range as.Players {
			if string(p.ID) == b.playerID {
				if p.Received > total {
					t.Fatalf("the room received %d of b's %d inputs: some twice", p.Received, total)
				}
				received = p.Received
			}
		}
	}
	t.Logf("%d inputs, every one received once", total)
}
