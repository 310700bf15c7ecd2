package room

import (
	"errors"
	"testing"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/protocol"
)

// refuser refuses to be created.
type refuser struct{ game.Base }

func (refuser) OnCreate(game.Room, game.Options) error {
	return &game.Error{Code: 1001, Message: "not today"}
}

// A join whose new room has already refused its creation, and stopped, by
// the time the join's event is queued (the room runs on its shard while the
// join is still on its way) is told OnCreate's refusal, not that the room
// is busy.
func TestJoinToldOfRefusedCreate(t *testing.T) {
	m := NewManager(Config{Manual: true})
	defer m.Shutdown("test over")
	if err := m.Register("refuser", func() game.Handler { return refuser{} }, game.RoomConfig{MaxPlayers: 2}); err != nil {
		t.Fatal(err)
	}
	_, body, _ := protocol.Split((&protocol.Join{ReqID: 1, Mode: protocol.JoinCreate, Kind: "refuser"}).Append(nil))
	if err := m.Handle(&sink{id: "a"}, protocol.TypeJoin, body); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	var r *room
	for _, x := range m.rooms {
		r = x
	}
	m.mu.Unlock()
	if r == nil {
		t.Fatal("no room created")
	}
	if err := r.joinRefusal(); !errors.Is(err, errBusy) {
		t.Fatalf("before the room ran: %v, want busy", err)
	}
	m.Step() // OnCreate refuses; the room stops
	if r.post(event{kind: evJoin, p: &player{id: "late", room: r, index: -1}}, false) {
		t.Fatal("a stopped room took a join")
	}
	var pe *protocol.Error
	if err := r.joinRefusal(); !errors.As(err, &pe) || pe.Code != 1001 || pe.Message != "not today" {
		t.Fatalf("after the refusal: %v, want OnCreate's error 1001", err)
	}
}
