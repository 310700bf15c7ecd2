package gameserver_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gameserver/gameserver/internal/cluster"
	"github.com/gameserver/gameserver/internal/cluster/redistest"
)

// These tests run real gameserver processes behind a small load balancer,
// with a real redis-server, all on loopback.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func serverBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gameserver-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "gameserver")
		out, err := exec.Command("go", "build", "-o", binPath, "./cmd/gameserver").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is one gameserver process.
type proc struct {
	id, addr string
	cmd      *exec.Cmd
	exited   chan struct{}
}

func startProc(t *testing.T, redisURL, id, addr string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), id+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// A failed test shows what the node warned about: its logs go with
	// the temporary directory.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		b, _ := os.ReadFile(logPath)
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, `"level":"info"`) && !strings.Contains(line, `"level":"debug"`) && line != "" {
				t.Logf("%s: %s", id, line)
			}
		}
	})
	cmd := exec.Command(serverBinary(t), "--addr", addr, "--node", id, "--redis", redisURL,
		"--cluster-secret", "process-test-secret", "--lease-ttl", "1s", "--log-format", "json",
		"--handshake-rate", "0", "--shutdown-timeout", "10s", "--resume-window", "20s")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{id: id, addr: addr, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not ready", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// loadBalancer sends each request to the next healthy backend, as a load
// balancer with health checks on /readyz does.
type loadBalancer struct {
	mu       sync.Mutex
	backends []string
	healthy  map[string]bool
	next     atomic.Uint64
	srv      *http.Server
	addr     string
}

func startLB(t *testing.T, backends ...string) *loadBalancer {
	lb := &loadBalancer{healthy: map[string]bool{}}
	lb.set(backends...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb.addr = l.Addr().String()
	lb.srv = &http.Server{Handler: lb}
	go func() { _ = lb.srv.Serve(l) }()
	ctx, cancel := context.WithCancel(context.Background())
	go lb.check(ctx)
	t.Cleanup(func() { cancel(); _ = lb.srv.Close() })
	return lb
}

func (lb *loadBalancer) set(backends ...string) {
	lb.mu.Lock()
	lb.backends = append([]string(nil), backends...)
	for _, b := range backends {
		lb.healthy[b] = true
	}
	lb.mu.Unlock()
}

func (lb *loadBalancer) check(ctx context.Context) {
	c := &http.Client{Timeout: 200 * time.Millisecond}
	for ctx.Err() == nil {
		lb.mu.Lock()
		bs := append([]string(nil), lb.backends...)
		lb.mu.Unlock()
		for _, b := range bs {
			resp, err := c.Get("http://" + b + "/readyz")
			ok := err == nil && resp.StatusCode == 200
			if resp != nil {
				resp.Body.Close()
			}
			lb.mu.Lock()
			lb.healthy[b] = ok
			lb.mu.Unlock()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (lb *loadBalancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lb.mu.Lock()
	var live []string
	for _, b := range lb.backends {
		if lb.healthy[b] {
			live = append(live, b)
		}
	}
	lb.mu.Unlock()
	if len(live) == 0 {
		http.Error(w, "no backend", http.StatusBadGateway)
		return
	}
	target := live[int(lb.next.Add(1))%len(live)]
	p := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, "backend failed", http.StatusBadGateway)
	}
	p.ServeHTTP(w, r)
}

func startBots(t *testing.T, lb string, n int) ([]*bot, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	bots := make([]*bot, n)
	for i := range bots {
		bots[i] = &bot{t: t, name: fmt.Sprint("bot", i), lb: lb}
		go bots[i].run(ctx)
	}
	t.Cleanup(cancel)
	return bots, cancel
}

// waitPlaying waits until every bot has received a state since since.
func waitPlaying(t *testing.T, bots []*bot, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		all := true
		for _, b := range bots {
			if b.lastState.Load() < since.UnixNano() {
				all = false
				break
			}
		}
		if all {
			return time.Since(since)
		}
		if time.Now().After(deadline) {
			var stuck []string
			for _, b := range bots {
				if b.lastState.Load() < since.UnixNano() {
					b.mu.Lock()
					stuck = append(stuck, fmt.Sprintf("%s(room %s, errs %v)", b.name, b.roomID, b.errs))
					b.mu.Unlock()
				}
			}
			t.Fatalf("bots not playing within %v: %v", within, stuck)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClusterRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	redis := redistest.StartServer(t)
	addrs := []string{freePort(t), freePort(t), freePort(t)}
	procs := make([]*proc, 3)
	for i := range procs {
		procs[i] = startProc(t, redis.URL(), fmt.Sprint("n", i+1), addrs[i])
	}
	lb := startLB(t, addrs...)
	bots, stopBots := startBots(t, lb.addr, 12)
	waitPlaying(t, bots, time.Now(), 15*time.Second)
	time.Sleep(500 * time.Millisecond)

	var pauses []time.Duration
	for round := 0; round < 3; round++ {
		old := procs[round]
		old.signal(syscall.SIGTERM)
		select {
		case <-old.exited:
		case <-time.After(15 * time.Second):
			t.Fatalf("node %s did not exit after SIGTERM", old.id)
		}
		// The replacement comes up on the same address, as a new process.
		procs[round] = startProc(t, redis.URL(), fmt.Sprintf("n%d-r%d", round+1, round+1), old.addr)
		pauses = append(pauses, waitPlaying(t, bots, time.Now(), 15*time.Second))
		time.Sleep(500 * time.Millisecond)
	}
	stopBots()
	for _, b := range bots {
		if !b.settle(3 * time.Second) {
			b.mu.Lock()
			t.Errorf("%s: room applied input %d of %d", b.name, b.applied, b.inputSeq)
			b.mu.Unlock()
		}
	}
	for _, b := range bots {
		b.mu.Lock()
		if b.seatLost != 0 || b.rejoins != 0 {
			t.Errorf("%s lost its seat %d times (rejoined %d; %v)", b.name, b.seatLost, b.rejoins, b.errs)
		}
		if b.tickGaps != 0 {
			t.Errorf("%s saw %d gaps in state ticks", b.name, b.tickGaps)
		}
		if b.received != b.inputSeq {
			t.Errorf("%s: the room received %d inputs, the bot sent %d", b.name, b.received, b.inputSeq)
		}
		b.mu.Unlock()
	}
	sort.Slice(pauses, func(i, j int) bool { return pauses[i] < pauses[j] })
	t.Logf("time to playing again after each SIGTERM: %v", pauses)
	gaps := make([]time.Duration, len(bots))
	for i, b := range bots {
		b.mu.Lock()
		gaps[i] = b.maxGap
		b.mu.Unlock()
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	t.Logf("per-bot longest pause between states over 3 rolling restarts: p50 %v, p99 %v, max %v (inputs lost: 0, asserted)",
		gaps[len(gaps)/2], gaps[len(gaps)*99/100], gaps[len(gaps)-1])
}

func TestClusterNodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	redis := redistest.StartServer(t)
	addrs := []string{freePort(t), freePort(t), freePort(t)}
	procs := make([]*proc, 3)
	for i := range procs {
		procs[i] = startProc(t, redis.URL(), fmt.Sprint("n", i+1), addrs[i])
	}
	lb := startLB(t, addrs...)
	bots, _ := startBots(t, lb.addr, 9)
	waitPlaying(t, bots, time.Now(), 15*time.Second)
	time.Sleep(2 * time.Second) // at least one snapshot of each room

	dir, err := cluster.NewRedis(redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	victim := procs[0]
	killed := time.Now()
	victim.signal(syscall.SIGKILL)
	<-victim.exited
	back := waitPlaying(t, bots, killed, 20*time.Second)
	t.Logf("players playing again %v after SIGKILL", back)

	// No stale route: the dead node is gone from the registry and owns
	// nothing; every bot's room has a live owner.
	time.Sleep(1500 * time.Millisecond)
	nodes, err := dir.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == victim.id {
			t.Fatalf("killed node still registered: %+v", n)
		}
	}
	for _, b := range bots {
		b.mu.Lock()
		room := b.roomID
		b.mu.Unlock()
		owner, err := dir.Owner(context.Background(), room)
		if err != nil || owner == "" || owner == victim.id {
			t.Fatalf("room %s: owner %q (%v)", room, owner, err)
		}
	}

	// Redis goes away: running rooms keep running; it comes back: nodes
	// register again and routing heals.
	redis.Stop()
	paused := time.Now()
	time.Sleep(1500 * time.Millisecond)
	waitPlaying(t, bots, paused.Add(time.Second), 5*time.Second)
	redis.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		nodes, err := dir.Nodes(context.Background())
		if err == nil && len(nodes) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes did not re-register after Redis came back: %v %v", nodes, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitPlaying(t, bots, time.Now(), 10*time.Second)
}
