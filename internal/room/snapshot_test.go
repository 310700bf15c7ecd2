package room

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/gameserver/gameserver/examples/arena"
	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

func join(t *testing.T, m *Manager, s *sink, mode protocol.JoinMode, kind, roomID string) {
	t.Helper()
	j := protocol.Join{ReqID: 1, Mode: mode, Kind: kind, RoomID: roomID}
	_, body, _ := protocol.Split(j.Append(nil))
	if err := m.Handle(s, protocol.TypeJoin, body); err != nil {
		t.Fatal(err)
	}
	waitSeated(t, m, s)
}

// waitSeated waits until the room has seated s, asking the room itself.
func waitSeated(t *testing.T, m *Manager, s *sink) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if p := seatOf(s); p != nil {
			seated := false
			_ = m.call(context.Background(), p.room.id, func(r *room) error {
				seated = p.seated && !p.dropped
				return nil
			})
			if seated {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("not seated")
		}
		time.Sleep(time.Millisecond)
	}
}

func input(t *testing.T, m *Manager, s *sink, seq uint32, dx float32) {
	t.Helper()
	_, body, _ := protocol.Split((&protocol.ArenaInput{Seq: seq, DX: dx, DY: -dx}).Append(nil))
	if err := m.Handle(s, protocol.TypeArenaInput, body); err != nil {
		t.Fatal(err)
	}
}

// A snapshot restored into a fresh manager and taken again gives the same
// bytes, and every seat comes back held for its player.
func TestSnapshotRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	a := NewManager(Config{Node: "a"})
	b := NewManager(Config{Node: "b"})
	cfg := arena.Config
	cfg.ResumeWindow = time.Minute
	for _, m := range []*Manager{a, b} {
		if err := m.Register("arena", arena.New, cfg); err != nil {
			t.Fatal(err)
		}
	}
	p1, p2 := &sink{id: "s1"}, &sink{id: "s2"}
	join(t, a, p1, protocol.JoinOrCreate, "arena", "")
	var roomID string
	_ = a.call(context.Background(), seatOf(p1).room.id, func(r *room) error { roomID = r.id; return nil })
	join(t, a, p2, protocol.JoinByID, "", roomID)
	input(t, a, p1, 7, 1)
	input(t, a, p2, 3, -1)
	time.Sleep(150 * time.Millisecond) // a few ticks move the dots

	snap, err := a.Snapshot(ctx, roomID, true)
	if err != nil {
		t.Fatal(err)
	}
	env, err := DecodeEnvelope(snap)
	if err != nil {
		t.Fatal(err)
	}
	if env.RoomID != roomID || len(env.Seats) != 2 || env.Seats[0].SessionID != "s1" || env.Tick == 0 {
		t.Fatalf("envelope %+v", env)
	}
	// The source room stops without telling its players.
	deadline := time.Now().Add(2 * time.Second)
	for a.Has(roomID) {
		if time.Now().After(deadline) {
			t.Fatal("moved room still running")
		}
		time.Sleep(time.Millisecond)
	}
	// Restore on b; freeze it with a long-running call while snapshotting
	// again so no tick moves the dots in between.
	if _, err := b.Restore(ctx, snap); err != nil {
		t.Fatal(err)
	}
	var again []byte
	err = b.call(ctx, roomID, func(r *room) error {
		if len(r.players) != 2 || !r.players[0].dropped || !heldSeat(r.players[0]) {
			t.Errorf("restored seats not held: %+v", r.players)
		}
		g, err := r.handler.(game.Snapshotter).Snapshot(r)
		again = g
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, env.Game) {
		var x, y any
		_ = msgpack.Unmarshal(env.Game, &x)
		_ = msgpack.Unmarshal(again, &y)
		t.Fatalf("restore then snapshot differs:\n%v\n%v", x, y)
	}
	// A player's session comes back: reseated, with its dot.
	p1b := &sink{id: "s1"}
	b.Reseat(p1b, roomID, env.Seats[0].PlayerID)
	waitSeated(t, b, p1b)
	// Someone else cannot take the held seat.
	thief := &sink{id: "s9"}
	b.Reseat(thief, roomID, env.Seats[1].PlayerID)
	if seatOf(thief) != nil {
		t.Fatal("a held seat went to another session")
	}
	a.Shutdown("")
	b.Shutdown("")
}

func TestRestoreRefusals(t *testing.T) {
	ctx := context.Background()
	m := NewManager(Config{})
	if err := m.Register("base", func() game.Handler { return game.Base{} }, game.RoomConfig{}); err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown("")
	if _, err := m.Restore(ctx, []byte{0xc1}); err == nil {
		t.Fatal("garbage restored")
	}
	bad, _ := msgpack.Marshal(&Envelope{Version: 99, Kind: "base", RoomID: "x"})
	if _, err := m.Restore(ctx, bad); err == nil {
		t.Fatal("unknown version restored")
	}
	unknown, _ := msgpack.Marshal(&Envelope{Version: EnvelopeVersion, Kind: "nope", RoomID: "x"})
	if _, err := m.Restore(ctx, unknown); err != ErrUnknownKind {
		t.Fatalf("unknown kind: %v", err)
	}
	noSnap, _ := msgpack.Marshal(&Envelope{Version: EnvelopeVersion, Kind: "base", RoomID: "x"})
	if _, err := m.Restore(ctx, noSnap); err == nil {
		t.Fatal("a handler without Restore restored")
	}
	info, err := m.Create(ctx, "base", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Snapshot(ctx, info.ID, false); err != ErrNotSnapshotter {
		t.Fatalf("snapshot of a non-snapshotter: %v", err)
	}
}

func heldSeat(p *player) bool {
	_, ok := p.held()
	return ok
}

// A room a Snapshot stopped is restored on the same node once AwaitEnded
// returns, however soon after the snapshot: the stopped room has freed
// its ID by then (a move that failed keeps its room this way).
func TestRestoreHereAfterStop(t *testing.T) {
	ctx := context.Background()
	m := NewManager(Config{Node: "a"})
	cfg := arena.Config
	cfg.ResumeWindow = time.Minute
	if err := m.Register("arena", arena.New, cfg); err != nil {
		t.Fatal(err)
	}
	s := &sink{id: "s1"}
	join(t, m, s, protocol.JoinOrCreate, "arena", "")
	roomID := seatOf(s).room.id
	for i := 0; i < 20; i++ {
		snap, err := m.Snapshot(ctx, roomID, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AwaitEnded(ctx, roomID); err != nil {
			t.Fatal(err)
		}
		if m.Has(roomID) {
			t.Fatalf("round %d: the stopped room still holds its ID after AwaitEnded", i)
		}
		if _, err := m.Restore(ctx, snap); err != nil {
			t.Fatalf("round %d: restore after the stop: %v", i, err)
		}
	}
	// An ID no room has returns at once; a running room's waits for ctx.
	if err := m.AwaitEnded(ctx, "no-such-room"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := m.AwaitEnded(short, roomID); err == nil {
		t.Fatal("AwaitEnded returned for a room that is running")
	}
}
