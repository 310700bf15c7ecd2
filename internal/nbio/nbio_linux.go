// Package nbio makes the system calls of a non-blocking socket's message
// path raw, without telling the Go scheduler. The transport and the
// load-test driver use it.
package nbio

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The calls here are for descriptors that never make them sleep: read,
// write and writev on non-blocking sockets, epoll_wait with a zero
// timeout. Made the ordinary way (unix.Read), each marks its processor as
// in a system call, and a goroutine doing nothing but such calls keeps the
// runtime's monitor thread waking every 20 µs to take processors back from
// threads it thinks are blocked, handing them to other threads and back
// (4 % of the server's CPU at 5,000 arena players). Made raw, the
// goroutine keeps its processor. A call that may sleep (close, a blocking
// descriptor, epoll_wait with a timeout) must not be made here.

// Read is read(2) on a non-blocking descriptor.
func Read(fd int, p []byte) (int, error) { return rw(unix.SYS_READ, fd, p) }

// Write is write(2) on a non-blocking descriptor.
func Write(fd int, p []byte) (int, error) { return rw(unix.SYS_WRITE, fd, p) }

func rw(trap uintptr, fd int, p []byte) (int, error) {
	var base unsafe.Pointer
	if len(p) > 0 {
		base = unsafe.Pointer(&p[0])
	}
	return result(syscall.RawSyscall(trap, uintptr(fd), uintptr(base), uintptr(len(p))))
}

// Writev is writev(2) on a non-blocking descriptor; iov must not be empty.
func Writev(fd int, iov []unix.Iovec) (int, error) {
	return result(syscall.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov))))
}

// EpollPoll is epoll_wait(2) with a zero timeout: it collects the events
// ready now and never waits. events must not be empty.
func EpollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	return result(syscall.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0))
}

// Accept is accept4(2) on a non-blocking listening socket: the new
// descriptor is non-blocking and close-on-exec. addr is the peer's address
// (IPv4 unmapped), zero for a family other than IPv4 and IPv6. Unlike
// unix.Accept4 it allocates nothing.
func Accept(fd int) (nfd int, addr netip.AddrPort, err error) {
	var sa unix.RawSockaddrAny
	n := uint32(unsafe.Sizeof(sa))
	nfd, err = result(syscall.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&n)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0))
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	switch sa.Addr.Family {
	case unix.AF_INET:
		in := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		addr = netip.AddrPortFrom(netip.AddrFrom4(in.Addr), portOf(in.Port))
	case unix.AF_INET6:
		in := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa))
		addr = netip.AddrPortFrom(netip.AddrFrom16(in.Addr).Unmap(), portOf(in.Port))
	}
	return nfd, addr, nil
}

// portOf reads a sockaddr's port, which is in network byte order.
func portOf(p uint16) uint16 {
	var b [2]byte
	*(*uint16)(unsafe.Pointer(&b[0])) = p
	return binary.BigEndian.Uint16(b[:])
}

// result turns a raw call's return into a count or an error. An Errno
// (below 256 on Linux) boxes into an error without allocating.
func result(r, _ uintptr, e syscall.Errno) (int, error) {
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
