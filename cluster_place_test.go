package gameserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/cluster"
	"github.com/gameserver/gameserver/internal/cluster/redistest"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gameserver/gameserver/internal/room"
	"github.com/vmihailenco/msgpack/v5"
)

// Join-or-create takes the fullest open matching room on this node before
// any on another node, and a room on another node before creating one.
func TestJoinOrCreatePrefersThisNode(t *testing.T) {
	nodes := []cluster.NodeInfo{{ID: "a"}, {ID: "b"}, {ID: "c", Draining: true}}
	room := func(id, node string, players int) cluster.RoomEntry {
		return cluster.RoomEntry{ID: id, Kind: "chat", Node: node, Players: players, MaxPlayers: 8}
	}
	for _, tc := range []struct {
		name  string
		rooms []cluster.RoomEntry
		want  string
	}{
		{"a fuller room elsewhere, one here", []cluster.RoomEntry{room("r1", "b", 7), room("r2", "a", 1)}, ""},
		{"only elsewhere: the fullest", []cluster.RoomEntry{room("r1", "b", 2), room("r2", "b", 5)}, "b"},
		{"the one here is full", []cluster.RoomEntry{room("r1", "a", 8), room("r2", "b", 3)}, "b"},
		{"the one elsewhere is on a draining node", []cluster.RoomEntry{room("r1", "c", 3)}, ""},
		{"another kind here", []cluster.RoomEntry{{ID: "r1", Kind: "arena", Node: "a", MaxPlayers: 8}, room("r2", "b", 1)}, "b"},
		{"a locked room here", []cluster.RoomEntry{{ID: "r1", Kind: "chat", Node: "a", MaxPlayers: 8, Locked: true}, room("r2", "b", 1)}, "b"},
	} {
		c := &clusterNode{self: "a", nodes: nodes, rooms: tc.rooms}
		got, err := c.place(t.Context(), &protocol.Join{Mode: protocol.JoinOrCreate, Kind: "chat"})
		if err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.name, got, err, tc.want)
		}
	}
}

// Join-or-create across nodes matches the room type's filtered options by
// value, as on one node: mode 7 listed as a uint8 suits a player asking
// for mode 7 as an int64; a room listed without a mode suits only a player
// who asks for none.
func TestJoinOrCreateFiltersAcrossNodes(t *testing.T) {
	rooms := room.NewManager(room.Config{Node: "a"})
	defer rooms.Shutdown("test over")
	if err := rooms.Register("duo", func() game.Handler { return &game.Base{} }, game.RoomConfig{FilterBy: []string{"mode"}}); err != nil {
		t.Fatal(err)
	}
	filters := func(v map[string]any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c := &clusterNode{s: &Server{rooms: rooms}, self: "a", nodes: []cluster.NodeInfo{{ID: "a"}, {ID: "b"}, {ID: "d"}},
		rooms: []cluster.RoomEntry{
			{ID: "r1", Kind: "duo", Node: "b", MaxPlayers: 2, Filters: filters(map[string]any{"mode": uint8(7)})},
			{ID: "r2", Kind: "duo", Node: "d", MaxPlayers: 2},
		}}
	for _, tc := range []struct {
		opts map[string]any
		want string
	}{
		{map[string]any{"mode": int64(7)}, "b"},
		{map[string]any{"mode": 7.0}, "b"},
		{map[string]any{"mode": int64(8)}, ""},
		{map[string]any{"map": "small"}, "b"}, // map is not filtered: both rooms suit; b's is listed first
	} {
		got, err := c.place(t.Context(), &protocol.Join{Mode: protocol.JoinOrCreate, Kind: "duo", Options: filters(tc.opts)})
		if err != nil || got != tc.want {
			t.Errorf("options %v: %q %v, want %q", tc.opts, got, err, tc.want)
		}
	}
}

// A join by ID for a room nobody owns yet waits briefly for its lease: a
// room's node takes the lease just after creating it, so a player handed
// the ID at once can ask first. Placed on the owner once the lease
// appears; here (where the room is unknown: 404) if none does.
func TestJoinByIDWaitsForANewRoomsLease(t *testing.T) {
	redis := redistest.StartServer(t)
	dir, err := cluster.NewRedis(redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	srv, err := New(Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	c := &clusterNode{self: "a", dir: dir, s: srv, ttl: 3 * time.Second}

	acquired := make(chan error, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, err := dir.Acquire(context.Background(), "r-new", "b", 3*time.Second)
		acquired <- err
	}()
	got, err := c.place(t.Context(), &protocol.Join{Mode: protocol.JoinByID, RoomID: "r-new"})
	if err != nil || got != "b" {
		t.Fatalf("a room whose lease appears after the join: %q %v, want b", got, err)
	}
	if err := <-acquired; err != nil {
		t.Fatal(err)
	}
	if got, err := c.place(t.Context(), &protocol.Join{Mode: protocol.JoinByID, RoomID: "r-none"}); err != nil || got != "" {
		t.Fatalf("a room nobody owns: %q %v, want this node", got, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	if _, err := c.place(ctx, &protocol.Join{Mode: protocol.JoinByID, RoomID: "r-none"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a join by ID whose time runs out while it waits: %v, want the deadline", err)
	}
}
