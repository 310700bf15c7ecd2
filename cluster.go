package gameserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/cluster"
	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gameserver/gameserver/internal/room"
	"github.com/gameserver/gameserver/internal/session"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/zap"
)

// A node in a cluster keeps its share of the cluster's state in the
// directory (Redis): itself in the node registry, a lease on every room it
// owns, its rooms' listing, and where its sessions live. A player may play
// in a room owned by another node: the node where the player's session
// lives forwards the player's messages over a node-to-node link and
// delivers the room's messages back (see internal/cluster/link.go). A
// connection or fallback request that lands on a node other than its
// session's is proxied to that node at the HTTP level.

// clusterNode is the cluster half of a Server; nil on a single node.
type clusterNode struct {
	s    *Server
	self string
	addr string
	dir  cluster.Directory
	mesh *cluster.Mesh
	ttl  time.Duration
	log  *zap.Logger

	mu      sync.Mutex
	leases  map[string]cluster.Lease // rooms this node owns
	served  map[*cluster.Link]map[uint32]*remoteMember
	opened  map[*cluster.Link]map[uint32]*remoteSeat
	nodes   []cluster.NodeInfo  // cache, refreshed every heartbeat
	rooms   []cluster.RoomEntry // cache, refreshed every heartbeat
	healthy atomic.Bool         // the last heartbeat reached the directory
	lastErr time.Time

	restores    map[uint32]chan error                         // restore requests waiting for OpRestored
	moved       map[*cluster.Link]map[uint32]bool             // served channels whose room moved away
	movingRooms map[string]bool                               // rooms being moved off this node
	bounced     map[*cluster.Link]map[uint32]*session.Session // opened channels whose room moved: where bounces go

	// moveMu orders a room's move against the messages of its players on
	// other nodes: a message is handed to the room under the read lock,
	// and a move marks the room's remote members moving under the write
	// lock, so every message either reaches the room's inbox before the
	// move's snapshot or is bounced to the player's node.
	moveMu sync.RWMutex

	redisRTT atomic.Uint64 // heartbeats that reached the directory
	beats    atomic.Uint64
	done     chan struct{}
	wg       sync.WaitGroup
	proxies  sync.Map // node id → *httputil.ReverseProxy
}

func newClusterNode(s *Server, dir cluster.Directory) *clusterNode {
	c := &clusterNode{
		s: s, self: s.cfg.Node, addr: s.cfg.Advertise, dir: dir, ttl: s.cfg.LeaseTTL, log: s.log.Named("cluster"),
		leases:      make(map[string]cluster.Lease),
		served:      make(map[*cluster.Link]map[uint32]*remoteMember),
		opened:      make(map[*cluster.Link]map[uint32]*remoteSeat),
		done:        make(chan struct{}),
		restores:    make(map[uint32]chan error),
		moved:       make(map[*cluster.Link]map[uint32]bool),
		movingRooms: make(map[string]bool),
		bounced:     make(map[*cluster.Link]map[uint32]*session.Session),
	}
	c.mesh = cluster.NewMesh(c.self, s.cfg.ClusterSecret, c, c.resolve, c.log)
	return c
}

func (c *clusterNode) start() {
	c.heartbeat()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(c.ttl / 5)
		defer t.Stop()
		for {
			select {
			case <-c.done:
				return
			case <-t.C:
				c.heartbeat()
			}
		}
	}()
}

// stop leaves the cluster: links close, leases and the registry entry go.
func (c *clusterNode) stop(ctx context.Context) {
	select {
	case <-c.done:
		return
	default:
	}
	close(c.done)
	c.wg.Wait()
	c.mesh.Close()
	c.mu.Lock()
	leases := make([]cluster.Lease, 0, len(c.leases))
	for _, l := range c.leases {
		leases = append(leases, l)
	}
	c.mu.Unlock()
	for _, l := range leases {
		_ = c.dir.Release(ctx, l)
	}
	_ = c.dir.Deregister(ctx, c.self)
	_ = c.dir.Close()
}

func (c *clusterNode) logErr(what string, err error) {
	c.mu.Lock()
	quiet := time.Since(c.lastErr) < 10*time.Second
	if !quiet {
		c.lastErr = time.Now()
	}
	c.mu.Unlock()
	if !quiet {
		c.log.Warn("cluster: "+what, zap.Error(err))
	}
}

// heartbeat registers the node, renews its leases, publishes its rooms and
// refreshes the cache of the cluster.
func (c *clusterNode) heartbeat() {
	ctx, cancel := context.WithTimeout(context.Background(), c.ttl/2)
	defer cancel()
	local := c.s.rooms.Rooms("")
	players := 0
	for _, r := range local {
		players += r.Players
	}
	err := c.dir.Register(ctx, cluster.NodeInfo{ID: c.self, Addr: c.addr, Players: players, Rooms: len(local),
		Draining: !c.s.ready.Load(), Updated: time.Now()}, c.ttl)
	if err != nil {
		c.healthy.Store(false)
		c.logErr("register", err)
		return
	}
	// Leases: take the new rooms', renew the rest, re-take the ones that
	// expired while the directory was away, give up the ones another node
	// holds now.
	c.mu.Lock()
	var renew []cluster.Lease
	have := make(map[string]bool, len(local))
	for _, r := range local {
		have[r.ID] = true
		if l, ok := c.leases[r.ID]; ok {
			renew = append(renew, l)
		}
	}
	for id, l := range c.leases {
		if !have[id] {
			delete(c.leases, id)
			go func() { _ = c.dir.Release(context.Background(), l) }()
		}
	}
	c.mu.Unlock()
	for _, r := range local {
		c.mu.Lock()
		_, ok := c.leases[r.ID]
		ok = ok || c.movingRooms[r.ID] // its lease was handed on
		c.mu.Unlock()
		if !ok {
			c.acquire(ctx, r.ID)
		}
	}
	if lost, err := c.dir.Renew(ctx, renew, c.ttl); err != nil {
		c.logErr("renew leases", err)
	} else {
		for _, l := range lost {
			c.mu.Lock()
			delete(c.leases, l.RoomID)
			c.mu.Unlock()
			c.acquire(ctx, l.RoomID)
		}
	}
	entries := make([]cluster.RoomEntry, 0, len(local))
	for _, r := range local {
		e := cluster.RoomEntry{ID: r.ID, Kind: r.Kind, Node: c.self, Players: r.Players, MaxPlayers: r.MaxPlayers, Locked: r.Locked, Private: r.Private}
		if len(r.Metadata) > 0 {
			e.Metadata, _ = msgpack.Marshal(r.Metadata)
		}
		if f := c.s.rooms.Filters(r.ID); len(f) > 0 {
			e.Filters, _ = msgpack.Marshal(f)
		}
		entries = append(entries, e)
	}
	if err := c.dir.Publish(ctx, c.self, entries, c.ttl); err != nil {
		c.logErr("publish rooms", err)
	}
	nodes, err := c.dir.Nodes(ctx)
	if err != nil {
		c.logErr("list nodes", err)
		return
	}
	rooms, err := c.dir.Rooms(ctx, "")
	if err != nil {
		c.logErr("list rooms", err)
		return
	}
	c.mu.Lock()
	c.nodes, c.rooms = nodes, rooms
	c.mu.Unlock()
	c.healthy.Store(true)
	c.redisRTT.Add(1)
	if n := c.beats.Add(1); n%snapshotEvery == 0 {
		c.snapshotRooms(local)
	}
}

// snapshotEvery is how many heartbeats pass between two snapshots of the
// rooms that can take one (with the default TTL, 5 s), so a room whose
// node dies comes back from a recent state.
const snapshotEvery = 5

// snapshotTTL is how long a room's last snapshot is kept after its node
// stopped refreshing it.
const snapshotTTL = 10 * time.Minute

func (c *clusterNode) snapshotRooms(local []room.RoomInfo) {
	ctx, cancel := context.WithTimeout(context.Background(), c.ttl)
	defer cancel()
	for _, r := range local {
		env, err := c.s.rooms.Snapshot(ctx, r.ID, false)
		if errors.Is(err, room.ErrNotSnapshotter) || errors.Is(err, room.ErrNoRoom) {
			continue
		}
		if err != nil {
			c.logErr("snapshot room", err)
			continue
		}
		if err := c.dir.SaveSnapshot(ctx, r.ID, env, snapshotTTL); err != nil {
			c.logErr("save snapshot", err)
			return
		}
	}
}

// restoreOrphan brings back a room whose node died, from its last
// snapshot, if nobody owns it. It reports whether the room is here now.
func (c *clusterNode) restoreOrphan(ctx context.Context, id string) bool {
	env, err := c.dir.LoadSnapshot(ctx, id)
	if err != nil || env == nil {
		return false
	}
	lease, err := c.dir.Acquire(ctx, id, c.self, c.ttl)
	if err != nil {
		return false
	}
	c.mu.Lock()
	c.leases[id] = lease
	c.mu.Unlock()
	if _, err := c.s.rooms.Restore(ctx, env); err != nil && !errors.Is(err, room.ErrRoomExists) {
		c.logErr("restore orphaned room", err)
		c.mu.Lock()
		delete(c.leases, id)
		c.mu.Unlock()
		_ = c.dir.Release(ctx, lease)
		return false
	}
	c.log.Info("cluster: restored a room from its snapshot", zap.String("room", id))
	return true
}

// acquire takes a room's lease; a room another node owns is disposed
// here, so two nodes never both run it.
func (c *clusterNode) acquire(ctx context.Context, id string) {
	l, err := c.dir.Acquire(ctx, id, c.self, c.ttl)
	switch {
	case err == nil:
		c.mu.Lock()
		c.leases[id] = l
		c.mu.Unlock()
	case errors.Is(err, cluster.ErrNotOwner):
		c.log.Warn("cluster: room owned by another node: disposing the local copy", zap.String("room", id))
		_ = c.s.rooms.Dispose(id, "room moved to another node")
	default:
		c.logErr("acquire lease", err)
	}
}

func (c *clusterNode) resolve(ctx context.Context, node string) (string, error) {
	c.mu.Lock()
	for _, n := range c.nodes {
		if n.ID == node {
			c.mu.Unlock()
			return n.Addr, nil
		}
	}
	c.mu.Unlock()
	nodes, err := c.dir.Nodes(ctx)
	if err != nil {
		return "", err
	}
	for _, n := range nodes {
		if n.ID == node {
			return n.Addr, nil
		}
	}
	return "", fmt.Errorf("node %s is not alive", node)
}

// place decides which node serves a JOIN: the room's owner for a join by
// ID, the node of the best matching room for join-or-create, the least
// loaded node that is not draining for a create. "" means this node.
func (c *clusterNode) place(ctx context.Context, j *protocol.Join) (string, error) {
	switch j.Mode {
	case protocol.JoinByID:
		if c.s.rooms.Has(j.RoomID) {
			return "", nil
		}
		owner, err := c.dir.Owner(ctx, j.RoomID)
		if err != nil {
			return "", fmt.Errorf("find room: %w", err)
		}
		if owner == "" {
			// Nobody owns it: its node may have died. Bring it back here
			// from its last snapshot, if there is one.
			if c.restoreOrphan(ctx, j.RoomID) {
				return "", nil
			}
			// Or it was created a moment ago: its node takes the lease
			// just after creating it, so a player handed the new room's ID
			// at once may ask before the lease is written. Look again for
			// a little while before calling the room unknown.
			if owner, err = c.awaitOwner(ctx, j.RoomID); err != nil {
				return "", fmt.Errorf("find room: %w", err)
			}
		}
		if owner == "" || owner == c.self {
			return "", nil
		}
		return owner, nil
	case protocol.JoinOrCreate:
		var opts game.Options
		if len(j.Options) > 0 {
			_ = msgpack.Unmarshal(j.Options, &opts)
		}
		var keys []string
		if len(opts) > 0 {
			keys = c.s.rooms.FilterBy(j.Kind)
		}
		c.mu.Lock()
		rooms := c.rooms
		c.mu.Unlock()
		// The fullest matching room on this node, else the fullest on
		// another: a player seated here needs no forward hop and costs
		// memory on one node, not a session here and a seat there.
		better := func(r, than cluster.RoomEntry) bool {
			if here := r.Node == c.self; here != (than.Node == c.self) {
				return here
			}
			return r.Players > than.Players
		}
		best := -1
		for i, r := range rooms {
			if r.Kind != j.Kind || r.Locked || r.Private || r.Players >= r.MaxPlayers || c.draining(r.Node) {
				continue
			}
			if !filtersMatch(keys, r.Filters, opts) {
				continue
			}
			if best < 0 || better(r, rooms[best]) {
				best = i
			}
		}
		if best >= 0 {
			if rooms[best].Node == c.self {
				return "", nil
			}
			return rooms[best].Node, nil
		}
		return c.leastLoaded(), nil
	default:
		return c.leastLoaded(), nil
	}
}

// ownerWait bounds how long a join by ID waits for an unknown room's lease
// to appear: a new room's lease is one directory write after its creation.
const ownerWait = 300 * time.Millisecond

// awaitOwner looks up the owner of a room that had none, a few times over
// ownerWait, and returns "" if it still has none (or is on this node).
func (c *clusterNode) awaitOwner(ctx context.Context, id string) (string, error) {
	deadline := time.Now().Add(ownerWait)
	for wait := 10 * time.Millisecond; time.Now().Before(deadline); wait *= 2 {
		t := time.NewTimer(min(wait, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		case <-t.C:
		}
		if c.s.rooms.Has(id) {
			return "", nil
		}
		owner, err := c.dir.Owner(ctx, id)
		if err != nil || owner != "" {
			return owner, err
		}
	}
	return "", nil
}

// filtersMatch is room.FiltersMatch for a listed room, whose filtered
// options the directory holds as msgpack.
func filtersMatch(keys []string, raw []byte, want game.Options) bool {
	var have game.Options
	if len(raw) > 0 {
		_ = msgpack.Unmarshal(raw, &have)
	}
	return room.FiltersMatch(keys, have, want)
}

func (c *clusterNode) draining(node string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.ID == node {
			return n.Draining
		}
	}
	return true // not alive
}

// leastLoaded returns the node with the fewest players that is not
// draining ("" for this node, which wins ties).
func (c *clusterNode) leastLoaded() string {
	c.mu.Lock()
	nodes := append([]cluster.NodeInfo(nil), c.nodes...)
	c.mu.Unlock()
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Players < nodes[j].Players })
	selfLoad := -1
	for _, n := range nodes {
		if n.ID == c.self {
			selfLoad = n.Players
		}
	}
	for _, n := range nodes {
		if n.Draining {
			continue
		}
		if n.ID == c.self || n.Players == selfLoad {
			return ""
		}
		return n.ID
	}
	return ""
}

// remoteSeat is a session's seat in a room another node owns, as the
// session's node sees it (stored as the session's Data).
type remoteSeat struct {
	c        *clusterNode
	link     *cluster.Link
	ch       uint32
	sess     *session.Session
	roomID   string // learnt from JOINED
	playerID string
	dirty    bool
}

// join places a JOIN and, for a room on another node, opens a seat channel
// to it. It runs on its own goroutine: placing may wait for the directory
// and a link.
func (c *clusterNode) join(s *session.Session, j protocol.Join, raw []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pending := s.Data()
	clear := func() {
		if s.Data() == pending {
			s.SetData(nil)
		}
	}
	node, err := c.place(ctx, &j)
	if err == nil && node != "" {
		err = c.openSeat(ctx, s, node, raw)
		if err == nil {
			return
		}
		c.logErr("forward join", err)
	}
	clear()
	if err != nil {
		s.SendError(protocol.NewError(protocol.CodeUnavailable, "cluster unavailable: "+err.Error()), protocol.TypeJoin, j.ReqID)
		return
	}
	_, body, _ := protocol.Split(raw)
	if err := c.s.rooms.Handle(s, protocol.TypeJoin, body); err != nil {
		var rq interface{ RequestID() uint32 }
		var pe *protocol.Error
		if errors.As(err, &pe) {
			reqID := j.ReqID
			if errors.As(err, &rq) {
				reqID = rq.RequestID()
			}
			s.SendError(pe, protocol.TypeJoin, reqID)
		}
	}
}

func (c *clusterNode) openSeat(ctx context.Context, s *session.Session, node string, joinMsg []byte) error {
	l, err := c.mesh.Link(ctx, node)
	if err != nil {
		return err
	}
	rs := c.newSeat(s, l, "", "")
	_ = l.Write(cluster.OpSeatOpen, rs.ch, cluster.EncodeMember(nil, memberOf(s)))
	if err := l.Write(cluster.OpSeatMsg, rs.ch, rs.msg(joinMsg)); err != nil {
		return err
	}
	l.Flush()
	return nil
}

// newSeat registers a seat channel of s on l and makes it the session's
// seat.
func (c *clusterNode) newSeat(s *session.Session, l *cluster.Link, roomID, playerID string) *remoteSeat {
	rs := &remoteSeat{c: c, link: l, ch: l.NewChannel(), sess: s, roomID: roomID, playerID: playerID}
	c.mu.Lock()
	if c.opened[l] == nil {
		c.opened[l] = make(map[uint32]*remoteSeat)
	}
	c.opened[l][rs.ch] = rs
	c.mu.Unlock()
	s.SetData(rs)
	return rs
}

// memberOf describes a session to a room's node.
func memberOf(s *session.Session) cluster.Member {
	var claims []byte
	if cl := s.Claims(); len(cl) > 0 {
		claims, _ = msgpack.Marshal(cl)
	}
	return cluster.Member{SessionID: s.ID(), UserID: s.UserID(), Claims: claims}
}

// serve registers a member of another node seated over l's channel ch.
func (c *clusterNode) serve(l *cluster.Link, ch uint32, m cluster.Member) *remoteMember {
	rm := &remoteMember{c: c, link: l, ch: ch, m: m}
	if len(m.Claims) > 0 {
		_ = msgpack.Unmarshal(m.Claims, &rm.claims)
	}
	c.mu.Lock()
	if c.served[l] == nil {
		c.served[l] = make(map[uint32]*remoteMember)
	}
	c.served[l][ch] = rm
	c.mu.Unlock()
	return rm
}

// msg prefixes a client message with the session's RTT, for the owner.
func (rs *remoteSeat) msg(m []byte) []byte {
	b := make([]byte, 4, 4+len(m))
	binary.BigEndian.PutUint32(b, uint32(min(rs.sess.RTT().Microseconds(), 1<<32-1)))
	return append(b, m...)
}

func (rs *remoteSeat) forward(raw []byte) error {
	if err := rs.link.Write(cluster.OpSeatMsg, rs.ch, rs.msg(raw)); err != nil {
		return protocol.NewError(protocol.CodeUnavailable, "the room's node is unreachable")
	}
	rs.link.Flush()
	return nil
}

func (rs *remoteSeat) event(reason byte) {
	_ = rs.link.Write(cluster.OpSeatClose, rs.ch, []byte{reason})
	rs.link.Flush()
}

// remoteMember is a player of another node seated in a room here; it
// implements room.Member by writing to the link.
type remoteMember struct {
	moving atomic.Bool // its room is moving away: its messages bounce
	c      *clusterNode
	link   *cluster.Link
	ch     uint32
	m      cluster.Member
	claims map[string]any
	rtt    atomic.Int64
	data   atomic.Pointer[any]
}

func (rm *remoteMember) ID() string             { return rm.m.SessionID }
func (rm *remoteMember) UserID() string         { return rm.m.UserID }
func (rm *remoteMember) Claims() map[string]any { return rm.claims }
func (rm *remoteMember) RTT() time.Duration     { return time.Duration(rm.rtt.Load()) }
func (rm *remoteMember) Flush()                 { rm.link.Flush() }
func (rm *remoteMember) Send(f *frame.Frame) error {
	return rm.link.Write(cluster.OpSeatOut, rm.ch, f.B)
}
func (rm *remoteMember) Data() any {
	if p := rm.data.Load(); p != nil {
		return *p
	}
	return nil
}

// SetData(nil) is the engine giving the seat up: the entry node hears it.
func (rm *remoteMember) SetData(v any) {
	rm.data.Store(&v)
	if v == nil {
		_ = rm.link.Write(cluster.OpSeatGone, rm.ch, nil)
		rm.link.Flush()
	}
}

// LinkRecord implements cluster.LinkHandler.
func (c *clusterNode) LinkRecord(l *cluster.Link, op byte, ch uint32, p []byte) {
	switch op {
	case cluster.OpSeatOpen:
		m, err := cluster.DecodeMember(p)
		if err != nil {
			c.logErr("seat open", err)
			return
		}
		c.serve(l, ch, m)
	case cluster.OpSeatMsg:
		c.seatMsg(l, ch, p)
	case cluster.OpSeatClose:
		rm := c.servedSeat(l, ch)
		if rm == nil || len(p) < 1 {
			return
		}
		switch p[0] {
		case cluster.SeatDetached:
			// The session's node holds the session as long as the room
			// holds the seat, as a local room's session is held.
			if d, ok := c.s.rooms.Detached(rm); ok {
				var b [4]byte
				binary.BigEndian.PutUint32(b[:], uint32(min(d.Milliseconds(), math.MaxUint32)))
				_ = l.Write(cluster.OpSeatGrace, ch, b[:])
				l.Flush()
			}
		case cluster.SeatMoving:
			c.s.rooms.Hold(rm)
			c.mu.Lock()
			delete(c.served[l], ch)
			c.mu.Unlock()
		case cluster.SeatResumed:
			c.s.rooms.Resumed(rm)
		default:
			c.s.rooms.Closed(rm)
			c.mu.Lock()
			delete(c.served[l], ch)
			c.mu.Unlock()
		}
	case cluster.OpSeatOut:
		rs := c.openedSeat(l, ch)
		if rs == nil {
			return
		}
		if t, body, err := protocol.Split(p); err == nil && t == protocol.TypeJoined {
			var j protocol.Joined
			if j.Decode(body) == nil {
				rs.roomID, rs.playerID = j.RoomID, j.PlayerID
			}
		}
		f := frame.New()
		f.Grow(len(p))
		f.B = append(f.B, p...)
		_ = rs.sess.Send(f.Seal())
		f.Release()
		rs.dirty = true
	case cluster.OpRestore:
		go c.serveRestore(l, ch, string(p))
	case cluster.OpRestored:
		c.restoreReply(ch, p)
	case cluster.OpSeatBounce:
		c.mu.Lock()
		sess := c.bounced[l][ch]
		if sess == nil {
			if rs := c.opened[l][ch]; rs != nil {
				sess = rs.sess // not told of the move yet: the same seat, again
			}
		}
		c.mu.Unlock()
		if sess == nil || len(p) < 4 {
			return
		}
		msg := p[4:]
		if rs, ok := sess.Data().(*remoteSeat); ok {
			_ = rs.forward(append([]byte(nil), msg...))
		} else if t, body, err := protocol.Split(msg); err == nil {
			_ = c.s.rooms.Handle(sess, t, body)
		}
	case cluster.OpSeatMoved:
		rs := c.openedSeat(l, ch)
		if rs == nil {
			return
		}
		c.forgetSeat(rs)
		c.mu.Lock()
		if c.bounced[l] == nil {
			c.bounced[l] = make(map[uint32]*session.Session)
		}
		c.bounced[l][ch] = rs.sess
		c.mu.Unlock()
		target := string(p)
		// On the link's reader, so the seat's next messages take the new
		// channel.
		func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if target == c.self {
				rs.sess.SetData(nil)
				c.s.rooms.Reseat(rs.sess, rs.roomID, rs.playerID)
				return
			}
			nl, err := c.mesh.Link(ctx, target)
			if err != nil {
				rs.sess.SetData(nil)
				_ = rs.sess.SendMessage(&protocol.Left{RoomID: rs.roomID, Reason: protocol.LeftDropped, Code: protocol.CodeUnavailable})
				return
			}
			c.reopen(rs.sess, nl, rs.roomID, rs.playerID)
		}()
	case cluster.OpSeatReopen:
		m, roomID, playerID, err := cluster.DecodeReseat(p)
		if err != nil {
			c.logErr("seat reopen", err)
			return
		}
		c.s.rooms.Reseat(c.serve(l, ch, m), roomID, playerID)
	case cluster.OpSeatGrace:
		if rs := c.openedSeat(l, ch); rs != nil && len(p) >= 4 {
			c.s.hub.Grace(rs.sess, time.Duration(binary.BigEndian.Uint32(p))*time.Millisecond)
		}
	case cluster.OpSeatGone:
		rs := c.openedSeat(l, ch)
		if rs == nil {
			return
		}
		if rs.sess.Data() == any(rs) {
			rs.sess.SetData(nil)
		}
		c.mu.Lock()
		delete(c.opened[l], ch)
		c.mu.Unlock()
	}
}

// LinkBatchDone implements cluster.LinkHandler: flush the sessions the
// batch wrote to.
func (c *clusterNode) LinkBatchDone(l *cluster.Link) {
	c.mu.Lock()
	var dirty []*remoteSeat
	for _, rs := range c.opened[l] {
		if rs.dirty {
			rs.dirty = false
			dirty = append(dirty, rs)
		}
	}
	c.mu.Unlock()
	for _, rs := range dirty {
		rs.sess.Flush()
	}
}

// LinkClosed implements cluster.LinkHandler: seats over a lost link end.
func (c *clusterNode) LinkClosed(l *cluster.Link) {
	c.mu.Lock()
	served, opened := c.served[l], c.opened[l]
	delete(c.served, l)
	delete(c.opened, l)
	c.mu.Unlock()
	for _, rm := range served {
		c.s.rooms.Closed(rm)
	}
	c.mu.Lock()
	delete(c.moved, l)
	delete(c.bounced, l)
	c.mu.Unlock()
	for _, rs := range opened {
		if rs.sess.Data() == any(rs) {
			rs.sess.SetData(nil)
			_ = rs.sess.SendMessage(&protocol.Left{RoomID: rs.roomID, Reason: protocol.LeftDisposed, Code: protocol.CodeUnavailable})
		}
	}
}

// seatMsg hands a forwarded client message to its room, or bounces it to
// the player's node while the room is moving or gone from here.
func (c *clusterNode) seatMsg(l *cluster.Link, ch uint32, p []byte) {
	c.moveMu.RLock()
	defer c.moveMu.RUnlock()
	rm := c.servedSeat(l, ch)
	if rm != nil && rm.moving.Load() {
		rm = nil // in transit: bounce it until the player's node knows where
	}
	if rm == nil && (c.wasMoved(l, ch) || c.servedSeat(l, ch) != nil) {
		// The room moved on while this was on its way: the player's
		// node sends it to the room's new place.
		_ = l.Write(cluster.OpSeatBounce, ch, p)
		l.Flush()
		return
	}
	if rm == nil || len(p) < 4 {
		return
	}
	rm.rtt.Store(int64(binary.BigEndian.Uint32(p)) * 1000)
	t, body, err := protocol.Split(p[4:])
	if err != nil {
		return
	}
	if err := c.s.rooms.Handle(rm, t, body); err != nil {
		var pe *protocol.Error
		if !errors.As(err, &pe) {
			pe = protocol.NewError(protocol.CodeInternal, "internal error")
		}
		var reqID uint32
		var rq interface{ RequestID() uint32 }
		if errors.As(err, &rq) {
			reqID = rq.RequestID()
		}
		e := protocol.ErrorMsg{Code: pe.Code, Message: pe.Message, Ref: t, ReqID: reqID}
		_ = l.Write(cluster.OpSeatOut, ch, e.Append(nil))
		if t == protocol.TypeJoin {
			rm.SetData(nil)
		}
	}
}

// markMoving marks the room moving, and its players of other nodes with
// it, after every message already handed to the room; it returns the
// players marked.
func (c *clusterNode) markMoving(id string) []*remoteMember {
	c.moveMu.Lock()
	defer c.moveMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.movingRooms[id] = true
	var marked []*remoteMember
	for _, seats := range c.served {
		for _, rm := range seats {
			if rid, _, ok := c.s.rooms.SeatOf(rm); ok && rid == id {
				rm.moving.Store(true)
				marked = append(marked, rm)
			}
		}
	}
	return marked
}

func (c *clusterNode) wasMoved(l *cluster.Link, ch uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.moved[l][ch]
}

func (c *clusterNode) servedSeat(l *cluster.Link, ch uint32) *remoteMember {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.served[l][ch]
}

func (c *clusterNode) openedSeat(l *cluster.Link, ch uint32) *remoteSeat {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opened[l][ch]
}

// forgetSeat drops a closed session's remote seat.
func (c *clusterNode) forgetSeat(rs *remoteSeat) {
	c.mu.Lock()
	delete(c.opened[rs.link], rs.ch)
	c.mu.Unlock()
}

// proxyTo returns a reverse proxy to a node, for requests that belong to
// one of its sessions (a resume or a fallback request that landed here).
func (c *clusterNode) proxyTo(ctx context.Context, node string) (*httputil.ReverseProxy, error) {
	if p, ok := c.proxies.Load(node); ok {
		return p.(*httputil.ReverseProxy), nil
	}
	addr, err := c.resolve(ctx, node)
	if err != nil {
		return nil, err
	}
	target := &url.URL{Scheme: "http", Host: addr}
	p := httputil.NewSingleHostReverseProxy(target)
	p.FlushInterval = -1 // event streams flush at once
	p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		fail(w, http.StatusBadGateway, "the session's node is unreachable")
	}
	c.proxies.Store(node, p)
	return p, nil
}

// recordSession records in the directory that session id lives here, so
// that the other nodes route requests that name it.
func (c *clusterNode) recordSession(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, c.ttl)
	defer cancel()
	if err := c.dir.SetSession(ctx, id, c.self); err != nil {
		c.logErr("record session", err)
	}
}

// routeSession proxies a request that names a session living on another
// node to that node. It reports whether it did. A WebSocket upgrade or an
// event stream lasts as long as the session's connection: it is tunnelled
// from the event loop (transport.Tunnel), holding no goroutine here; the
// other requests, and a tunnel that cannot be set up, go through
// net/http's reverse proxy.
func (c *clusterNode) routeSession(w http.ResponseWriter, r *http.Request, sessionID string) bool {
	if sessionID == "" || c.s.hub.Has(sessionID) {
		return false
	}
	node, err := c.dir.SessionNode(r.Context(), sessionID)
	if err != nil || node == "" || node == c.self {
		return false
	}
	if longLived(r) {
		if addr, err := c.resolve(r.Context(), node); err == nil {
			if up, err := net.DialTimeout("tcp", addr, tunnelDialTimeout); err == nil {
				if err := c.s.ws.Tunnel(w, r, up); err == nil {
					return true
				}
			}
		}
	}
	p, err := c.proxyTo(r.Context(), node)
	if err != nil {
		return false
	}
	p.ServeHTTP(w, r)
	return true
}

// tunnelDialTimeout bounds connecting to a session's node for a tunnel.
const tunnelDialTimeout = 2 * time.Second

// longLived reports whether r opens a connection that lasts: a WebSocket
// upgrade or the fallback's event stream.
func longLived(r *http.Request) bool {
	return r.Method == http.MethodGet && r.ContentLength == 0 &&
		(r.URL.Path == "/sse/stream" || strings.EqualFold(r.Header.Get("Upgrade"), "websocket"))
}

// multiObserver fans room events out to several observers.
type multiObserver []room.Observer

func (m multiObserver) RoomCreated(r room.RoomInfo) {
	for _, o := range m {
		o.RoomCreated(r)
	}
}
func (m multiObserver) RoomDisposed(r room.RoomInfo, reason string) {
	for _, o := range m {
		o.RoomDisposed(r, reason)
	}
}
func (m multiObserver) PlayerJoined(r room.RoomInfo, p room.PlayerInfo) {
	for _, o := range m {
		o.PlayerJoined(r, p)
	}
}
func (m multiObserver) PlayerLeft(r room.RoomInfo, p room.PlayerInfo, why game.LeaveReason) {
	for _, o := range m {
		o.PlayerLeft(r, p, why)
	}
}

// clusterObserver takes a room's lease as soon as it exists.
type clusterObserver struct{ c *clusterNode }

func (o clusterObserver) RoomCreated(r room.RoomInfo) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), o.c.ttl)
		defer cancel()
		o.c.acquire(ctx, r.ID)
	}()
}
func (o clusterObserver) RoomDisposed(r room.RoomInfo, reason string) {
	if reason == room.ReasonMoved {
		// A drain moved the room (moveRoom): it releases the lease itself,
		// synchronously, before asking the target to take the room. A
		// release here would race with the target's acquire.
		return
	}
	o.c.mu.Lock()
	l, ok := o.c.leases[r.ID]
	delete(o.c.leases, r.ID)
	o.c.mu.Unlock()
	go func() {
		_ = o.c.dir.DeleteSnapshot(context.Background(), r.ID) // the room is over
		if ok {
			_ = o.c.dir.Release(context.Background(), l)
		}
	}()
}
func (clusterObserver) PlayerJoined(room.RoomInfo, room.PlayerInfo)                 {}
func (clusterObserver) PlayerLeft(room.RoomInfo, room.PlayerInfo, game.LeaveReason) {}

// Owns reports whether this node runs the room with the given ID.
func (s *Server) Owns(roomID string) bool { return s.rooms.Has(roomID) }
