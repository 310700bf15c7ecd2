package gameserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gameserver/gameserver/internal/api"
)

// In a cluster the API answers for every node, whichever node a request
// lands on. A room's requests go to the node that holds its lease; a
// listing and the monitor's overview gather every live node's. Nodes ask
// each other through the peer API: the same handlers over the node's own
// rooms only, under peerPrefix, with a key derived from the cluster
// secret.

// peerPrefix is where a node serves the peer API (peerPrefix+"/api/v1/...").
const peerPrefix = "/cluster/peer"

// peerKey is the key of the peer API: every node of a cluster shares the
// secret, so every node derives the same key.
func peerKey(secret string) string {
	sum := sha256.Sum256([]byte("gameserver peer api\x00" + secret))
	return "peer-" + hex.EncodeToString(sum[:])
}

// peerTimeout bounds one call to another node when the caller's context
// has no earlier deadline.
const peerTimeout = 4 * time.Second

// clusterBackend serves the API across the cluster. Rooms this node owns,
// and everything when no other node is alive, are the local backend's.
type clusterBackend struct {
	local localBackend
	http  *http.Client

	mu      sync.Mutex
	peers   map[string]*api.Client // by node ID, for its current address
	ov      api.Overview           // the last gathered overview ...
	ovLocal time.Time              // ... made from the local sample of this time
}

var _ api.Backend = (*clusterBackend)(nil)

func newClusterBackend(local localBackend) *clusterBackend {
	return &clusterBackend{local: local, http: &http.Client{}, peers: map[string]*api.Client{}}
}

// node is the server's cluster node: set in New right after the backend,
// so before the API serves a request.
func (cb *clusterBackend) node() *clusterNode { return cb.local.s.cluster }

// peer returns the API client of another node.
func (cb *clusterBackend) peer(ctx context.Context, node string) (*api.Client, error) {
	addr, err := cb.node().resolve(ctx, node)
	if err != nil {
		return nil, api.Errorf(http.StatusBadGateway, "node %s is not alive", node)
	}
	base := "http://" + addr + peerPrefix
	cb.mu.Lock()
	defer cb.mu.Unlock()
	c := cb.peers[node]
	if c == nil || c.Base != base {
		c = &api.Client{Base: base, Key: peerKey(cb.local.s.cfg.ClusterSecret), HTTP: cb.http}
		cb.peers[node] = c
	}
	return c, nil
}

// nodes lists the live nodes' IDs, this node first.
func (cb *clusterBackend) nodes(ctx context.Context) ([]string, error) {
	c := cb.node()
	infos, err := c.dir.Nodes(ctx)
	if err != nil {
		return nil, api.Errorf(http.StatusServiceUnavailable, "the cluster directory is unavailable: retry later")
	}
	ids := []string{c.self}
	for _, n := range infos {
		if n.ID != c.self {
			ids = append(ids, n.ID)
		}
	}
	slices.Sort(ids[1:])
	// Forget the clients of nodes that left (a rolling restart gives each
	// new process a new ID).
	cb.mu.Lock()
	for id := range cb.peers {
		if !slices.Contains(ids, id) {
			delete(cb.peers, id)
		}
	}
	cb.mu.Unlock()
	return ids, nil
}

// owner returns the client of the node that owns a room, or nil when the
// room is this node's, or nobody's (the local backend answers 404).
func (cb *clusterBackend) owner(ctx context.Context, id string) (*api.Client, error) {
	c := cb.node()
	if c.s.rooms.Has(id) {
		return nil, nil
	}
	node, err := c.dir.Owner(ctx, id)
	if err != nil {
		return nil, api.Errorf(http.StatusServiceUnavailable, "the cluster directory is unavailable: retry later")
	}
	if node == "" || node == c.self {
		return nil, nil
	}
	return cb.peer(ctx, node)
}

// call bounds a call to another node.
func call[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	return fn(ctx)
}

// each runs fn for every live node, at once, and gathers the answers in
// the nodes' order.
func each[T any](ctx context.Context, cb *clusterBackend, ids []string, fn func(ctx context.Context, b api.Backend, node string) (T, error)) ([]T, []error) {
	out, errs := make([]T, len(ids)), make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		if i == 0 { // this node
			out[0], errs[0] = fn(ctx, cb.local, id)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := cb.peer(ctx, id)
			if err != nil {
				errs[i] = err
				return
			}
			out[i], errs[i] = call(ctx, func(ctx context.Context) (T, error) { return fn(ctx, p, id) })
		}()
	}
	wg.Wait()
	return out, errs
}

// Rooms lists the rooms of every live node (or of the one asked for).
func (cb *clusterBackend) Rooms(ctx context.Context, f api.Filter) ([]api.Room, error) {
	c := cb.node()
	if f.Node == c.self {
		return cb.local.Rooms(ctx, f)
	}
	ids, err := cb.nodes(ctx)
	if err != nil {
		return nil, err
	}
	if f.Node != "" {
		if !slices.Contains(ids, f.Node) {
			return nil, nil // no such node alive: no rooms
		}
		p, err := cb.peer(ctx, f.Node)
		if err != nil {
			return nil, err
		}
		return call(ctx, func(ctx context.Context) ([]api.Room, error) { return p.Rooms(ctx, f) })
	}
	lists, errs := each(ctx, cb, ids, func(ctx context.Context, b api.Backend, node string) ([]api.Room, error) {
		return b.Rooms(ctx, api.Filter{Kind: f.Kind, Node: node})
	})
	var out []api.Room
	for i, err := range errs {
		if err != nil {
			return nil, nodeErr(ids[i], err)
		}
		out = append(out, lists[i]...)
	}
	slices.SortFunc(out, func(a, b api.Room) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// nodeErr says which node a gathering failed on.
func nodeErr(node string, err error) error {
	if e, ok := err.(*api.Error); ok {
		return api.Errorf(http.StatusBadGateway, "node %s: %s", node, e.Message)
	}
	return api.Errorf(http.StatusBadGateway, "node %s: %v", node, err)
}

// Room answers from the room's owner.
func (cb *clusterBackend) Room(ctx context.Context, id string) (api.RoomDetail, error) {
	p, err := cb.owner(ctx, id)
	if err != nil || p == nil {
		if err != nil {
			return api.RoomDetail{}, err
		}
		return cb.local.Room(ctx, id)
	}
	return call(ctx, func(ctx context.Context) (api.RoomDetail, error) { return p.Room(ctx, id) })
}

// Create makes the room here, or, while this node drains, on the least
// loaded node that does not, as the directory knows them now (a node that
// joined since the last heartbeat counts too).
func (cb *clusterBackend) Create(ctx context.Context, req api.CreateRequest) (api.Created, error) {
	c := cb.node()
	if c.s.ready.Load() {
		return cb.local.Create(ctx, req)
	}
	infos, err := c.dir.Nodes(ctx)
	if err != nil {
		return api.Created{}, api.Errorf(http.StatusServiceUnavailable, "the node is draining and the cluster directory is unavailable: retry later")
	}
	node := leastLoadedOf(infos, c.self)
	if node == "" {
		return cb.local.Create(ctx, req) // nowhere else: refused (503)
	}
	p, err := cb.peer(ctx, node)
	if err != nil {
		return api.Created{}, err
	}
	return call(ctx, func(ctx context.Context) (api.Created, error) { return p.Create(ctx, req) })
}

// Dispose, Kick and Send go to the room's owner.
func (cb *clusterBackend) Dispose(ctx context.Context, id, reason string) error {
	return cb.onOwner(ctx, id, func(ctx context.Context, b api.Backend) error { return b.Dispose(ctx, id, reason) })
}

func (cb *clusterBackend) Kick(ctx context.Context, req api.KickRequest) error {
	return cb.onOwner(ctx, req.RoomID, func(ctx context.Context, b api.Backend) error { return b.Kick(ctx, req) })
}

func (cb *clusterBackend) Send(ctx context.Context, req api.SendRequest) error {
	return cb.onOwner(ctx, req.RoomID, func(ctx context.Context, b api.Backend) error { return b.Send(ctx, req) })
}

func (cb *clusterBackend) onOwner(ctx context.Context, id string, fn func(context.Context, api.Backend) error) error {
	p, err := cb.owner(ctx, id)
	if err != nil {
		return err
	}
	if p == nil {
		return fn(ctx, cb.local)
	}
	_, err = call(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx, p) })
	return err
}

// Overview gathers every live node's latest sample, at most once per
// local sample (about once a second), however many viewers ask.
func (cb *clusterBackend) Overview(ctx context.Context) (api.Overview, error) {
	here, err := cb.local.Overview(ctx)
	c := cb.node()
	if err != nil {
		return here, err
	}
	cb.mu.Lock()
	if cb.ovLocal.Equal(here.Time) {
		o := cb.ov
		o.Nodes = slices.Clone(o.Nodes)
		o.Nodes[0].Status = here.Nodes[0].Status // read live, as the local sampler does
		cb.mu.Unlock()
		return o, nil
	}
	cb.mu.Unlock()
	ids, err := cb.nodes(ctx)
	if err != nil {
		return here, nil // the directory is away: this node's figures
	}
	parts, errs := each(ctx, cb, ids, func(ctx context.Context, b api.Backend, node string) (api.Overview, error) {
		if node == c.self {
			return here, nil
		}
		return b.Overview(ctx)
	})
	o := mergeOverviews(here, ids, parts, errs)
	cb.mu.Lock()
	if here.Time.After(cb.ovLocal) {
		cb.ov, cb.ovLocal = o, here.Time
	}
	cb.mu.Unlock()
	return o, nil
}

// mergeOverviews makes one overview of the nodes' own: nodes side by
// side (one that did not answer as "unreachable"), room types and webhook
// totals summed, the fullest rooms of all.
func mergeOverviews(here api.Overview, ids []string, parts []api.Overview, errs []error) api.Overview {
	o := api.Overview{Time: here.Time, Nodes: []api.Node{}}
	kinds := map[string]*api.Kind{}
	var order []string
	var rooms []api.Room
	for i, p := range parts {
		if errs[i] != nil {
			o.Nodes = append(o.Nodes, api.Node{Name: ids[i], Status: "unreachable"})
			continue
		}
		o.Nodes = append(o.Nodes, p.Nodes...)
		for _, k := range p.Kinds {
			m := kinds[k.Kind]
			if m == nil {
				m = &api.Kind{Kind: k.Kind}
				kinds[k.Kind] = m
				order = append(order, k.Kind)
			}
			// The tick mean weighs each node's by its rooms; the p99
			// bound is the worst node's.
			if n := m.Rooms + k.Rooms; n > 0 {
				m.TickMeanMs = round3((m.TickMeanMs*float64(m.Rooms) + k.TickMeanMs*float64(k.Rooms)) / float64(n))
			}
			m.TickP99Ms = max(m.TickP99Ms, k.TickP99Ms)
			m.Rooms += k.Rooms
			m.Players += k.Players
		}
		rooms = append(rooms, p.Rooms...)
		o.RoomsTotal += p.RoomsTotal
		if w := p.Webhooks; w != nil {
			if o.Webhooks == nil {
				o.Webhooks = &api.WebhookStats{}
			}
			o.Webhooks.Queued += w.Queued
			o.Webhooks.Delivered += w.Delivered
			o.Webhooks.Failed += w.Failed
			o.Webhooks.Dropped += w.Dropped
		}
	}
	for _, k := range order {
		o.Kinds = append(o.Kinds, *kinds[k])
	}
	slices.SortStableFunc(rooms, func(a, b api.Room) int {
		if a.Players != b.Players {
			return b.Players - a.Players
		}
		return a.Created.Compare(b.Created)
	})
	o.Rooms = rooms[:min(len(rooms), api.RoomsLimit)]
	return o
}
