package game

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// MsgType is a message's 2-byte type. 0x0000-0x0FFF belong to the system;
// games use 0x1000-0xFFFF.
type MsgType uint16

// FirstGameType is the lowest type a game may use.
const FirstGameType MsgType = 0x1000

// Options are the options a client sent with create or join, decoded from
// its msgpack map. Numbers decode as int64, uint64 or float64 depending on
// how the client encoded them; use the Int, Float and String helpers.
type Options map[string]any

// Int returns key as an int, def if it is absent or not a whole number.
func (o Options) Int(key string, def int) int {
	switch v := o[key].(type) {
	case int8:
		return int(v)
	case int16:
		return int(v)
	case int32:
		return int(v)
	case int64:
		return int(v)
	case uint8:
		return int(v)
	case uint16:
		return int(v)
	case uint32:
		return int(v)
	case uint64:
		return int(v)
	case float64:
		if v == float64(int(v)) {
			return int(v)
		}
	case float32:
		if v == float32(int(v)) {
			return int(v)
		}
	}
	return def
}

// Float returns key as a float64, def if it is absent or not a number.
func (o Options) Float(key string, def float64) float64 {
	switch v := o[key].(type) {
	case float64:
		return v
	case float32:
		return float64(v)
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return float64(o.Int(key, 0))
	}
	return def
}

// String returns key as a string, def if it is absent or not a string.
func (o Options) String(key string, def string) string {
	if v, ok := o[key].(string); ok {
		return v
	}
	return def
}

// JoinRequest is what a player brings to a room.
type JoinRequest struct {
	// Options are the client's join options.
	Options Options
	// UserID is the authenticated user, or "" for an anonymous session.
	UserID string
	// Claims are the authenticated token's claims (nil when anonymous).
	Claims map[string]any
}

// LeaveReason says why a player left.
type LeaveReason int

// Leave reasons.
const (
	LeaveLeft     LeaveReason = iota // the player asked to leave
	LeaveDropped                     // the connection was lost and not resumed
	LeaveKicked                      // the room kicked the player
	LeaveDisposed                    // the room was disposed
)

func (r LeaveReason) String() string {
	switch r {
	case LeaveLeft:
		return "left"
	case LeaveDropped:
		return "dropped"
	case LeaveKicked:
		return "kicked"
	case LeaveDisposed:
		return "disposed"
	}
	return "unknown"
}

// Message is one message from a player.
type Message struct {
	Type MsgType
	// Body is the msgpack body. It is only valid until the callback returns.
	Body []byte
	// ReceivedAt is when the server read the message.
	ReceivedAt time.Time
}

// Handler is the logic of one room. Every method runs on the room's loop,
// one call at a time; none may block.
type Handler interface {
	// OnCreate runs once, before any join. An error aborts the creation
	// and is sent to the client that asked for the room.
	OnCreate(r Room, opts Options) error
	// OnJoin decides whether p takes a seat. Return an *Error to refuse;
	// the client receives its code and message.
	OnJoin(r Room, p Player, req JoinRequest) error
	// OnMessage receives the messages not routed with Room.Handle or On.
	// An error goes back to p only.
	OnMessage(r Room, p Player, msg Message) error
	// OnTick runs at the room's tick rate; dt is the measured time since
	// the previous tick.
	OnTick(r Room, dt time.Duration)
	// OnLeave is p's last call.
	OnLeave(r Room, p Player, reason LeaveReason)
	// OnDispose is the room's last call; timers are already stopped.
	OnDispose(r Room)
}

// Base implements every Handler method as a no-op (OnMessage refuses with
// ErrUnknownMessage). Embed it and override what the game needs.
type Base struct{}

func (Base) OnCreate(Room, Options) error           { return nil }
func (Base) OnJoin(Room, Player, JoinRequest) error { return nil }
func (Base) OnMessage(Room, Player, Message) error  { return ErrUnknownMessage }
func (Base) OnTick(Room, time.Duration)             {}
func (Base) OnLeave(Room, Player, LeaveReason)      {}
func (Base) OnDispose(Room)                         {}

// Resumer is implemented by handlers that want to hear about dropped
// connections. Without it a drop is silent until the player resumes (and
// nothing happens) or the resume window ends (OnLeave with LeaveDropped).
type Resumer interface {
	// OnDrop: p's connection was lost; the seat is kept for
	// RoomConfig.ResumeWindow and what the room sends p is kept for it.
	OnDrop(r Room, p Player)
	// OnResume: p is back, and has been sent everything it missed.
	OnResume(r Room, p Player)
}

// Snapshotter is implemented by handlers whose rooms can move between
// nodes (zero-downtime deploys) and come back after a node dies. Snapshot
// encodes all game state; Restore rebuilds it on a fresh handler, in place
// of OnCreate. Both run on the room's loop. Timers, Go continuations
// and Player.Data do not travel: Restore re-arms what the game needs.
// Restoring a snapshot and snapshotting again must give identical bytes.
//
// After a restore every seat is held for its player, who is dropped until
// the client resumes (OnResume) or the resume window ends (OnLeave with
// LeaveDropped). Players() lists them from the start, with the same IDs.
type Snapshotter interface {
	Snapshot(r Room) ([]byte, error)
	Restore(r Room, snap []byte) error
}

// Player is a seated player. Methods are safe to call from the room's
// loop; a Player stays valid (as a map key, too) after it left.
type Player interface {
	// ID identifies the seat; it is unique in the room and sent to the
	// client in JOINED.
	ID() string
	// UserID is the authenticated user, "" when anonymous.
	UserID() string
	// RTT is the latest round-trip time to the player's client.
	RTT() time.Duration
	// Connected reports whether the player still has a connection.
	Connected() bool
	// Data and SetData keep the game's own per-player value.
	Data() any
	SetData(v any)
}

// Timer is a pending After or Every.
type Timer interface {
	// Stop cancels the timer; it reports whether it was still pending.
	Stop() bool
}

// Room is the room a Handler runs in. Its methods must only be called from
// the room's loop (inside a Handler method, timer or continuation).
type Room interface {
	ID() string
	Kind() string
	// Tick is the number of the current tick (1 for the first OnTick).
	Tick() uint64
	// TickRate is the room's ticks per second.
	TickRate() int
	// Now is the room clock's current time.
	Now() time.Time

	// Players returns the seated players in join order. The slice is only
	// valid until the callback returns.
	Players() []Player
	// Player finds a seated player by ID, or nil.
	Player(id string) Player
	// MaxPlayers is the number of seats.
	MaxPlayers() int
	SetMaxPlayers(n int)

	// Send encodes v with msgpack and queues it for p.
	Send(p Player, t MsgType, v any) error
	// SendBytes queues an already encoded msgpack body for p.
	SendBytes(p Player, t MsgType, body []byte) error
	// Broadcast encodes v once and queues the same bytes for every player.
	Broadcast(t MsgType, v any) error
	// BroadcastExcept is Broadcast without skip.
	BroadcastExcept(t MsgType, v any, skip Player) error
	// BroadcastBytes queues an encoded body for every player.
	BroadcastBytes(t MsgType, body []byte) error
	// BroadcastState sends a STATE message (tick number, server time and
	// the encoded v) to every player: the standard way to publish the
	// authoritative state once per tick.
	BroadcastState(v any) error
	// BroadcastStateBytes is BroadcastState with an encoded body.
	BroadcastStateBytes(body []byte) error

	// Handle routes one message type to fn instead of OnMessage. See On
	// for a typed version.
	Handle(t MsgType, fn func(r Room, p Player, msg Message) error)

	// After runs fn once after d, on the room's loop.
	After(d time.Duration, fn func(r Room)) Timer
	// Every runs fn every d, on the room's loop.
	Every(d time.Duration, fn func(r Room)) Timer
	// Go runs fn on its own goroutine (ctx ends when the room is
	// disposed); the function it returns, if not nil, runs afterwards on
	// the room's loop.
	Go(fn func(ctx context.Context) (then func(r Room)))

	// SetMetadata sets a key shown in room listings; nil deletes it.
	SetMetadata(key string, value any)
	// Lock stops new players from joining; Unlock reopens the room.
	Lock()
	Unlock()
	Locked() bool
	// SetPrivate hides the room from listings and join-or-create; it can
	// still be joined by ID.
	SetPrivate(private bool)

	// Kick removes p; the client receives err (ErrForbidden when nil).
	Kick(p Player, err *Error)
	// Dispose ends the room after the current callback: every player
	// leaves with LeaveDisposed (LEFT, reason "disposed"); reason is logged
	// and passed to observers.
	Dispose(reason string)

	// Logger carries the room's id, kind and node.
	Logger() *zap.Logger
}

// RoomConfig is a room type's configuration. Zero values mean the defaults
// in the comments.
type RoomConfig struct {
	// TickRate is OnTick calls per second, 1 to 120. Zero means 20.
	TickRate int
	// MaxPlayers is the number of seats, 1 to 4096. Zero means 16.
	MaxPlayers int
	// EmptyTimeout is how long a room with no players (and no pending
	// seat) lives before it is disposed. Zero means 30 s.
	EmptyTimeout time.Duration
	// ReservationTimeout is how long a seat handed out by matchmaking is
	// held for a player who has not arrived. Zero means 10 s.
	ReservationTimeout time.Duration
	// FilterBy names the create options that join-or-create must match:
	// with FilterBy {"mode"}, a player asking for mode "ffa" only lands in
	// rooms created with mode "ffa".
	FilterBy []string
	// ResumeWindow is how long a player whose connection dropped keeps the
	// seat while the client reconnects and resumes. Zero means the
	// server's resume window (Config.ResumeWindow, 30 s by default).
	ResumeWindow time.Duration
	// InboxSize bounds the room's queue of pending messages and joins;
	// when full, further messages are refused with 503. The queue grows
	// as messages arrive (48 bytes an entry) and shrinks when the room
	// has taken them. Zero means 256.
	InboxSize int
}

// HandlerFunc creates a new Handler for each room of a type.
type HandlerFunc func() Handler
