package room

import (
	"container/heap"
	"time"

	"github.com/gameserver/gameserver/game"
)

// timer is a room timer; it fires in a turn of its room.
type timer struct {
	r     *room
	when  time.Time
	every time.Duration
	fn    func(game.Room)
	index int // in the heap; -1 when not scheduled
	seq   uint64
}

func (t *timer) Stop() bool {
	if t.index < 0 {
		return false
	}
	heap.Remove(&t.r.timers, t.index)
	return true
}

// timerHeap orders timers by deadline, then by creation.
type timerHeap []*timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if h[i].when.Equal(h[j].when) {
		return h[i].seq < h[j].seq
	}
	return h[i].when.Before(h[j].when)
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}
