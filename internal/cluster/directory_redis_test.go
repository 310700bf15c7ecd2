package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gameserver/gameserver/internal/cluster/redistest"
	"github.com/redis/go-redis/v9"
)

// quietRedisLog keeps go-redis from logging every failed dial of the
// tests that stop Redis.
var quietRedisLog sync.Once

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

func newTestRedis(t *testing.T, url string, opts ...RedisOption) *Redis {
	t.Helper()
	quietRedisLog.Do(func() { redis.SetLogger(discardLogger{}) })
	d, err := NewRedis(url, opts...)
	if err != nil {
		t.Fatalf("NewRedis(%q): %v", url, err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func startRedis(t *testing.T, opts ...RedisOption) (*Redis, *redistest.Server) {
	t.Helper()
	srv := redistest.StartServer(t)
	return newTestRedis(t, srv.URL(), opts...), srv
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestRedisURL(t *testing.T) {
	bad := map[string]string{
		"":                        "empty",
		"   ":                     "empty",
		"127.0.0.1:6379":          "not a URL",
		"localhost":               "not a URL",
		"://host:6379":            "want redis://",
		"http://127.0.0.1:6379/0": "unsupported scheme",
		"rediss://host:6379/0":    "unsupported scheme",
		"unix:///tmp/redis.sock":  "unsupported scheme",
		"redis:host:6379":         "not a URL",
		"redis://":                "no host",
		"redis:///0":              "no host",
		"redis://:6379/0":         "no host",
		"redis://host:/0":         "empty port",
		"redis://host:port/0":     "redis url",
		"redis://host:0/0":        "invalid port",
		"redis://host:65536/0":    "invalid port",
		"redis://host:6379/db":    "invalid database",
		"redis://host:6379/-1":    "invalid database",
		"redis://host:6379/0/1":   "invalid database",
		"redis://host:6379/0?x=1": "query",
		"redis://host:6379/0#x":   "fragment",
		"redis://ho st:6379/0":    "redis url",
		"redis://[::1/0":          "redis url",
		"redis://u:hunter2@h:x/0": "xxxxx@h:x",
		"redis://hunter2@h:1/x":   "xxxxx@h:1",
		"hunter2@h:1":             "xxxxx@h:1",
	}
	for raw, want := range bad {
		d, err := NewRedis(raw)
		if err == nil {
			_ = d.Close()
			t.Errorf("NewRedis(%q) accepted a bad URL", raw)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("NewRedis(%q) = %v, want an error mentioning %q", raw, err, want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("NewRedis(%q): the error shows the password: %v", raw, err)
		}
		if errors.Is(err, ErrUnavailable) {
			t.Errorf("NewRedis(%q): a bad URL is not an unavailable directory: %v", raw, err)
		}
	}

	good := []struct {
		raw, addr, user, pass string
		db                    int
	}{
		{"redis://127.0.0.1:6379/0", "127.0.0.1:6379", "", "", 0},
		{"redis://localhost:7000/3", "localhost:7000", "", "", 3},
		{"redis://redis.internal", "redis.internal:6379", "", "", 0},
		{"redis://h:1/", "h:1", "", "", 0},
		{"redis://[::1]:6380/2", "[::1]:6380", "", "", 2},
		{"redis://user:secret@h:1/1", "h:1", "user", "secret", 1},
		{"redis://:secret@h:1", "h:1", "", "secret", 0},
		{"redis://secret@h:1", "h:1", "", "secret", 0},
	}
	for _, g := range good {
		o, err := parseRedisURL(g.raw)
		if err != nil {
			t.Errorf("parseRedisURL(%q): %v", g.raw, err)
			continue
		}
		if o.Addr != g.addr || o.DB != g.db || o.Username != g.user || o.Password != g.pass {
			t.Errorf("parseRedisURL(%q) = addr %q db %d user %q pass %q, want %q %d %q %q",
				g.raw, o.Addr, o.DB, o.Username, o.Password, g.addr, g.db, g.user, g.pass)
		}
		d, err := NewRedis(g.raw)
		if err != nil {
			t.Errorf("NewRedis(%q): %v", g.raw, err)
			continue
		}
		_ = d.Close()
	}
}

func TestRedisNodes(t *testing.T) {
	d, _ := startRedis(t)
	ctx := tctx(t)

	if nodes, err := d.Nodes(ctx); err != nil || len(nodes) != 0 {
		t.Fatalf("Nodes on an empty directory = %v, %v", nodes, err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := NodeInfo{ID: "a", Addr: "10.0.0.1:7000", Players: 3, Rooms: 2, Updated: now}
	b := NodeInfo{ID: "b", Addr: "10.0.0.2:7000", Draining: true, Updated: now}
	must(t, d.Register(ctx, b, time.Minute))
	must(t, d.Register(ctx, a, time.Minute))
	nodes, err := d.Nodes(ctx)
	must(t, err)
	if want := []NodeInfo{a, b}; !equalNodes(nodes, want) {
		t.Fatalf("Nodes = %+v, want %+v", nodes, want)
	}

	// Register again: an upsert.
	a.Players, a.Draining = 10, true
	must(t, d.Register(ctx, a, time.Minute))
	nodes, err = d.Nodes(ctx)
	must(t, err)
	if want := []NodeInfo{a, b}; !equalNodes(nodes, want) {
		t.Fatalf("Nodes after update = %+v, want %+v", nodes, want)
	}

	// Deregister drops the node and its room listing.
	must(t, d.Publish(ctx, "b", []RoomEntry{{ID: "r1", Kind: "k"}}, time.Minute))
	must(t, d.Deregister(ctx, "b"))
	nodes, err = d.Nodes(ctx)
	must(t, err)
	if want := []NodeInfo{a}; !equalNodes(nodes, want) {
		t.Fatalf("Nodes after Deregister = %+v, want %+v", nodes, want)
	}
	if n, _ := d.rdb.Exists(ctx, "gs:rooms:b", "gs:node:b").Result(); n != 0 {
		t.Fatalf("Deregister left %d of the node's keys", n)
	}
	if ok, _ := d.rdb.SIsMember(ctx, "gs:nodes", "b").Result(); ok {
		t.Fatal("Deregister left the node in the set")
	}
	must(t, d.Deregister(ctx, "never-registered"))

	if err := d.Register(ctx, NodeInfo{ID: "x"}, 0); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Register with a zero ttl = %v, want a plain error", err)
	}
	if err := d.Register(ctx, NodeInfo{}, time.Second); err == nil {
		t.Fatal("Register with an empty id succeeded")
	}
}

func TestRedisNodeTTL(t *testing.T) {
	d, _ := startRedis(t)
	ctx := tctx(t)
	must(t, d.Register(ctx, NodeInfo{ID: "long"}, time.Minute))
	must(t, d.Register(ctx, NodeInfo{ID: "short"}, 80*time.Millisecond))
	must(t, d.Publish(ctx, "short", []RoomEntry{{ID: "r", Kind: "k"}}, time.Minute))
	must(t, d.SetSession(ctx, "s", "short"))
	if nodes, _ := d.Nodes(ctx); len(nodes) != 2 {
		t.Fatalf("Nodes = %+v, want 2", nodes)
	}
	waitFor(t, 2*time.Second, "the short node to expire", func() bool {
		nodes, err := d.Nodes(ctx)
		return err == nil && len(nodes) == 1 && nodes[0].ID == "long"
	})
	// Its set member was cleaned up.
	members, err := d.rdb.SMembers(ctx, "gs:nodes").Result()
	must(t, err)
	if !reflect.DeepEqual(members, []string{"long"}) {
		t.Fatalf("node set = %v, want [long]", members)
	}
	// Its rooms and sessions are not listed although their keys live on.
	rooms, err := d.Rooms(ctx, "")
	must(t, err)
	if len(rooms) != 0 {
		t.Fatalf("Rooms lists a dead node's rooms: %+v", rooms)
	}
	if node, err := d.SessionNode(ctx, "s"); err != nil || node != "" {
		t.Fatalf("SessionNode of a dead node's session = %q, %v", node, err)
	}
	// Registering again brings it back.
	must(t, d.Register(ctx, NodeInfo{ID: "short"}, time.Minute))
	if nodes, _ := d.Nodes(ctx); len(nodes) != 2 {
		t.Fatalf("Nodes after re-register = %+v, want 2", nodes)
	}
	if node, _ := d.SessionNode(ctx, "s"); node != "short" {
		t.Fatalf("SessionNode after re-register = %q", node)
	}
}

func TestRedisLeases(t *testing.T) {
	d, _ := startRedis(t)
	ctx := tctx(t)

	if o, err := d.Owner(ctx, "r1"); err != nil || o != "" {
		t.Fatalf("Owner of a free room = %q, %v", o, err)
	}
	l1, err := d.Acquire(ctx, "r1", "a", time.Minute)
	must(t, err)
	if l1.RoomID != "r1" || l1.Node != "a" || l1.Epoch == 0 {
		t.Fatalf("Acquire = %+v", l1)
	}
	// The holder acquiring again keeps its lease and epoch.
	again, err := d.Acquire(ctx, "r1", "a", time.Minute)
	must(t, err)
	if again != l1 {
		t.Fatalf("re-Acquire by the holder = %+v, want %+v", again, l1)
	}
	// Another node cannot.
	_, err = d.Acquire(ctx, "r1", "b", time.Minute)
	if !errors.Is(err, ErrNotOwner) || !strings.Contains(err.Error(), `held by a`) {
		t.Fatalf("Acquire of a held room = %v, want ErrNotOwner naming a", err)
	}
	if o, _ := d.Owner(ctx, "r1"); o != "a" {
		t.Fatalf("Owner = %q, want a", o)
	}
	// Node ids may contain the separator.
	lc, err := d.Acquire(ctx, "r2", "host:7000", time.Minute)
	must(t, err)
	if o, _ := d.Owner(ctx, "r2"); o != "host:7000" {
		t.Fatalf("Owner = %q, want host:7000", o)
	}
	if _, err := d.Acquire(ctx, "r2", "host", time.Minute); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("Acquire by a prefix of the holder's id = %v, want ErrNotOwner", err)
	}
	if lost, err := d.Renew(ctx, []Lease{l1, lc}, time.Minute); err != nil || len(lost) != 0 {
		t.Fatalf("Renew of held leases = %v, %v", lost, err)
	}
	if lost, err := d.Renew(ctx, nil, time.Minute); err != nil || lost != nil {
		t.Fatalf("Renew of nothing = %v, %v", lost, err)
	}

	// Release with a stale epoch or by another node leaves the lease.
	must(t, d.Release(ctx, Lease{RoomID: "r1", Node: "a", Epoch: l1.Epoch + 1}))
	must(t, d.Release(ctx, Lease{RoomID: "r1", Node: "b", Epoch: l1.Epoch}))
	if o, _ := d.Owner(ctx, "r1"); o != "a" {
		t.Fatalf("Owner after foreign releases = %q, want a", o)
	}
	must(t, d.Release(ctx, l1))
	if o, _ := d.Owner(ctx, "r1"); o != "" {
		t.Fatalf("Owner after Release = %q", o)
	}
	must(t, d.Release(ctx, l1)) // twice: nothing to do

	// A new acquisition gets a greater epoch.
	l2, err := d.Acquire(ctx, "r1", "b", time.Minute)
	must(t, err)
	if l2.Epoch <= l1.Epoch {
		t.Fatalf("epoch went from %d to %d", l1.Epoch, l2.Epoch)
	}
	// The old lease is lost; the others are not; order is kept.
	l3, err := d.Acquire(ctx, "r3", "a", time.Minute)
	must(t, err)
	gone := Lease{RoomID: "never", Node: "a", Epoch: 1}
	lost, err := d.Renew(ctx, []Lease{l1, l3, gone, lc}, time.Minute)
	must(t, err)
	if want := []Lease{l1, gone}; !reflect.DeepEqual(lost, want) {
		t.Fatalf("Renew lost = %+v, want %+v", lost, want)
	}
	// Renew did not touch the lease it lost.
	if v, _ := d.rdb.Get(ctx, "gs:lease:r1").Result(); v != fmt.Sprintf("b:%d", l2.Epoch) {
		t.Fatalf("lease r1 = %q after a lost renewal", v)
	}
	if _, err := d.Renew(ctx, []Lease{l3}, -time.Second); err == nil {
		t.Fatal("Renew with a negative ttl succeeded")
	}
}

// TestRedisLeaseExpiry: a lease that nobody renews expires; Renew of a
// lease that expired and was taken by another node reports it lost and
// leaves the new holder's lease alone.
func TestRedisLeaseExpiry(t *testing.T) {
	d, _ := startRedis(t)
	ctx := tctx(t)
	la, err := d.Acquire(ctx, "room", "a", 60*time.Millisecond)
	must(t, err)
	if _, err := d.Acquire(ctx, "room", "b", time.Minute); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("Acquire before expiry = %v", err)
	}
	waitFor(t, 2*time.Second, "the lease to expire", func() bool {
		o, err := d.Owner(ctx, "room")
		return err == nil && o == ""
	})
	// Expired, not yet taken: lost too.
	lost, err := d.Renew(ctx, []Lease{la}, time.Minute)
	must(t, err)
	if len(lost) != 1 || lost[0] != la {
		t.Fatalf("Renew of an expired lease: lost = %+v", lost)
	}
	if o, _ := d.Owner(ctx, "room"); o != "" {
		t.Fatalf("Renew of an expired lease brought it back to %q", o)
	}

	lb, err := d.Acquire(ctx, "room", "b", 10*time.Second)
	must(t, err)
	if lb.Epoch <= la.Epoch {
		t.Fatalf("epoch went from %d to %d", la.Epoch, lb.Epoch)
	}
	lost, err = d.Renew(ctx, []Lease{la}, time.Hour)
	must(t, err)
	if len(lost) != 1 || lost[0] != la {
		t.Fatalf("Renew of a taken lease: lost = %+v, want [%+v]", lost, la)
	}
	if o, _ := d.Owner(ctx, "room"); o != "b" {
		t.Fatalf("Owner = %q, want b", o)
	}
	if ttl, _ := d.rdb.PTTL(ctx, "gs:lease:room").Result(); ttl > 10*time.Second || ttl <= 0 {
		t.Fatalf("the loser's renewal changed the holder's ttl to %v", ttl)
	}
	if _, err := d.Acquire(ctx, "room", "a", time.Minute); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("Acquire by the old holder = %v, want ErrNotOwner", err)
	}
	// Renewing the live lease extends it.
	lost, err = d.Renew(ctx, []Lease{lb}, time.Hour)
	must(t, err)
	if len(lost) != 0 {
		t.Fatalf("Renew of a held lease lost %+v", lost)
	}
	if ttl, _ := d.rdb.PTTL(ctx, "gs:lease:room").Result(); ttl < 59*time.Minute {
		t.Fatalf("renewed lease ttl = %v, want about an hour", ttl)
	}
}

// belief is a stretch of time in which a node believes it holds a room:
// from the moment a successful Acquire or Renew answered, until the lease's
// deadline as the node computes it (the time the request was sent plus the
// ttl: the server's expiry can only be later), cut short when a Renew
// reports the lease lost or the node releases it.
type belief struct {
	room, node string
	epoch      uint64
	start, end time.Time
}

// overlaps returns a description of every instant two nodes believed they
// held the same room.
func overlaps(bs []belief) []string {
	byRoom := map[string][]belief{}
	for _, b := range bs {
		if b.end.After(b.start) {
			byRoom[b.room] = append(byRoom[b.room], b)
		}
	}
	var out []string
	for room, list := range byRoom {
		slices.SortFunc(list, func(a, b belief) int { return a.start.Compare(b.start) })
		// The latest end of each node's beliefs so far: any of them
		// reaching past the start of another node's belief overlaps it.
		latest := map[string]belief{}
		reported := map[belief]bool{}
		for _, b := range list {
			for node, prev := range latest {
				if node != b.node && prev.end.After(b.start) && !reported[prev] {
					reported[prev] = true
					out = append(out, fmt.Sprintf("room %s: %s (epoch %d) believed it held it until %v after %s (epoch %d) took it",
						room, node, prev.epoch, prev.end.Sub(b.start), b.node, b.epoch))
				}
			}
			if prev, ok := latest[b.node]; !ok || b.end.After(prev.end) {
				latest[b.node] = b
			}
		}
	}
	return out
}

func TestLeaseOverlapCheck(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ok := []belief{
		{room: "r", node: "a", start: at(0), end: at(10)},
		{room: "r", node: "a", start: at(5), end: at(20)},
		{room: "r", node: "b", start: at(20), end: at(30)},
		{room: "q", node: "a", start: at(25), end: at(40)},
		{room: "r", node: "a", start: at(31), end: at(31)}, // empty
	}
	if v := overlaps(ok); len(v) != 0 {
		t.Fatalf("false overlaps: %v", v)
	}
	bad := append(slices.Clone(ok), belief{room: "r", node: "c", start: at(19), end: at(22)})
	if v := overlaps(bad); len(v) != 2 {
		t.Fatalf("overlaps = %v, want 2 (with a and with b)", v)
	}
}

// leaser is the part of a Directory the lease race exercises.
type leaser interface {
	Acquire(ctx context.Context, roomID, node string, ttl time.Duration) (Lease, error)
	Renew(ctx context.Context, leases []Lease, ttl time.Duration) ([]Lease, error)
	Release(ctx context.Context, l Lease) error
}

type raceStats struct {
	acquired, renewed, lost, refused, released, takeovers int
}

// leaseRace runs one goroutine per directory, as node "n<i>", hammering
// Acquire, Renew and Release on a few rooms with a tiny ttl for d (or
// until a violation shows when stopEarly), and returns every belief and
// the epochs handed out.
func leaseRace(t *testing.T, dirs []leaser, rooms []string, ttl, d time.Duration, stopEarly bool) ([]belief, raceStats, []string) {
	var (
		mu       sync.Mutex
		log      []belief
		current  = map[string]map[string]int{} // room -> node -> index in log
		online   []string
		st       raceStats
		lastNode = map[string]string{}
		epochs   = map[string]map[uint64]string{} // room -> epoch -> node
	)
	for _, r := range rooms {
		current[r] = map[string]int{}
		epochs[r] = map[uint64]string{}
	}
	// believe records that node holds l from now until deadline, checking
	// the other nodes' current beliefs on the spot.
	believe := func(l Lease, start, deadline time.Time, fresh bool) {
		mu.Lock()
		defer mu.Unlock()
		if fresh {
			st.acquired++
			if prev, ok := lastNode[l.RoomID]; ok && prev != l.Node {
				st.takeovers++
			}
			lastNode[l.RoomID] = l.Node
			if n, ok := epochs[l.RoomID][l.Epoch]; ok && n != l.Node {
				online = append(online, fmt.Sprintf("room %s: epoch %d given to %s and %s", l.RoomID, l.Epoch, n, l.Node))
			}
			epochs[l.RoomID][l.Epoch] = l.Node
		} else {
			st.renewed++
		}
		for node, i := range current[l.RoomID] {
			other := log[i]
			if node != l.Node && other.start.Before(deadline) && start.Before(other.end) {
				online = append(online, fmt.Sprintf("room %s: %s believes it holds it (epoch %d, %v left) while %s (epoch %d) does",
					l.RoomID, l.Node, l.Epoch, deadline.Sub(start), node, other.epoch))
			}
		}
		// A renewal that answers while the node still believes extends
		// that belief; otherwise a new one starts.
		if i, ok := current[l.RoomID][l.Node]; ok && log[i].epoch == l.Epoch && !start.After(log[i].end) {
			if deadline.After(log[i].end) {
				log[i].end = deadline
			}
			return
		}
		current[l.RoomID][l.Node] = len(log)
		log = append(log, belief{room: l.RoomID, node: l.Node, epoch: l.Epoch, start: start, end: deadline})
	}
	// disbelieve ends node's belief in a room now.
	disbelieve := func(room, node string, now time.Time, lost bool) {
		mu.Lock()
		defer mu.Unlock()
		if lost {
			st.lost++
		} else {
			st.released++
		}
		if i, ok := current[room][node]; ok {
			if log[i].end.After(now) {
				log[i].end = now
			}
			delete(current[room], node)
		}
	}
	violated := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(online) > 0
	}

	ctx := tctx(t)
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	errs := make(chan error, len(dirs))
	for i, dir := range dirs {
		node := fmt.Sprintf("n%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			held := map[string]Lease{}
			var stale []Lease
			for time.Now().Before(stop) && !(stopEarly && violated()) {
				switch p := rng.IntN(100); {
				case p < 45: // try to take a room
					room := rooms[rng.IntN(len(rooms))]
					t0 := time.Now()
					l, err := dir.Acquire(ctx, room, node, ttl)
					t1 := time.Now()
					switch {
					case err == nil:
						_, had := held[room]
						held[room] = l
						believe(l, t1, t0.Add(ttl), !had)
					case errors.Is(err, ErrNotOwner):
						mu.Lock()
						st.refused++
						mu.Unlock()
					default:
						errs <- fmt.Errorf("%s: acquire: %w", node, err)
						return
					}
				case p < 85: // renew everything held, in one call
					if len(held) == 0 {
						continue
					}
					batch := make([]Lease, 0, len(held))
					for _, l := range held {
						batch = append(batch, l)
					}
					t0 := time.Now()
					lost, err := dir.Renew(ctx, batch, ttl)
					t1 := time.Now()
					if err != nil {
						errs <- fmt.Errorf("%s: renew: %w", node, err)
						return
					}
					for _, l := range lost {
						disbelieve(l.RoomID, node, t1, true)
						delete(held, l.RoomID)
						stale = append(stale, l)
					}
					for _, l := range batch {
						if !slices.Contains(lost, l) {
							believe(l, t1, t0.Add(ttl), false)
						}
					}
				case p < 90: // give a room up
					for room, l := range held {
						disbelieve(room, node, time.Now(), false)
						delete(held, room)
						if err := dir.Release(ctx, l); err != nil {
							errs <- fmt.Errorf("%s: release: %w", node, err)
							return
						}
						break
					}
				case p < 95: // release a lease lost long ago: must not free the room
					if len(stale) > 0 {
						l := stale[rng.IntN(len(stale))]
						if err := dir.Release(ctx, l); err != nil {
							errs <- fmt.Errorf("%s: release: %w", node, err)
							return
						}
					}
				default: // stall past the ttl, as in a long pause
					time.Sleep(ttl + time.Duration(rng.IntN(int(ttl))))
				}
				if rng.IntN(4) == 0 {
					time.Sleep(time.Duration(rng.IntN(1000)) * time.Microsecond)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return log, st, online
}

func TestRedisLeaseRace(t *testing.T) {
	srv := redistest.StartServer(t)
	const nodes = 3
	dirs := make([]leaser, nodes)
	for i := range dirs {
		dirs[i] = newTestRedis(t, srv.URL())
	}
	rooms := []string{"r0", "r1", "r2", "r3"}
	ttl := 25 * time.Millisecond
	beliefs, st, online := leaseRace(t, dirs, rooms, ttl, 1500*time.Millisecond, false)
	t.Logf("%d beliefs; %+v", len(beliefs), st)
	for _, v := range online {
		t.Error(v)
	}
	for _, v := range overlaps(beliefs) {
		t.Error(v)
	}
	// The run must have had contention to mean anything.
	if st.takeovers == 0 || st.lost == 0 || st.refused == 0 || st.renewed == 0 {
		t.Fatalf("no contention in the race: %+v", st)
	}
}

// blindRenew is a lease store whose Renew extends leases without checking
// who holds them: the race must catch it.
type blindRenew struct{ *Redis }

func (b blindRenew) Renew(ctx context.Context, leases []Lease, ttl time.Duration) ([]Lease, error) {
	for _, l := range leases {
		if err := b.rdb.PExpire(ctx, b.leaseKey(l.RoomID), ttl).Err(); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// blindRelease is a lease store whose Release deletes the lease whoever
// holds it: the race must catch it.
type blindRelease struct{ *Redis }

func (b blindRelease) Release(ctx context.Context, l Lease) error {
	return b.rdb.Del(ctx, b.leaseKey(l.RoomID)).Err()
}

// nonAtomicAcquire is a lease store whose Acquire checks and sets in two
// steps: the race must catch it.
type nonAtomicAcquire struct{ *Redis }

func (n nonAtomicAcquire) Acquire(ctx context.Context, roomID, node string, ttl time.Duration) (Lease, error) {
	v, err := n.rdb.Get(ctx, n.leaseKey(roomID)).Result()
	if err == nil {
		if v[:strings.LastIndexByte(v, ':')] != node {
			return Lease{}, ErrNotOwner
		}
		var e uint64
		fmt.Sscan(v[strings.LastIndexByte(v, ':')+1:], &e)
		n.rdb.PExpire(ctx, n.leaseKey(roomID), ttl)
		return Lease{RoomID: roomID, Node: node, Epoch: e}, nil
	}
	time.Sleep(200 * time.Microsecond) // widen the window between check and set
	e, err := n.rdb.Incr(ctx, n.kEpoch).Uint64()
	if err != nil {
		return Lease{}, err
	}
	l := Lease{RoomID: roomID, Node: node, Epoch: e}
	return l, n.rdb.Set(ctx, n.leaseKey(roomID), leaseValue(l), ttl).Err()
}

// TestLeaseRaceCatchesBrokenStores runs the race against stores with the
// classic lease bugs, to show the check fails when it should.
func TestLeaseRaceCatchesBrokenStores(t *testing.T) {
	srv := redistest.StartServer(t)
	for _, tc := range []struct {
		name string
		wrap func(*Redis) leaser
	}{
		{"blind renew", func(r *Redis) leaser { return blindRenew{r} }},
		{"blind release", func(r *Redis) leaser { return blindRelease{r} }},
		{"non-atomic acquire", func(r *Redis) leaser { return nonAtomicAcquire{r} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dirs := make([]leaser, 3)
			for i := range dirs {
				dirs[i] = tc.wrap(newTestRedis(t, srv.URL(), WithKeyPrefix(tc.name+":")))
			}
			beliefs, st, online := leaseRace(t, dirs, []string{"r0", "r1"}, 25*time.Millisecond, 5*time.Second, true)
			found := len(online) + len(overlaps(beliefs))
			t.Logf("%d violations caught; %+v", found, st)
			if found == 0 {
				t.Fatal("the race did not catch a broken lease store")
			}
		})
	}
}

func TestRedisRooms(t *testing.T) {
	d, _ := startRedis(t)
	ctx := tctx(t)
	must(t, d.Register(ctx, NodeInfo{ID: "n1"}, time.Minute))
	must(t, d.Register(ctx, NodeInfo{ID: "n2"}, time.Minute))
	if rooms, err := d.Rooms(ctx, ""); err != nil || len(rooms) != 0 {
		t.Fatalf("Rooms before Publish = %+v, %v", rooms, err)
	}
	r1 := RoomEntry{ID: "r1", Kind: "arena", Players: 2, MaxPlayers: 8, Locked: true,
		Filters: []byte{0x81, 0xa4, 'm', 'o', 'd', 'e', 0xa2, 'c', 't'}, Metadata: []byte{0x80}}
	r2 := RoomEntry{ID: "r2", Kind: "lobby", Players: 1, MaxPlayers: 100, Private: true}
	r3 := RoomEntry{ID: "r3", Kind: "arena", MaxPlayers: 4}
	must(t, d.Publish(ctx, "n1", []RoomEntry{r2, r1}, time.Minute))
	must(t, d.Publish(ctx, "n2", []RoomEntry{r3}, time.Minute))
	on := func(node string, es ...RoomEntry) []RoomEntry {
		for i := range es {
			es[i].Node = node
		}
		return es
	}
	check := func(kind string, want []RoomEntry) {
		t.Helper()
		got, err := d.Rooms(ctx, kind)
		must(t, err)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Rooms(%q) =\n%+v\nwant\n%+v", kind, got, want)
		}
	}
	check("", append(on("n1", r1, r2), on("n2", r3)...))
	check("arena", append(on("n1", r1), on("n2", r3)...))
	check("lobby", on("n1", r2))
	check("none", nil)

	// Publish replaces the whole listing.
	r2.Players = 50
	r4 := RoomEntry{ID: "r4", Kind: "lobby"}
	must(t, d.Publish(ctx, "n1", []RoomEntry{r4, r2}, time.Minute))
	check("", append(on("n1", r2, r4), on("n2", r3)...))

	// The same listing, in another order: only its ttl is refreshed.
	before := d.Commands()
	must(t, d.Publish(ctx, "n1", []RoomEntry{r2, r4}, 2*time.Minute))
	if n := d.Commands() - before; n != 1 {
		t.Fatalf("Publish of an unchanged listing sent %d commands, want 1", n)
	}
	if ttl, _ := d.rdb.PTTL(ctx, "gs:rooms:n1").Result(); ttl <= time.Minute {
		t.Fatalf("unchanged Publish left the ttl at %v", ttl)
	}
	// The hash vanished behind the directory's back: it is written again.
	must(t, d.rdb.Del(ctx, "gs:rooms:n1").Err())
	must(t, d.Publish(ctx, "n1", []RoomEntry{r2, r4}, time.Minute))
	check("", append(on("n1", r2, r4), on("n2", r3)...))

	// An empty listing removes it.
	must(t, d.Publish(ctx, "n1", nil, time.Minute))
	check("", on("n2", r3))
	must(t, d.Publish(ctx, "n1", []RoomEntry{r1}, time.Minute))
	check("", append(on("n1", r1), on("n2", r3)...))

	// A dead node's listing is not listed, even while its hash lives.
	must(t, d.Register(ctx, NodeInfo{ID: "n2"}, 50*time.Millisecond))
	waitFor(t, 2*time.Second, "n2 to expire", func() bool {
		rooms, err := d.Rooms(ctx, "")
		return err == nil && len(rooms) == 1 && rooms[0].ID == "r1"
	})
	// A listing expires with its ttl.
	must(t, d.Publish(ctx, "n1", []RoomEntry{r1}, 50*time.Millisecond))
	waitFor(t, 2*time.Second, "n1's listing to expire", func() bool {
		rooms, err := d.Rooms(ctx, "")
		return err == nil && len(rooms) == 0
	})
	// And an unchanged Publish after that writes it again.
	must(t, d.Publish(ctx, "n1", []RoomEntry{r1}, time.Minute))
	check("", on("n1", r1))

	if err := d.Publish(ctx, "n1", []RoomEntry{r1}, 0); err == nil {
		t.Fatal("Publish with a zero ttl succeeded")
	}
}

func TestRedisSessions(t *testing.T) {
	d, _ := startRedis(t)
	ctx := tctx(t)
	must(t, d.Register(ctx, NodeInfo{ID: "n1"}, time.Minute))
	must(t, d.Register(ctx, NodeInfo{ID: "n2"}, time.Minute))
	if n, err := d.SessionNode(ctx, "s1"); err != nil || n != "" {
		t.Fatalf("SessionNode of an unknown session = %q, %v", n, err)
	}
	must(t, d.SetSession(ctx, "s1", "n1"))
	must(t, d.SetSession(ctx, "s2", "n2"))
	must(t, d.SetSession(ctx, "s3", "ghost"))
	for s, want := range map[string]string{"s1": "n1", "s2": "n2", "s3": ""} {
		if n, err := d.SessionNode(ctx, s); err != nil || n != want {
			t.Fatalf("SessionNode(%s) = %q, %v, want %q", s, n, err, want)
		}
	}
	// Moved: the old node's drop leaves the new record alone.
	must(t, d.SetSession(ctx, "s1", "n2"))
	must(t, d.DropSession(ctx, "s1", "n1"))
	if n, _ := d.SessionNode(ctx, "s1"); n != "n2" {
		t.Fatalf("SessionNode after a stale drop = %q, want n2", n)
	}
	must(t, d.DropSession(ctx, "s1", "n2"))
	if n, _ := d.SessionNode(ctx, "s1"); n != "" {
		t.Fatalf("SessionNode after drop = %q", n)
	}
	must(t, d.DropSession(ctx, "unknown", "n1"))
	// The node dies: its sessions resolve to nobody.
	must(t, d.Deregister(ctx, "n2"))
	if n, _ := d.SessionNode(ctx, "s2"); n != "" {
		t.Fatalf("SessionNode of a dead node's session = %q", n)
	}
}

func TestRedisSnapshots(t *testing.T) {
	d, _ := startRedis(t)
	ctx := tctx(t)
	if b, err := d.LoadSnapshot(ctx, "r"); err != nil || b != nil {
		t.Fatalf("LoadSnapshot of nothing = %v, %v", b, err)
	}
	data := []byte{0, 1, 2, 0xff, '\r', '\n', 0x80}
	must(t, d.SaveSnapshot(ctx, "r", data, time.Minute))
	b, err := d.LoadSnapshot(ctx, "r")
	must(t, err)
	if !bytes.Equal(b, data) {
		t.Fatalf("LoadSnapshot = %v, want %v", b, data)
	}
	big := bytes.Repeat([]byte("snapshot"), 64<<10)
	must(t, d.SaveSnapshot(ctx, "r", big, time.Minute))
	if b, _ := d.LoadSnapshot(ctx, "r"); !bytes.Equal(b, big) {
		t.Fatalf("LoadSnapshot of a %d-byte snapshot returned %d bytes", len(big), len(b))
	}
	must(t, d.DeleteSnapshot(ctx, "r"))
	if b, err := d.LoadSnapshot(ctx, "r"); err != nil || b != nil {
		t.Fatalf("LoadSnapshot after delete = %v, %v", b, err)
	}
	must(t, d.DeleteSnapshot(ctx, "r"))
	must(t, d.SaveSnapshot(ctx, "short", data, 50*time.Millisecond))
	waitFor(t, 2*time.Second, "the snapshot to expire", func() bool {
		b, err := d.LoadSnapshot(ctx, "short")
		return err == nil && b == nil
	})
	if err := d.SaveSnapshot(ctx, "r", data, 0); err == nil {
		t.Fatal("SaveSnapshot with a zero ttl succeeded")
	}
}

// TestRedisPrefix: directories with different prefixes share a server
// without seeing each other.
func TestRedisPrefix(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := tctx(t)
	a := newTestRedis(t, srv.URL())
	b := newTestRedis(t, srv.URL(), WithKeyPrefix("other:"))
	must(t, a.Register(ctx, NodeInfo{ID: "n"}, time.Minute))
	must(t, a.Publish(ctx, "n", []RoomEntry{{ID: "r", Kind: "k"}}, time.Minute))
	if _, err := a.Acquire(ctx, "r", "n", time.Minute); err != nil {
		t.Fatal(err)
	}
	must(t, a.SetSession(ctx, "s", "n"))
	must(t, a.SaveSnapshot(ctx, "r", []byte("x"), time.Minute))

	if nodes, _ := b.Nodes(ctx); len(nodes) != 0 {
		t.Fatalf("other prefix sees nodes %+v", nodes)
	}
	must(t, b.Register(ctx, NodeInfo{ID: "n"}, time.Minute))
	if rooms, _ := b.Rooms(ctx, ""); len(rooms) != 0 {
		t.Fatalf("other prefix sees rooms %+v", rooms)
	}
	if o, _ := b.Owner(ctx, "r"); o != "" {
		t.Fatalf("other prefix sees owner %q", o)
	}
	if n, _ := b.SessionNode(ctx, "s"); n != "" {
		t.Fatalf("other prefix sees session on %q", n)
	}
	if s, _ := b.LoadSnapshot(ctx, "r"); s != nil {
		t.Fatalf("other prefix sees snapshot %q", s)
	}
	keys, err := a.rdb.Keys(ctx, "*").Result()
	must(t, err)
	for _, k := range keys {
		if !strings.HasPrefix(k, "gs:") && !strings.HasPrefix(k, "other:") {
			t.Errorf("key %q outside the prefixes", k)
		}
	}
}

// TestRedisErrorReply: Redis refusing a command is an error, not an
// unavailable directory.
func TestRedisErrorReply(t *testing.T) {
	d, _ := startRedis(t)
	ctx := tctx(t)
	must(t, d.rdb.Set(ctx, "gs:sessions", "not a hash", 0).Err())
	err := d.SetSession(ctx, "s", "n")
	if err == nil || errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("SetSession on a string = %v, want a WRONGTYPE error not wrapping ErrUnavailable", err)
	}
}

// calls runs every Directory method once and returns their errors.
func calls(ctx context.Context, d Directory) map[string]error {
	l := Lease{RoomID: "r", Node: "n", Epoch: 1}
	errs := map[string]error{}
	errs["Register"] = d.Register(ctx, NodeInfo{ID: "n"}, time.Minute)
	_, errs["Nodes"] = d.Nodes(ctx)
	_, errs["Acquire"] = d.Acquire(ctx, "r", "n", time.Minute)
	_, errs["Renew"] = d.Renew(ctx, []Lease{l}, time.Minute)
	_, errs["Owner"] = d.Owner(ctx, "r")
	errs["Release"] = d.Release(ctx, l)
	errs["Publish"] = d.Publish(ctx, "n", []RoomEntry{{ID: "r", Kind: "k"}}, time.Minute)
	_, errs["Rooms"] = d.Rooms(ctx, "")
	errs["SetSession"] = d.SetSession(ctx, "s", "n")
	_, errs["SessionNode"] = d.SessionNode(ctx, "s")
	errs["DropSession"] = d.DropSession(ctx, "s", "n")
	errs["SaveSnapshot"] = d.SaveSnapshot(ctx, "r", []byte("x"), time.Minute)
	_, errs["LoadSnapshot"] = d.LoadSnapshot(ctx, "r")
	errs["DeleteSnapshot"] = d.DeleteSnapshot(ctx, "r")
	errs["Deregister"] = d.Deregister(ctx, "n")
	return errs
}

// TestRedisDown: with Redis gone every method fails fast with an error
// wrapping ErrUnavailable; when it is back on the same address they work
// again, with no new directory.
func TestRedisDown(t *testing.T) {
	d, srv := startRedis(t)
	for name, err := range calls(context.Background(), d) {
		if err != nil {
			t.Fatalf("%s with Redis up: %v", name, err)
		}
	}
	srv.Stop()
	for round := range 2 { // the second round meets an empty pool
		start := time.Now()
		for name, err := range calls(context.Background(), d) {
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("round %d: %s with Redis down = %v, want ErrUnavailable", round, name, err)
			}
		}
		el := time.Since(start)
		t.Logf("round %d: 15 calls with Redis down took %v", round, el)
		if el > 5*time.Second {
			t.Errorf("round %d: too slow", round)
		}
	}
	start := time.Now()
	_, err := d.Acquire(context.Background(), "r", "n", time.Minute)
	if el := time.Since(start); el > 2500*time.Millisecond {
		t.Errorf("one call with Redis down took %v", el)
	}
	t.Logf("with Redis down: %v", err)
	if !strings.Contains(err.Error(), srv.Addr()) {
		t.Errorf("error %q does not name the server", err)
	}

	srv.Start()
	waitFor(t, 5*time.Second, "the directory to reconnect", func() bool {
		return d.Ping(context.Background()) == nil
	})
	for name, err := range calls(context.Background(), d) {
		if err != nil {
			t.Errorf("%s after Redis came back: %v", name, err)
		}
	}
}

// TestRedisHung: a server that accepts but never answers makes calls
// fail within the timeouts (or the caller's deadline), not hang.
func TestRedisHung(t *testing.T) {
	d, srv := startRedis(t, WithTimeouts(300*time.Millisecond, 300*time.Millisecond))
	ctx := tctx(t)
	must(t, d.Register(ctx, NodeInfo{ID: "n"}, time.Minute))
	srv.Pause()
	resumed := false
	defer func() {
		if !resumed {
			srv.Resume()
		}
	}()
	start := time.Now()
	_, err := d.Nodes(context.Background())
	el := time.Since(start)
	t.Logf("Nodes on a hung server (300ms timeouts): %v after %v", err, el)
	if !errors.Is(err, ErrUnavailable) || el > 2*time.Second {
		t.Errorf("Nodes on a hung server = %v after %v, want ErrUnavailable within the timeouts", err, el)
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = d.Register(short, NodeInfo{ID: "n"}, time.Minute)
	if el := time.Since(start); !errors.Is(err, ErrUnavailable) || el > time.Second {
		t.Errorf("Register on a hung server with a 100ms deadline = %v after %v", err, el)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error past the caller's deadline does not wrap context.DeadlineExceeded: %v", err)
	}
	srv.Resume()
	resumed = true
	waitFor(t, 5*time.Second, "the directory to answer again", func() bool {
		nodes, err := d.Nodes(context.Background())
		return err == nil && len(nodes) == 1
	})
}

// TestRedisCommandCounts measures the commands each call sends (the
// figures in the Redis doc comment).
func TestRedisCommandCounts(t *testing.T) {
	d, _ := startRedis(t)
	ctx := tctx(t)
	count := func(name string, want uint64, f func()) {
		t.Helper()
		before := d.Commands()
		f()
		got := d.Commands() - before
		t.Logf("%-34s %d commands", name, got)
		if got != want {
			t.Errorf("%s: %d commands, want %d", name, got, want)
		}
	}
	rooms := make([]RoomEntry, 20)
	for i := range rooms {
		rooms[i] = RoomEntry{ID: fmt.Sprintf("room-%02d", i), Kind: "arena", Players: i, MaxPlayers: 16, Metadata: []byte{0x80}}
	}
	leases := make([]Lease, 100)

	// A new connection sends its handshake (HELLO) before the command.
	count("Ping (new connection)", 2, func() { must(t, d.Ping(ctx)) })
	// The first script call on a server costs NOSCRIPT + EVAL.
	count("Acquire (script not loaded)", 2, func() { _, _ = d.Acquire(ctx, "cold", "n1", time.Minute) })
	// Warm up every other script and connection.
	for _, err := range calls(ctx, d) {
		must(t, err)
	}
	expire := func(id string) {
		must(t, d.Register(ctx, NodeInfo{ID: id}, time.Millisecond))
		waitFor(t, time.Second, id+" to expire", func() bool {
			n, err := d.rdb.Exists(ctx, d.nodeKey(id)).Result()
			return err == nil && n == 0
		})
	}
	expire("gone")
	_, err := d.Nodes(ctx) // loads the prune script
	must(t, err)
	must(t, d.Register(ctx, NodeInfo{ID: "n1"}, time.Minute))
	must(t, d.Register(ctx, NodeInfo{ID: "n2"}, time.Minute))
	expire("gone")
	count("Nodes (one expired member)", 3, func() { _, _ = d.Nodes(ctx) })

	count("Register", 2, func() { must(t, d.Register(ctx, NodeInfo{ID: "n1"}, time.Minute)) })
	count("Nodes", 2, func() { _, _ = d.Nodes(ctx) })
	count("Acquire (100 rooms)", 100, func() {
		for i := range leases {
			l, err := d.Acquire(ctx, fmt.Sprintf("room-%03d", i), "n1", time.Minute)
			must(t, err)
			leases[i] = l
		}
	})
	count("Acquire", 1, func() { _, _ = d.Acquire(ctx, "one-more", "n1", time.Minute) })
	count("Renew (1 lease)", 1, func() { _, _ = d.Renew(ctx, leases[:1], time.Minute) })
	count("Renew (100 leases)", 1, func() {
		lost, err := d.Renew(ctx, leases, time.Minute)
		must(t, err)
		if len(lost) != 0 {
			t.Fatalf("lost %d", len(lost))
		}
	})
	count("Renew (none)", 0, func() { _, _ = d.Renew(ctx, nil, time.Minute) })
	count("Release", 1, func() { must(t, d.Release(ctx, leases[0])) })
	count("Owner", 1, func() { _, _ = d.Owner(ctx, "room-001") })
	count("Publish (20 rooms, changed)", 5, func() { must(t, d.Publish(ctx, "n1", rooms, time.Minute)) })
	count("Publish (20 rooms, unchanged)", 1, func() { must(t, d.Publish(ctx, "n1", rooms, time.Minute)) })
	rooms[3].Players++
	count("Publish (20 rooms, one changed)", 5, func() { must(t, d.Publish(ctx, "n1", rooms, time.Minute)) })
	count("Publish (empty)", 1, func() { must(t, d.Publish(ctx, "n2", nil, time.Minute)) })
	count("Rooms (2 nodes)", 5, func() { _, _ = d.Rooms(ctx, "arena") })
	count("SetSession", 1, func() { must(t, d.SetSession(ctx, "s", "n1")) })
	count("SessionNode", 2, func() { _, _ = d.SessionNode(ctx, "s") })
	count("DropSession", 1, func() { must(t, d.DropSession(ctx, "s", "n1")) })
	count("SaveSnapshot", 1, func() { must(t, d.SaveSnapshot(ctx, "r", []byte("x"), time.Minute)) })
	count("LoadSnapshot", 1, func() { _, _ = d.LoadSnapshot(ctx, "r") })
	count("DeleteSnapshot", 1, func() { must(t, d.DeleteSnapshot(ctx, "r")) })
	count("Deregister", 4, func() { must(t, d.Deregister(ctx, "n2")) })
}

func equalNodes(got, want []NodeInfo) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Addr != w.Addr || g.Players != w.Players || g.Rooms != w.Rooms ||
			g.Draining != w.Draining || !g.Updated.Equal(w.Updated) {
			return false
		}
	}
	return true
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
