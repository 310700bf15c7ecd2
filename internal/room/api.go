package room

import (
	"container/heap"
	"context"
	"runtime/debug"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/zap"
)

// This file implements game.Room. Every method runs on the room's shard, in a turn of the room.

var _ game.Room = (*room)(nil)

func (r *room) ID() string     { return r.id }
func (r *room) Kind() string   { return r.kind.name }
func (r *room) Tick() uint64   { return r.tick }
func (r *room) TickRate() int  { return r.tickRate }
func (r *room) Now() time.Time { return r.m.now() }

// Logger returns the server's logger with the room's fields. It is made
// on first use: most rooms never log, and a logger with fields of its own
// costs about a kilobyte.
func (r *room) Logger() *zap.Logger {
	if l := r.log.Load(); l != nil {
		return l
	}
	r.log.CompareAndSwap(nil, r.m.log.With(zap.String("room", r.id), zap.String("kind", r.kind.name), zap.String("node", r.m.cfg.Node)))
	return r.log.Load()
}

func (r *room) Players() []game.Player { return r.gamePlayer }

func (r *room) Player(id string) game.Player {
	for _, p := range r.players {
		if p.id == id {
			return p
		}
	}
	return nil
}

func (r *room) MaxPlayers() int {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	return r.maxPlayers
}

func (r *room) SetMaxPlayers(n int) {
	if n < 1 {
		n = 1
	}
	r.m.mu.Lock()
	r.maxPlayers = n
	r.m.mu.Unlock()
}

func (r *room) own(p game.Player) *player {
	pp, ok := p.(*player)
	if !ok || pp.room != r {
		return nil
	}
	return pp
}

func (r *room) Send(p game.Player, t game.MsgType, v any) error {
	pp := r.own(p)
	if pp == nil || pp.gone {
		return errNotInRoom
	}
	f := frame.New()
	f.B = protocol.AppendType(f.B, protocol.MsgType(t))
	if err := r.encode(f, v); err != nil {
		f.Release()
		return err
	}
	r.queue(pp, f.Seal())
	f.Release()
	return nil
}

func (r *room) SendBytes(p game.Player, t game.MsgType, body []byte) error {
	pp := r.own(p)
	if pp == nil || pp.gone {
		return errNotInRoom
	}
	f := frame.New()
	f.Grow(2 + len(body))
	f.B = append(protocol.AppendType(f.B, protocol.MsgType(t)), body...)
	r.queue(pp, f.Seal())
	f.Release()
	return nil
}

func (r *room) Broadcast(t game.MsgType, v any) error { return r.BroadcastExcept(t, v, nil) }

func (r *room) BroadcastExcept(t game.MsgType, v any, skip game.Player) error {
	f := frame.New()
	f.B = protocol.AppendType(f.B, protocol.MsgType(t))
	if err := r.encode(f, v); err != nil {
		f.Release()
		return err
	}
	r.fanOut(f.Seal(), skip)
	return nil
}

func (r *room) BroadcastBytes(t game.MsgType, body []byte) error {
	f := frame.New()
	f.Grow(2 + len(body))
	f.B = append(protocol.AppendType(f.B, protocol.MsgType(t)), body...)
	r.fanOut(f.Seal(), nil)
	return nil
}

func (r *room) BroadcastState(v any) error {
	f := r.stateHeader()
	if err := r.encode(f, v); err != nil {
		f.Release()
		return err
	}
	r.fanOut(f.Seal(), nil)
	return nil
}

func (r *room) BroadcastStateBytes(body []byte) error {
	f := r.stateHeader()
	if len(body) == 0 {
		f.B = protocol.AppendNil(f.B)
	} else {
		f.Grow(len(body))
		f.B = append(f.B, body...)
	}
	r.fanOut(f.Seal(), nil)
	return nil
}

// stateHeader starts a STATE message: [tick, serverTimeNs, body...].
func (r *room) stateHeader() *frame.Frame {
	f := frame.New()
	f.B = protocol.AppendType(f.B, protocol.TypeState)
	f.B = protocol.AppendArrayLen(f.B, 3)
	f.B = protocol.AppendUint(f.B, r.tick)
	f.B = protocol.AppendInt(f.B, r.m.now().UnixNano())
	return f
}

// fanOut queues one sealed frame for every seated player but skip, then
// gives up the caller's reference. The bytes are shared, not copied.
func (r *room) fanOut(f *frame.Frame, skip game.Player) {
	for _, p := range r.players {
		if game.Player(p) != skip {
			r.queue(p, f)
		}
	}
	f.Release()
}

func (r *room) Handle(t game.MsgType, fn func(game.Room, game.Player, game.Message) error) {
	if fn == nil {
		delete(r.routes, t)
		return
	}
	r.routes[t] = fn
}

func (r *room) After(d time.Duration, fn func(game.Room)) game.Timer {
	return r.addTimer(d, 0, fn)
}

func (r *room) Every(d time.Duration, fn func(game.Room)) game.Timer {
	if d <= 0 {
		d = time.Millisecond
	}
	return r.addTimer(d, d, fn)
}

func (r *room) addTimer(d, every time.Duration, fn func(game.Room)) game.Timer {
	r.timerSeq++
	t := &timer{r: r, when: r.m.now().Add(d), every: every, fn: fn, seq: r.timerSeq, index: -1}
	if r.disposing != "" || r.closed {
		return t // never fires
	}
	heap.Push(&r.timers, t)
	return t
}

func (r *room) Go(fn func(ctx context.Context) func(game.Room)) {
	ctx := r.ctx
	r.m.goWG.Add(1)
	go func() {
		defer r.m.goWG.Done()
		defer func() {
			if v := recover(); v != nil {
				// A panic off the loop disposes the room like one on it.
				r.m.stats.Panics.Add(1)
				r.Logger().Error("room Go function panicked: disposing the room", zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
				r.post(event{kind: evCall, fn: func(game.Room) { panic(v) }}, true)
			}
		}()
		then := fn(ctx)
		if then != nil && ctx.Err() == nil {
			r.post(event{kind: evCall, fn: then}, true)
		}
	}()
}

func (r *room) SetMetadata(key string, value any) {
	if r.metadata == nil {
		r.metadata = make(map[string]any)
	}
	if value == nil {
		delete(r.metadata, key)
	} else {
		r.metadata[key] = value
	}
	raw, err := msgpack.Marshal(r.metadata)
	if err != nil {
		r.Logger().Warn("room metadata does not encode", zap.String("key", key), zap.Error(err))
		delete(r.metadata, key)
		return
	}
	r.m.mu.Lock()
	r.metadataRaw = raw
	r.m.mu.Unlock()
}

func (r *room) Lock()   { r.setLocked(true) }
func (r *room) Unlock() { r.setLocked(false) }

func (r *room) setLocked(v bool) {
	r.m.mu.Lock()
	r.locked = v
	r.m.mu.Unlock()
}

func (r *room) Locked() bool {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	return r.locked
}

func (r *room) SetPrivate(v bool) {
	r.m.mu.Lock()
	r.private = v
	r.m.mu.Unlock()
}

func (r *room) Kick(p game.Player, err *game.Error) {
	pp := r.own(p)
	if pp == nil || !pp.seated {
		return
	}
	if err == nil {
		err = game.ErrForbidden
	}
	r.sendMsg(pp, &protocol.ErrorMsg{Code: protocol.Code(err.Code), Message: err.Message})
	r.leave(pp, game.LeaveKicked, 0, err)
}

// Dispose ends the room after the current callback; the reason is logged
// and given to observers (webhooks). Players receive LEFT (disposed).
func (r *room) Dispose(reason string) {
	if reason == "" {
		reason = "disposed"
	}
	if r.disposing == "" {
		r.disposing = reason
	}
}
