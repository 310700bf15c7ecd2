// Package arena is the reference game: players move dots on a shared
// field. It is also the load-test yardstick, so its messages are fixed by
// docs/protocol.md:
//
//   - Input (client → server, type 0x1000): [seq uint32, dx float32, dy float32],
//     dx and dy in [-1, 1], the direction the player is steering.
//   - State (server → client, the system STATE message, every tick): its
//     body is an array of players, each [id str, x float32, y float32,
//     lastSeq uint32, received uint32], lastSeq being the last input seq
//     the room applied and received the number of input messages it got
//     from the player.
//
// Join options: {"size": n} sets the number of seats (1..64, default 8)
// when the room is created.
package arena

import (
	"errors"
	"math"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// MsgInput is the type of the input message.
const MsgInput game.MsgType = 0x1000

// World size and speed, in world units.
const (
	Width  = 800
	Height = 600
	Speed  = 200 // units per second
)

// Config is the arena room type's configuration.
var Config = game.RoomConfig{TickRate: 20, MaxPlayers: 8, EmptyTimeout: 10 * time.Second}

// Input is the decoded input message. The directions decode from any
// msgpack number (a browser's numbers are float64).
type Input struct {
	_msgpack struct{} `msgpack:",as_array"`
	Seq      uint32
	DX, DY   float64
}

// DecodeMsgpack implements msgpack.CustomDecoder. Every input is decoded
// on the room's loop, so the fields are read without reflection, by the
// protocol's rules for positional bodies: trailing elements a later
// version may add are skipped, missing trailing fields are zero, seq is
// any integer encoding (or a float holding one) that fits a uint32, and
// dx and dy are any number that is finite as a float32.
func (in *Input) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	*in = Input{}
	if n < 0 { // nil
		return nil
	}
	if n > 0 {
		if in.Seq, err = decodeSeq(dec); err != nil {
			return err
		}
	}
	if n > 1 {
		if in.DX, err = decodeDir(dec); err != nil {
			return err
		}
	}
	if n > 2 {
		if in.DY, err = decodeDir(dec); err != nil {
			return err
		}
	}
	return game.SkipValues(dec, n-3)
}

var (
	errSeq = errors.New("seq must be an integer from 0 to 4294967295")
	errDir = errors.New("dx and dy must be finite numbers")
)

func decodeSeq(dec *msgpack.Decoder) (uint32, error) {
	c, err := dec.PeekCode()
	if err != nil {
		return 0, err
	}
	if c == msgpcode.Float || c == msgpcode.Double {
		f, err := dec.DecodeFloat64()
		if err != nil || f != math.Trunc(f) || f < 0 || f > math.MaxUint32 {
			return 0, errSeq
		}
		return uint32(f), nil
	}
	if c == msgpcode.Uint64 {
		u, err := dec.DecodeUint64()
		if err != nil || u > math.MaxUint32 {
			return 0, errSeq
		}
		return uint32(u), nil
	}
	v, err := dec.DecodeInt64()
	if err != nil || v < 0 || v > math.MaxUint32 {
		return 0, errSeq
	}
	return uint32(v), nil
}

func decodeDir(dec *msgpack.Decoder) (float64, error) {
	f, err := dec.DecodeFloat64()
	if err != nil {
		return 0, errDir
	}
	if f32 := float64(float32(f)); math.IsNaN(f32) || math.IsInf(f32, 0) {
		return 0, errDir
	}
	return f, nil
}

// dot is one player's state.
type dot struct {
	id       string
	x, y     float32
	dx, dy   float32
	lastSeq  uint32
	received uint32 // every input message, applied or not
}

// Arena is the room handler.
type Arena struct {
	game.Base
	dots  []*dot
	state stateBody
}

// New creates an arena room handler.
func New() game.Handler { return &Arena{} }

// OnCreate sizes the room from the "size" option.
func (a *Arena) OnCreate(r game.Room, opts game.Options) error {
	size := opts.Int("size", 8)
	if size < 1 || size > 64 {
		return &game.Error{Code: game.ErrInvalidOptions.Code, Message: "size must be 1 to 64"}
	}
	r.SetMaxPlayers(size)
	game.On(r, MsgInput, a.input)
	return nil
}

// OnJoin places the player at a spot derived from their seat.
func (a *Arena) OnJoin(r game.Room, p game.Player, _ game.JoinRequest) error {
	n := float64(len(a.dots))
	d := &dot{id: p.ID(), x: float32(Width/2 + 200*math.Cos(n)), y: float32(Height/2 + 200*math.Sin(n))}
	p.SetData(d)
	a.dots = append(a.dots, d)
	return nil
}

func (a *Arena) input(r game.Room, p game.Player, in Input) error {
	d := p.Data().(*dot)
	d.received++
	if in.Seq < d.lastSeq {
		return nil // late duplicate: the newer input already applied
	}
	d.dx, d.dy = clamp(float32(in.DX), -1, 1), clamp(float32(in.DY), -1, 1)
	d.lastSeq = in.Seq
	return nil
}

// OnTick moves every dot and broadcasts the state.
func (a *Arena) OnTick(r game.Room, dt time.Duration) {
	step := float32(Speed * dt.Seconds())
	for _, d := range a.dots {
		d.x = clamp(d.x+d.dx*step, 0, Width)
		d.y = clamp(d.y+d.dy*step, 0, Height)
	}
	a.state = stateBody(a.dots)
	_ = r.BroadcastState(&a.state)
}

// OnLeave removes the player's dot.
func (a *Arena) OnLeave(r game.Room, p game.Player, _ game.LeaveReason) {
	d, _ := p.Data().(*dot)
	for i, x := range a.dots {
		if x == d {
			a.dots = append(a.dots[:i], a.dots[i+1:]...)
			break
		}
	}
}

// snapshot is the arena's portable state.
type snapshot struct {
	_msgpack struct{}  `msgpack:",as_array"`
	Dots     []dotSnap `msgpack:"dots"`
}

type dotSnap struct {
	_msgpack struct{} `msgpack:",as_array"`
	ID       string
	X, Y     float32
	DX, DY   float32
	LastSeq  uint32
	Received uint32
}

// Snapshot implements game.Snapshotter: every dot, in seat order.
func (a *Arena) Snapshot(r game.Room) ([]byte, error) {
	s := snapshot{Dots: make([]dotSnap, len(a.dots))}
	for i, d := range a.dots {
		s.Dots[i] = dotSnap{ID: d.id, X: d.x, Y: d.y, DX: d.dx, DY: d.dy, LastSeq: d.lastSeq, Received: d.received}
	}
	return msgpack.Marshal(&s)
}

// Restore implements game.Snapshotter: the dots come back, each bound to
// its player's held seat, and the input route is set up again.
func (a *Arena) Restore(r game.Room, b []byte) error {
	var s snapshot
	if err := msgpack.Unmarshal(b, &s); err != nil {
		return err
	}
	a.dots = a.dots[:0]
	for _, ds := range s.Dots {
		d := &dot{id: ds.ID, x: ds.X, y: ds.Y, dx: ds.DX, dy: ds.DY, lastSeq: ds.LastSeq, received: ds.Received}
		a.dots = append(a.dots, d)
		if p := r.Player(ds.ID); p != nil {
			p.SetData(d)
		}
	}
	game.On(r, MsgInput, a.input)
	return nil
}

// stateBody encodes the dots as the arena state body without reflection.
type stateBody []*dot

// EncodeMsgpack implements msgpack.CustomEncoder.
func (s *stateBody) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(len(*s)); err != nil {
		return err
	}
	for _, d := range *s {
		_ = enc.EncodeArrayLen(5)
		_ = enc.EncodeString(d.id)
		_ = enc.EncodeFloat32(d.x)
		_ = enc.EncodeFloat32(d.y)
		_ = enc.EncodeUint32(d.lastSeq)
		if err := enc.EncodeUint32(d.received); err != nil {
			return err
		}
	}
	return nil
}

func clamp(v, lo, hi float32) float32 {
	return max(lo, min(hi, v))
}
