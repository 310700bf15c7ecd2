package main

import (
	"testing"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/game/gametest"
)

// The README's game, tested with game/gametest: a move shows in the next
// tick's state, and a player who left is gone from it.
func TestTag(t *testing.T) {
	rt := gametest.New(t, &Tag{}, game.RoomConfig{TickRate: 20, MaxPlayers: 8})
	alice, bob := rt.Join("alice"), rt.Join("bob")
	if err := rt.Send(alice, MsgMove, Move{X: 3, Y: 4}); err != nil {
		t.Fatal(err)
	}
	rt.Advance(50 * time.Millisecond)
	var state map[string][2]float32
	if err := rt.Expect(t, bob, gametest.State).Decode(&state); err != nil {
		t.Fatal(err)
	}
	if got := state[alice.PlayerID()]; got != [2]float32{3, 4} || len(state) != 1 {
		t.Fatalf("state %v, want alice at [3 4] only", state)
	}
	if err := rt.Leave(alice); err != nil {
		t.Fatal(err)
	}
	rt.Advance(50 * time.Millisecond)
	var after map[string][2]float32
	if err := rt.Expect(t, bob, gametest.State).Decode(&after); err != nil {
		t.Fatal(err)
	}
	if len(after) != 0 {
		t.Fatalf("state %v after alice left, want empty", after)
	}
}
