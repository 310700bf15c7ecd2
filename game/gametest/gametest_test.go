package gametest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gameserver/gameserver/examples/arena"
	"github.com/gameserver/gameserver/examples/chat"
	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/game/gametest"
)

// arenaPlayer is one entry of the arena's state.
type arenaPlayer struct {
	_msgpack struct{} `msgpack:",as_array"`
	ID       string
	X, Y     float32
	LastSeq  uint32
	Received uint32
}

func findPlayer(t *testing.T, m gametest.Message, id string) arenaPlayer {
	t.Helper()
	var ps []arenaPlayer
	if err := m.Decode(&ps); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("player %s not in the state %+v", id, ps)
	return arenaPlayer{}
}

// The arena moves a steering player by Speed × dt on every tick of the fake
// clock, and every tick is run on the way when the clock jumps.
func TestArenaTicksOnTheFakeClock(t *testing.T) {
	rt := gametest.New(t, arena.New(), arena.Config)
	alice, bob := rt.Join("alice"), rt.Join("bob")
	if alice.PlayerID() == "" || alice.PlayerID() == bob.PlayerID() || rt.ID() == "" {
		t.Fatalf("player ids %q and %q, room %q", alice.PlayerID(), bob.PlayerID(), rt.ID())
	}
	if len(alice.Messages()) == 0 || alice.Messages()[0].Type != gametest.Presence {
		t.Fatalf("alice should have heard bob join: %+v", alice.Messages())
	}
	start := rt.Now()
	rt.Advance(50 * time.Millisecond)
	st := rt.Expect(t, alice, gametest.State)
	x0 := findPlayer(t, st, alice.PlayerID()).X
	if st.Tick != 1 {
		t.Fatalf("first state has tick %d", st.Tick)
	}
	if err := rt.Send(alice, arena.MsgInput, arena.Input{Seq: 1, DX: 1}); err != nil {
		t.Fatal(err)
	}
	rt.Advance(time.Second) // 20 ticks
	if got := rt.Now().Sub(start); got != 1050*time.Millisecond {
		t.Fatalf("clock moved %v", got)
	}
	var last gametest.Message
	for i := 0; i < 20; i++ {
		last = rt.Expect(t, alice, gametest.State)
		if last.Tick != uint64(i+2) {
			t.Fatalf("state %d has tick %d", i, last.Tick)
		}
	}
	me := findPlayer(t, last, alice.PlayerID())
	if me.LastSeq != 1 || me.Received != 1 {
		t.Fatalf("input not applied: %+v", me)
	}
	if want := x0 + arena.Speed; me.X < want-0.01 || me.X > want+0.01 {
		t.Fatalf("x %v after a second at full speed from %v, want %v", me.X, x0, want)
	}
	if msgs := alice.Messages(); len(msgs) != 0 {
		t.Fatalf("%d messages left after the states", len(msgs))
	}
	if len(bob.Messages()) != 21 {
		t.Fatalf("bob got %d messages, want 21 states", len(bob.Messages()))
	}
}

// A game's refusal reaches the client as an ERROR, the room's at once as
// the error of the call.
func TestRefusals(t *testing.T) {
	rt := gametest.New(t, arena.New(), arena.Config, gametest.WithOptions(game.Options{"size": 1}))
	alice := rt.Join("alice")
	_, err := rt.TryJoin("bob", nil)
	var ge *game.Error
	if !errors.As(err, &ge) || ge.Code != game.ErrRoomFull.Code {
		t.Fatalf("joining a full room: %v, want room full", err)
	}
	if err := rt.SendBytes(alice, arena.MsgInput, []byte{0xc1}); err != nil {
		t.Fatal(err)
	}
	e := rt.Expect(t, alice, gametest.Error).Error()
	if e == nil || e.Code != game.ErrBadRequest.Code {
		t.Fatalf("a body that does not decode: %v, want 400", e)
	}
	if err := rt.Leave(alice); err != nil {
		t.Fatal(err)
	}
	if got := rt.Expect(t, alice, gametest.Left).LeftReason(); got != "left" {
		t.Fatalf("left with reason %q", got)
	}
	if err := rt.Send(alice, arena.MsgInput, arena.Input{Seq: 2}); !errors.As(err, &ge) || ge.Code != 406 {
		t.Fatalf("a message after leaving: %v, want not in a room", err)
	}
	bad := gametest.New(t, arena.New(), arena.Config, gametest.WithOptions(game.Options{"size": 99}))
	if _, err := bad.TryJoin("carol", nil); !errors.As(err, &ge) || ge.Code != game.ErrInvalidOptions.Code {
		t.Fatalf("OnCreate refusing its options: %v", err)
	}
}

// Join options reach OnJoin; the chat's roster and history come with the
// seat.
func TestChatJoinOptions(t *testing.T) {
	rt := gametest.New(t, chat.New(), chat.Config)
	alice := rt.JoinWith("u1", game.Options{"name": "alice"})
	rt.Expect(t, alice, chat.MsgRoster)
	bob := rt.JoinWith("u2", game.Options{"name": "bob"})
	var joined []string
	if err := rt.Expect(t, alice, chat.MsgJoined).Decode(&joined); err != nil || len(joined) != 2 || joined[1] != "bob" {
		t.Fatalf("alice heard %v, %v", joined, err)
	}
	if err := rt.Send(bob, chat.MsgSay, chat.Say{Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	var said []string
	if err := rt.Expect(t, alice, chat.MsgSaid).Decode(&said); err != nil || len(said) != 3 || said[1] != "bob" || said[2] != "hi" {
		t.Fatalf("alice got %v, %v", said, err)
	}
}

// timers is a handler for the clock's semantics: After, Every, Go, drops
// and the resume window.
type timers struct {
	game.Base
	log   []string
	every game.Timer
}

func (h *timers) note(r game.Room, s string) {
	h.log = append(h.log, r.Now().Sub(gametest.Start).String()+" "+s)
}

func (h *timers) OnCreate(r game.Room, _ game.Options) error {
	r.After(120*time.Millisecond, func(r game.Room) { h.note(r, "after") })
	h.every = r.Every(300*time.Millisecond, func(r game.Room) { h.note(r, "every") })
	r.Go(func(context.Context) func(game.Room) {
		return func(r game.Room) { h.note(r, "go done") }
	})
	return nil
}

func (h *timers) OnDrop(r game.Room, p game.Player)   { h.note(r, "drop") }
func (h *timers) OnResume(r game.Room, p game.Player) { h.note(r, "resume") }
func (h *timers) OnLeave(r game.Room, p game.Player, why game.LeaveReason) {
	h.note(r, "leave "+why.String())
	h.every.Stop()
}

func TestTimersAndResumeWindow(t *testing.T) {
	h := &timers{}
	rt := gametest.New(t, h, game.RoomConfig{TickRate: 1, ResumeWindow: 2 * time.Second, EmptyTimeout: time.Hour})
	a := rt.Join("alice")
	rt.Wait()
	rt.Advance(700 * time.Millisecond)
	rt.Drop(a)
	rt.Advance(100 * time.Millisecond)
	rt.Resume(a)
	rt.Drop(a)
	rt.Advance(3 * time.Second)
	want := []string{"0s go done", "120ms after", "300ms every", "600ms every", "700ms drop", "800ms resume", "800ms drop", "900ms every", "1.2s every",
		"1.5s every", "1.8s every", "2.1s every", "2.4s every", "2.7s every", "2.8s leave dropped"}
	got := h.log
	if len(got) != len(want) {
		t.Fatalf("log %q,\nwant %q", h.log, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entry %d: %q, want %q (log %q)", i, got[i], want[i], h.log)
		}
	}
}

// The clock starts where WithStart says, and does not go back.
func TestClock(t *testing.T) {
	at := time.Date(2031, 6, 1, 12, 0, 0, 0, time.UTC)
	var seen time.Time
	h := &nowHandler{seen: &seen}
	rt := gametest.New(t, h, game.RoomConfig{TickRate: 10}, gametest.WithStart(at))
	rt.Join("alice")
	if !seen.Equal(at) {
		t.Fatalf("OnCreate saw %v, want %v", seen, at)
	}
	rt.Advance(250 * time.Millisecond)
	if want := at.Add(200 * time.Millisecond); !h.lastTick.Equal(want) {
		t.Fatalf("last tick at %v, want %v", h.lastTick, want)
	}
	if h.ticks != 2 || h.dt != 100*time.Millisecond {
		t.Fatalf("%d ticks, dt %v", h.ticks, h.dt)
	}
}

type nowHandler struct {
	game.Base
	seen     *time.Time
	lastTick time.Time
	ticks    int
	dt       time.Duration
}

func (h *nowHandler) OnCreate(r game.Room, _ game.Options) error {
	*h.seen = r.Now()
	return nil
}

func (h *nowHandler) OnTick(r game.Room, dt time.Duration) {
	h.lastTick, h.dt = r.Now(), dt
	h.ticks++
}

// A panicking game ends its room: the players are told, and the harness
// (like the server) carries on.
func TestPanicEndsTheRoom(t *testing.T) {
	rt := gametest.New(t, &panicky{}, game.RoomConfig{TickRate: 10})
	a := rt.Join("alice")
	rt.Advance(100 * time.Millisecond)
	if got := rt.Expect(t, a, gametest.Left).LeftReason(); got != "disposed" {
		t.Fatalf("left with %q, want disposed", got)
	}
}

type panicky struct{ game.Base }

func (panicky) OnTick(game.Room, time.Duration) { panic("bug in the game") }
