package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/internal/cluster/redistest"
)

// testNode is a cluster node run in this process.
type testNode struct {
	srv    *gameserver.Server
	url    string
	served atomic.Bool
	done   chan error // ListenAndServe's result
}

// newNode creates a cluster node listening on a free port. It joins the
// cluster (registers in Redis) once it serves; it is shut down when the
// test ends, if the test did not already.
func newNode(t *testing.T, redisURL, node string) *testNode {
	t.Helper()
	srv, err := gameserver.New(gameserver.Config{Addr: "127.0.0.1:0", Node: node, Redis: redisURL,
		ClusterSecret: "loadtest-cluster-secret", LeaseTTL: 500 * time.Millisecond, HandshakeRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	n := &testNode{srv: srv, url: "http://" + srv.Addr().String(), done: make(chan error, 1)}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			// The last node has nowhere to move its rooms: they wait until
			// shortly before the deadline.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
			if n.served.Load() {
				<-n.done
			}
		})
	})
	return n
}

// serve starts serving (and joining the cluster).
func (n *testNode) serve() {
	n.served.Store(true)
	go func() { n.done <- n.srv.ListenAndServe() }()
}

// startNode runs a cluster node.
func startNode(t *testing.T, redisURL, node string) (*gameserver.Server, string) {
	t.Helper()
	n := newNode(t, redisURL, node)
	n.serve()
	return n.srv, n.url
}

// testLB is a round-robin reverse proxy over the backends whose /readyz
// answers 200, checked every 50 ms (WebSocket upgrades and event streams
// pass through).
type testLB struct {
	mu       sync.Mutex
	backends []string
	healthy  map[string]bool
	next     atomic.Uint64
	proxies  map[string]*httputil.ReverseProxy
}

func startTestLB(t *testing.T, backends ...string) (*testLB, string) {
	t.Helper()
	lb := &testLB{healthy: map[string]bool{}, proxies: map[string]*httputil.ReverseProxy{}}
	lb.add(backends...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: lb}
	go func() { _ = srv.Serve(l) }()
	ctx, cancel := context.WithCancel(context.Background())
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		c := &http.Client{Timeout: 300 * time.Millisecond}
		for ctx.Err() == nil {
			lb.mu.Lock()
			bs := append([]string(nil), lb.backends...)
			lb.mu.Unlock()
			for _, b := range bs {
				resp, err := c.Get(b + "/readyz")
				ok := err == nil && resp.StatusCode == http.StatusOK
				if resp != nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				lb.mu.Lock()
				lb.healthy[b] = ok
				lb.mu.Unlock()
			}
			sleepCtx(ctx, 50*time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-checked; _ = srv.Close() })
	return lb, "http://" + l.Addr().String()
}

func (lb *testLB) add(backends ...string) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, b := range backends {
		u, _ := url.Parse(b)
		p := httputil.NewSingleHostReverseProxy(u)
		p.FlushInterval = -1
		lb.proxies[b] = p
		lb.backends = append(lb.backends, b)
		lb.healthy[b] = true
	}
}

func (lb *testLB) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lb.mu.Lock()
	var live []*httputil.ReverseProxy
	for _, b := range lb.backends {
		if lb.healthy[b] {
			live = append(live, lb.proxies[b])
		}
	}
	lb.mu.Unlock()
	if len(live) == 0 {
		http.Error(w, "no backend", http.StatusBadGateway)
		return
	}
	live[int(lb.next.Add(1)%uint64(len(live)))].ServeHTTP(w, r)
}

// TestDrainMovesBots plays arena bots on node A of a two-node cluster,
// behind a load balancer, and drains A during the measured window: every
// bot is told MOVE, reconnects through the load balancer, resumes on node
// B and keeps its seat, and no input is lost or counted twice.
func TestDrainMovesBots(t *testing.T) {
	for _, transport := range []string{"ws", "sse"} {
		t.Run(transport, func(t *testing.T) {
			redis := redistest.StartServer(t)
			a, urlA := startNode(t, redis.URL(), "node-a")
			// B joins the cluster once every bot plays on A, so that every
			// room is on A.
			b := newNode(t, redis.URL(), "node-b")
			lb, lbURL := startTestLB(t, urlA)
			const bots = 16
			drained := make(chan error, 1)
			go func() {
				// Once every bot plays on A, B starts and joins the load
				// balancer, and A drains.
				deadline := time.Now().Add(20 * time.Second)
				for n := 0.0; n < bots; n = metric(t, a, "gameserver_players") {
					if time.Now().After(deadline) {
						drained <- fmt.Errorf("%v of %d bots seated on node A", n, bots)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				b.serve()
				lb.add(b.url)
				time.Sleep(500 * time.Millisecond) // A sees B (heartbeats every 100 ms)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				drained <- a.Shutdown(ctx)
			}()
			// The rooms are created with JOIN mode 1 and joined by ID
			// (--forward, both "nodes" being the load balancer) rather than
			// with join-or-create: in cluster mode the server reads a
			// join-or-create's options on another goroutine from the
			// connection's read buffer, which the race detector reports
			// (server.go, roomRouter.Route), and this test is about MOVE.
			rep := driveArgs(t, "--transport="+transport, "--scenario=arena", "--bots=16", "--room-size=4",
				"--duration=6s", "--forward", "--url="+lbURL+","+lbURL)
			if err := <-drained; err != nil {
				t.Fatalf("drain: %v (the driver: joined %d, errors %v)", err, rep.Joined, rep.ErrorsByKind)
			}
			c := rep.Counters
			t.Logf("moves %d, resumes %d, resent %d, post retries %d, input p99 %.0f ms, pause p50 %.0f ms, max %.0f ms, errors %v",
				c["moves"], c["resumes"], c["resent"], c["post_retries"], rep.P99, rep.PauseP50, rep.PauseMax, rep.ErrorsByKind)
			if rep.Errors != 0 {
				t.Errorf("errors: %v", rep.ErrorsByKind)
			}
			if c["moves"] != bots || c["resumes"] != bots || rep.Reconnects != bots {
				t.Errorf("moves %d, resumes %d, reconnects %d, want %d each", c["moves"], c["resumes"], rep.Reconnects, bots)
			}
			if rep.Connected != bots || rep.Joined != bots || c["joins"] != bots {
				t.Errorf("connected %d, in rooms %d, joins %d: a seat was lost", rep.Connected, rep.Joined, c["joins"])
			}
			if rep.InputsLost != 0 || rep.InputsDuplicated != 0 {
				t.Errorf("inputs lost %d, counted twice %d", rep.InputsLost, rep.InputsDuplicated)
			}
			if rep.Latency[histPause].Count != bots || rep.PauseMax <= 0 {
				t.Errorf("pause samples %d, max %.1f ms", rep.Latency[histPause].Count, rep.PauseMax)
			}
			if c["closed_clean"] != c["connects"] {
				t.Errorf("closed in order %d of %d connections", c["closed_clean"], c["connects"])
			}
		})
	}
}

// TestForwardSplitsRooms runs --forward on a two-node cluster: every
// room has players on both nodes, and --redis tells them apart.
func TestForwardSplitsRooms(t *testing.T) {
	redis := redistest.StartServer(t)
	_, urlA := startNode(t, redis.URL(), "node-a")
	_, urlB := startNode(t, redis.URL(), "node-b")
	const bots = 16
	rep := driveArgs(t, "--scenario=arena", "--bots=16", "--room-size=4", "--duration=2s", "--forward",
		"--redis="+redis.URL(), "--url="+urlA+","+urlB)
	checkClean(t, rep, bots)
	c := rep.Counters
	if rep.Joined != bots || c["joins"] != bots {
		t.Fatalf("joined %d (%d JOINED)", rep.Joined, c["joins"])
	}
	// Each room of 4 has 2 players on each node: half the bots play on
	// their room's node.
	if c["bots_local"] != bots/2 || c["bots_forwarded"] != bots/2 {
		t.Errorf("local %d, forwarded %d", c["bots_local"], c["bots_forwarded"])
	}
	if rep.Latency[histInputLocal].Count == 0 || rep.Latency[histInputForwarded].Count == 0 || rep.ForwardedP50 <= 0 {
		t.Errorf("local samples %d, forwarded samples %d", rep.Latency[histInputLocal].Count, rep.Latency[histInputForwarded].Count)
	}
	if rep.InputsLost != 0 || rep.InputsDuplicated != 0 {
		t.Errorf("inputs lost %d, counted twice %d", rep.InputsLost, rep.InputsDuplicated)
	}
}
