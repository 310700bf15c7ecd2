package transport

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// poller waits on one epoll instance. Descriptors are registered once,
// edge-triggered for both directions (as the Go runtime's own netpoller
// does), so the poller never has to re-arm them.
type poller struct {
	srv  *Server
	epfd int
	wake int // eventfd that interrupts EpollWait on shutdown
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
	return &poller{srv: s, epfd: epfd, wake: wake}, nil
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
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
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
			if ev.Events&unix.EPOLLOUT != 0 && c.wantWrite.Load() {
				c.flushWritable()
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
	unix.Close(p.epfd)
	unix.Close(p.wake)
}
