package gameserver_test

import (
	"context"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/examples/chat"
	"github.com/gameserver/gameserver/internal/cluster"
	"github.com/gameserver/gameserver/internal/cluster/redistest"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gameserver/gameserver/internal/webhook"
	"github.com/vmihailenco/msgpack/v5"
)

type apiRoom struct {
	ID      string `json:"id"`
	Node    string `json:"node"`
	Players int    `json:"players"`
}

// In a cluster, each node's API answers for every node: listings and the
// monitor's figures gather all of them, and a room's requests reach it on
// its owner, whichever node they land on.
func TestClusterAPI(t *testing.T) {
	redis := redistest.StartServer(t)
	n1 := startNode(t, redis.URL(), "n1", gameserver.Config{APIKeys: []string{apiKey}})
	n2 := startNode(t, redis.URL(), "n2", gameserver.Config{APIKeys: []string{apiKey}})
	a1, a2 := &backendNode{addr: n1.addr}, &backendNode{addr: n2.addr}

	var r1, r2 struct {
		Room apiRoom `json:"room"`
	}
	if code := a1.call(t, "POST", "/api/v1/rooms", `{"kind":"arena"}`, &r1); code != http.StatusCreated || r1.Room.Node != "n1" {
		t.Fatalf("create on n1: %d %+v", code, r1)
	}
	if code := a2.call(t, "POST", "/api/v1/rooms", `{"kind":"arena"}`, &r2); code != http.StatusCreated || r2.Room.Node != "n2" {
		t.Fatalf("create on n2: %d %+v", code, r2)
	}
	list := func(a *backendNode, query string) (rooms []apiRoom) {
		t.Helper()
		var out struct {
			Rooms []apiRoom `json:"rooms"`
		}
		if code := a.call(t, "GET", "/api/v1/rooms"+query, "", &out); code != http.StatusOK {
			t.Fatalf("list%s: %d", query, code)
		}
		return out.Rooms
	}
	// Either node lists both rooms, sorted by ID, each on its node.
	for _, a := range []*backendNode{a1, a2} {
		waitFor(t, func() bool { return len(list(a, "")) == 2 })
		rooms := list(a, "?kind=arena")
		if len(rooms) != 2 || rooms[0].ID > rooms[1].ID {
			t.Fatalf("list: %+v", rooms)
		}
		for _, r := range rooms {
			if want := map[string]string{r1.Room.ID: "n1", r2.Room.ID: "n2"}[r.ID]; r.Node != want {
				t.Fatalf("room %s on %q, want %q", r.ID, r.Node, want)
			}
		}
		if rooms := list(a, "?node=n2"); len(rooms) != 1 || rooms[0].ID != r2.Room.ID {
			t.Fatalf("list ?node=n2: %+v", rooms)
		}
		if rooms := list(a, "?node=n1"); len(rooms) != 1 || rooms[0].ID != r1.Room.ID {
			t.Fatalf("list ?node=n1: %+v", rooms)
		}
		if rooms := list(a, "?node=n9"); len(rooms) != 0 {
			t.Fatalf("list ?node=n9: %+v", rooms)
		}
		if rooms := list(a, "?kind=chat"); len(rooms) != 0 {
			t.Fatalf("list ?kind=chat: %+v", rooms)
		}
	}

	// A player in n2's room; n1's API sees it, messages it, kicks it.
	bot := joinArena(t, n2.addr, protocol.JoinByID, r2.Room.ID)
	var detail struct {
		apiRoom
		PlayerList []struct {
			ID string `json:"id"`
		} `json:"playerList"`
	}
	path := "/api/v1/rooms/" + r2.Room.ID
	if code := a1.call(t, "GET", path, "", &detail); code != http.StatusOK || detail.Node != "n2" ||
		len(detail.PlayerList) != 1 || detail.PlayerList[0].ID != bot.playerID {
		t.Fatalf("room of n2 through n1: %d %+v", code, detail)
	}
	if code := a1.call(t, "POST", path+"/messages", `{"type":"0x1101","body":["hello",7]}`, nil); code != http.StatusNoContent {
		t.Fatalf("send through n1: %d", code)
	}
	for {
		tp, body, err := bot.read(3 * time.Second)
		if err != nil {
			t.Fatalf("the message sent through n1 did not arrive: %v", err)
		}
		if tp == 0x1101 {
			var v []any
			if err := msgpack.Unmarshal(body, &v); err != nil || len(v) != 2 || v[0] != "hello" {
				t.Fatalf("message body %x: %v %v", body, v, err)
			}
			break
		}
	}
	if code := a1.call(t, "POST", path+"/players/"+bot.playerID+"/kick", `{"code":4003,"message":"cheating"}`, nil); code != http.StatusNoContent {
		t.Fatalf("kick through n1: %d", code)
	}
	for {
		tp, body, err := bot.read(3 * time.Second)
		if err != nil {
			t.Fatalf("the kick sent through n1 did not arrive: %v", err)
		}
		if tp == protocol.TypeLeft {
			var l protocol.Left
			if err := l.Decode(body); err != nil || l.Code != 4003 {
				t.Fatalf("left %+v %v", l, err)
			}
			break
		}
	}
	a1.expectErr(t, "Bearer "+apiKey, "POST", path+"/players/nobody/kick", "", http.StatusNotFound, "no such player")
	a1.expectErr(t, "Bearer "+apiKey, "GET", "/api/v1/rooms/no-such-room", "", http.StatusNotFound, "no such room")

	// The monitor's figures: both nodes, both rooms.
	waitFor(t, func() bool {
		var ov struct {
			Nodes []struct {
				Name   string `json:"name"`
				Status string `json:"status"`
			} `json:"nodes"`
			RoomsTotal int `json:"roomsTotal"`
		}
		if code := a2.call(t, "GET", "/api/v1/overview", "", &ov); code != http.StatusOK {
			t.Fatalf("overview: %d", code)
		}
		return len(ov.Nodes) == 2 && ov.Nodes[0].Name == "n2" && ov.Nodes[1].Name == "n1" && ov.Nodes[1].Status == "ready" && ov.RoomsTotal == 2
	})

	// Dispose n1's room through n2: it is gone from both.
	if code := a2.call(t, "DELETE", "/api/v1/rooms/"+r1.Room.ID, "", nil); code != http.StatusAccepted {
		t.Fatalf("dispose through n2: %d", code)
	}
	waitFor(t, func() bool {
		rooms := list(a2, "")
		return len(rooms) == 1 && rooms[0].ID == r2.Room.ID
	})

	// The peer API takes the cluster's key only.
	for _, auth := range []string{"", "Bearer " + apiKey} {
		a1.expectErr(t, auth, "GET", "/cluster/peer/api/v1/rooms", "", http.StatusUnauthorized, "API key")
	}

	// A node that left is no longer asked; its room moved to n1 as it
	// drained.
	n2.stop()
	rooms := list(a1, "")
	if len(rooms) != 1 || rooms[0].ID != r2.Room.ID || rooms[0].Node != "n1" {
		t.Fatalf("after n2 left: %+v", rooms)
	}
}

// The last node of a cluster waits, as it drains, for the rooms that could
// not move while someone plays in them, but not for an empty room: that
// would only wait for the room's empty timeout (10 s for arena).
func TestDrainDoesNotWaitForEmptyRooms(t *testing.T) {
	redis := redistest.StartServer(t)
	n := startNode(t, redis.URL(), "n1", gameserver.Config{APIKeys: []string{apiKey}})
	var created struct {
		Room apiRoom `json:"room"`
	}
	if code := (&backendNode{addr: n.addr}).call(t, "POST", "/api/v1/rooms", `{"kind":"arena"}`, &created); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %v with one empty room", d)
	}
}

// A node that is registered but does not answer fails a listing with 502
// naming it, rather than leaving its rooms out, and shows in the overview
// as unreachable; what does not need it still works.
func TestClusterAPINodeUnreachable(t *testing.T) {
	redis := redistest.StartServer(t)
	n1 := startNode(t, redis.URL(), "n1", gameserver.Config{APIKeys: []string{apiKey}})
	a1 := &backendNode{addr: n1.addr}

	// "ghost" is alive in the directory, at a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	dir, err := cluster.NewRedis(redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if err := dir.Register(context.Background(), cluster.NodeInfo{ID: "ghost", Addr: dead, Updated: time.Now()}, time.Minute); err != nil {
		t.Fatal(err)
	}

	var created struct {
		Room apiRoom `json:"room"`
	}
	if code := a1.call(t, "POST", "/api/v1/rooms", `{"kind":"arena"}`, &created); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	a1.expectErr(t, "Bearer "+apiKey, "GET", "/api/v1/rooms", "", http.StatusBadGateway, "node ghost")
	a1.expectErr(t, "Bearer "+apiKey, "GET", "/api/v1/rooms?node=ghost", "", http.StatusBadGateway, "unreachable")
	var list struct {
		Rooms []apiRoom `json:"rooms"`
	}
	if code := a1.call(t, "GET", "/api/v1/rooms?node=n1", "", &list); code != http.StatusOK || len(list.Rooms) != 1 || list.Rooms[0].ID != created.Room.ID {
		t.Fatalf("list ?node=n1: %d %+v", code, list)
	}
	var detail apiRoom
	if code := a1.call(t, "GET", "/api/v1/rooms/"+created.Room.ID, "", &detail); code != http.StatusOK || detail.ID != created.Room.ID {
		t.Fatalf("own room: %d %+v", code, detail)
	}
	var nodes struct {
		Nodes []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
			Rooms  int    `json:"rooms"`
		} `json:"nodes"`
	}
	if code := a1.call(t, "GET", "/api/v1/nodes", "", &nodes); code != http.StatusOK || len(nodes.Nodes) != 2 ||
		nodes.Nodes[0].Name != "n1" || nodes.Nodes[0].Status != "ready" ||
		nodes.Nodes[1].Name != "ghost" || nodes.Nodes[1].Status != "unreachable" {
		t.Fatalf("nodes: %d %+v", code, nodes)
	}
}

// A room a drain moves is one room.moved to the backend, from the node it
// now runs on: not a disposal from the old node (which could arrive after
// the new node's creation) and not a second creation.
func TestWebhooksOfAMovedRoom(t *testing.T) {
	recv := newHookReceiver(t, func(int) (int, time.Duration) { return http.StatusNoContent, 0 })
	redis := redistest.StartServer(t)
	cfg := gameserver.Config{APIKeys: []string{apiKey}, WebhookURLs: []string{recv.srv.URL}, WebhookSecret: hookSecret}
	n1 := startNode(t, redis.URL(), "n1", cfg)
	startNode(t, redis.URL(), "n2", cfg)
	var created struct {
		Room apiRoom `json:"room"`
	}
	if code := (&backendNode{addr: n1.addr}).call(t, "POST", "/api/v1/rooms", `{"kind":"arena"}`, &created); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	id := created.Room.ID
	n1.stop() // the arena room moves to n2
	waitFor(t, func() bool { return recv.acceptedType(webhook.RoomMoved) })
	var kinds []string
	for _, e := range recv.accepted() {
		if e.Room == nil || e.Room.ID != id {
			continue
		}
		kinds = append(kinds, e.Type+"@"+e.Node)
	}
	// Each node delivers on its own: the two may arrive in either order.
	slices.Sort(kinds)
	if len(kinds) != 2 || kinds[0] != "room.created@n1" || kinds[1] != "room.moved@n2" {
		t.Fatalf("the room's events: %v, want room.created from n1 and room.moved from n2", kinds)
	}
}

// A node that drains creates no rooms: a create it receives is made on the
// least loaded node that does not drain.
func TestClusterAPICreateWhileDraining(t *testing.T) {
	redis := redistest.StartServer(t)
	n1 := startNode(t, redis.URL(), "n1", gameserver.Config{APIKeys: []string{apiKey}})
	startNode(t, redis.URL(), "n2", gameserver.Config{APIKeys: []string{apiKey}})
	// A chat room cannot move: with a player in it, n1 drains until its
	// deadline is near.
	if err := n1.srv.Register("chat", chat.New, chat.Config); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // both registered, and seen
	p := player(t, n1.addr)
	p.join(protocol.JoinCreate, "chat", "", nil)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = n1.srv.Shutdown(ctx)
	}()
	a1 := &backendNode{addr: n1.addr}
	waitFor(t, func() bool {
		resp, err := http.Get("http://" + n1.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	var created struct {
		Room apiRoom `json:"room"`
	}
	if code := a1.call(t, "POST", "/api/v1/rooms", `{"kind":"arena"}`, &created); code != http.StatusCreated || created.Room.Node != "n2" {
		t.Fatalf("create on draining n1: %d %+v, want 201 on n2", code, created)
	}
}
