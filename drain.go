package gameserver

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gameserver/gameserver/internal/cluster"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gameserver/gameserver/internal/session"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/zap"
)

// Draining a node (SIGTERM, or Shutdown) in a cluster moves what can move:
//
//  1. /readyz fails and new connections are refused; the registry marks
//     the node draining, so no new room is placed on it.
//  2. Each room whose handler is a game.Snapshotter moves: its local
//     players' sessions are frozen (their client messages are no longer
//     taken, so nothing is applied twice), the room is snapshotted between
//     two ticks and stopped silently, the snapshot goes to the directory,
//     and the least loaded other node restores it under the same ID with
//     every seat held.
//  3. Every session of the node is exported to the directory with its
//     replay buffer and its seat, told MOVE (reconnect after a jittered
//     delay and resume), and closed with 4002. The node its client lands
//     on adopts it at RESUME, replays what it missed and gives it its
//     seat back. Seats of this node's sessions in rooms on other nodes are
//     held there meanwhile.
//  4. Rooms that cannot move run until they end or the drain deadline,
//     then close with a reason; the node then exits.
//
// A single node has nowhere to move: it tells every session MOVE (to come
// back after a jittered delay, to the process that replaces it), closes
// its rooms and connections, and exits.

// movedSeat marks an adopted session whose seat waits in a room.
type movedSeat struct {
	Room   string `msgpack:"room"`
	Player string `msgpack:"player"`
	Node   string `msgpack:"node"`
}

const sessionBlob = "session/"

// drainSpread bounds the jittered delay told to moving clients, so a node's
// players do not all reconnect at once.
const drainSpread = 2 * time.Second

// moveDelay is a MOVE's jittered delay.
func moveDelay() uint32 { return uint32(rand.Int64N(int64(drainSpread / time.Millisecond))) }

// drainCluster moves rooms and sessions off this node.
func (c *clusterNode) drain(ctx context.Context) {
	start := time.Now()
	c.heartbeat() // publish draining now
	if nodes, err := c.dir.Nodes(ctx); err == nil {
		c.mu.Lock()
		c.nodes = nodes // the freshest view of where rooms can go
		c.mu.Unlock()
	}
	s := c.s
	var moved, failed atomic.Int64
	defer func() {
		c.log.Info("cluster: drained", zap.Int64("rooms_moved", moved.Load()), zap.Int64("room_moves_failed", failed.Load()),
			zap.Int("rooms_left", len(s.rooms.Rooms(""))), zap.Duration("took", time.Since(start)))
	}()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, r := range s.rooms.Rooms("") {
		if !s.rooms.CanSnapshot(ctx, r.ID) {
			continue
		}
		target := c.leastLoadedOther()
		for try := 0; target == "" && try < 5 && ctx.Err() == nil; try++ {
			// A late heartbeat can hide a node for a moment: look again.
			time.Sleep(200 * time.Millisecond)
			if nodes, err := c.dir.Nodes(ctx); err == nil {
				c.mu.Lock()
				c.nodes = nodes
				c.mu.Unlock()
			}
			target = c.leastLoadedOther()
		}
		if target == "" {
			c.log.Warn("cluster: no node to move rooms to")
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.moveRoom(ctx, r.ID, target); err != nil {
				failed.Add(1)
				c.log.Warn("cluster: room move failed", zap.String("room", r.ID), zap.String("target", target), zap.Error(err))
			} else {
				moved.Add(1)
			}
		}()
	}
	wg.Wait()
	// Sessions get their own budget: rooms that overran the drain's must
	// not cost every player their session.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.moveSessions(sctx)
}

// leastLoadedOther picks the least loaded live node that is not this one
// and not draining, as of the last heartbeat.
func (c *clusterNode) leastLoadedOther() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return leastLoadedOf(c.nodes, c.self)
}

// leastLoadedOf picks, among nodes, the one with the fewest players that
// is not self and not draining ("" when there is none).
func leastLoadedOf(nodes []cluster.NodeInfo, self string) string {
	best, load := "", 0
	for _, n := range nodes {
		if n.ID == self || n.Draining {
			continue
		}
		if best == "" || n.Players < load {
			best, load = n.ID, n.Players
		}
	}
	return best
}

// moveRoom moves one room to target.
func (c *clusterNode) moveRoom(ctx context.Context, id, target string) (err error) {
	s := c.s
	// From here the messages of the room's players on other nodes bounce
	// back to their nodes, which send them again where the room goes; the
	// ones handed to the room before are in its inbox ahead of the
	// snapshot, so each is applied once, here or there.
	marked := c.markMoving(id)
	defer func() {
		if err != nil {
			c.mu.Lock()
			delete(c.movingRooms, id) // it stays here
			c.mu.Unlock()
			for _, rm := range marked {
				rm.moving.Store(false)
			}
		}
	}()
	// Freeze the room's local players first: what they send from now on
	// is re-sent after their resume, never applied twice.
	type local struct {
		sess   *session.Session
		player string
	}
	var frozen []local
	if d, err := s.rooms.Room(ctx, id); err == nil {
		for _, p := range d.PlayerList {
			if sess := s.hub.Get(p.SessionID); sess != nil {
				sess.Freeze()
				frozen = append(frozen, local{sess, p.ID})
			}
		}
	}
	// keepHere gives a room that could not move back to its local
	// players, restored here (every seat held) when restored: they take
	// their seats again and are heard again, and play on here until the
	// room ends or the drain deadline, as in a room that cannot move.
	keepHere := func(restored bool) {
		for _, l := range frozen {
			if restored {
				l.sess.SetData(nil)
				s.rooms.Reseat(l.sess, id, l.player)
			}
			l.sess.Thaw()
		}
	}
	env, err := s.rooms.Snapshot(ctx, id, true)
	if err != nil {
		keepHere(false)
		return err
	}
	// A move that fails restores the room here, once the stopped one has
	// freed its ID.
	restoreHere := func() bool {
		if err := s.rooms.AwaitEnded(ctx, id); err != nil {
			return false
		}
		_, err := s.rooms.Restore(ctx, env)
		return err == nil
	}
	if err := c.dir.SaveSnapshot(ctx, id, env, 10*time.Minute); err != nil {
		keepHere(restoreHere()) // keep it running here
		return err
	}
	c.mu.Lock()
	lease, held := c.leases[id]
	delete(c.leases, id)
	c.mu.Unlock()
	if held {
		_ = c.dir.Release(ctx, lease)
	}
	if err := c.requestRestore(ctx, target, id); err != nil {
		// Nobody took it: it runs here until the deadline.
		restored := restoreHere()
		if restored {
			c.acquire(ctx, id)
		}
		keepHere(restored)
		return err
	}
	// Players of other nodes in the room: their nodes reseat them there.
	c.mu.Lock()
	for l, seats := range c.served {
		for ch, rm := range seats {
			if rid, _, ok := s.rooms.SeatOf(rm); ok && rid == id {
				_ = l.Write(cluster.OpSeatMoved, ch, []byte(target))
				l.Flush()
				delete(seats, ch)
				if c.moved[l] == nil {
					c.moved[l] = make(map[uint32]bool)
				}
				c.moved[l][ch] = true
			}
		}
	}
	c.mu.Unlock()
	return nil
}

// requestRestore asks target to restore a room and waits for its answer.
func (c *clusterNode) requestRestore(ctx context.Context, target, id string) error {
	l, err := c.mesh.Link(ctx, target)
	if err != nil {
		return err
	}
	req := l.NewChannel()
	done := make(chan error, 1)
	c.mu.Lock()
	c.restores[req] = done
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.restores, req)
		c.mu.Unlock()
	}()
	if err := l.Write(cluster.OpRestore, req, []byte(id)); err != nil {
		return err
	}
	l.Flush()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		return errors.New("restore timed out")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serveRestore restores a room another node moved here.
func (c *clusterNode) serveRestore(l *cluster.Link, req uint32, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply := func(err error) {
		p := []byte{0}
		if err != nil {
			p = append([]byte{1}, err.Error()...)
		}
		_ = l.Write(cluster.OpRestored, req, p)
		l.Flush()
	}
	env, err := c.dir.LoadSnapshot(ctx, id)
	if err == nil && env == nil {
		err = errors.New("no snapshot")
	}
	if err != nil {
		reply(err)
		return
	}
	lease, err := c.dir.Acquire(ctx, id, c.self, c.ttl)
	if err != nil {
		reply(err)
		return
	}
	c.mu.Lock()
	c.leases[id] = lease
	c.mu.Unlock()
	if _, err := c.s.rooms.Restore(ctx, env); err != nil {
		// Give the lease back before answering: the room stays with the
		// node that asked, which takes the lease again.
		c.mu.Lock()
		delete(c.leases, id)
		c.mu.Unlock()
		_ = c.dir.Release(ctx, lease)
		reply(err)
		return
	}
	_ = c.dir.DeleteSnapshot(ctx, id)
	reply(nil)
}

// moveSessions exports every session of this node and tells its client to
// reconnect and resume.
func (c *clusterNode) moveSessions(ctx context.Context) {
	s := c.s
	for _, sess := range s.hub.Sessions() {
		if !sess.Active() && !sess.Detached() {
			continue
		}
		var seat *movedSeat
		switch d := sess.Data().(type) {
		case *remoteSeat:
			// Keep the seat on the room's node for the session's new home.
			if d.roomID != "" && d.playerID != "" {
				seat = &movedSeat{Room: d.roomID, Player: d.playerID, Node: d.link.Peer}
				d.event(cluster.SeatMoving)
			}
			c.forgetSeat(d)
		default:
			if rid, pid, ok := s.rooms.SeatOf(sess); ok {
				if s.rooms.Has(rid) {
					// Its room could not move: the session stays with it
					// until the room ends or the drain deadline.
					continue
				}
				seat = &movedSeat{Room: rid, Player: pid}
			}
		}
		sess.Freeze()
		var seatRaw []byte
		if seat != nil {
			seatRaw, _ = msgpack.Marshal(seat)
		}
		st := s.hub.Export(sess, seatRaw)
		blob, err := session.EncodeState(st)
		if err == nil {
			err = c.dir.SaveSnapshot(ctx, sessionBlob+st.ID, blob, s.hub.Config().ResumeWindow)
		}
		if err != nil {
			c.log.Warn("cluster: session move failed", zap.String("session", st.ID), zap.Error(err))
			sess.Thaw() // it stays here until the deadline; what it sent meanwhile is handled
			continue
		}
		_ = c.dir.DropSession(ctx, st.ID, c.self)
		sess.Control(&protocol.Move{ResumeToken: st.Token, DelayMs: moveDelay()})
		s.hub.Retire(sess, protocol.CloseDraining, "moved: reconnect and resume")
		// Its fallback state goes too: a POST that still lands here is
		// routed to the session's new node, not refused with the old
		// node's send token.
		s.fb.forget(st.ID)
	}
}

// adopt imports a session that moved here from a draining node.
func (c *clusterNode) adopt(id string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	blob, err := c.dir.LoadSnapshot(ctx, sessionBlob+id)
	if err != nil || blob == nil {
		return false
	}
	st, err := session.DecodeState(blob)
	if err != nil {
		return false
	}
	sess, err := c.s.hub.Import(st)
	if err != nil {
		return errors.Is(err, session.ErrSessionExists)
	}
	_ = c.dir.DeleteSnapshot(ctx, sessionBlob+id)
	_ = c.dir.SetSession(ctx, id, c.self)
	if len(st.Seat) > 0 {
		var seat movedSeat
		if msgpack.Unmarshal(st.Seat, &seat) == nil && seat.Room != "" {
			sess.SetData(&seat)
		}
	}
	return true
}

// reseat gives an adopted session its seat back, here or on the room's
// node.
func (c *clusterNode) reseat(sess *session.Session, seat *movedSeat) {
	s := c.s
	if s.rooms.Has(seat.Room) {
		sess.SetData(nil)
		s.rooms.Reseat(sess, seat.Room, seat.Player)
		return
	}
	// Synchronous: the session's next message must find its seat.
	func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		node, err := c.dir.Owner(ctx, seat.Room)
		if err == nil && node == "" {
			node = seat.Node
		}
		if err == nil && node == c.self {
			sess.SetData(nil)
			s.rooms.Reseat(sess, seat.Room, seat.Player)
			return
		}
		var l *cluster.Link
		if err == nil && node != "" {
			l, err = c.mesh.Link(ctx, node)
		}
		if err != nil || node == "" {
			sess.SetData(nil)
			_ = sess.SendMessage(&protocol.Left{RoomID: seat.Room, Reason: protocol.LeftDropped, Code: protocol.CodeRoomNotFound})
			return
		}
		c.reopen(sess, l, seat.Room, seat.Player)
	}()
}

// reopen opens a seat channel for a seat that already exists in a room on
// the link's node.
func (c *clusterNode) reopen(sess *session.Session, l *cluster.Link, roomID, playerID string) {
	rs := c.newSeat(sess, l, roomID, playerID)
	_ = l.Write(cluster.OpSeatReopen, rs.ch, cluster.EncodeReseat(nil, memberOf(sess), roomID, playerID))
	l.Flush()
}

// restoreReply handles OpRestored.
func (c *clusterNode) restoreReply(req uint32, p []byte) {
	c.mu.Lock()
	done := c.restores[req]
	c.mu.Unlock()
	if done == nil || len(p) == 0 {
		return
	}
	var err error
	if p[0] != 0 {
		err = errors.New(string(p[1:]))
	}
	done <- err
}
