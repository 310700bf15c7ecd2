package room

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/zap"
)

type evKind uint8

const (
	evCreate evKind = iota
	evJoin
	evMessage
	evLeave
	evCall
	evDispose
	evDrop
	evResume
	evHold
)

// event is one entry of a room's inbox: 48 bytes, since every room's inbox
// is allocated whole. Fields that only joins and control events use live
// behind x.
type event struct {
	kind  evKind
	leave uint8 // a game.LeaveReason
	t     game.MsgType
	reqID uint32
	p     *player
	body  *bodyBuf
	at    int64 // Unix nanoseconds a message was read
	fn    func(game.Room)
	x     *eventExtra
}

// eventExtra holds the fields of the rarer events.
type eventExtra struct {
	opts     game.Options
	reason   string
	deadline time.Time
}

// bodyBuf carries a message body from the transport's buffer into the
// room; pooled, so steady traffic allocates nothing.
type bodyBuf struct{ b []byte }

var bodyPool = sync.Pool{New: func() any { return &bodyBuf{b: make([]byte, 0, 256)} }}

// room runs one game.Handler. Fields in the first group are guarded by
// Manager.mu; the rest belong to the room's shard.
type room struct {
	m       *Manager
	kind    *kind
	id      string
	created time.Time

	// Guarded by Manager.mu: what matchmaking and listings read.
	seats         int // seated players plus reservations
	maxPlayers    int
	locked        bool
	private       bool
	disposed      bool
	emptySince    time.Time
	filters       game.Options
	metadataRaw   []byte
	reservedUsers map[string]time.Time // seats held for users by Create, until the deadline

	// The inbox, guarded by inMu. queued is set while the room waits for
	// or takes a turn on its shard; closed once it no longer takes events.
	inMu   sync.Mutex
	inbox  []event
	queued bool
	closed bool

	// Owned by the room's shard, which runs the room's callbacks.
	sh          *shard
	nextTick    time.Time
	dueAt       time.Time // the earlier of nextTick and the first timer
	dueIndex    int       // place in the shard's deadline heap; -1 when absent
	finished    bool
	handler     game.Handler
	log         atomic.Pointer[zap.Logger] // see Logger
	ctx         context.Context
	cancel      context.CancelFunc
	tick        uint64
	tickRate    int
	lastTick    time.Time
	players     []*player
	gamePlayer  []game.Player
	routes      map[game.MsgType]func(game.Room, game.Player, game.Message) error
	timers      timerHeap
	timerSeq    uint64
	dirty       []*player
	joining     *player        // inside OnJoin: frames for the player are held
	joinHeld    []*frame.Frame // frames sent during OnJoin, released after JOINED
	metadata    map[string]any
	disposing   string
	createErr   error // OnCreate's refusal; read by awaitCreated once createdCh is closed
	failErr     error // why a created room failed (a panic)
	lastWarn    time.Time
	lastTickDur time.Duration
	overruns    uint64
	restore     *Envelope     // set until the loop restores from it
	restored    bool          // came from a snapshot, not OnCreate (set before the loop starts)
	moving      bool          // disposed because it moved: players are not told
	createdOK   bool          // OnCreate (or Restore) succeeded
	createdCh   chan struct{} // closed once OnCreate (or Restore) returned
}

// createLocked makes a room of kind k and starts its loop. Lock must be held.
func (m *Manager) createLocked(k *kind, opts game.Options) *room {
	var filters game.Options
	for _, key := range k.cfg.FilterBy {
		if v, ok := opts[key]; ok {
			if filters == nil {
				filters = make(game.Options)
			}
			filters[key] = v
		}
	}
	r := m.newRoomLocked(k, newID(10), filters)
	m.startLocked(r, event{kind: evCreate, x: &eventExtra{opts: opts}})
	return r
}

// newRoomLocked builds a room and registers it. Lock must be held.
func (m *Manager) newRoomLocked(k *kind, id string, filters game.Options) *room {
	r := &room{
		m: m, kind: k, id: id, created: m.now(),
		maxPlayers: k.cfg.MaxPlayers,
		dueIndex:   -1,
		tickRate:   k.cfg.TickRate,
		emptySince: m.now(),
		filters:    filters,
		routes:     make(map[game.MsgType]func(game.Room, game.Player, game.Message) error),
		createdCh:  make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	m.rooms[r.id] = r
	k.rooms.Add(1)
	m.stats.Rooms.Add(1)
	m.stats.RoomsCreated.Add(1)
	return r
}

// startLocked places the room on a shard and queues its first event. Lock
// must be held.
func (m *Manager) startLocked(r *room, first event) {
	m.wg.Add(1)
	r.sh = m.placeLocked()
	r.post(first, true)
}

// post queues ev for the room's next turn. With wait the inbox bound does
// not apply (leaves, continuations, dispose: events that must not be
// lost); otherwise post fails when the inbox is full. It fails once the
// room has stopped. It never blocks on the room.
func (r *room) post(ev event, wait bool) bool {
	r.inMu.Lock()
	if r.closed {
		r.inMu.Unlock()
		return false
	}
	if !wait && len(r.inbox) >= r.kind.cfg.InboxSize {
		r.inMu.Unlock()
		r.m.stats.InboxFull.Add(1)
		return false
	}
	r.inbox = append(r.inbox, ev)
	wake := !r.queued
	r.queued = true
	r.inMu.Unlock()
	if wake {
		r.sh.readyRoom(r)
	}
	return true
}

func (r *room) postMessage(p *player, t protocol.MsgType, body []byte) error {
	b := bodyPool.Get().(*bodyBuf)
	b.b = append(b.b[:0], body...)
	if !r.post(event{kind: evMessage, p: p, t: game.MsgType(t), body: b, at: r.m.now().UnixNano()}, false) {
		bodyPool.Put(b)
		if r.isClosed() {
			return errNotInRoom
		}
		return errBusy
	}
	return nil
}

func (r *room) postLeave(mb Member, p *player, reason game.LeaveReason, reqID uint32) {
	if !r.post(event{kind: evLeave, p: p, leave: uint8(reason), reqID: reqID}, true) && mb.Data() == any(p) {
		mb.SetData(nil) // the room is gone; its cleanup already released the seat
	}
}

func (r *room) isClosed() bool {
	r.inMu.Lock()
	defer r.inMu.Unlock()
	return r.closed
}

// panicked disposes the room after a panic in game code.
func (r *room) panicked(v any) {
	r.m.stats.Panics.Add(1)
	r.Logger().Error("room panicked: disposing it", zap.Any("panic", v), zap.Uint64("tick", r.tick), zap.ByteString("stack", debug.Stack()))
	if r.disposing == "" {
		r.disposing = "internal error"
	}
	r.failErr = game.ErrInternal
	// A panic inside OnJoin leaves the joiner's held frames behind.
	for _, f := range r.joinHeld {
		f.Release()
	}
	clear(r.joinHeld)
	r.joinHeld, r.joining = r.joinHeld[:0], nil
}

// endErr is what players and waiting joins are told when the room ends
// because it failed; nil after an orderly end.
func (r *room) endErr() error {
	if r.failErr != nil {
		return r.failErr
	}
	return r.createErr
}

func (r *room) handle(ev event) {
	switch ev.kind {
	case evCreate:
		r.lastTick = r.m.now()
		r.nextTick = r.lastTick.Add(r.period())
		var err error
		if r.restore != nil {
			err = r.restoreFrom(r.restore)
			r.restore = nil
		} else {
			err = r.handler0().OnCreate(r, ev.x.opts)
		}
		if err != nil {
			r.createErr = err
			r.disposing = "create failed"
		} else {
			r.createdOK = true
			if o := r.m.cfg.Observer; o != nil {
				o.RoomCreated(r.info())
			}
		}
		close(r.createdCh)
	case evJoin:
		r.join(ev)
	case evMessage:
		r.message(ev)
		ev.body.b = ev.body.b[:0]
		bodyPool.Put(ev.body)
	case evLeave:
		r.leave(ev.p, game.LeaveReason(ev.leave), ev.reqID, nil)
	case evCall:
		ev.fn(r)
	case evDispose:
		r.disposing = ev.x.reason
		if r.disposing == "" {
			r.disposing = "disposed"
		}
	case evDrop:
		if p := ev.p; p.seated && !p.dropped {
			p.dropped = true
			if rs, ok := r.handler.(game.Resumer); ok {
				rs.OnDrop(r, p)
			}
			r.presence(p, protocol.PresenceDrop)
		}
	case evHold:
		if p := ev.p; p.seated {
			// The member's channel is gone: keep what the room sends for
			// the session's new node.
			p.member = &heldMember{sessionID: p.member.ID(), userID: p.member.UserID(),
				until: r.m.now().Add(r.kind.cfg.ResumeWindow).UnixNano()}
			if !p.dropped {
				p.dropped = true
				if rs, ok := r.handler.(game.Resumer); ok {
					rs.OnDrop(r, p)
				}
				r.presence(p, protocol.PresenceDrop)
			}
		}
	case evResume:
		if p := ev.p; p.seated && p.dropped {
			p.dropped = false
			if rs, ok := r.handler.(game.Resumer); ok {
				rs.OnResume(r, p)
			}
			r.presence(p, protocol.PresenceResume)
		}
	}
}

// handler0 builds the handler on first use, on the room's shard.
func (r *room) handler0() game.Handler {
	if r.handler == nil {
		r.handler = r.kind.factory()
	}
	return r.handler
}

func (r *room) join(ev event) {
	p := ev.p
	refuse := func(e error) {
		p.gone = true
		if p.member.Data() == any(p) {
			p.member.SetData(nil)
		}
		r.m.releaseSeat(r)
		r.sendErr(p, e, protocol.TypeJoin, ev.reqID)
	}
	if err := r.endErr(); err != nil {
		refuse(err)
		return
	}
	if p.gone || p.member.Data() != any(p) {
		r.m.releaseSeat(r) // dropped before the room got to it
		return
	}
	if r.m.now().After(ev.x.deadline) {
		refuse(protocol.NewError(protocol.CodeUnavailable, "seat reservation expired: try again"))
		return
	}
	// A user whose seat is held here (the room came back from a snapshot)
	// takes that seat back rather than a new one.
	if uid := p.member.UserID(); uid != "" {
		for _, q := range r.players {
			if _, held := q.held(); held && q.member.UserID() == uid {
				r.m.releaseSeat(r) // the reservation: the held seat is counted already
				mb := p.member
				p.gone = true
				r.reseat(mb, q.id)
				r.sendMsg(q, &protocol.Joined{ReqID: ev.reqID, RoomID: r.id, Kind: r.kind.name, PlayerID: q.id, TickRate: uint32(r.tickRate)})
				return
			}
		}
	}
	req := game.JoinRequest{Options: ev.x.opts, UserID: p.member.UserID(), Claims: p.member.Claims()}
	// What OnJoin sends p waits until JOINED is out, so the client always
	// learns it joined before it hears from the room.
	r.joining = p
	err := r.handler.OnJoin(r, p, req)
	r.joining = nil
	held := r.joinHeld
	r.joinHeld = held[:0]
	defer clear(held)
	if err != nil {
		for _, f := range held {
			f.Release()
		}
		refuse(err)
		return
	}
	p.seated = true
	p.index = int32(len(r.players))
	r.players = append(r.players, p)
	r.gamePlayer = append(r.gamePlayer, p)
	r.m.stats.Players.Add(1)
	r.sendMsg(p, &protocol.Joined{ReqID: ev.reqID, RoomID: r.id, Kind: r.kind.name, PlayerID: p.id, TickRate: uint32(r.tickRate)})
	for _, f := range held {
		r.queue(p, f)
		f.Release()
	}
	r.presence(p, protocol.PresenceJoin)
	if o := r.m.cfg.Observer; o != nil {
		o.PlayerJoined(r.info(), p.info())
	}
}

func (r *room) message(ev event) {
	p := ev.p
	if !p.seated {
		if !p.gone {
			// The join is still pending or was refused: nothing to route to.
			r.sendErr(p, errNotInRoom, protocol.MsgType(ev.t), 0)
		}
		return
	}
	msg := game.Message{Type: ev.t, Body: ev.body.b, ReceivedAt: time.Unix(0, ev.at)}
	var err error
	if fn := r.routes[ev.t]; fn != nil {
		err = fn(r, p, msg)
	} else {
		err = r.handler.OnMessage(r, p, msg)
	}
	if err != nil {
		r.sendErr(p, err, protocol.MsgType(ev.t), 0)
	}
}

// leave unseats p. code and the LEFT reason come from why.
func (r *room) leave(p *player, why game.LeaveReason, reqID uint32, kickErr *game.Error) {
	if !p.seated {
		if !p.gone && why != game.LeaveDropped {
			r.sendErr(p, errNotInRoom, protocol.TypeLeave, reqID)
		}
		p.gone = true
		return
	}
	p.seated, p.gone = false, true
	last := len(r.players) - 1
	r.players[p.index] = r.players[last]
	r.players[p.index].index = p.index
	r.players[last] = nil
	r.players = r.players[:last]
	// gamePlayer keeps join order for Players().
	for i, gp := range r.gamePlayer {
		if gp == game.Player(p) {
			// A new slice: a Players() result the game is looping over
			// stays as it was.
			r.gamePlayer = append(r.gamePlayer[:i:i], r.gamePlayer[i+1:]...)
			break
		}
	}
	r.m.stats.Players.Add(-1)
	r.handler.OnLeave(r, p, why)
	if p.member.Data() == any(p) {
		p.member.SetData(nil)
	}
	if why != game.LeaveDropped {
		left := protocol.Left{RoomID: r.id}
		switch why {
		case game.LeaveKicked:
			left.Reason = protocol.LeftKicked
			if kickErr != nil {
				left.Code = protocol.Code(kickErr.Code)
			}
		case game.LeaveDisposed:
			left.Reason = protocol.LeftDisposed
			r.m.mu.Lock()
			if r.m.closed {
				left.Code = protocol.CodeUnavailable // the server is shutting down: come back
			}
			r.m.mu.Unlock()
		}
		r.sendMsgAnyway(p, &left)
	}
	r.presence(p, protocol.PresenceLeave)
	if h, ok := p.member.(*heldMember); ok {
		h.drop()
	}
	r.m.releaseSeat(r)
	if o := r.m.cfg.Observer; o != nil {
		o.PlayerLeft(r.info(), p.info(), why)
	}
}

func (r *room) onTick(now time.Time) {
	dt := now.Sub(r.lastTick)
	r.lastTick = now
	r.tick++
	start := time.Now()
	r.handler.OnTick(r, dt)
	r.flush()
	d := time.Since(start)
	r.lastTickDur = d
	r.m.stats.Ticks.Add(1)
	if r.kind.observe != nil {
		r.kind.observe(d)
	}
	if budget := time.Second / time.Duration(r.tickRate); d > budget {
		r.m.stats.TickOverruns.Add(1)
		r.overruns++
		if now.Sub(r.lastWarn) > 10*time.Second {
			r.lastWarn = now
			r.Logger().Warn("tick over budget", zap.Duration("took", d), zap.Duration("budget", budget), zap.Uint64("tick", r.tick))
		}
	}
	if r.tick%uint64(r.tickRate) == 0 {
		r.checkEmpty(now)
	}
}

// checkEmpty disposes a room nobody has used for EmptyTimeout.
func (r *room) checkEmpty(now time.Time) {
	r.expireHeld(now)
	r.m.mu.Lock()
	r.expireReservationsLocked(now)
	idle := r.seats == 0 && now.Sub(r.emptySince) >= r.kind.cfg.EmptyTimeout
	r.m.mu.Unlock()
	if idle {
		r.disposing = "empty"
	}
}

func (r *room) fireTimers(now time.Time) {
	for len(r.timers) > 0 && !r.timers[0].when.After(now) && r.disposing == "" {
		t := r.timers[0]
		if t.every > 0 {
			t.when = t.when.Add(t.every)
			if t.when.Before(now) {
				t.when = now.Add(t.every) // skip missed periods instead of bursting
			}
			heap.Fix(&r.timers, 0)
		} else {
			heap.Pop(&r.timers)
		}
		t.fn(r)
	}
}

// flush writes what the last wake-up queued: one flush per player written to.
func (r *room) flush() {
	for i, p := range r.dirty {
		p.dirty = false
		p.member.Flush()
		r.dirty[i] = nil
	}
	r.dirty = r.dirty[:0]
}

// finish disposes the room: its players leave, OnDispose runs, the inbox is
// drained and every waiting join is refused.
func (r *room) finish() {
	reason := r.disposing
	r.m.mu.Lock()
	r.disposed = true
	delete(r.m.rooms, r.id)
	r.m.mu.Unlock()
	r.finished = true
	defer r.m.wg.Done()
	for len(r.timers) > 0 {
		heap.Pop(&r.timers)
	}
	r.cancel()
	var kickErr *game.Error
	select {
	case <-r.createdCh:
	default:
		// OnCreate never returned (it panicked): answer Create's caller.
		if r.createErr == nil {
			r.createErr = r.endErr()
		}
		if r.createErr == nil {
			r.createErr = errNoRoom
		}
		close(r.createdCh)
	}
	if err := r.endErr(); err != nil {
		kickErr = asGameError(err)
	}
	if r.moving {
		// The players moved with the room: release the seats silently.
		for _, p := range r.players {
			p.seated, p.gone = false, true
			r.m.stats.Players.Add(-1)
		}
		r.m.mu.Lock()
		r.seats = 0
		r.m.mu.Unlock()
		r.players, r.gamePlayer = nil, nil
	}
	r.safely(func() {
		for len(r.players) > 0 {
			p := r.players[len(r.players)-1]
			if kickErr != nil && kickErr.Code == game.ErrInternal.Code {
				r.sendErr(p, kickErr, 0, 0)
			}
			r.leave(p, game.LeaveDisposed, 0, nil)
		}
	})
	if r.handler != nil && !r.moving {
		r.safely(func() { r.handler.OnDispose(r) })
	}
	r.flush()
	r.inMu.Lock()
	r.closed = true
	rest := r.inbox
	r.inbox = nil
	r.inMu.Unlock()
	for _, ev := range rest {
		switch ev.kind {
		case evJoin:
			err := r.endErr()
			if err == nil {
				err = errNoRoom
			}
			ev.p.gone = true
			if ev.p.member.Data() == any(ev.p) {
				ev.p.member.SetData(nil)
			}
			r.sendErr(ev.p, err, protocol.TypeJoin, ev.reqID)
			ev.p.member.Flush()
		case evLeave:
			if ev.p.member.Data() == any(ev.p) {
				ev.p.member.SetData(nil)
			}
		case evMessage:
			bodyPool.Put(ev.body)
		}
	}
	if o := r.m.cfg.Observer; o != nil && r.createdOK {
		info := r.info()
		o.RoomDisposed(info, reason)
	}
	r.kind.rooms.Add(-1)
	r.m.stats.Rooms.Add(-1)
	r.m.stats.RoomsDisposed.Add(1)
	if r.m.log.Core().Enabled(zap.DebugLevel) {
		r.Logger().Debug("room disposed", zap.String("reason", reason))
	}
}

// safely runs fn, logging instead of propagating a panic.
func (r *room) safely(fn func()) {
	defer func() {
		if v := recover(); v != nil {
			r.m.stats.Panics.Add(1)
			r.Logger().Error("room panicked while disposing", zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
		}
	}()
	fn()
}

func asGameError(err error) *game.Error {
	var ge *game.Error
	if errors.As(err, &ge) {
		return ge
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return &game.Error{Code: uint16(pe.Code), Message: pe.Message}
	}
	return nil
}

// sendErr sends an ERROR to p. Game errors keep their code; other errors
// are logged and reported as internal.
func (r *room) sendErr(p *player, err error, ref protocol.MsgType, reqID uint32) {
	m := protocol.ErrorMsg{Ref: ref, ReqID: reqID}
	if ge := asGameError(err); ge != nil {
		m.Code, m.Message = protocol.Code(ge.Code), ge.Message
	} else {
		r.Logger().Warn("room callback failed", zap.Error(err))
		m.Code, m.Message = protocol.CodeInternal, "internal error"
	}
	r.sendMsgAnyway(p, &m)
}

func (r *room) sendMsg(p *player, m protocol.Message) {
	if p.gone {
		return
	}
	r.sendMsgAnyway(p, m)
}

// sendMsgAnyway queues a system message for p even after it left (LEFT,
// refusals).
func (r *room) sendMsgAnyway(p *player, m protocol.Message) {
	f := frame.New()
	f.B = m.Append(f.B)
	r.queue(p, f.Seal())
	f.Release()
}

func (r *room) queue(p *player, f *frame.Frame) {
	if p == r.joining {
		f.Retain()
		r.joinHeld = append(r.joinHeld, f)
		return
	}
	_ = p.member.Send(f)
	if !p.dirty {
		p.dirty = true
		r.dirty = append(r.dirty, p)
	}
}

func (r *room) presence(p *player, ev protocol.PresenceEvent) {
	if len(r.players) == 0 {
		return
	}
	msg := protocol.Presence{RoomID: r.id, Event: ev, PlayerID: p.id}
	f := frame.New()
	f.B = msg.Append(f.B)
	f.Seal()
	for _, q := range r.players {
		if q != p {
			r.queue(q, f)
		}
	}
	f.Release()
}

// appendWriter lets the msgpack encoder append to a frame's buffer.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *appendWriter) WriteByte(c byte) error      { w.b = append(w.b, c); return nil }

func newEncoder(w *appendWriter) *msgpack.Encoder {
	enc := msgpack.NewEncoder(w)
	enc.UseCompactInts(true)
	return enc
}

// encode appends v's msgpack encoding to f.B. The encoder writes into
// the shard's reusable buffer (rooms run on their shard, one at a time),
// which keeps the capacity of the largest value encoded so far; the bytes
// are then copied into f, grown to a pooled buffer that fits. A state of
// any size is encoded without allocating, and a room holds no buffer of
// its own: a chat room that once encoded a roster of 64 keeps nothing.
func (r *room) encode(f *frame.Frame, v any) error {
	sh := r.sh
	sh.encW.b = sh.encW.b[:0]
	if err := sh.enc.Encode(v); err != nil {
		return fmt.Errorf("encode %T: %w", v, err)
	}
	f.Grow(len(sh.encW.b))
	f.B = append(f.B, sh.encW.b...)
	if cap(sh.encW.b) > 64<<10 {
		sh.encW.b = nil // a one-off huge value does not stay with the shard
	}
	return nil
}
