package room

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

// Observer hears about room lifecycle events (webhooks, monitors). Its
// methods run on room shards and must not block.
type Observer interface {
	RoomCreated(r RoomInfo)
	RoomDisposed(r RoomInfo, reason string)
	PlayerJoined(r RoomInfo, p PlayerInfo)
	PlayerLeft(r RoomInfo, p PlayerInfo, reason game.LeaveReason)
}

// RoomInfo describes a room for operators and backends.
type RoomInfo struct {
	ID         string         `json:"id"`
	Kind       string         `json:"kind"`
	Node       string         `json:"node"`
	Players    int            `json:"players"` // seated players and held seats
	MaxPlayers int            `json:"maxPlayers"`
	Locked     bool           `json:"locked"`
	Private    bool           `json:"private"`
	Metadata   map[string]any `json:"metadata,omitempty"`
	Created    time.Time      `json:"created"`
	// ReservedUntil is, in Create's answer, when the held seats are given
	// up if their users have not come.
	ReservedUntil time.Time `json:"reservedUntil,omitempty"`
	// Restored is set for a room that came back from a snapshot (moved
	// here from another node, or brought back after its node died) rather
	// than made by OnCreate.
	Restored bool `json:"-"`
}

// PlayerInfo describes a seated player.
type PlayerInfo struct {
	ID        string  `json:"id"`
	SessionID string  `json:"-"`
	UserID    string  `json:"userId,omitempty"`
	Connected bool    `json:"connected"`
	RTTMillis float64 `json:"rttMs"`
}

// RoomDetail is a room with its players and loop figures.
type RoomDetail struct {
	RoomInfo
	PlayerList   []PlayerInfo `json:"playerList"`
	Reserved     []string     `json:"reserved"` // users holding a seat who have not arrived
	Tick         uint64       `json:"tick"`
	TickRate     int          `json:"tickRate"`
	LastTickMs   float64      `json:"lastTickMs"`
	TickOverruns uint64       `json:"tickOverruns"`
}

// Errors of the admin API.
var (
	ErrNoRoom      = errors.New("no such room")
	ErrNoPlayer    = errors.New("no such player in the room")
	ErrUnknownKind = errors.New("unknown room type")
	ErrTooMany     = errors.New("more reserved users than seats")
)

// infoLocked snapshots r. Manager.mu must be held.
func (r *room) infoLocked() RoomInfo {
	var md map[string]any
	if len(r.metadataRaw) > 0 {
		_ = msgpack.Unmarshal(r.metadataRaw, &md)
	}
	return RoomInfo{ID: r.id, Kind: r.kind.name, Node: r.m.cfg.Node, Players: r.seats, MaxPlayers: r.maxPlayers,
		Locked: r.locked, Private: r.private, Metadata: md, Created: r.created, Restored: r.restored}
}

func (r *room) info() RoomInfo {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	return r.infoLocked()
}

func (p *player) info() PlayerInfo {
	return PlayerInfo{ID: p.id, SessionID: p.member.ID(), UserID: p.member.UserID(), Connected: p.Connected(), RTTMillis: float64(p.member.RTT().Microseconds()) / 1000}
}

// Rooms lists every live room (private and locked ones too), of one type
// or of all when kind is "", sorted by ID.
func (m *Manager) Rooms(kind string) []RoomInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]RoomInfo, 0, len(m.rooms))
	for _, r := range m.rooms {
		if !r.disposed && (kind == "" || r.kind.name == kind) {
			out = append(out, r.infoLocked())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (m *Manager) lookup(id string) *room {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.rooms[id]; r != nil && !r.disposed {
		return r
	}
	return nil
}

// call runs fn in a turn of the room and waits for it.
func (m *Manager) call(ctx context.Context, id string, fn func(r *room) error) error {
	r := m.lookup(id)
	if r == nil {
		return ErrNoRoom
	}
	done := make(chan error, 1)
	if !r.post(event{kind: evCall, fn: func(game.Room) { done <- fn(r) }}, false) {
		if r.isClosed() {
			return ErrNoRoom
		}
		return errBusy
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-r.ctx.Done():
		// Disposed before it got to the call.
		select {
		case err := <-done:
			return err
		case <-time.After(100 * time.Millisecond):
			return ErrNoRoom
		}
	}
}

// Room returns a room's details, read in a turn of the room.
func (m *Manager) Room(ctx context.Context, id string) (RoomDetail, error) {
	var d RoomDetail
	err := m.call(ctx, id, func(r *room) error {
		d.RoomInfo = r.info()
		d.Tick, d.TickRate = r.tick, r.tickRate
		d.LastTickMs = float64(r.lastTickDur.Microseconds()) / 1000
		d.TickOverruns = r.overruns
		d.PlayerList = make([]PlayerInfo, 0, len(r.gamePlayer))
		for _, gp := range r.gamePlayer {
			d.PlayerList = append(d.PlayerList, gp.(*player).info())
		}
		r.m.mu.Lock()
		for u := range r.reservedUsers {
			d.Reserved = append(d.Reserved, u)
		}
		r.m.mu.Unlock()
		sort.Strings(d.Reserved)
		return nil
	})
	return d, err
}

// Create makes a room of kind with opts, holding a seat for each user in
// reserve for the type's ReservationTimeout; those users may then join it
// by ID even when it is locked, private or otherwise full. It waits for
// OnCreate and returns its refusal, if any.
func (m *Manager) Create(ctx context.Context, kind string, opts game.Options, reserve []string) (RoomInfo, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return RoomInfo{}, errClosing
	}
	k := m.kinds[kind]
	if k == nil {
		m.mu.Unlock()
		return RoomInfo{}, ErrUnknownKind
	}
	if len(reserve) > k.cfg.MaxPlayers {
		m.mu.Unlock()
		return RoomInfo{}, ErrTooMany
	}
	r := m.createLocked(k, opts)
	m.reserveLocked(r, reserve)
	m.mu.Unlock()
	if err := r.awaitCreated(ctx); err != nil {
		return RoomInfo{}, err
	}
	info := r.info()
	if len(reserve) > 0 {
		info.ReservedUntil = m.now().Add(k.cfg.ReservationTimeout)
	}
	return info, nil
}

// awaitCreated waits for the room's OnCreate (or Restore) and returns its
// refusal.
func (r *room) awaitCreated(ctx context.Context) error {
	select {
	case <-r.createdCh:
		return r.createErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reserveLocked holds seats for users. Manager.mu must be held.
func (m *Manager) reserveLocked(r *room, users []string) {
	if len(users) == 0 {
		return
	}
	if r.reservedUsers == nil {
		r.reservedUsers = make(map[string]time.Time)
	}
	deadline := m.now().Add(r.kind.cfg.ReservationTimeout)
	for _, u := range users {
		if _, dup := r.reservedUsers[u]; !dup {
			r.seats++
		}
		r.reservedUsers[u] = deadline
	}
}

// expireReservationsLocked frees seats held for users who did not come.
// Manager.mu must be held.
func (r *room) expireReservationsLocked(now time.Time) {
	for u, d := range r.reservedUsers {
		if now.After(d) {
			delete(r.reservedUsers, u)
			r.seats--
			if r.seats == 0 {
				r.emptySince = now
			}
		}
	}
}

// Dispose ends a room: its players leave with LEFT (reason disposed).
func (m *Manager) Dispose(id, reason string) error {
	r := m.lookup(id)
	if r == nil {
		return ErrNoRoom
	}
	if reason == "" {
		reason = "disposed by the server"
	}
	if !r.post(event{kind: evDispose, x: &eventExtra{reason: reason}}, true) {
		return ErrNoRoom
	}
	return nil
}

// Kick removes a player from a room; the client receives code and message.
func (m *Manager) Kick(ctx context.Context, roomID, playerID string, code uint16, message string) error {
	return m.call(ctx, roomID, func(r *room) error {
		p := r.Player(playerID)
		if p == nil {
			return ErrNoPlayer
		}
		r.Kick(p, &game.Error{Code: code, Message: message})
		return nil
	})
}

// Send delivers a message (a game type and its msgpack body) to one player
// of a room, or to all its players when playerID is "".
func (m *Manager) Send(ctx context.Context, roomID, playerID string, t protocol.MsgType, body []byte) error {
	if !t.IsGame() {
		return fmt.Errorf("type %v: only game types (0x1000 and up) can be sent", t)
	}
	if !oneValue(body) {
		return errors.New("body must be one msgpack value")
	}
	return m.call(ctx, roomID, func(r *room) error {
		if playerID == "" {
			return r.BroadcastBytes(game.MsgType(t), body)
		}
		p := r.Player(playerID)
		if p == nil {
			return ErrNoPlayer
		}
		return r.SendBytes(p, game.MsgType(t), body)
	})
}

func oneValue(b []byte) bool {
	rd := protocol.NewReader(b)
	return rd.Skip() == nil && rd.Len() == 0
}

// Has reports whether a room lives here.
func (m *Manager) Has(id string) bool { return m.lookup(id) != nil }

// Filters returns the values of a room's FilterBy options.
func (m *Manager) Filters(id string) game.Options {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.rooms[id]; r != nil {
		return r.filters
	}
	return nil
}
