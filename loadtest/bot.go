package main

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/gameserver/gameserver/internal/nbio"
	"golang.org/x/sys/unix"
)

// Bot phases.
const (
	phaseIdle         uint32 = iota // not connected (waiting to connect or reconnect)
	phaseConnecting                 // dial and upgrade in progress
	phaseAwaitWelcome               // HELLO (or RESUME) sent
	phaseReady                      // WELCOME received; not in a room (no join, or the join failed)
	phaseJoining                    // JOIN sent
	phaseInRoom                     // JOINED received
	phaseLeaving                    // LEAVE sent
	phaseClosing                    // the driver closes the connection
	phaseDead                       // closed for good
	phaseMoving                     // MOVE received: the server closes the connection, the bot resumes elsewhere
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

	mu  sync.Mutex   // serializes writes and guards out, log, sess and the fallback's send state
	fd  atomic.Int32 // -1 when not connected; set by the connector, cleared by the poller (the POST connection over the fallback)
	out []byte       // bytes the socket did not take yet (mu)
	log sentLog      // sequenced messages not yet acknowledged (mu)

	// sse is the HTTP fallback's state; nil over WebSocket.
	sse *sseBot

	phase         atomic.Uint32
	since         atomic.Int64 // Unix ns of the last phase change that has a timeout
	gen           atomic.Uint32
	reconnect     atomic.Bool // reconnect after the connection closes (churn)
	resolved      atomic.Bool // the first connect attempt has succeeded or failed
	welcomed      atomic.Bool // the current connection received WELCOME (or RESUMED)
	everConnected atomic.Bool
	inRoom        atomic.Bool  // counted in engine.joined
	hasOut        atomic.Bool  // out is not empty
	moving        atomic.Bool  // a MOVE arrived on the current connection
	awaitRoom     atomic.Bool  // --forward: waiting for the room's first bot to create the room, or to ask again
	joinAfter     atomic.Int64 // --forward: Unix ns before which the bot does not ask again
	class         atomic.Uint32

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
	// joinSeq is seq when the bot took its seat; recvd is the room's count
	// of the inputs it received from the bot (the arena state's
	// "received"). The reader writes both; the engine reads them at the end.
	joinSeq atomic.Uint32
	recvd   atomic.Uint32
	maxGap  atomic.Int64 // longest time between two states in the measured window, ns

	// Session, for resuming (mu).
	sess session

	// Reader fields.
	in          []byte // bytes of an incomplete frame (over the fallback: of an incomplete event)
	frag        []byte // payload of an incomplete fragmented message
	fragging    bool
	playerID    []byte
	acked       uint32 // highest input seq seen acknowledged
	sawSelf     bool   // a state of this join included the bot
	closeSeen   bool   // the server's close frame arrived
	countedMis  bool   // state_without_self already counted for this join
	movedPhase  uint32 // the phase the bot was in when it was told MOVE
	moveDelayNs int64
	lastStateAt int64 // Unix ns of the last state received
	joinTries   int   // --forward: joins asked again after 404

	// Sender fields.
	senderGen uint32
	nextPing  int64
	nextChat  int64
	lifeEnd   int64
	cycles    uint32
}

// session is what a bot knows of its server session (guarded by bot.mu).
type session struct {
	id       string
	token    string  // resume token
	node     string  // WELCOME's node
	room     string  // the room of the last JOINED
	target   *target // where a MOVE asked to reconnect, if not the bot's own server
	resume   bool    // the next connection resumes the session
	resuming bool    // the current connection sent RESUME and waits for RESUMED
}

// Bot classes for --redis: whether the bot's session lives on its room's
// node.
const (
	classUnknown uint32 = iota
	classLocal
	classForwarded
)

// write sends one complete frame, or queues what the socket does not take.
// It reports false when the bot is not connected or the connection failed.
func (b *bot) write(frame []byte, c *counters) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.writeLocked(frame, c) {
		return false
	}
	c.add(cMsgsOut, 1)
	return true
}

// writeLocked writes bytes to the bot's socket (its POST connection over
// the fallback), keeping what the socket does not take. b.mu is held.
func (b *bot) writeLocked(p []byte, c *counters) bool {
	fd := int(b.fd.Load())
	if fd < 0 {
		return false
	}
	if len(b.out) > 0 {
		if len(b.out)+len(p) > maxOutBacklog {
			b.p.e.errs.add("write_backlog")
			b.shutdownLocked()
			return false
		}
		b.out = append(b.out, p...)
		return b.flushLocked(fd, c)
	}
	n, err := writeFD(fd, p)
	if err != nil {
		return false // the poller sees the failure on its next read
	}
	c.add(cBytesOut, uint64(n))
	if n < len(p) {
		b.out = append(b.out[:0], p[n:]...)
		b.hasOut.Store(true)
	}
	return true
}

// sendMsg sends one unsequenced protocol message (PING, PONG, HELLO):
// framed over WebSocket, batched into a POST over the fallback. sc is the
// caller's scratch buffer.
func (b *bot) sendMsg(msg []byte, sc *[]byte, c *counters) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sendLocked(msg, sc, c)
}

// sendSeq sends a sequenced message (JOIN, LEAVE, game messages) and
// keeps it in the log until the server acknowledges it, for a resume.
func (b *bot) sendSeq(msg []byte, kind uint8, arg uint32, sc *[]byte, c *counters) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.log.add(kind, arg)
	return b.sendLocked(msg, sc, c)
}

func (b *bot) sendLocked(msg []byte, sc *[]byte, c *counters) bool {
	if b.sse != nil {
		return b.sseQueueLocked(msg, sc, c)
	}
	*sc = appendClientFrame((*sc)[:0], opBinary, msg)
	if !b.writeLocked(*sc, c) {
		return false
	}
	c.add(cMsgsOut, 1)
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

// shutdown ends the connection's TCP streams without releasing the
// descriptors; the poller sees the end and closes them.
func (b *bot) shutdown() {
	b.mu.Lock()
	b.shutdownLocked()
	b.mu.Unlock()
}

func (b *bot) shutdownLocked() {
	if fd := int(b.fd.Load()); fd >= 0 {
		_ = unix.Shutdown(fd, unix.SHUT_RDWR)
	}
	if b.sse != nil {
		if fd := int(b.sse.sfd.Load()); fd >= 0 {
			_ = unix.Shutdown(fd, unix.SHUT_RDWR)
		}
	}
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
		n, err := nbio.Write(fd, p)
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
