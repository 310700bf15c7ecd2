package gameserver

import (
	"testing"

	"github.com/gameserver/gameserver/internal/cluster"
	"github.com/gameserver/gameserver/internal/protocol"
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
