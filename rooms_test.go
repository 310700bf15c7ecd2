package gameserver_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/examples/arena"
	"github.com/gameserver/gameserver/examples/chat"
	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

// Room types written against the public API only, as a game developer
// would: this external test package proves the API is importable.

const (
	msgEcho  game.MsgType = 0x2000
	msgPanic game.MsgType = 0x2001
	msgLock  game.MsgType = 0x2002
	msgTimer game.MsgType = 0x2003
	msgFired game.MsgType = 0x2004
	msgKick  game.MsgType = 0x2005
	msgGo    game.MsgType = 0x2006
)

type testRoom struct {
	game.Base
	sleep time.Duration
}

func (t *testRoom) OnCreate(r game.Room, opts game.Options) error {
	if opts.String("fail", "") != "" {
		return game.NewError(1001, "refused to create")
	}
	if v := opts.String("label", ""); v != "" {
		r.SetMetadata("label", v)
	}
	if opts.String("private", "") == "yes" {
		r.SetPrivate(true)
	}
	t.sleep = time.Duration(opts.Int("sleepMs", 0)) * time.Millisecond
	r.Handle(msgEcho, func(r game.Room, p game.Player, m game.Message) error {
		return r.SendBytes(p, msgEcho, m.Body)
	})
	r.Handle(msgPanic, func(game.Room, game.Player, game.Message) error { panic("game bug") })
	r.Handle(msgLock, func(r game.Room, _ game.Player, _ game.Message) error { r.Lock(); return nil })
	r.Handle(msgKick, func(r game.Room, p game.Player, _ game.Message) error {
		r.Kick(p, game.NewError(1002, "bye"))
		return nil
	})
	r.Handle(msgTimer, func(r game.Room, p game.Player, _ game.Message) error {
		n := 0
		var tm game.Timer
		tm = r.Every(10*time.Millisecond, func(r game.Room) {
			n++
			_ = r.Send(p, msgFired, n)
			if n == 3 {
				tm.Stop()
			}
		})
		return nil
	})
	r.Handle(msgGo, func(r game.Room, p game.Player, _ game.Message) error {
		r.Go(func(ctx context.Context) func(game.Room) {
			v := 41 // work done off the loop
			return func(r game.Room) { _ = r.Send(p, msgGo, v+1) }
		})
		return nil
	})
	return nil
}

func (t *testRoom) OnJoin(r game.Room, p game.Player, req game.JoinRequest) error {
	if req.Options.String("name", "") == "mallory" {
		return game.NewError(1003, "not you")
	}
	return nil
}

func (t *testRoom) OnTick(r game.Room, dt time.Duration) { time.Sleep(t.sleep) }

func startRooms(t *testing.T, cfg gameserver.Config) (*gameserver.Server, string) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	srv, err := gameserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(srv.Register("test", func() game.Handler { return &testRoom{} }, game.RoomConfig{MaxPlayers: 4, EmptyTimeout: 200 * time.Millisecond, ResumeWindow: 300 * time.Millisecond}))
	must(srv.Register("duo", func() game.Handler { return &testRoom{} }, game.RoomConfig{MaxPlayers: 2, FilterBy: []string{"mode"}}))
	must(srv.Register("arena", arena.New, arena.Config))
	must(srv.Register("chat", chat.New, chat.Config))
	must(srv.Listen())
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return srv, srv.Addr().String()
}

func opts(t *testing.T, kv ...any) []byte {
	t.Helper()
	m := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, err := msgpack.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (c *client) join(mode protocol.JoinMode, kind, roomID string, options []byte) protocol.Joined {
	c.t.Helper()
	c.send(&protocol.Join{ReqID: 7, Mode: mode, Kind: kind, RoomID: roomID, Options: options})
	var j protocol.Joined
	if err := j.Decode(c.expect(protocol.TypeJoined)); err != nil {
		c.t.Fatal(err)
	}
	if j.ReqID != 7 {
		c.t.Fatalf("joined answers req %d", j.ReqID)
	}
	return j
}

func (c *client) joinErr(mode protocol.JoinMode, kind, roomID string, options []byte, code protocol.Code) {
	c.t.Helper()
	c.send(&protocol.Join{ReqID: 9, Mode: mode, Kind: kind, RoomID: roomID, Options: options})
	e := c.expectError(code)
	if e.ReqID != 9 || e.Ref != protocol.TypeJoin {
		c.t.Fatalf("join error %+v: want req 9, ref join", e)
	}
}

func player(t *testing.T, addr string) *client {
	c := dial(t, addr)
	c.hello()
	return c
}

func TestArenaPlaysAndStatesCarrySeq(t *testing.T) {
	_, addr := startRooms(t, gameserver.Config{})
	a, b := player(t, addr), player(t, addr)
	ja := a.join(protocol.JoinOrCreate, "arena", "", nil)
	jb := b.join(protocol.JoinOrCreate, "arena", "", nil)
	if ja.RoomID != jb.RoomID || ja.PlayerID == jb.PlayerID || ja.TickRate != 20 || ja.Kind != "arena" {
		t.Fatalf("joined %+v and %+v", ja, jb)
	}
	for seq := uint32(1); seq <= 5; seq++ {
		a.sendRaw((&protocol.ArenaInput{Seq: seq, DX: 1}).Append(nil))
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		var st protocol.State
		if err := st.Decode(a.expectSkipping(protocol.TypeState)); err != nil {
			t.Fatal(err)
		}
		if lag := time.Since(time.Unix(0, st.ServerTimeNs)); lag < 0 || lag > 2*time.Second {
			t.Fatalf("server time %v off by %v", st.ServerTimeNs, lag)
		}
		var as protocol.ArenaState
		if err := as.Decode(st.Body); err != nil {
			t.Fatal(err)
		}
		if len(as.Players) != 2 {
			t.Fatalf("%d players in state", len(as.Players))
		}
		for _, p := range as.Players {
			if string(p.ID) == ja.PlayerID && p.LastSeq == 5 {
				if p.X <= 0 {
					t.Fatal("input did not move the dot")
				}
				return
			}
		}
	}
	t.Fatal("no state showed seq 5")
}

// expectSkipping reads until a message of type want, skipping any other.
func (c *client) expectSkipping(want protocol.MsgType) []byte {
	c.t.Helper()
	for {
		tp, body, err := c.next(3 * time.Second)
		if err != nil {
			c.t.Fatalf("waiting for %v: %v", want, err)
		}
		if tp == want {
			return body
		}
	}
}

func TestMatchmaking(t *testing.T) {
	srv, addr := startRooms(t, gameserver.Config{})
	a, b, c := player(t, addr), player(t, addr), player(t, addr)

	// duo has two seats: the third player gets a room of its own.
	ja := a.join(protocol.JoinOrCreate, "duo", "", nil)
	jb := b.join(protocol.JoinOrCreate, "duo", "", nil)
	jc := c.join(protocol.JoinOrCreate, "duo", "", nil)
	if ja.RoomID != jb.RoomID || jc.RoomID == ja.RoomID {
		t.Fatalf("rooms %s %s %s", ja.RoomID, jb.RoomID, jc.RoomID)
	}
	d := player(t, addr)
	d.joinErr(protocol.JoinByID, "", ja.RoomID, nil, protocol.CodeRoomFull)
	d.joinErr(protocol.JoinByID, "", "nosuchroom", nil, protocol.CodeRoomNotFound)
	d.joinErr(protocol.JoinOrCreate, "nosuchtype", "", nil, protocol.CodeRoomNotFound)
	d.joinErr(protocol.JoinOrCreate, "duo", "", []byte{0x93, 1, 2, 3}, protocol.CodeInvalidOptions)
	d.joinErr(protocol.JoinCreate, "arena", "", opts(t, "size", 100), protocol.CodeInvalidOptions)
	d.send(&protocol.Join{ReqID: 9, Mode: protocol.JoinMode(7), Kind: "duo"})
	d.expectError(protocol.CodeBadRequest)
	d.joinErr(protocol.JoinCreate, "test", "", opts(t, "fail", "yes"), 1001)
	d.joinErr(protocol.JoinCreate, "test", "", opts(t, "name", "mallory"), 1003)

	// Filters: a player asking for mode "ctf" does not land in an "ffa" room.
	e, f := player(t, addr), player(t, addr)
	je := e.join(protocol.JoinOrCreate, "duo", "", opts(t, "mode", "ffa"))
	jf := f.join(protocol.JoinOrCreate, "duo", "", opts(t, "mode", "ctf"))
	if je.RoomID == jf.RoomID {
		t.Fatal("filtered join-or-create mixed modes")
	}
	g := player(t, addr)
	if jg := g.join(protocol.JoinOrCreate, "duo", "", opts(t, "mode", "ffa")); jg.RoomID != je.RoomID {
		t.Fatal("matching filter did not find the ffa room")
	}
	// Already in a room.
	g.joinErr(protocol.JoinOrCreate, "duo", "", nil, protocol.CodeAlreadyInRoom)
	// Filters compare numbers by value: mode 7 sent as a uint8 (as a
	// browser sends it) and as an int64 (as Go's msgpack sends an int64).
	h, i := player(t, addr), player(t, addr)
	jh := h.join(protocol.JoinOrCreate, "duo", "", opts(t, "mode", uint8(7)))
	if ji := i.join(protocol.JoinOrCreate, "duo", "", opts(t, "mode", int64(7))); ji.RoomID != jh.RoomID {
		t.Fatal("mode 7 as an int64 did not find the room of mode 7 as a uint8")
	}
	waitFor(t, func() bool { return metric(t, srv, "gameserver_players") == 8 })
}

func TestListLockPrivateAndMetadata(t *testing.T) {
	_, addr := startRooms(t, gameserver.Config{})
	a, b, c := player(t, addr), player(t, addr), player(t, addr)
	ja := a.join(protocol.JoinCreate, "test", "", opts(t, "label", "open"))
	jb := b.join(protocol.JoinCreate, "test", "", opts(t, "private", "yes"))
	jc := c.join(protocol.JoinCreate, "test", "", nil)
	list := func() map[string]protocol.RoomInfo {
		c.send(&protocol.List{ReqID: 3, Kind: "test"})
		var rs protocol.Rooms
		if err := rs.Decode(c.expectSkipping(protocol.TypeRooms)); err != nil || rs.ReqID != 3 {
			t.Fatalf("rooms %+v %v", rs, err)
		}
		out := map[string]protocol.RoomInfo{}
		for _, r := range rs.Rooms {
			out[r.RoomID] = r
		}
		return out
	}
	rooms := list()
	if _, ok := rooms[jb.RoomID]; ok {
		t.Fatal("private room listed")
	}
	info, ok := rooms[ja.RoomID]
	if !ok || info.Players != 1 || info.MaxPlayers != 4 || info.Kind != "test" {
		t.Fatalf("listing %+v", rooms)
	}
	var md map[string]any
	if err := msgpack.Unmarshal(info.Metadata, &md); err != nil || md["label"] != "open" {
		t.Fatalf("metadata %v %v", md, err)
	}
	// A private room can be joined by id.
	d := player(t, addr)
	d.join(protocol.JoinByID, "", jb.RoomID, nil)
	// Lock room c: unlisted, and joining by id is refused.
	c.sendGame(msgLock, nil)
	waitFor(t, func() bool { _, listed := list()[jc.RoomID]; return !listed })
	e := player(t, addr)
	e.joinErr(protocol.JoinByID, "", jc.RoomID, nil, protocol.CodeRoomLocked)
}

func (c *client) sendGame(t game.MsgType, v any) {
	c.t.Helper()
	body, err := msgpack.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(append(protocol.AppendType(nil, protocol.MsgType(t)), body...))
}

func TestRoomMessagesLeaveAndErrors(t *testing.T) {
	_, addr := startRooms(t, gameserver.Config{})
	a, b := player(t, addr), player(t, addr)
	a.sendGame(msgEcho, "x")
	a.expectError(protocol.CodeNotInRoom)
	a.send(&protocol.Leave{ReqID: 4})
	if e := a.expectError(protocol.CodeNotInRoom); e.ReqID != 4 {
		t.Fatalf("leave error req %d", e.ReqID)
	}
	ja := a.join(protocol.JoinCreate, "test", "", nil)
	b.join(protocol.JoinByID, "", ja.RoomID, nil)
	var pr protocol.Presence
	if err := pr.Decode(a.expectSkipping(protocol.TypePresence)); err != nil || pr.Event != protocol.PresenceJoin {
		t.Fatalf("presence %+v %v", pr, err)
	}
	// Messages reach the room in order.
	for i := 0; i < 50; i++ {
		a.sendGame(msgEcho, i)
	}
	for i := 0; i < 50; i++ {
		var v int
		if err := msgpack.Unmarshal(a.expectSkipping(protocol.MsgType(msgEcho)), &v); err != nil || v != i {
			t.Fatalf("echo %d: got %d %v", i, v, err)
		}
	}
	// A type the room does not handle.
	a.sendGame(0x3000, 1)
	if e := a.expectError(protocol.CodeUnknownType); e.Ref != 0x3000 {
		t.Fatalf("ref %v", e.Ref)
	}
	// Timers and Go continuations run on the loop.
	a.sendGame(msgTimer, nil)
	for i := 1; i <= 3; i++ {
		var n int
		_ = msgpack.Unmarshal(a.expectSkipping(protocol.MsgType(msgFired)), &n)
		if n != i {
			t.Fatalf("timer fired %d, want %d", n, i)
		}
	}
	a.sendGame(msgGo, nil)
	var v int
	if _ = msgpack.Unmarshal(a.expectSkipping(protocol.MsgType(msgGo)), &v); v != 42 {
		t.Fatalf("go continuation sent %d", v)
	}
	// Leave.
	a.send(&protocol.Leave{ReqID: 5})
	var l protocol.Left
	if err := l.Decode(a.expectSkipping(protocol.TypeLeft)); err != nil || l.RoomID != ja.RoomID || l.Reason != protocol.LeftNormal {
		t.Fatalf("left %+v %v", l, err)
	}
	if err := pr.Decode(b.expectSkipping(protocol.TypePresence)); err != nil || pr.Event != protocol.PresenceLeave {
		t.Fatalf("presence %+v", pr)
	}
	a.sendGame(msgEcho, 1)
	a.expectError(protocol.CodeNotInRoom)
	// Kick.
	b.sendGame(msgKick, nil)
	if e := b.expectError(1002); e.Message != "bye" {
		t.Fatalf("kick message %q", e.Message)
	}
	if err := l.Decode(b.expectSkipping(protocol.TypeLeft)); err != nil || l.Reason != protocol.LeftKicked || l.Code != 1002 {
		t.Fatalf("left %+v", l)
	}
}

func TestPanicDisposesOnlyThatRoom(t *testing.T) {
	srv, addr := startRooms(t, gameserver.Config{})
	a, b, c := player(t, addr), player(t, addr), player(t, addr)
	ja := a.join(protocol.JoinCreate, "test", "", nil)
	b.join(protocol.JoinByID, "", ja.RoomID, nil)
	c.join(protocol.JoinCreate, "test", "", nil)
	a.sendGame(msgPanic, nil)
	for _, p := range []*client{a, b} {
		var e protocol.ErrorMsg
		if err := e.Decode(p.expectSkipping(protocol.TypeError)); err != nil || e.Code != protocol.CodeInternal {
			t.Fatalf("error %+v", e)
		}
		var l protocol.Left
		if err := l.Decode(p.expectSkipping(protocol.TypeLeft)); err != nil || l.Reason != protocol.LeftDisposed {
			t.Fatalf("left %+v", l)
		}
	}
	// The other room and the sessions live on.
	c.sendGame(msgEcho, "alive")
	c.expectSkipping(protocol.MsgType(msgEcho))
	a.join(protocol.JoinCreate, "test", "", nil)
	if metric(t, srv, "gameserver_room_panics_total") != 1 {
		t.Fatal("panic not counted")
	}
}

func TestDropAndEmptyRoomDisposed(t *testing.T) {
	srv, addr := startRooms(t, gameserver.Config{})
	a, b := player(t, addr), player(t, addr)
	ja := a.join(protocol.JoinCreate, "test", "", nil)
	b.join(protocol.JoinByID, "", ja.RoomID, nil)
	a.expectSkipping(protocol.TypePresence)
	b.conn.Close()
	// First the drop; after the resume window (300 ms) the leave.
	var pr protocol.Presence
	if err := pr.Decode(a.expectSkipping(protocol.TypePresence)); err != nil || pr.Event != protocol.PresenceDrop {
		t.Fatalf("presence %+v", pr)
	}
	dropped := time.Now()
	if err := pr.Decode(a.expectSkipping(protocol.TypePresence)); err != nil || pr.Event != protocol.PresenceLeave {
		t.Fatalf("presence %+v", pr)
	}
	if d := time.Since(dropped); d < 250*time.Millisecond {
		t.Fatalf("seat released %v after the drop, before the resume window", d)
	}
	a.send(&protocol.Leave{})
	a.expectSkipping(protocol.TypeLeft)
	// Empty for EmptyTimeout (200 ms): disposed.
	waitFor(t, func() bool { return metric(t, srv, "gameserver_rooms_disposed_total") == 1 })
	c := player(t, addr)
	c.joinErr(protocol.JoinByID, "", ja.RoomID, nil, protocol.CodeRoomNotFound)
}

func TestLastSeatRace(t *testing.T) {
	_, addr := startRooms(t, gameserver.Config{})
	owner := player(t, addr)
	j := owner.join(protocol.JoinCreate, "duo", "", nil)
	const n = 20
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = player(t, addr)
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.send(&protocol.Join{ReqID: 1, Mode: protocol.JoinByID, RoomID: j.RoomID})
		}()
	}
	wg.Wait()
	joined, full := 0, 0
	for _, c := range clients {
		for {
			tp, body, err := c.next(3 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if tp == protocol.TypeJoined {
				joined++
				break
			}
			if tp == protocol.TypeError {
				var e protocol.ErrorMsg
				_ = e.Decode(body)
				if e.Code != protocol.CodeRoomFull {
					t.Fatalf("error %+v", e)
				}
				full++
				break
			}
		}
	}
	if joined != 1 || full != n-1 {
		t.Fatalf("%d joined, %d refused; want 1 and %d", joined, full, n-1)
	}
}

func TestChat(t *testing.T) {
	_, addr := startRooms(t, gameserver.Config{})
	a, b := player(t, addr), player(t, addr)
	ja := a.join(protocol.JoinOrCreate, "chat", "", opts(t, "name", "alice"))
	a.sendGame(chat.MsgSay, []any{"hello"})
	var said []string
	_ = msgpack.Unmarshal(a.expectSkipping(protocol.MsgType(chat.MsgSaid)), &said)
	if len(said) != 3 || said[1] != "alice" || said[2] != "hello" || said[0] != ja.PlayerID {
		t.Fatalf("said %v", said)
	}
	jb := b.join(protocol.JoinOrCreate, "chat", "", opts(t, "name", "bob"))
	var history [][]string
	_ = msgpack.Unmarshal(b.expectSkipping(protocol.MsgType(chat.MsgHistory)), &history)
	if len(history) != 1 || history[0][2] != "hello" {
		t.Fatalf("history %v", history)
	}
	var roster [][]string
	_ = msgpack.Unmarshal(b.expectSkipping(protocol.MsgType(chat.MsgRoster)), &roster)
	if len(roster) != 2 || roster[0][1] != "alice" || roster[1][1] != "bob" {
		t.Fatalf("roster %v", roster)
	}
	// The members before bob hear of him, not the whole roster again.
	var joined []string
	_ = msgpack.Unmarshal(a.expectSkipping(protocol.MsgType(chat.MsgJoined)), &joined)
	if len(joined) != 2 || joined[0] != jb.PlayerID || joined[1] != "bob" {
		t.Fatalf("joined %v, want [%s bob]", joined, jb.PlayerID)
	}
	b.sendGame(chat.MsgSay, []any{""})
	b.expectError(protocol.CodeBadRequest)
	b.sendGame(chat.MsgSay, "not an array")
	b.expectError(protocol.CodeBadRequest)
	b.send(&protocol.Leave{ReqID: 9})
	var left []string
	_ = msgpack.Unmarshal(a.expectSkipping(protocol.MsgType(chat.MsgLeft)), &left)
	if len(left) != 1 || left[0] != jb.PlayerID {
		t.Fatalf("left %v, want [%s]", left, jb.PlayerID)
	}
}

func TestTickOverrunCounted(t *testing.T) {
	srv, addr := startRooms(t, gameserver.Config{})
	a := player(t, addr)
	a.join(protocol.JoinCreate, "test", "", opts(t, "sleepMs", 60))
	waitFor(t, func() bool { return metric(t, srv, "gameserver_tick_overruns_total") >= 2 })
}

func TestShutdownTellsPlayers(t *testing.T) {
	srv, err := gameserver.New(gameserver.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Register("test", func() game.Handler { return &testRoom{} }, game.RoomConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ListenAndServe() }()
	a := player(t, srv.Addr().String())
	a.join(protocol.JoinCreate, "test", "", nil)
	go func() { _ = srv.Shutdown(context.Background()) }()
	var l protocol.Left
	if err := l.Decode(a.expectSkipping(protocol.TypeLeft)); err != nil || l.Reason != protocol.LeftDisposed {
		t.Fatalf("left %+v %v", l, err)
	}
	if code := a.expectClose(3 * time.Second); code != uint16(protocol.CloseDraining) {
		t.Fatalf("close %d", code)
	}
}

func TestRegisterErrors(t *testing.T) {
	srv, err := gameserver.New(gameserver.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	h := func() game.Handler { return &testRoom{} }
	for name, tc := range map[string]struct {
		kind string
		cfg  game.RoomConfig
	}{
		"empty name":   {"", game.RoomConfig{}},
		"long name":    {fmt.Sprintf("%070d", 0), game.RoomConfig{}},
		"tick rate":    {"a", game.RoomConfig{TickRate: 1000}},
		"max players":  {"b", game.RoomConfig{MaxPlayers: -1}},
		"tiny inbox":   {"c", game.RoomConfig{InboxSize: 2}},
		"neg timeouts": {"d", game.RoomConfig{EmptyTimeout: -1}},
	} {
		if err := srv.Register(tc.kind, h, tc.cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := srv.Register("ok", h, game.RoomConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Register("ok", h, game.RoomConfig{}); err == nil {
		t.Fatal("duplicate accepted")
	}
}
