package game_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/game"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/zap"
)

// Race is the example room type of docs/rooms.md: runners race to a goal.
// Any runner may start the race once two are seated; the room then locks,
// counts down, and the first to reach the goal wins.
//
// Messages (bodies are msgpack arrays):
//
//	MsgReady    C→S    []          start the countdown
//	MsgStep     C→S    [n]         run n steps (1 to 3)
//	MsgWelcome  S→C    [goal]      sent to a runner who joins
//	MsgGo       S→all  []          the race has started
//	MsgWon      S→all  [playerID]  the winner
//
// Each tick while the race runs, the STATE body is [[playerID, pos, away], ...].
const (
	MsgReady   game.MsgType = 0x1000
	MsgStep    game.MsgType = 0x1001
	MsgWelcome game.MsgType = 0x1100
	MsgGo      game.MsgType = 0x1101
	MsgWon     game.MsgType = 0x1102
)

// Game error codes (1000 and up).
const (
	ErrTooFew    = 1000 // MsgReady with fewer than two runners
	ErrNotRacing = 1001 // MsgStep before the start or after the finish
	ErrName      = 1002 // a join with a name over 32 bytes
)

// SaveResult, if set, records a race's winner. It may block (a database,
// an HTTP call), so the room runs it with Go.
var SaveResult func(ctx context.Context, userID string) error

// RaceConfig is the room type's configuration: join-or-create only puts
// players in rooms created with the same "goal" option.
var RaceConfig = game.RoomConfig{TickRate: 10, MaxPlayers: 4, FilterBy: []string{"goal"}}

// Step is the body of MsgStep.
type Step struct {
	_msgpack struct{} `msgpack:",as_array"`
	N        int
}

type runner struct {
	id   string
	pos  int
	away bool // connection lost, waiting for a resume
}

// Race is the room handler; the server makes one per room.
type Race struct {
	game.Base
	goal      int
	countdown time.Duration
	runners   []*runner
	racing    bool
	state     raceState
}

// NewRace is the room type's factory.
func NewRace() game.Handler { return &Race{} }

// OnCreate reads the create options and routes the messages.
func (g *Race) OnCreate(r game.Room, opts game.Options) error {
	g.goal = opts.Int("goal", 100)
	if g.goal < 10 || g.goal > 1000 {
		return &game.Error{Code: game.ErrInvalidOptions.Code, Message: "goal must be 10 to 1000"}
	}
	g.countdown = time.Duration(opts.Int("countdownMs", 3000)) * time.Millisecond
	r.SetMetadata("goal", g.goal) // shown in room listings
	r.Handle(MsgReady, g.ready)
	game.On(r, MsgStep, g.step)
	return nil
}

// OnJoin seats a runner. The name comes from the token's claims when the
// session is authenticated, else from the join options.
func (g *Race) OnJoin(r game.Room, p game.Player, req game.JoinRequest) error {
	name, _ := req.Claims["name"].(string)
	if name == "" {
		name = req.Options.String("name", "runner")
	}
	if len(name) > 32 {
		return game.NewError(ErrName, "name must be at most 32 bytes")
	}
	ru := &runner{id: p.ID()}
	p.SetData(ru)
	g.runners = append(g.runners, ru)
	// Held until the client has JOINED, then delivered.
	return r.Send(p, MsgWelcome, []int{g.goal})
}

func (g *Race) ready(r game.Room, p game.Player, _ game.Message) error {
	if len(r.Players()) < 2 {
		return game.NewError(ErrTooFew, "two runners needed")
	}
	if r.Locked() {
		return nil // already counting down
	}
	r.Lock() // no one joins a race in progress
	r.After(g.countdown, func(r game.Room) {
		g.racing = true
		_ = r.Broadcast(MsgGo, []any{})
	})
	return nil
}

func (g *Race) step(r game.Room, p game.Player, s Step) error {
	if !g.racing {
		return game.NewError(ErrNotRacing, "not racing")
	}
	ru := p.Data().(*runner)
	ru.pos += min(max(s.N, 1), 3)
	if ru.pos >= g.goal {
		g.racing = false
		r.Logger().Info("race won", zap.String("player", p.ID()))
		_ = r.Broadcast(MsgWon, []string{p.ID()})
		r.After(5*time.Second, func(r game.Room) { r.Dispose("race over") })
		if SaveResult != nil {
			user := p.UserID()
			r.Go(func(ctx context.Context) func(game.Room) {
				err := SaveResult(ctx, user) // on a goroutine of its own
				return func(r game.Room) {   // back on the room's loop
					if err != nil {
						r.Logger().Warn("result not saved", zap.Error(err))
					}
				}
			})
		}
	}
	return nil
}

// OnTick publishes the positions while the race runs.
func (g *Race) OnTick(r game.Room, _ time.Duration) {
	if g.racing {
		g.state = raceState(g.runners)
		_ = r.BroadcastState(&g.state) // encoded once for every runner
	}
}

// OnLeave is a runner's last call.
func (g *Race) OnLeave(r game.Room, p game.Player, _ game.LeaveReason) {
	ru := p.Data().(*runner)
	for i, x := range g.runners {
		if x == ru {
			g.runners = append(g.runners[:i], g.runners[i+1:]...)
			break
		}
	}
}

// OnDrop and OnResume make Race a game.Resumer.
func (g *Race) OnDrop(r game.Room, p game.Player)   { p.Data().(*runner).away = true }
func (g *Race) OnResume(r game.Room, p game.Player) { p.Data().(*runner).away = false }

// raceState encodes the runners without reflection.
type raceState []*runner

// EncodeMsgpack implements msgpack.CustomEncoder.
func (s *raceState) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(len(*s)); err != nil {
		return err
	}
	for _, ru := range *s {
		_ = enc.EncodeArrayLen(3)
		_ = enc.EncodeString(ru.id)
		_ = enc.EncodeInt(int64(ru.pos))
		if err := enc.EncodeBool(ru.away); err != nil {
			return err
		}
	}
	return nil
}

// Example_main is a game's whole main package: define the room types,
// then run a node configured by flags and environment until SIGTERM.
func Example_main() {
	gameserver.Define("race", NewRace, RaceConfig)
	gameserver.Main()
}

// Example_server embeds a node in a program of one's own: New, Register,
// ListenAndServe, Shutdown. Two bots then play one race.
func Example_server() {
	srv, err := gameserver.New(gameserver.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		panic(err)
	}
	if err := srv.Register("race", NewRace, RaceConfig); err != nil {
		panic(err)
	}
	if err := srv.Listen(); err != nil {
		panic(err)
	}
	go func() { _ = srv.ListenAndServe() }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	addr := srv.Addr().String()
	opts := map[string]any{"goal": 10, "countdownMs": 50}
	names := map[string]string{}
	a := connect(addr, names)
	defer a.close()
	b := connect(addr, names)
	defer b.close()

	roomA := a.join(opts)
	a.send(MsgReady, []any{})
	fmt.Println("a alone:", a.wait(0x0005)) // ERROR
	roomB := b.join(opts)
	fmt.Println("same room:", roomA == roomB)
	a.send(MsgReady, []any{})
	a.wait(uint16(MsgGo))
	for range 4 {
		a.send(MsgStep, Step{N: 3})
	}
	fmt.Println("b sees:", b.wait(uint16(MsgWon)))
	// Output:
	// a alone: [1000 two runners needed 4096 0]
	// same room: true
	// b sees: [a]
}

// bot is a minimal protocol client (docs/protocol.md), enough to drive the
// example: HELLO, JOIN, game messages.
type bot struct {
	conn  net.Conn
	names map[string]string // the bots' player IDs → "a", "b", for a stable output
}

func connect(addr string, names map[string]string) *bot {
	conn, _, _, err := ws.Dial(context.Background(), "ws://"+addr+"/ws")
	if err != nil {
		panic(err)
	}
	b := &bot{conn: conn, names: names}
	b.send(0x0001, []any{1, nil, "example"}) // HELLO
	b.wait(0x0002)                           // WELCOME
	return b
}

func (b *bot) close() { _ = b.conn.Close() }

func (b *bot) send(t game.MsgType, v any) {
	body, err := msgpack.Marshal(v)
	if err != nil {
		panic(err)
	}
	if err := wsutil.WriteClientBinary(b.conn, append([]byte{byte(t >> 8), byte(t)}, body...)); err != nil {
		panic(err)
	}
}

// join sends JOIN (join or create) and returns the room ID.
func (b *bot) join(opts map[string]any) string {
	b.send(0x0010, []any{1, 0, "race", "", opts})
	joined := b.wait(0x0011) // [reqID, roomID, kind, playerID, tickRate]
	b.names[joined[3].(string)] = string(rune('a' + len(b.names)))
	return joined[1].(string)
}

// wait reads messages until one of type t and returns its decoded body,
// with the bots' player IDs replaced by their names.
func (b *bot) wait(t uint16) []any {
	for {
		msg, err := wsutil.ReadServerBinary(b.conn)
		if err != nil {
			panic(err)
		}
		if uint16(msg[0])<<8|uint16(msg[1]) != t {
			continue // PING, PRESENCE, STATE, ...
		}
		var body []any
		if err := msgpack.Unmarshal(msg[2:], &body); err != nil {
			panic(err)
		}
		for i, v := range body {
			if s, ok := v.(string); ok && b.names[s] != "" {
				body[i] = b.names[s]
			}
		}
		return body
	}
}
