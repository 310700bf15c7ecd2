// Package gametest runs a game.Handler on the server's own room engine,
// with a clock the test moves and no network, for a game developer's unit
// tests:
//
//	rt := gametest.New(t, new(Arena), game.RoomConfig{TickRate: 20})
//	alice := rt.Join("alice")
//	rt.Send(alice, MsgMove, Move{X: 1})
//	rt.Advance(50 * time.Millisecond) // one tick
//	st := rt.Expect(t, alice, gametest.State)
//
// Everything a callback does runs on the test's goroutine, inside Join,
// Send, Leave, Drop, Resume and Advance: when they return, the room has
// handled what they started, and what it sent is in each client's inbox.
// Ticks and timers follow the fake clock, which only Advance moves, so a
// test steps through time instead of sleeping. Room.Go's functions run on
// goroutines of their own, as on a server: Wait waits for them and runs
// their continuations.
//
// A Room holds one room of the handler. The messages a client receives are
// the server's own: JOINED, LEFT, PRESENCE, ERROR and STATE (see the
// constants) besides the game's types.
package gametest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gameserver/gameserver/internal/room"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// The server's message types a client may receive from a room.
const (
	Joined   = game.MsgType(protocol.TypeJoined)   // the client's seat: Room.Join reads it
	Left     = game.MsgType(protocol.TypeLeft)     // the client left, was kicked, or the room ended
	Presence = game.MsgType(protocol.TypePresence) // another player joined, left, dropped or resumed
	Error    = game.MsgType(protocol.TypeError)    // a request or message was refused: see Message.Error
	State    = game.MsgType(protocol.TypeState)    // Room.BroadcastState: see Message.Tick
)

// Start is where the fake clock starts unless WithStart says otherwise.
var Start = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Kind is the room type name the handler is registered under.
const Kind = "test"

// Option changes how New sets the room up.
type Option func(*settings)

type settings struct {
	start time.Time
	opts  game.Options
}

// WithStart starts the fake clock at t.
func WithStart(t time.Time) Option { return func(s *settings) { s.start = t } }

// WithOptions passes create options to the room's OnCreate.
func WithOptions(o game.Options) Option { return func(s *settings) { s.opts = o } }

// Room is one room of a handler, run by the test.
type Room struct {
	t       testing.TB
	m       *room.Manager
	opts    game.Options
	roomID  string
	clients int
	reqID   uint32
	dropped map[*Client]time.Time // when each dropped client's resume window ends

	mu  sync.Mutex // the clock: read by the engine, moved by Advance
	now time.Time
}

// New registers h under the room type Kind with cfg and returns the
// harness; the room itself is created by the first Join. The engine is
// shut down when the test ends.
func New(t testing.TB, h game.Handler, cfg game.RoomConfig, options ...Option) *Room {
	t.Helper()
	s := settings{start: Start}
	for _, o := range options {
		o(&s)
	}
	r := &Room{t: t, opts: s.opts, now: s.start, dropped: make(map[*Client]time.Time)}
	r.m = room.NewManager(room.Config{
		Node:   "gametest",
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
		Clock:  r.Now,
		Manual: true,
	})
	// The room is created by a JOIN that creates, which only the first
	// Join sends (or the next one, after OnCreate refused).
	factory := func() game.Handler { return h }
	if err := r.m.Register(Kind, factory, cfg); err != nil {
		t.Fatalf("gametest: %v", err)
	}
	t.Cleanup(func() { r.m.Shutdown("test over") })
	return r
}

// Now is the fake clock's time.
func (r *Room) Now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *Room) set(t time.Time) {
	r.mu.Lock()
	r.now = t
	r.mu.Unlock()
}

// ID is the room's ID, "" before the first Join.
func (r *Room) ID() string { return r.roomID }

// Advance moves the clock forward by d, running every tick and timer that
// falls due on the way, in order, each at its own time. A dropped client
// whose resume window ends on the way leaves then (OnLeave with
// LeaveDropped), as the server's session layer would make it.
func (r *Room) Advance(d time.Duration) {
	r.t.Helper()
	if d < 0 {
		r.t.Fatalf("gametest: Advance(%v): the clock does not go back", d)
	}
	target := r.Now().Add(d)
	for i := 0; ; i++ {
		next, ok := r.m.NextDue()
		c, end := r.nextWindowEnd()
		if c != nil && (!ok || end.Before(next)) {
			next, ok = end, true
		}
		if !ok || next.After(target) {
			break
		}
		if i == 10_000_000 {
			r.t.Fatalf("gametest: Advance(%v): over ten million ticks and timers", d)
		}
		if next.After(r.Now()) {
			r.set(next)
		}
		if c != nil && !end.After(r.Now()) {
			delete(r.dropped, c)
			r.m.Closed(c)
		}
		r.m.Step()
	}
	r.set(target)
	r.m.Step()
}

// nextWindowEnd returns the dropped client whose resume window ends first.
func (r *Room) nextWindowEnd() (*Client, time.Time) {
	var first *Client
	var at time.Time
	for c, end := range r.dropped {
		if first == nil || end.Before(at) || end.Equal(at) && c.id < first.id {
			first, at = c, end
		}
	}
	return first, at
}

// Join seats a new client, whose user ID is userID, and returns it; the
// first Join creates the room. The test fails if the room refuses.
func (r *Room) Join(userID string) *Client {
	r.t.Helper()
	return r.JoinWith(userID, nil)
}

// JoinWith is Join with join options (game.JoinRequest.Options). The
// first join's options are also the room's create options, over those of
// WithOptions, as a JOIN that creates a room carries one set for both.
func (r *Room) JoinWith(userID string, opts game.Options) *Client {
	r.t.Helper()
	c, err := r.TryJoin(userID, opts)
	if err != nil {
		r.t.Fatalf("gametest: %s could not join: %v", userID, err)
	}
	return c
}

// TryJoin is JoinWith returning the refusal (a *game.Error) instead of
// failing the test. The refused client is returned too, with what it was
// sent.
func (r *Room) TryJoin(userID string, opts game.Options) (*Client, error) {
	r.clients++
	c := &Client{r: r, id: fmt.Sprintf("session-%d", r.clients), userID: userID}
	r.reqID++
	j := protocol.Join{ReqID: r.reqID, Mode: protocol.JoinByID, Kind: Kind, RoomID: r.roomID}
	if r.roomID == "" {
		j.Mode = protocol.JoinCreate
		merged := make(game.Options, len(r.opts)+len(opts))
		for k, v := range r.opts {
			merged[k] = v
		}
		for k, v := range opts {
			merged[k] = v
		}
		opts = merged
	}
	if len(opts) > 0 {
		b, err := msgpack.Marshal(opts)
		if err != nil {
			return c, fmt.Errorf("gametest: join options: %w", err)
		}
		j.Options = b
	}
	if err := r.handle(c, j.Append(nil)); err != nil {
		return c, err
	}
	for i, m := range c.inbox {
		switch m.Type {
		case Joined:
			var jd protocol.Joined
			if err := jd.Decode(m.Body); err != nil || jd.ReqID != j.ReqID {
				continue
			}
			c.playerID, r.roomID = jd.PlayerID, jd.RoomID
			c.inbox = append(c.inbox[:i], c.inbox[i+1:]...)
			return c, nil
		case Error:
			if e := m.Error(); e != nil {
				return c, e
			}
		}
	}
	return c, errors.New("gametest: the room neither seated nor refused the client")
}

// Send sends a game message from c, msgpack-encoding v, and lets the room
// handle it. The error is a refusal the server would answer at once (c is
// in no room, the inbox is full); refusals by the game reach c as Error
// messages.
func (r *Room) Send(c *Client, t game.MsgType, v any) error {
	r.t.Helper()
	body, err := msgpack.Marshal(v)
	if err != nil {
		r.t.Fatalf("gametest: encode %T: %v", v, err)
	}
	return r.SendBytes(c, t, body)
}

// SendBytes is Send with an encoded body, which need not be valid msgpack.
func (r *Room) SendBytes(c *Client, t game.MsgType, body []byte) error {
	r.t.Helper()
	if t < game.FirstGameType {
		r.t.Fatalf("gametest: type %#04x is the server's; games use %#04x and up", uint16(t), uint16(game.FirstGameType))
	}
	return r.handle(c, append(protocol.AppendType(nil, protocol.MsgType(t)), body...))
}

// Leave makes c leave the room, as the LEAVE message does.
func (r *Room) Leave(c *Client) error {
	r.reqID++
	return r.handle(c, (&protocol.Leave{ReqID: r.reqID}).Append(nil))
}

// Drop cuts c's connection: the game's OnDrop runs and the seat is held
// for the room type's resume window, on the fake clock; if c is not back
// by then (Resume), it leaves with LeaveDropped.
func (r *Room) Drop(c *Client) {
	if window, ok := r.m.Detached(c); ok {
		r.dropped[c] = r.Now().Add(window)
	}
	r.m.Step()
}

// Resume brings a dropped c back within its window: OnResume runs.
func (r *Room) Resume(c *Client) {
	r.t.Helper()
	if _, ok := r.dropped[c]; !ok {
		r.t.Fatalf("gametest: Resume of %s, who is not dropped (or whose window ended)", c.userID)
	}
	delete(r.dropped, c)
	r.m.Resumed(c)
	r.m.Step()
}

// Wait waits until every function the room started with Room.Go has
// returned, then runs their continuations.
func (r *Room) Wait() {
	r.m.WaitGo()
	r.m.Step()
}

// Expect is c.Expect.
func (r *Room) Expect(t testing.TB, c *Client, typ game.MsgType) Message {
	t.Helper()
	return c.Expect(t, typ)
}

// handle routes one encoded message of c to the engine and steps the room.
func (r *Room) handle(c *Client, msg []byte) error {
	typ, body, err := protocol.Split(msg)
	if err == nil {
		err = r.m.Handle(c, typ, body)
	}
	r.m.Step()
	return gameError(err)
}

// gameError turns the engine's protocol errors into *game.Error.
func gameError(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return &game.Error{Code: uint16(pe.Code), Message: pe.Message}
	}
	return err
}

// Client is one player's session, as the room engine sees it.
type Client struct {
	r        *Room
	id       string
	userID   string
	playerID string

	mu    sync.Mutex
	inbox []Message
	data  any
}

// PlayerID is the player's ID in the room (game.Player.ID), from JOINED.
func (c *Client) PlayerID() string { return c.playerID }

// Messages returns what c received and no Expect took yet, oldest first.
func (c *Client) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.inbox...)
}

// Clear forgets what c received so far.
func (c *Client) Clear() {
	c.mu.Lock()
	c.inbox = nil
	c.mu.Unlock()
}

// Expect takes the messages c received up to the first of type typ and
// returns that one; the test fails if none came.
func (c *Client) Expect(t testing.TB, typ game.MsgType) Message {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.inbox {
		if m.Type == typ {
			c.inbox = c.inbox[i+1:]
			return m
		}
	}
	var got []string
	for _, m := range c.inbox {
		got = append(got, fmt.Sprintf("%#04x", uint16(m.Type)))
	}
	t.Fatalf("gametest: %s (%s) got no message of type %#04x; it has %v", c.userID, c.playerID, uint16(typ), got)
	return Message{}
}

// The room.Member methods: the engine's view of the client.

func (c *Client) ID() string             { return c.id }
func (c *Client) UserID() string         { return c.userID }
func (c *Client) Claims() map[string]any { return nil }
func (c *Client) RTT() time.Duration     { return 0 }
func (c *Client) Flush()                 {}

func (c *Client) Data() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data
}

func (c *Client) SetData(v any) {
	c.mu.Lock()
	c.data = v
	c.mu.Unlock()
}

// Send records a message the engine sent c.
func (c *Client) Send(f *frame.Frame) error {
	typ, body, err := protocol.Split(f.B)
	if err != nil {
		return err
	}
	m := Message{Type: game.MsgType(typ), Body: append([]byte(nil), body...)}
	if typ == protocol.TypeState {
		var st protocol.State
		if err := st.Decode(body); err != nil {
			return err
		}
		m.Tick, m.Body = st.Tick, append([]byte(nil), st.Body...)
	}
	c.mu.Lock()
	c.inbox = append(c.inbox, m)
	c.mu.Unlock()
	return nil
}

// Message is one message a client received.
type Message struct {
	Type game.MsgType
	// Body is the msgpack body; for State, the state the game broadcast.
	Body []byte
	// Tick is a State's tick number.
	Tick uint64
}

// Decode decodes the body into v.
func (m Message) Decode(v any) error { return msgpack.Unmarshal(m.Body, v) }

// Error returns an Error message's code and text, or nil for other types.
func (m Message) Error() *game.Error {
	if m.Type != Error {
		return nil
	}
	var e protocol.ErrorMsg
	if err := e.Decode(m.Body); err != nil {
		return &game.Error{Code: uint16(protocol.CodeBadRequest), Message: "undecodable ERROR: " + err.Error()}
	}
	return &game.Error{Code: uint16(e.Code), Message: e.Message}
}

// LeftReason returns a Left message's reason ("left", "kicked",
// "dropped", "disposed"), or "".
func (m Message) LeftReason() string {
	if m.Type != Left {
		return ""
	}
	var l protocol.Left
	if err := l.Decode(m.Body); err != nil {
		return ""
	}
	return l.Reason.String()
}
