package room

import (
	"runtime"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// A shard runs rooms. A node has about one shard per core (GOMAXPROCS),
// each a single goroutine, so the number of goroutines does not grow with
// rooms or players. Each room belongs to one shard for its whole life, and
// a room's callbacks run on it one at a time, so game code stays
// single-threaded; rooms of one shard take turns. A turn is either the
// room's queued events (messages, joins, leaves, continuations) or its due
// deadline (a tick, timers), followed by one flush of what the turn sent.
//
// A callback that blocks therefore holds up every room of its shard: game
// code must not block (game.Room.Go runs slow work off the loop).
type shard struct {
	m *Manager

	mu    sync.Mutex
	ready []*room // rooms with queued events, in the order they became ready
	rooms int     // rooms assigned, for placement; guarded by Manager.mu
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}

	// Owned by the shard goroutine.
	due    dueHeap // rooms by their next deadline
	batch  []*room // ready rooms being served
	events []event // one room's events being handled
	pos    int     // next index of events to handle
	timer  *time.Timer
	enc    *msgpack.Encoder // the rooms' encoder, writing into encW (room.encode)
	encW   appendWriter
}

func newShards(m *Manager) []*shard {
	n := runtime.GOMAXPROCS(0)
	if m.cfg.Manual {
		n = 1
	}
	shards := make([]*shard, n)
	for i := range shards {
		s := &shard{m: m, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
		s.timer = time.NewTimer(time.Hour)
		s.timer.Stop()
		s.enc = newEncoder(&s.encW)
		shards[i] = s
		if m.cfg.Manual {
			close(s.done) // Step runs it
			continue
		}
		go s.run()
	}
	return shards
}

// Step gives every room of a Manual manager the turns it has coming, on
// the caller's goroutine: queued events, and ticks and timers due by the
// clock's now, until no room has any left. A tick is run once however
// late it is, as a late loop does; to see every tick, move the clock to
// each NextDue in turn. Step must not be called concurrently, nor on a
// manager that is not Manual.
func (m *Manager) Step() {
	for _, s := range m.shards {
		for ran, _ := s.step(); ran; ran, _ = s.step() {
		}
	}
}

// NextDue returns the earliest tick or timer of a Manual manager's rooms,
// and false when no room has one.
func (m *Manager) NextDue() (time.Time, bool) {
	var next time.Time
	found := false
	for _, s := range m.shards {
		if len(s.due) > 0 && (!found || s.due[0].dueAt.Before(next)) {
			next, found = s.due[0].dueAt, true
		}
	}
	return next, found
}

// step runs one round of the shard: the rooms ready now, then the
// deadlines due by the clock's now once they are served. It reports
// whether it ran anything, and that now.
func (s *shard) step() (ran bool, now time.Time) {
	s.mu.Lock()
	s.batch, s.ready = s.ready, s.batch[:0]
	s.mu.Unlock()
	ran = len(s.batch) > 0
	for i, r := range s.batch {
		s.batch[i] = nil
		s.serveEvents(r)
	}
	now = s.m.now()
	for len(s.due) > 0 && !s.due[0].dueAt.After(now) {
		s.serveDue(s.due[0], now)
		ran = true
	}
	return ran, now
}

// placeLocked picks the shard with the fewest rooms. Manager.mu must be
// held.
func (m *Manager) placeLocked() *shard {
	best := m.shards[0]
	for _, s := range m.shards[1:] {
		if s.rooms < best.rooms {
			best = s
		}
	}
	best.rooms++
	return best
}

// readyRoom queues r for a turn. The caller set r.queued.
func (s *shard) readyRoom(r *room) {
	s.mu.Lock()
	s.ready = append(s.ready, r)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *shard) run() {
	defer close(s.done)
	for {
		_, now := s.step()
		s.mu.Lock()
		more := len(s.ready) > 0
		s.mu.Unlock()
		if more {
			continue
		}
		if len(s.due) > 0 {
			s.timer.Reset(s.due[0].dueAt.Sub(now))
		}
		select {
		case <-s.wake:
		case <-s.timer.C:
		case <-s.stop:
			s.timer.Stop()
			return
		}
		s.timer.Stop()
	}
}

// serveEvents gives r a turn for the events queued so far. Events that
// arrive during the turn wait for the room's next turn, so a busy room
// cannot starve the others.
func (s *shard) serveEvents(r *room) {
	if r.finished {
		return
	}
	r.inMu.Lock()
	s.events = append(s.events[:0], r.inbox...)
	clear(r.inbox)
	if cap(r.inbox) > 64 {
		r.inbox = nil // a burst's buffer goes back
	} else {
		r.inbox = r.inbox[:0]
	}
	r.inMu.Unlock()
	s.pos = 0
	r.turn(s, time.Time{})
	clear(s.events)
	if r.finished {
		return
	}
	r.inMu.Lock()
	if len(r.inbox) > 0 {
		r.inMu.Unlock()
		s.mu.Lock()
		s.ready = append(s.ready, r) // stays queued: its next turn comes after the others'
		s.mu.Unlock()
		return
	}
	r.queued = false
	r.inMu.Unlock()
}

// serveDue gives r a turn for its due tick and timers.
func (s *shard) serveDue(r *room, now time.Time) {
	s.events = s.events[:0]
	s.pos = 0
	r.turn(s, now)
}

// turn runs one turn of r on shard s: the events in s.events from s.pos,
// or, when now is set, the tick and timers due by now. Then it flushes and
// reschedules the room, or finishes it if it is being disposed. A panic in
// game code disposes the room; the other rooms carry on.
func (r *room) turn(s *shard, now time.Time) {
	defer r.endTurn(s)
	if r.disposing != "" {
		return
	}
	for s.pos < len(s.events) && r.disposing == "" {
		ev := s.events[s.pos]
		s.pos++
		r.handle(ev)
	}
	if !now.IsZero() {
		if !r.nextTick.After(now) {
			r.onTick(now)
			// Ticks missed by a late loop are skipped, not run in a burst.
			r.nextTick = r.nextTick.Add(r.period())
			if r.nextTick.Before(now) {
				r.nextTick = now.Add(r.period())
			}
		}
		r.fireTimers(now)
	}
}

// endTurn recovers a panic, flushes what the turn sent and schedules the
// room's next deadline, or finishes it.
func (r *room) endTurn(s *shard) {
	if v := recover(); v != nil {
		r.panicked(v)
	}
	if r.disposing == "" {
		r.flush()
		r.schedule(s)
		return
	}
	// Events of the batch that were not handled go back in front of the
	// inbox, for finish to answer.
	if rest := s.events[s.pos:]; len(rest) > 0 {
		r.inMu.Lock()
		r.inbox = append(append(make([]event, 0, len(rest)+len(r.inbox)), rest...), r.inbox...)
		r.inMu.Unlock()
		s.pos = len(s.events)
	}
	if r.dueIndex >= 0 {
		s.due.remove(r)
	}
	r.finish()
	s.m.mu.Lock()
	s.rooms--
	s.m.mu.Unlock()
}

// schedule puts r in its shard's deadline heap at its next tick or timer.
func (r *room) schedule(s *shard) {
	at := r.nextTick
	if len(r.timers) > 0 && r.timers[0].when.Before(at) {
		at = r.timers[0].when
	}
	r.dueAt = at
	if r.dueIndex >= 0 {
		s.due.fix(r)
	} else {
		s.due.push(r)
	}
}

func (r *room) period() time.Duration { return time.Second / time.Duration(r.tickRate) }

// dueHeap is a min-heap of rooms by dueAt; room.dueIndex is a room's place
// in it, -1 when absent.
type dueHeap []*room

func (h *dueHeap) push(r *room) {
	r.dueIndex = len(*h)
	*h = append(*h, r)
	h.up(r.dueIndex)
}

func (h *dueHeap) remove(r *room) {
	i, last := r.dueIndex, len(*h)-1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	r.dueIndex = -1
	if i != last {
		h.fix((*h)[i])
	}
}

func (h *dueHeap) fix(r *room) {
	if !h.up(r.dueIndex) {
		h.down(r.dueIndex)
	}
}

func (h dueHeap) less(i, j int) bool { return h[i].dueAt.Before(h[j].dueAt) }

func (h dueHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].dueIndex, h[j].dueIndex = i, j
}

func (h dueHeap) up(i int) bool {
	moved := false
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.swap(i, p)
		i, moved = p, true
	}
	return moved
}

func (h dueHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		j := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			j = r
		}
		if !h.less(j, i) {
			return
		}
		h.swap(i, j)
		i = j
	}
}
