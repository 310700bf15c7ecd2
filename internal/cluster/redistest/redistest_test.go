package redistest

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStartStopRestart(t *testing.T) {
	s := StartServer(t)
	if !strings.HasPrefix(s.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/0") {
		t.Fatalf("URL = %q", s.URL())
	}
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("PING: %v", err)
	}
	must(t, send(s.Addr(), "SET k v", "+OK"))
	pid := s.PID()
	if pid == 0 {
		t.Fatal("no PID")
	}
	s.Stop()
	if s.PID() != 0 {
		t.Fatal("PID after Stop")
	}
	if err := ping(s.Addr()); err == nil {
		t.Fatal("server answers after Stop")
	}
	s.Stop() // twice: nothing to do
	port := s.Port()
	s.Start()
	if s.Port() != port || s.PID() == 0 || s.PID() == pid {
		t.Fatalf("restart: port %d -> %d, pid %d -> %d", port, s.Port(), pid, s.PID())
	}
	// Back empty: nothing was kept on disk.
	must(t, send(s.Addr(), "EXISTS k", ":0"))
	must(t, send(s.Addr(), "CONFIG GET save", "*2"))
}

func TestPauseResume(t *testing.T) {
	s := StartServer(t)
	s.Pause()
	if err := ping(s.Addr()); err == nil {
		s.Resume()
		t.Fatal("a paused server answered")
	}
	s.Resume()
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}
}

func TestStartReturnsURLAndStop(t *testing.T) {
	url, stop := Start(t)
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "redis://"), "/0")
	if err := ping(addr); err != nil {
		t.Fatalf("PING %s: %v", url, err)
	}
	stop()
	if err := ping(addr); err == nil {
		t.Fatal("server answers after stop")
	}
}

// fakeTB records how a helper ended the test.
type fakeTB struct {
	testing.TB
	mu      sync.Mutex
	skipped string
	failed  string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Skip(args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Fatal(args ...any) {
	f.mu.Lock()
	f.failed = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestMissingBinary(t *testing.T) {
	t.Setenv(BinaryEnv, "/nonexistent/redis-server")
	run := func() *fakeTB {
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			binary(f)
		}()
		<-done
		return f
	}
	t.Setenv(RequireEnv, "")
	if f := run(); f.skipped == "" || f.failed != "" || !strings.Contains(f.skipped, "not found") {
		t.Fatalf("without %s: skipped %q, failed %q; want a skip", RequireEnv, f.skipped, f.failed)
	}
	t.Setenv(RequireEnv, "1")
	if f := run(); f.failed == "" || f.skipped != "" || !strings.Contains(f.failed, RequireEnv) {
		t.Fatalf("with %s=1: skipped %q, failed %q; want a failure", RequireEnv, f.skipped, f.failed)
	}
}

func send(addr, cmd, wantPrefix string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, wantPrefix) {
		return &replyError{cmd, line, wantPrefix}
	}
	return nil
}

type replyError struct{ cmd, got, want string }

func (e *replyError) Error() string {
	return e.cmd + ": got " + strings.TrimSpace(e.got) + ", want " + e.want + "..."
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
