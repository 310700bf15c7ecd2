package gameserver

import (
	"errors"
	"testing"
	"time"

	"github.com/gameserver/gameserver/internal/api"
)

// The cluster's overview puts the nodes side by side, sums the room types
// and webhook totals, keeps the fullest rooms of all, and lists a node
// that did not answer as unreachable.
func TestMergeOverviews(t *testing.T) {
	at := time.Unix(1_700_000_000, 0).UTC()
	room := func(id string, players int, created int64) api.Room {
		return api.Room{ID: id, Players: players, Created: time.Unix(created, 0).UTC()}
	}
	here := api.Overview{Time: at, Nodes: []api.Node{{Name: "a", Status: "ready", Rooms: 2}},
		Kinds:      []api.Kind{{Kind: "arena", Rooms: 2, Players: 10, TickMeanMs: 1, TickP99Ms: 4}},
		Rooms:      []api.Room{room("a1", 6, 1), room("a2", 4, 2)},
		RoomsTotal: 2, Webhooks: &api.WebhookStats{Queued: 1, Delivered: 10, Failed: 2, Dropped: 1}}
	other := api.Overview{Time: at.Add(-300 * time.Millisecond), Nodes: []api.Node{{Name: "b", Status: "draining", Rooms: 3}},
		Kinds: []api.Kind{{Kind: "chat", Rooms: 1, Players: 3, TickMeanMs: 0.5, TickP99Ms: 1},
			{Kind: "arena", Rooms: 2, Players: 8, TickMeanMs: 3, TickP99Ms: 8}},
		Rooms:      []api.Room{room("b1", 6, 0), room("b2", 5, 3), room("b3", 3, 4)},
		RoomsTotal: 3, Webhooks: &api.WebhookStats{Delivered: 5, Failed: 1}}
	o := mergeOverviews(here, []string{"a", "b", "c"}, []api.Overview{here, other, {}}, []error{nil, nil, errors.New("timeout")})

	if !o.Time.Equal(at) || o.RoomsTotal != 5 {
		t.Errorf("time %v, rooms total %d", o.Time, o.RoomsTotal)
	}
	if len(o.Nodes) != 3 || o.Nodes[0].Name != "a" || o.Nodes[1].Name != "b" || o.Nodes[1].Status != "draining" ||
		o.Nodes[2] != (api.Node{Name: "c", Status: "unreachable"}) {
		t.Errorf("nodes %+v", o.Nodes)
	}
	want := []api.Kind{{Kind: "arena", Rooms: 4, Players: 18, TickMeanMs: 2, TickP99Ms: 8}, {Kind: "chat", Rooms: 1, Players: 3, TickMeanMs: 0.5, TickP99Ms: 1}}
	if len(o.Kinds) != 2 || o.Kinds[0] != want[0] || o.Kinds[1] != want[1] {
		t.Errorf("kinds %+v, want %+v", o.Kinds, want)
	}
	var ids []string
	for _, r := range o.Rooms {
		ids = append(ids, r.ID)
	}
	if got := ids; len(got) != 5 || got[0] != "b1" || got[1] != "a1" || got[2] != "b2" || got[3] != "a2" || got[4] != "b3" {
		t.Errorf("rooms %v: want the fullest first, the older first among equals", got)
	}
	if w := o.Webhooks; w == nil || *w != (api.WebhookStats{Queued: 1, Delivered: 15, Failed: 3, Dropped: 1}) {
		t.Errorf("webhooks %+v", w)
	}

	// At most RoomsLimit rooms, whatever the nodes send.
	many := api.Overview{Nodes: []api.Node{{Name: "a"}}, RoomsTotal: 150}
	for i := range 150 {
		many.Rooms = append(many.Rooms, room("r", i, int64(i)))
	}
	o = mergeOverviews(many, []string{"a", "b"}, []api.Overview{many, many}, []error{nil, nil})
	if len(o.Rooms) != api.RoomsLimit || o.Rooms[0].Players != 149 || o.RoomsTotal != 300 || o.Webhooks != nil {
		t.Errorf("%d rooms, the first with %d players, total %d, webhooks %v", len(o.Rooms), o.Rooms[0].Players, o.RoomsTotal, o.Webhooks)
	}
}
