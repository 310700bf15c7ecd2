package main

import (
	"errors"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Bot phases.
const (
	phaseIdle         uint32 = iota // not connected (waiting to connect or reconnect)
	phaseConnecting                 // dial and upgrade in progress
	phaseAwaitWelcome               // HELLO sent
	phaseReady                      // WELCOME received; not in a room (no join, or the join failed)
	phaseJoining                    // JOIN sent
	phaseInRoom                     // JOINED received
	phaseLeaving                    // LEAVE sent
	phaseClosing                    // the driver closes the connection
	phaseDead                       // closed for good
)

// seqRing is how many recent input send times a bot remembers; an input
// acknowledged after more than this many newer inputs is counted as
// expired instead of measured.
const seqRing = 64

// maxOutBacklog bounds the bytes a bot keeps when its socket does not take
// them; past it the connection is dropped as stuck.
const maxOutBacklog = 64 << 10

// bot is one simulated player. Fields are owned as marked: "reader" fields
// are touched only by the bot's poller goroutine, "sender" fields only by
// its sender goroutine; the rest are atomics or guarded by mu.
type bot struct {
	idx    int32 // index in this process's bots
	global int   // index across all processes (spreads URLs and sources)
	p      *poller

	mu  sync.Mutex   // serializes writes and guards out
	fd  atomic.Int32 // -1 when not connected; set by the connector, cleared by the poller
	out []byte       // bytes the socket did not take yet (mu)

	phase         atomic.Uint32
	since         atomic.Int64 // Unix ns of the last phase change that has a timeout
	gen           atomic.Uint32
	reconnect     atomic.Bool // reconnect after the connection closes (churn)
	resolved      atomic.Bool // the first connect attempt has succeeded or failed
	welcomed      atomic.Bool // the current connection received WELCOME
	everConnected atomic.Bool
	inRoom        atomic.Bool // counted in engine.joined
	hasOut        atomic.Bool // out is not empty

	dialStart atomic.Int64 // Unix ns
	joinStart atomic.Int64
	reqID     atomic.Uint32

	// Heartbeat: the sender writes, the reader reads.
	pingNonce atomic.Uint32
	pingSent  atomic.Int64
	// recvSeq counts the sequenced messages received on this session (the
	// reader writes it; the sender acknowledges it in its PINGs).
	recvSeq atomic.Uint64

	// Arena inputs: the sender writes, the reader reads.
	seq  atomic.Uint32
	sent *[seqRing]atomic.Int64 // send time of input seq at [seq%seqRing]; nil when the scenario sends none

	// Reader fields.
	in         []byte // bytes of an incomplete frame
	frag       []byte // payload of an incomplete fragmented message
	fragging   bool
	playerID   []byte
	acked      uint32 // highest input seq seen acknowledged
	sawSelf    bool   // a state of this join included the bot
	closeSeen  bool   // the server's close frame arrived
	countedMis bool   // state_without_self already counted for this join

	// Sender fields.
	senderGen uint32
	nextPing  int64
	nextChat  int64
	lifeEnd   int64
	cycles    uint32
}

// write sends one complete frame, or queues what the socket does not take.
// It reports false when the bot is not connected or the connection failed.
func (b *bot) write(frame []byte, c *counters) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	fd := int(b.fd.Load())
	if fd < 0 {
		return false
	}
	if len(b.out) > 0 {
		if len(b.out)+len(frame) > maxOutBacklog {
			b.p.e.errs.add("write_backlog")
			_ = unix.Shutdown(fd, unix.SHUT_RDWR)
			return false
		}
		b.out = append(b.out, frame...)
		c.add(cMsgsOut, 1)
		return b.flushLocked(fd, c)
	}
	n, err := writeFD(fd, frame)
	if err != nil {
		return false // the poller sees the failure on its next read
	}
	c.add(cMsgsOut, 1)
	c.add(cBytesOut, uint64(n))
	if n < len(frame) {
		b.out = append(b.out[:0], frame[n:]...)
		b.hasOut.Store(true)
	}
	return true
}

// flush writes what the socket did not take earlier.
func (b *bot) flush(c *counters) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if fd := int(b.fd.Load()); fd >= 0 && len(b.out) > 0 {
		b.flushLocked(fd, c)
	}
}

func (b *bot) flushLocked(fd int, c *counters) bool {
	n, err := writeFD(fd, b.out)
	if err != nil {
		return false
	}
	c.add(cBytesOut, uint64(n))
	b.out = b.out[:copy(b.out, b.out[n:])]
	if len(b.out) == 0 {
		b.out = nil
		b.hasOut.Store(false)
	} else {
		b.hasOut.Store(true)
	}
	return true
}

// shutdown ends the connection's TCP stream without releasing the
// descriptor; the poller sees the end and closes it.
func (b *bot) shutdown() {
	b.mu.Lock()
	if fd := int(b.fd.Load()); fd >= 0 {
		_ = unix.Shutdown(fd, unix.SHUT_RDWR)
	}
	b.mu.Unlock()
}

// setPhase moves the bot to phase p and notes when.
func (b *bot) setPhase(p uint32, now int64) {
	b.since.Store(now)
	b.phase.Store(p)
}

// writeFD writes as much of p as the non-blocking socket takes. A full
// socket is not an error: it returns the bytes written.
func writeFD(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Write(fd, p)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, nil
		default:
			return 0, err
		}
	}
}
