package room

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/zap"
)

// EnvelopeVersion is the version of the Envelope encoding.
const EnvelopeVersion = 1

// Envelope is a room in transit: what the engine knows of it plus the
// game's own snapshot. It is msgpack-encoded.
type Envelope struct {
	Version    int            `msgpack:"v"`
	Kind       string         `msgpack:"kind"`
	RoomID     string         `msgpack:"id"`
	Tick       uint64         `msgpack:"tick"`
	TickRate   int            `msgpack:"rate"`
	MaxPlayers int            `msgpack:"max"`
	Locked     bool           `msgpack:"locked"`
	Private    bool           `msgpack:"private"`
	Metadata   map[string]any `msgpack:"meta,omitempty"`
	Filters    game.Options   `msgpack:"filters,omitempty"`
	Seats      []Seat         `msgpack:"seats"`
	Game       []byte         `msgpack:"game"`
}

// Seat is a player's seat in an Envelope.
type Seat struct {
	PlayerID  string `msgpack:"player"`
	SessionID string `msgpack:"session"`
	UserID    string `msgpack:"user,omitempty"`
}

// ErrNotSnapshotter is returned for rooms whose handler cannot snapshot.
var ErrNotSnapshotter = errors.New("room type cannot snapshot")

// ErrRoomExists is returned by Restore for an ID already in use here.
var ErrRoomExists = errors.New("a room with this ID already exists")

// ReasonMoved is the disposal reason of a room stopped by Snapshot to move
// to another node: observers hear it, and the room lives on.
const ReasonMoved = "moved"

// CanSnapshot reports whether a room's handler implements game.Snapshotter.
func (m *Manager) CanSnapshot(ctx context.Context, id string) bool {
	ok := false
	_ = m.call(ctx, id, func(r *room) error {
		_, ok = r.handler.(game.Snapshotter)
		return nil
	})
	return ok
}

// Snapshot encodes a room as an Envelope, between two of its ticks. With
// stop, the room then ends without telling its players (they are moving
// with it): no OnLeave, no LEFT, and its seats are released silently.
func (m *Manager) Snapshot(ctx context.Context, id string, stop bool) ([]byte, error) {
	var out []byte
	err := m.call(ctx, id, func(r *room) error {
		sn, ok := r.handler.(game.Snapshotter)
		if !ok {
			return ErrNotSnapshotter
		}
		g, err := sn.Snapshot(r)
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		env := Envelope{Version: EnvelopeVersion, Kind: r.kind.name, RoomID: r.id, Tick: r.tick, TickRate: r.tickRate,
			Metadata: r.metadata, Game: g}
		r.m.mu.Lock()
		env.MaxPlayers, env.Locked, env.Private, env.Filters = r.maxPlayers, r.locked, r.private, r.filters
		r.m.mu.Unlock()
		for _, gp := range r.gamePlayer {
			p := gp.(*player)
			env.Seats = append(env.Seats, Seat{PlayerID: p.id, SessionID: p.member.ID(), UserID: p.member.UserID()})
		}
		out, err = msgpack.Marshal(&env)
		if err != nil {
			return err
		}
		if stop {
			r.moving = true
			r.disposing = ReasonMoved
		}
		return nil
	})
	return out, err
}

// AwaitEnded waits until the room with this ID, if there is one, has
// ended and freed its ID, or ctx ends. A room a Snapshot stopped ends
// after the turn it is in: restoring its envelope here at once (a move
// that failed) waits for that first.
func (m *Manager) AwaitEnded(ctx context.Context, id string) error {
	m.mu.Lock()
	r := m.rooms[id]
	m.mu.Unlock()
	if r == nil {
		return nil
	}
	select {
	case <-r.ctx.Done(): // cancelled once the ID is free (finish)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DecodeEnvelope reads an Envelope.
func DecodeEnvelope(b []byte) (Envelope, error) {
	var env Envelope
	if err := msgpack.Unmarshal(b, &env); err != nil {
		return env, fmt.Errorf("envelope: %w", err)
	}
	if env.Version != EnvelopeVersion {
		return env, fmt.Errorf("envelope version %d: this server reads %d", env.Version, EnvelopeVersion)
	}
	return env, nil
}

// Restore starts a room from an Envelope, with the same ID, in place of
// OnCreate. Every seat is held for its player, dropped until the player
// resumes (Reseat) or the type's resume window ends.
func (m *Manager) Restore(ctx context.Context, b []byte) (RoomInfo, error) {
	env, err := DecodeEnvelope(b)
	if err != nil {
		return RoomInfo{}, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return RoomInfo{}, errClosing
	}
	k := m.kinds[env.Kind]
	if k == nil {
		m.mu.Unlock()
		return RoomInfo{}, ErrUnknownKind
	}
	if m.rooms[env.RoomID] != nil {
		m.mu.Unlock()
		return RoomInfo{}, ErrRoomExists
	}
	r := m.newRoomLocked(k, env.RoomID, env.Filters)
	r.maxPlayers, r.locked, r.private = max(env.MaxPlayers, 1), env.Locked, env.Private
	r.seats = len(env.Seats)
	r.restore, r.restored = &env, true
	m.startLocked(r, event{kind: evCreate, x: &eventExtra{}})
	m.mu.Unlock()
	if err := r.awaitCreated(ctx); err != nil {
		return RoomInfo{}, err
	}
	return r.info(), nil
}

// restoreFrom runs in the room's first turn in place of OnCreate.
func (r *room) restoreFrom(env *Envelope) error {
	sn, ok := r.handler0().(game.Snapshotter)
	if !ok {
		return ErrNotSnapshotter
	}
	r.tick, r.tickRate = env.Tick, max(env.TickRate, 1)
	r.metadata = env.Metadata
	if len(r.metadata) > 0 {
		raw, _ := msgpack.Marshal(r.metadata)
		r.m.mu.Lock()
		r.metadataRaw = raw
		r.m.mu.Unlock()
	}
	deadline := r.m.now().Add(r.kind.cfg.ResumeWindow).UnixNano()
	for _, st := range env.Seats {
		p := &player{id: st.PlayerID, member: &heldMember{sessionID: st.SessionID, userID: st.UserID, until: deadline}, room: r,
			seated: true, dropped: true, index: int32(len(r.players))}
		r.players = append(r.players, p)
		r.gamePlayer = append(r.gamePlayer, p)
		r.m.stats.Players.Add(1)
	}
	if err := sn.Restore(r, env.Game); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// Reseat gives a resumed session back its seat in a room, after the room
// moved (or came back from a snapshot) and the session with it. It returns
// once the room has seated the member (or refused it), so the member's
// next message finds its seat; a seat that is gone is answered with LEFT.
func (m *Manager) Reseat(mb Member, roomID, playerID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := m.call(ctx, roomID, func(r *room) error {
		r.reseat(mb, playerID)
		return nil
	})
	if err != nil {
		left := protocol.Left{RoomID: roomID, Reason: protocol.LeftDropped, Code: protocol.CodeRoomNotFound}
		f := frame.New()
		f.B = left.Append(f.B)
		_ = mb.Send(f.Seal())
		f.Release()
		mb.Flush()
	}
}

func (r *room) reseat(mb Member, playerID string) {
	var p *player
	for _, q := range r.players {
		if q.id == playerID {
			p = q
			break
		}
	}
	if p == nil || !p.dropped || (p.member.ID() != mb.ID() && (mb.UserID() == "" || p.member.UserID() != mb.UserID())) {
		r.sendMsgAnyway(&player{member: mb}, &protocol.Left{RoomID: r.id, Reason: protocol.LeftDropped, Code: protocol.CodeRoomNotFound})
		if pd, ok := mb.Data().(*player); ok && pd.id == playerID {
			mb.SetData(nil)
		}
		mb.Flush()
		return
	}
	if h, ok := p.member.(*heldMember); ok {
		h.handOver(mb)
	}
	p.member = mb
	mb.SetData(p)
	if !p.dirty {
		p.dirty = true
		r.dirty = append(r.dirty, p)
	}
	p.dropped = false
	if rs, ok := r.handler.(game.Resumer); ok {
		rs.OnResume(r, p)
	}
	r.presence(p, protocol.PresenceResume)
}

// expireHeld releases restored seats whose players did not come back.
func (r *room) expireHeld(now time.Time) {
	for i := len(r.players) - 1; i >= 0; i-- {
		p := r.players[i]
		if h, ok := p.held(); ok && now.UnixNano() > h.until {
			if r.m.log.Core().Enabled(zap.DebugLevel) {
				r.Logger().Debug("held seat expired", zap.String("player", p.id))
			}
			h.drop()
			r.leave(p, game.LeaveDropped, 0, nil)
		}
	}
}

// heldMember stands for a player whose session is on its way to this room
// (the room moved or came back from a snapshot): what the room sends the
// player waits here, bounded, and goes to the session when it is reseated,
// so the player misses nothing.
type heldMember struct {
	sessionID, userID string
	until             int64 // when the seat is released, in Unix nanoseconds
	data              any
	frames            []*frame.Frame
	bytes             int
}

// Bounds of a held seat's queue; past them the oldest messages go (the
// client then sees a gap, as after a long disconnection).
const (
	maxHeldFrames = 1024
	maxHeldBytes  = 1 << 20
)

func (h *heldMember) ID() string             { return h.sessionID }
func (h *heldMember) UserID() string         { return h.userID }
func (h *heldMember) Claims() map[string]any { return nil }
func (h *heldMember) Flush()                 {}
func (h *heldMember) RTT() time.Duration     { return 0 }
func (h *heldMember) Data() any              { return h.data }
func (h *heldMember) SetData(v any)          { h.data = v }

// Send keeps f for the player (room's shard only).
func (h *heldMember) Send(f *frame.Frame) error {
	f.Retain()
	h.frames = append(h.frames, f)
	h.bytes += f.Len()
	for len(h.frames) > maxHeldFrames || h.bytes > maxHeldBytes {
		h.bytes -= h.frames[0].Len()
		h.frames[0].Release()
		h.frames[0] = nil
		h.frames = h.frames[1:]
	}
	return nil
}

// handOver sends what was kept to the player's member, in order.
func (h *heldMember) handOver(mb Member) {
	for _, f := range h.frames {
		_ = mb.Send(f)
		f.Release()
	}
	h.frames, h.bytes = nil, 0
}

// drop releases what was kept.
func (h *heldMember) drop() {
	for _, f := range h.frames {
		f.Release()
	}
	h.frames, h.bytes = nil, 0
}

// Hold keeps a member's seat for its player while the player's session
// moves to another node: the player is dropped, and the seat waits for a
// Reseat until the room type's resume window ends.
func (m *Manager) Hold(mb Member) {
	if p := seatOf(mb); p != nil {
		p.room.post(event{kind: evHold, p: p}, true)
	}
}

// SeatOf returns the room and player IDs a member is seated as.
func (m *Manager) SeatOf(mb Member) (roomID, playerID string, ok bool) {
	p := seatOf(mb)
	if p == nil {
		return "", "", false
	}
	return p.room.id, p.id, true
}
