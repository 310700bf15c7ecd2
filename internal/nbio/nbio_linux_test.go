package nbio

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pair returns a connected pair of non-blocking stream sockets.
func pair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func TestReadWrite(t *testing.T) {
	a, b := pair(t)
	buf := make([]byte, 64)
	if n, err := Read(b, buf); n != 0 || err != unix.EAGAIN {
		t.Fatalf("read of an empty socket: %d, %v; want 0, EAGAIN", n, err)
	}
	if n, err := Write(a, []byte("hello")); n != 5 || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	iov := make([]unix.Iovec, 2)
	p, q := []byte(" wide"), []byte(" world")
	iov[0].Base, iov[1].Base = &p[0], &q[0]
	iov[0].SetLen(len(p))
	iov[1].SetLen(len(q))
	if n, err := Writev(a, iov); n != len(p)+len(q) || err != nil {
		t.Fatalf("writev: %d, %v", n, err)
	}
	n, err := Read(b, buf)
	if err != nil || string(buf[:n]) != "hello wide world" {
		t.Fatalf("read: %q, %v", buf[:n], err)
	}
	if n, err := Write(a, nil); n != 0 || err != nil {
		t.Fatalf("empty write: %d, %v", n, err)
	}
	unix.Close(a)
	if n, err := Read(b, buf); n != 0 || err != nil {
		t.Fatalf("read at EOF: %d, %v; want 0, nil", n, err)
	}
	if _, err := Write(b, []byte("x")); !errors.Is(err, unix.EPIPE) {
		t.Fatalf("write to a closed peer: %v, want EPIPE", err)
	}
	if _, err := Read(-1, buf); !errors.Is(err, unix.EBADF) {
		t.Fatalf("read of a bad descriptor: %v, want EBADF", err)
	}
}

// A full socket answers EAGAIN rather than blocking the caller.
func TestWriteFullSocketDoesNotBlock(t *testing.T) {
	a, _ := pair(t)
	chunk := make([]byte, 64<<10)
	for i := 0; ; i++ {
		n, err := Write(a, chunk)
		if err == unix.EAGAIN {
			break
		}
		if err != nil || n == 0 {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
		if i > 10000 {
			t.Fatal("the socket never filled")
		}
	}
}

func TestEpollPoll(t *testing.T) {
	a, b := pair(t)
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(epfd)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, b, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(b)}); err != nil {
		t.Fatal(err)
	}
	events := make([]unix.EpollEvent, 8)
	if n, err := EpollPoll(epfd, events); n != 0 || err != nil {
		t.Fatalf("nothing ready: %d, %v", n, err)
	}
	if _, err := Write(a, []byte("x")); err != nil {
		t.Fatal(err)
	}
	n, err := EpollPoll(epfd, events)
	if n != 1 || err != nil || events[0].Fd != int32(b) || events[0].Events&unix.EPOLLIN == 0 {
		t.Fatalf("one ready: %d, %v, %+v", n, err, events[0])
	}
	if _, err := EpollPoll(-1, events); !errors.Is(err, unix.EBADF) {
		t.Fatalf("bad epoll descriptor: %v, want EBADF", err)
	}
}

// The common results, EAGAIN included, come back without allocating.
func TestNoAllocs(t *testing.T) {
	a, b := pair(t)
	buf := make([]byte, 16)
	msg := []byte("ping")
	if allocs := testing.AllocsPerRun(100, func() {
		if _, err := Read(b, buf); err != unix.EAGAIN {
			t.Fatal(err)
		}
		if _, err := Write(a, msg); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(b, buf); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Fatalf("%v allocations per round, want 0", allocs)
	}
}

// Accept takes connections from a non-blocking listener, IPv4 and IPv6,
// with the peer's address, non-blocking and close-on-exec, and says EAGAIN
// when none waits; it allocates nothing.
func TestAccept(t *testing.T) {
	for _, tc := range []struct {
		network, addr string
	}{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		t.Run(tc.network, func(t *testing.T) {
			ln, err := net.Listen(tc.network, tc.addr)
			if err != nil {
				t.Skipf("no %s loopback: %v", tc.network, err)
			}
			defer ln.Close()
			f, err := ln.(*net.TCPListener).File() // a blocking duplicate
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			lfd := int(f.Fd())
			if err := unix.SetNonblock(lfd, true); err != nil {
				t.Fatal(err)
			}
			if _, _, err := Accept(lfd); err != unix.EAGAIN {
				t.Fatalf("accept with nobody waiting: %v, want EAGAIN", err)
			}
			c, err := net.Dial(tc.network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var fd int
			var addr netip.AddrPort
			for i := 0; i < 200; i++ {
				if fd, addr, err = Accept(lfd); err != unix.EAGAIN {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			want := c.LocalAddr().(*net.TCPAddr).AddrPort()
			if addr != want {
				t.Fatalf("peer %v, want %v", addr, want)
			}
			if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); fl&unix.O_NONBLOCK == 0 {
				t.Fatal("accepted descriptor is blocking")
			}
			if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
				t.Fatal("accepted descriptor is not close-on-exec")
			}
			if allocs := testing.AllocsPerRun(50, func() {
				if _, _, err := Accept(lfd); err != unix.EAGAIN {
					t.Fatal(err)
				}
			}); allocs != 0 {
				t.Fatalf("%v allocations per accept, want 0", allocs)
			}
		})
	}
	if _, _, err := Accept(-1); err != unix.EBADF {
		t.Fatalf("accept on -1: %v, want EBADF", err)
	}
}
