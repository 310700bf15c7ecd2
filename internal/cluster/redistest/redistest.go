// Package redistest runs a throwaway redis-server for tests.
//
// Each server listens on a free loopback port, keeps nothing on disk
// (no RDB snapshots, no AOF) and is killed by its PID when the test ends.
// A test that needs Redis to go away and come back uses StartServer and
// the Stop and Start methods of the returned Server: the server comes back
// on the same port, empty.
//
// The binary is /usr/bin/redis-server, else a redis-server on PATH, or
// the one GAMESERVER_REDIS_SERVER names. When there is none the test is
// skipped, unless GAMESERVER_REQUIRE_REDIS=1 is set, in which case it
// fails.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultBinary is where the redis-server binary is looked for first.
const DefaultBinary = "/usr/bin/redis-server"

// RequireEnv is the environment variable that turns a missing
// redis-server from a skipped test into a failed one.
const RequireEnv = "GAMESERVER_REQUIRE_REDIS"

// BinaryEnv, when set, is the path of the redis-server binary to run
// instead of DefaultBinary.
const BinaryEnv = "GAMESERVER_REDIS_SERVER"

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 10 * time.Second

// Start runs a redis-server for the test and returns its URL
// (redis://127.0.0.1:PORT/0) and a function that stops it. The server is
// also stopped when the test ends.
func Start(t testing.TB) (url string, stop func()) {
	t.Helper()
	s := StartServer(t)
	return s.URL(), s.Stop
}

// Server is a redis-server process run for a test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *lockedBuffer
	exit chan struct{} // closed when cmd has exited
}

// StartServer runs a redis-server for the test on a free loopback port and
// waits until it answers PING. It is stopped when the test ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin := binary(t)
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(s.Stop)
	var err error
	// A free port can be taken by someone else between the probe and the
	// server's bind: try a few.
	for range 5 {
		if s.port, err = freePort(); err != nil {
			t.Fatalf("redistest: find a free port: %v", err)
		}
		if err = s.start(); err == nil {
			return s
		}
	}
	t.Fatalf("redistest: start redis-server: %v", err)
	return nil
}

// binary finds redis-server, skipping (or failing, when RequireEnv is set)
// the test when there is none.
func binary(t testing.TB) string {
	t.Helper()
	var msg string
	if p := os.Getenv(BinaryEnv); p != "" {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
		msg = "redistest: redis-server not found at " + p + " (from " + BinaryEnv + ")"
	} else {
		if st, err := os.Stat(DefaultBinary); err == nil && !st.IsDir() {
			return DefaultBinary
		}
		if p, err := exec.LookPath("redis-server"); err == nil {
			return p
		}
		msg = "redistest: redis-server not found (" + DefaultBinary + " is missing and none is on PATH); " +
			"install it (Debian package redis-server) to run the Redis directory tests"
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatal(msg + "; " + RequireEnv + "=1 makes this a failure")
	}
	t.Skip(msg)
	return ""
}

// URL is the server's redis:// URL (database 0).
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's TCP port; it stays the same across Stop and Start.
func (s *Server) Port() int { return s.port }

// PID is the process id of the running server, or 0 when it is stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Start brings a stopped server back, empty, on the same port. It fails
// the test if the server does not come up.
func (s *Server) Start() {
	s.t.Helper()
	var err error
	// The port was just released by the previous process; give the
	// kernel a moment if the bind fails.
	for range 20 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart redis-server on port %d: %v", s.port, err)
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("redistest: server already running")
	}
	cmd := exec.Command(s.bin,
		"--save", "",
		"--appendonly", "no",
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "",
	)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	exit := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exit)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		if ping(s.Addr()) == nil {
			s.cmd, s.out, s.exit = cmd, out, exit
			return nil
		}
		select {
		case <-exit:
			return fmt.Errorf("redis-server exited: %s", strings.TrimSpace(out.String()))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exit
			return fmt.Errorf("redis-server did not answer PING within %v: %s", startTimeout, strings.TrimSpace(out.String()))
		}
	}
}

// Stop kills the server by its PID and waits for it to exit. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exit := s.cmd, s.exit
	s.cmd, s.exit = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-exit:
	case <-time.After(10 * time.Second):
		s.t.Errorf("redistest: redis-server pid %d did not exit", cmd.Process.Pid)
	}
}

// Pause freezes the server (SIGSTOP) without closing its socket, so
// clients connect and send but get no answer until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume wakes a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	if pid := s.PID(); pid != 0 {
		if err := syscall.Kill(pid, sig); err != nil {
			s.t.Errorf("redistest: signal %v to pid %d: %v", sig, pid, err)
		}
	}
}

// Log returns what the running server has printed so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("unexpected reply to PING: %q", line)
	}
	return nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 1<<20 {
		return len(p), nil
	}
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
