package transport

import (
	"fmt"
	"os"
	"syscall"

	"github.com/gameserver/gameserver/internal/nbio"
	"golang.org/x/sys/unix"
)

// poller waits on one epoll instance. Descriptors are registered once,
// edge-triggered for both directions (as the Go runtime's own netpoller
// does), so the poller never has to re-arm them.
//
// The epoll descriptor is itself registered with the Go runtime's
// netpoller (an epoll descriptor is readable while it has events ready):
// the poller collects events with non-blocking epoll_wait calls and, when
// there are none, parks its goroutine until there are. No thread ever
// blocks in epoll_wait, so the scheduler never has to hand a blocked
// thread's processor to another thread and back.
type poller struct {
	srv  *Server
	epfd int
	file *os.File        // owns epfd; Close unregisters and closes it
	rc   syscall.RawConn // waits for epfd to be readable, in the runtime's netpoller
	wake int             // eventfd that ends run on shutdown
}

const pollEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

func newPoller(s *Server) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("epoll_ctl wake: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("epoll nonblock: %w", err)
	}
	file := os.NewFile(uintptr(epfd), "epoll")
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		unix.Close(wake)
		return nil, fmt.Errorf("epoll in the netpoller: %w", err)
	}
	return &poller{srv: s, epfd: epfd, file: file, rc: rc, wake: wake}, nil
}

func (p *poller) add(fd int) error {
	ev := unix.EpollEvent{Events: pollEvents, Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

func (p *poller) del(fd int) {
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// run dispatches readiness until stop is called.
func (p *poller) run() {
	defer p.srv.pollersWG.Done()
	events := make([]unix.EpollEvent, 512)
	var n int
	var err error
	collect := func(uintptr) bool { // made once: the loop allocates nothing
		n, err = nbio.EpollPoll(p.epfd, events)
		return n > 0 || (err != nil && err != unix.EINTR) // else park until readable
	}
	for {
		werr := p.rc.Read(collect)
		if werr != nil {
			p.srv.logError("epoll wait", werr)
			return
		}
		if err != nil {
			p.srv.logError("epoll_wait", err)
			return
		}
		for i := 0; i < n; i++ {
			ev := &events[i]
			fd := int(ev.Fd)
			if fd == p.wake {
				return
			}
			c := p.srv.lookup(fd)
			if c == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 && c.flag(flagWantWrite) {
				c.flushWritable()
			}
			if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				// No later edge will say so: the reader must go on to the
				// end even after a short read (see readConn).
				c.setFlag(flagHangup, true)
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				p.srv.schedule(c)
			}
		}
	}
}

func (p *poller) stop() {
	var one = [8]byte{1}
	_, _ = unix.Write(p.wake, one[:])
}

func (p *poller) close() {
	p.file.Close()
	unix.Close(p.wake)
}
