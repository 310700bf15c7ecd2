package room

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/zap"
)

// Config configures a Manager.
type Config struct {
	// Node names this server in room loggers.
	Node string
	// Logger receives room logs. Nil means no logging.
	Logger *zap.Logger
	// TickObserver, if set, is called once per room type and returns the
	// function that records each tick's duration (for a histogram).
	TickObserver func(kind string) func(time.Duration)
	// Observer, if set, hears about rooms created and disposed and players
	// joining and leaving.
	Observer Observer
	// ResumeWindow is the resume window of room types that set none. Zero
	// means 30 s.
	ResumeWindow time.Duration
	// Clock is the rooms' clock: ticks, timers, Room.Now, reservations and
	// resume windows follow it. Nil means time.Now.
	Clock func() time.Time
	// Manual starts no shard goroutines: rooms take their turns only when
	// Step is called, on the caller's goroutine (game/gametest, with a
	// Clock it moves itself).
	Manual bool
}

// Stats are the engine's counters.
type Stats struct {
	Rooms         atomic.Int64
	Players       atomic.Int64
	RoomsCreated  atomic.Uint64
	RoomsDisposed atomic.Uint64
	Ticks         atomic.Uint64
	TickOverruns  atomic.Uint64
	Panics        atomic.Uint64
	InboxFull     atomic.Uint64
}

// kind is a registered room type.
type kind struct {
	name    string
	factory game.HandlerFunc
	cfg     game.RoomConfig
	observe func(time.Duration)
	rooms   atomic.Int64
}

// Manager is the room registry and matchmaker of one node.
type Manager struct {
	cfg   Config
	log   *zap.Logger
	stats Stats

	mu       sync.Mutex // guards kinds, rooms and every room's matchmaking fields
	kinds    map[string]*kind
	rooms    map[string]*room
	closed   bool
	wg       sync.WaitGroup // rooms not finished yet
	goWG     sync.WaitGroup // Room.Go functions still running
	stopOnce sync.Once
	shards   []*shard
}

// NewManager returns an empty registry.
func NewManager(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, kinds: make(map[string]*kind), rooms: make(map[string]*room)}
	m.shards = newShards(m)
	return m
}

// WaitGo waits until every function started with Room.Go has returned and
// its continuation, if any, is queued for its room (game/gametest).
func (m *Manager) WaitGo() { m.goWG.Wait() }

// now is the time on the rooms' clock.
func (m *Manager) now() time.Time { return m.cfg.Clock() }

// Stats returns the live counters.
func (m *Manager) Stats() *Stats { return &m.stats }

// Register adds a room type. Names are 1 to 64 bytes; a name can be
// registered once.
func (m *Manager) Register(name string, factory game.HandlerFunc, cfg game.RoomConfig) error {
	if name == "" || len(name) > protocol.MaxIDLen {
		return fmt.Errorf("room type %q: name must be 1 to %d bytes", name, protocol.MaxIDLen)
	}
	if factory == nil {
		return fmt.Errorf("room type %q: nil factory", name)
	}
	if cfg.ResumeWindow == 0 {
		cfg.ResumeWindow = m.cfg.ResumeWindow
	}
	if err := setDefaults(&cfg); err != nil {
		return fmt.Errorf("room type %q: %w", name, err)
	}
	k := &kind{name: name, factory: factory, cfg: cfg}
	if m.cfg.TickObserver != nil {
		k.observe = m.cfg.TickObserver(name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.kinds[name]; dup {
		return fmt.Errorf("room type %q registered twice", name)
	}
	m.kinds[name] = k
	return nil
}

func setDefaults(c *game.RoomConfig) error {
	if c.TickRate == 0 {
		c.TickRate = 20
	}
	if c.MaxPlayers == 0 {
		c.MaxPlayers = 16
	}
	if c.EmptyTimeout == 0 {
		c.EmptyTimeout = 30 * time.Second
	}
	if c.ResumeWindow == 0 {
		c.ResumeWindow = 30 * time.Second
	}
	if c.ReservationTimeout == 0 {
		c.ReservationTimeout = 10 * time.Second
	}
	if c.InboxSize == 0 {
		c.InboxSize = 256
	}
	switch {
	case c.TickRate < 1 || c.TickRate > 120:
		return fmt.Errorf("tick rate %d outside 1..120", c.TickRate)
	case c.MaxPlayers < 1 || c.MaxPlayers > 4096:
		return fmt.Errorf("max players %d outside 1..4096", c.MaxPlayers)
	case c.EmptyTimeout < 0 || c.ReservationTimeout < 0 || c.ResumeWindow < 0:
		return errors.New("negative timeout")
	case c.InboxSize < 16:
		return fmt.Errorf("inbox size %d below 16", c.InboxSize)
	}
	return nil
}

// Kinds returns the registered room type names.
func (m *Manager) Kinds() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.kinds))
	for n := range m.kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// FilterBy returns the options a room type's join-or-create matches on
// (its RoomConfig.FilterBy), or nil for an unknown type.
func (m *Manager) FilterBy(kind string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k := m.kinds[kind]; k != nil {
		return k.cfg.FilterBy
	}
	return nil
}

// RoomsByKind returns the number of live rooms of each type.
func (m *Manager) RoomsByKind() map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int64, len(m.kinds))
	for n, k := range m.kinds {
		out[n] = k.rooms.Load()
	}
	return out
}

// Error values of matchmaking, as they go to the client.
var (
	errUnknownKind = protocol.NewError(protocol.CodeRoomNotFound, "unknown room type")
	errNoRoom      = protocol.NewError(protocol.CodeRoomNotFound, "no such room")
	errFull        = protocol.NewError(protocol.CodeRoomFull, "room is full")
	errLocked      = protocol.NewError(protocol.CodeRoomLocked, "room is locked")
	errInRoom      = protocol.NewError(protocol.CodeAlreadyInRoom, "already in a room: leave it first")
	errNotInRoom   = protocol.NewError(protocol.CodeNotInRoom, "not in a room")
	errBusy        = protocol.NewError(protocol.CodeUnavailable, "room is busy: message dropped")
	errClosing     = protocol.NewError(protocol.CodeUnavailable, "server is shutting down")
)

// Handle serves one message of a member: JOIN, LEAVE, LIST or a game
// message. It runs on the member's transport goroutine and never blocks on
// a room. body is only valid until it returns.
func (m *Manager) Handle(mb Member, t protocol.MsgType, body []byte) error {
	switch {
	case t.IsGame():
		p := seatOf(mb)
		if p == nil {
			return errNotInRoom
		}
		return p.room.postMessage(p, t, body)
	case t == protocol.TypeJoin:
		var j protocol.Join
		if err := j.Decode(body); err != nil {
			return err
		}
		if err := m.join(mb, &j); err != nil {
			return withReq(err, j.ReqID)
		}
		return nil
	case t == protocol.TypeLeave:
		var l protocol.Leave
		if err := l.Decode(body); err != nil {
			return err
		}
		p := seatOf(mb)
		if p == nil {
			return withReq(errNotInRoom, l.ReqID)
		}
		p.room.postLeave(mb, p, game.LeaveLeft, l.ReqID)
		return nil
	case t == protocol.TypeList:
		var l protocol.List
		if err := l.Decode(body); err != nil {
			return err
		}
		msg := protocol.Rooms{ReqID: l.ReqID, Rooms: m.List(l.Kind)}
		f := frame.New()
		f.B = msg.Append(f.B)
		err := mb.Send(f.Seal())
		f.Release()
		mb.Flush()
		return err
	}
	return protocol.NewError(protocol.CodeUnknownType, "unknown message type "+t.String())
}

// ReqError is a protocol error that answers a request id.
type ReqError struct {
	Err   *protocol.Error
	ReqID uint32
}

func (e *ReqError) Error() string     { return e.Err.Error() }
func (e *ReqError) Unwrap() error     { return e.Err }
func (e *ReqError) RequestID() uint32 { return e.ReqID }

func withReq(err error, reqID uint32) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return &ReqError{Err: pe, ReqID: reqID}
	}
	return err
}

// Detached tells the engine a member's connection dropped. The seat is
// kept; it returns how long the member's room type waits for a resume, and
// false when the member is in no room.
func (m *Manager) Detached(mb Member) (time.Duration, bool) {
	p := seatOf(mb)
	if p == nil {
		return 0, false
	}
	p.room.post(event{kind: evDrop, p: p}, true)
	return p.room.kind.cfg.ResumeWindow, true
}

// Resumed tells the engine a detached member is back.
func (m *Manager) Resumed(mb Member) {
	if p := seatOf(mb); p != nil {
		p.room.post(event{kind: evResume, p: p}, true)
	}
}

// Closed tells the engine a member's session ended: its seat is given up.
func (m *Manager) Closed(mb Member) {
	if p := seatOf(mb); p != nil {
		p.room.postLeave(mb, p, game.LeaveDropped, 0)
	}
}

func (m *Manager) join(mb Member, j *protocol.Join) error {
	if seatOf(mb) != nil {
		return errInRoom
	}
	var opts game.Options
	if len(j.Options) > 0 && !(len(j.Options) == 1 && j.Options[0] == 0xc0) {
		if err := msgpack.Unmarshal(j.Options, &opts); err != nil {
			return protocol.NewError(protocol.CodeInvalidOptions, "options must be a msgpack map with string keys: "+err.Error())
		}
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errClosing
	}
	var r *room
	var err error
	switch j.Mode {
	case protocol.JoinByID:
		r = m.rooms[j.RoomID]
		held := false
		if r != nil && mb.UserID() != "" {
			if d, ok := r.reservedUsers[mb.UserID()]; ok && m.now().Before(d) {
				held = true // the seat was held for this user: take it
				delete(r.reservedUsers, mb.UserID())
				r.seats--
			}
		}
		switch {
		case r == nil || r.disposed:
			err = errNoRoom
		case held:
		case r.locked:
			err = errLocked
		case r.seats >= r.maxPlayers:
			err = errFull
		}
	case protocol.JoinCreate, protocol.JoinOrCreate:
		k := m.kinds[j.Kind]
		if k == nil {
			m.mu.Unlock()
			return protocol.NewError(protocol.CodeRoomNotFound, fmt.Sprintf("unknown room type %q", j.Kind))
		}
		if j.Mode == protocol.JoinOrCreate {
			r = m.findLocked(k, opts)
		}
		if r == nil {
			r = m.createLocked(k, opts)
		}
	default:
		err = protocol.NewError(protocol.CodeBadRequest, fmt.Sprintf("join mode %d unknown", j.Mode))
	}
	if err != nil {
		m.mu.Unlock()
		return err
	}
	// Reserve the seat while the lock is held: two players racing for the
	// last seat cannot both get it.
	r.seats++
	deadline := m.now().Add(r.kind.cfg.ReservationTimeout)
	m.mu.Unlock()

	p := &player{id: newID(8), member: mb, room: r, index: -1}
	mb.SetData(p)
	if !r.post(event{kind: evJoin, p: p, reqID: j.ReqID, x: &eventExtra{opts: opts, deadline: deadline}}, false) {
		mb.SetData(nil)
		m.releaseSeat(r)
		return r.joinRefusal()
	}
	return nil
}

// joinRefusal is what a join is told when the room would not take its
// event: OnCreate's refusal when the room it was to create has already
// refused (it stops at once, and can do so between the seat's reservation
// and the join's post), else that the room is busy.
func (r *room) joinRefusal() error {
	select {
	case <-r.createdCh: // createErr is written before the close
		if ge := asGameError(r.createErr); ge != nil {
			return protocol.NewError(protocol.Code(ge.Code), ge.Message)
		}
	default:
	}
	return errBusy
}

// findLocked picks the fullest open room of kind k whose filtered options
// match opts. Lock must be held.
func (m *Manager) findLocked(k *kind, opts game.Options) *room {
	var best *room
	for _, r := range m.rooms {
		if r.kind != k || r.disposed || r.locked || r.private || r.seats >= r.maxPlayers {
			continue
		}
		if !FiltersMatch(k.cfg.FilterBy, r.filters, opts) {
			continue
		}
		if best == nil || r.seats > best.seats || (r.seats == best.seats && r.created.Before(best.created)) {
			best = r
		}
	}
	return best
}

// releaseSeat gives back a reservation or a seat.
func (m *Manager) releaseSeat(r *room) {
	m.mu.Lock()
	r.seats--
	if r.seats == 0 {
		r.emptySince = m.now()
	}
	m.mu.Unlock()
}

// List returns the rooms players may join: not private, not locked, not
// full; of one type, or of every type when kind is "".
func (m *Manager) List(kind string) []protocol.RoomInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []protocol.RoomInfo
	for _, r := range m.rooms {
		if r.disposed || r.private || r.locked || r.seats >= r.maxPlayers || (kind != "" && r.kind.name != kind) {
			continue
		}
		out = append(out, protocol.RoomInfo{
			RoomID: r.id, Kind: r.kind.name, Players: uint32(r.seats), MaxPlayers: uint32(r.maxPlayers), Metadata: r.metadataRaw,
		})
		if len(out) == protocol.MaxRooms {
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RoomID < out[j].RoomID })
	return out
}

// Shutdown disposes every room, waits for them to finish and stops the
// shards.
func (m *Manager) Shutdown(reason string) {
	m.mu.Lock()
	m.closed = true
	rooms := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	m.mu.Unlock()
	for _, r := range rooms {
		r.post(event{kind: evDispose, x: &eventExtra{reason: reason}}, true)
	}
	if m.cfg.Manual {
		m.Step()
	}
	m.wg.Wait()
	m.stopOnce.Do(func() {
		for _, s := range m.shards {
			close(s.stop)
			<-s.done
		}
	})
}

const idAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// newID returns n random characters from an unambiguous alphabet.
func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}
