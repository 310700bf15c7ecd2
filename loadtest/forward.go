package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/gameserver/gameserver/internal/cluster"
	"github.com/gameserver/gameserver/internal/protocol"
)

// With --forward the bots of each room are split over the --url nodes:
// the room's first bot creates the room (JOIN mode 1) through its node,
// the others join it by ID (mode 2) through the nodes in turn, so about
// half the players of every room reach it through another node, which
// forwards their messages to the room's node. Bot i belongs to room group
// i / --room-size and connects to node (group + i) mod nodes.
//
// With --redis the driver reads, at the end of the ramp, which node owns
// each bot's room (the room's lease in the cluster directory) and reports
// input_to_state separately for players connected to their room's node
// (input_to_state_local) and players forwarded from another node
// (input_to_state_forwarded).

// group is one room's worth of bots under --forward.
type group struct {
	room atomic.Pointer[string] // set by the room's first bot once JOINED
}

// isHost reports whether a bot creates its group's room.
func (e *engine) isHost(b *bot) bool { return b.global%e.cfg.RoomSize == 0 }

func (e *engine) group(b *bot) *group {
	return &e.groups[b.global/e.cfg.RoomSize-e.firstGroup]
}

// groupRoom returns the ID of a bot's group room, "" while not created.
func (e *engine) groupRoom(b *bot) string {
	if r := e.group(b).room.Load(); r != nil {
		return *r
	}
	return ""
}

// roomCreated notes the room a bot joined, for the rest of its group.
func (e *engine) roomCreated(b *bot, roomID string) {
	if e.isHost(b) {
		e.group(b).room.CompareAndSwap(nil, &roomID)
	}
}

// targetOf returns the server a bot connects to.
func (e *engine) targetOf(b *bot) *target {
	n := len(e.cfg.URLs)
	if e.cfg.Forward {
		g, k := b.global/e.cfg.RoomSize, b.global%e.cfg.RoomSize
		return &e.cfg.URLs[(g+k)%n]
	}
	return &e.cfg.URLs[b.global%n]
}

// joinFor returns the JOIN a bot sends.
func (e *engine) joinFor(b *bot, reqID uint32) protocol.Join {
	if e.cfg.Forward {
		if room := e.groupRoom(b); room != "" {
			return protocol.Join{ReqID: reqID, Mode: protocol.JoinByID, RoomID: room}
		}
		return protocol.Join{ReqID: reqID, Mode: protocol.JoinCreate, Kind: e.kind, Options: e.joinOpts}
	}
	return protocol.Join{ReqID: reqID, Mode: protocol.JoinOrCreate, Kind: e.kind, Options: e.joinOpts}
}

// join sends a bot's JOIN; under --forward a bot whose room does not exist
// yet waits for it (the sender joins it once it does).
func (e *engine) join(b *bot, now int64, wb, sc *[]byte, c *counters) {
	if e.cfg.Forward && !e.isHost(b) && e.groupRoom(b) == "" {
		b.awaitRoom.Store(true)
		b.setPhase(phaseReady, now)
		return
	}
	b.awaitRoom.Store(false)
	id := b.reqID.Add(1)
	b.joinStart.Store(now)
	b.setPhase(phaseJoining, now)
	m := e.joinFor(b, id)
	*wb = m.Append((*wb)[:0])
	b.sendSeq(*wb, sentJoin, id, sc, c)
}

// Joins by ID under --forward that the server answers 404 are asked
// again: a room's node takes the room's lease in the cluster directory
// just after creating it, and until then another node does not find it.
const (
	joinRetries    = 10
	joinRetryDelay = 100 * time.Millisecond
)

// retryJoin decides whether a refused JOIN is asked again, and if so
// schedules it (the sender sends it).
func (e *engine) retryJoin(b *bot, code protocol.Code, now int64) bool {
	if !e.cfg.Forward || code != protocol.CodeRoomNotFound || e.groupRoom(b) == "" || b.joinTries >= joinRetries {
		return false
	}
	b.joinTries++
	b.joinAfter.Store(now + int64(joinRetryDelay))
	b.awaitRoom.Store(true)
	b.setPhase(phaseReady, now)
	return true
}

// classify looks up the node of every bot's room in the cluster directory
// and marks each bot local or forwarded. It returns how many are each.
func (e *engine) classify(ctx context.Context) (local, forwarded uint64, err error) {
	dir, err := cluster.NewRedis(e.cfg.Redis)
	if err != nil {
		return 0, 0, err
	}
	defer dir.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	owners := make(map[string]string)
	for i := range e.bots {
		b := &e.bots[i]
		b.mu.Lock()
		room, node := b.sess.room, b.sess.node
		b.mu.Unlock()
		if room == "" || !b.inRoom.Load() {
			continue
		}
		owner, ok := owners[room]
		if !ok {
			if owner, err = dir.Owner(ctx, room); err != nil {
				return local, forwarded, err
			}
			owners[room] = owner
		}
		switch {
		case owner == "":
		case owner == node:
			b.class.Store(classLocal)
			local++
		default:
			b.class.Store(classForwarded)
			forwarded++
		}
	}
	return local, forwarded, nil
}
