package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// onlyConn returns the server's single registered connection.
func onlyConn(t *testing.T, s *Server) *Conn {
	t.Helper()
	waitFor(t, func() bool { return registered(s) == 1 })
	var c *Conn
	s.Each(func(cn *Conn) { c = cn })
	return c
}

// TestDetachedConnWorksBothWays checks a connection after its socket was
// moved out of the hijacked net.Conn: closing the net.Conn sent nothing,
// the descriptor is close-on-exec and non-blocking, messages flow both
// ways, and a close the server starts is a full handshake (close frame,
// then FIN, then the descriptor is released when the peer answers).
func TestDetachedConnWorksBothWays(t *testing.T) {
	h := newEcho()
	s, hs := startServer(t, Config{}, h)
	c := dial(t, hs)
	conn := onlyConn(t, s)

	flags, err := unix.FcntlInt(uintptr(conn.fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Fatalf("descriptor flags %#x, %v: want close-on-exec", flags, err)
	}
	fl, err := unix.FcntlInt(uintptr(conn.fd), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Fatalf("file status flags %#x, %v: want non-blocking", fl, err)
	}

	// Closing the hijacked net.Conn must not have ended the connection:
	// the client sees neither EOF nor a reset, only silence.
	_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	var one [1]byte
	if n, err := c.Read(one[:]); !isTimeout(err) {
		t.Fatalf("after the upgrade the client read %d bytes, %v: want nothing", n, err)
	}

	// Client to server and back.
	for i := 0; i < 3; i++ {
		msg := []byte(fmt.Sprintf("msg %d", i))
		if _, err := c.Write(rawFrame(true, 0, 0x2, msg, true)); err != nil {
			t.Fatal(err)
		}
		if f := readFrame(t, c); f.Header.OpCode != ws.OpBinary || !bytes.Equal(f.Payload, msg) {
			t.Fatalf("echo: %v %q", f.Header.OpCode, f.Payload)
		}
	}
	// Server-initiated, and a ping answered.
	f := frame.New()
	f.B = append(f.B, "pushed"...)
	if err := conn.SendNow(f.Seal()); err != nil {
		t.Fatal(err)
	}
	f.Release()
	if fr := readFrame(t, c); string(fr.Payload) != "pushed" {
		t.Fatalf("pushed frame %q", fr.Payload)
	}
	if _, err := c.Write(rawFrame(true, 0, 0x9, []byte("pi"), true)); err != nil {
		t.Fatal(err)
	}
	if fr := readFrame(t, c); fr.Header.OpCode != ws.OpPong || string(fr.Payload) != "pi" {
		t.Fatalf("pong: %v %q", fr.Header.OpCode, fr.Payload)
	}

	// The server closes: its close frame, then FIN (SHUT_WR), while it
	// keeps reading for the client's close frame.
	conn.Close(4502, "kicked")
	if got := expectClose(t, c); got != 4502 {
		t.Fatalf("close %d, want 4502", got)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := c.Read(one[:]); err != io.EOF {
		t.Fatalf("after the close frame the client read %d bytes, %v: want EOF", n, err)
	}
	if open := s.Stats().Open.Load(); open != 1 {
		t.Fatalf("%d open after the server's close frame: the server must wait for the client's", open)
	}
	if _, err := c.Write(rawFrame(true, 0, 0x8, []byte{0x11, 0x96}, true)); err != nil {
		t.Fatalf("the client could not answer the close: %v", err)
	}
	waitFor(t, func() bool { return s.Stats().Open.Load() == 0 })
	if cl := h.closes(); len(cl) != 1 || cl[0].Code != 4502 || cl[0].Reason != "kicked" || cl[0].ByPeer {
		t.Fatalf("close info %+v", cl)
	}
	if registered(s) != 0 {
		t.Fatal("connection still in the descriptor table")
	}
}

// TestBufferedBytesAfterRequest sends a frame in the same write as the
// upgrade request, so the HTTP server's reader has it buffered; it must be
// the connection's first read.
func TestBufferedBytesAfterRequest(t *testing.T) {
	h := newEcho()
	_, hs := startServer(t, Config{}, h)
	c, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var req bytes.Buffer
	req.WriteString(upgradeRequest("/ws", hs.Listener.Addr().String()))
	req.Write(rawFrame(true, 0, 0x2, []byte("first"), true))
	req.Write(rawFrame(true, 0, 0x2, []byte("second"), true))
	if _, err := c.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := read101(t, c)
	for _, want := range []string{"first", "second"} {
		f, err := ws.ReadFrame(br)
		if err != nil {
			t.Fatal(err)
		}
		if string(f.Payload) != want {
			t.Fatalf("got %q, want %q", f.Payload, want)
		}
	}
}

// TestOneDescriptorPerConnection counts the process's open descriptors
// while a child process holds WebSocket connections to this one: each
// connection adds exactly one (the duplicate; the hijacked original is
// closed), and closing them all returns to the baseline.
func TestOneDescriptorPerConnection(t *testing.T) {
	const conns = 64
	h := newEcho()
	s, hs := startServer(t, Config{}, h)

	cmd := exec.Command(os.Args[0], "-test.run=^TestFDClientHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TRANSPORT_FD_HELPER_URL="+wsURL(hs))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("client process: %v", err)
		}
	}()
	lines := bufio.NewScanner(stdout)
	ask := func(cmd, want string) {
		t.Helper()
		if _, err := io.WriteString(stdin, cmd+"\n"); err != nil {
			t.Fatal(err)
		}
		for lines.Scan() {
			if l := lines.Text(); l == want {
				return
			} else if strings.HasPrefix(l, "error") {
				t.Fatalf("client process: %s", l)
			}
		}
		t.Fatalf("client process ended before %q: %v", want, lines.Err())
	}

	// A first round warms up whatever the process opens once.
	ask("open 2", "opened")
	waitFor(t, func() bool { return registered(s) == 2 })
	ask("close", "closed")
	waitFor(t, func() bool { return s.Stats().Open.Load() == 0 })

	base := openFDs(t)
	ask("open "+strconv.Itoa(conns), "opened")
	waitFor(t, func() bool { return registered(s) == conns })
	// register closed each hijacked original before the Conn entered the
	// table, so the count is final now.
	if n := openFDs(t); n != base+conns {
		t.Fatalf("%d connections open: %d descriptors, want %d + %d\n%s", conns, n, base, conns, fdList(t))
	}
	ask("close", "closed")
	waitFor(t, func() bool { return s.Stats().Open.Load() == 0 })
	if n := openFDs(t); n != base {
		t.Fatalf("all connections closed: %d descriptors, want the %d of before\n%s", n, base, fdList(t))
	}
	if got := len(h.closes()); got != 2+conns {
		t.Fatalf("%d OnClose calls, want %d", got, 2+conns)
	}
}

// TestFDClientHelper is the client process of TestOneDescriptorPerConnection.
// It reads commands from stdin: "open N" dials N connections, "close" ends
// them (half with a close handshake, half by dropping the TCP connection).
func TestFDClientHelper(t *testing.T) {
	url := os.Getenv("TRANSPORT_FD_HELPER_URL")
	if url == "" {
		t.Skip("run by TestOneDescriptorPerConnection")
	}
	var conns []net.Conn
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "open":
			n, _ := strconv.Atoi(arg)
			for i := 0; i < n; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c, _, _, err := ws.Dial(ctx, url)
				cancel()
				if err != nil {
					fmt.Println("error dial:", err)
					return
				}
				conns = append(conns, c)
			}
			fmt.Println("opened")
		case "close":
			for i, c := range conns {
				if i%2 == 0 {
					_, _ = c.Write(rawFrame(true, 0, 0x8, []byte{0x03, 0xE8}, true))
					_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
					_, _ = io.Copy(io.Discard, c) // the echoed close frame, then EOF
				}
				c.Close()
			}
			conns = nil
			fmt.Println("closed")
		}
	}
}

// TestDupEMFILERefused runs out of descriptors between the accept and the
// duplicate: the upgraded connection is refused (closed) and counted like
// any failed registration, and the server goes on serving.
func TestDupEMFILERefused(t *testing.T) {
	h := newEcho()
	s, err := New(Config{}, h)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 1)
	hs := httptest.NewUnstartedServer(s)
	hs.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx, uint16(CloseGoingAway), "test over")
	})

	c, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-accepted // the server's socket exists: only the duplicate is to come

	release := exhaustDescriptors(t, 0)
	defer release()

	if _, err := io.WriteString(c, upgradeRequest("/ws", "x")); err != nil {
		t.Fatal(err)
	}
	// The 101 is out before the duplicate is tried; then the socket closes.
	br := read101(t, c)
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("refused connection: read %d, %v; want EOF", n, err)
	}
	release()

	// The socket closes inside register; the counters follow.
	waitFor(t, func() bool { return s.Stats().Open.Load() == 0 })
	if s.Stats().Accepted.Load() != 0 || s.Stats().Open.Load() != 0 || registered(s) != 0 {
		t.Fatalf("accepted %d, open %d, registered %d: want the connection refused",
			s.Stats().Accepted.Load(), s.Stats().Open.Load(), registered(s))
	}
	h.mu.Lock()
	opened := h.opened
	h.mu.Unlock()
	if opened != 0 {
		t.Fatal("OnOpen called for a refused connection")
	}
	// With descriptors back, the server works.
	ok := dial(t, hs)
	if _, err := ok.Write(rawFrame(true, 0, 0x2, []byte("hi"), true)); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, ok); string(f.Payload) != "hi" {
		t.Fatalf("echo %q", f.Payload)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// fdNumbers lists the process's open descriptors, without the one reading
// the directory.
func fdNumbers(t *testing.T) []int {
	t.Helper()
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd == int(d.Fd()) {
			continue
		}
		fds = append(fds, fd)
	}
	sort.Ints(fds)
	return fds
}

func openFDs(t *testing.T) int { return len(fdNumbers(t)) }

// fdList describes every open descriptor, for failure messages.
func fdList(t *testing.T) string {
	var b strings.Builder
	for _, fd := range fdNumbers(t) {
		target, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		fmt.Fprintf(&b, "  %d -> %s\n", fd, target)
	}
	return b.String()
}

// TestFrontAcceptEMFILE runs the process out of descriptors while a client
// waits to be accepted by a Front: accept4 fails with EMFILE, the front
// backs off rather than giving up, and it accepts and upgrades the client
// once descriptors are free again.
func TestFrontAcceptEMFILE(t *testing.T) {
	e := startFront(t, Config{}, newEcho(), nil)
	// One number free, for the client's socket; none for the server's.
	release := exhaustDescriptors(t, 1)
	defer release()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, upgradeRequest("/ws", "x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := registered(e.s) + handshakes(e.s); n != 0 {
		t.Fatalf("%d connections taken with no descriptor free", n)
	}
	release()
	read101(t, c)
	waitFor(t, func() bool { return e.s.Stats().Accepted.Load() == 1 })
}

// exhaustDescriptors lowers the descriptor limit to just above the highest
// open descriptor plus spare, and takes every free number below it but
// spare. release (safe to call twice) gives them back and restores the
// limit.
func exhaustDescriptors(t *testing.T, spare int) (release func()) {
	t.Helper()
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	top := 0
	for _, fd := range fdNumbers(t) {
		top = max(top, fd)
	}
	low := rl
	low.Cur = uint64(top + 1 + spare)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var fillers []int
	release = func() {
		for _, fd := range fillers {
			unix.Close(fd)
		}
		fillers = nil
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	}
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			if !errors.Is(err, unix.EMFILE) {
				release()
				t.Fatal(err)
			}
			break
		}
		fillers = append(fillers, fd)
	}
	for ; spare > 0 && len(fillers) > 0; spare-- {
		unix.Close(fillers[len(fillers)-1])
		fillers = fillers[:len(fillers)-1]
	}
	return release
}
