package cluster

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"go.uber.org/zap"
)

// A link is a WebSocket connection between two nodes that carries
// channels: each channel is one player's seat in a room owned by the other
// node. The node where the player's session lives (the entry node) opens
// the channel; the owner of the room serves it.
//
// Every link message is a batch of records, each
//
//	[op uint8][channel uint32][length uint32][payload]
//
// so a room tick that writes to many forwarded players costs one link
// write per flush.
//
// Ops from the entry node: SeatOpen (payload: the member, see
// EncodeMember), SeatMsg (a client message), SeatClose (reason byte:
// closed, detached, resumed). From the owner: SeatOut (a server message for
// the player), SeatGone (the room released the seat), SeatGrace (the
// answer to a SeatClose(detached): how long the room holds the seat, so
// the entry node keeps the session as long; payload: uint32 milliseconds).
//
// Moving rooms and sessions (drain): OpRestore asks the peer to restore a
// room from its snapshot in the directory (payload: room id; the channel
// number is the request id), answered by OpRestored (payload: a status
// byte, 0 = done, then a message). OpSeatMoved tells a seat's entry node
// that the room moved to another node (payload: that node's id);
// OpSeatReopen reopens a seat in a room after a move (payload: the member,
// then the room id and player id, see EncodeReseat).
const (
	OpSeatOpen byte = iota + 1
	OpSeatMsg
	OpSeatClose
	OpSeatOut
	OpSeatGone
	OpRestore
	OpRestored
	OpSeatMoved
	OpSeatReopen
	OpSeatBounce // a SeatMsg that reached the room's old node after it moved: the entry node sends it again to the room's new place
	OpSeatGrace
)

// Seat close reasons carried by OpSeatClose.
const (
	SeatClosed   byte = 0 // the session ended
	SeatDetached byte = 1 // the session's connection dropped; it may resume
	SeatResumed  byte = 2 // the session is back
	SeatMoving   byte = 3 // the session moves to another node: hold the seat for it
)

const (
	recordHeader  = 9
	maxLinkBuffer = 64 << 20 // unsent bytes before a link is considered dead
	linkPath      = "/cluster/link"
	headerSecret  = "X-Gameserver-Cluster-Secret"
	headerNode    = "X-Gameserver-Node"
)

// LinkHandler receives what arrives on links. Calls for one link come
// from its reader goroutine, in order.
type LinkHandler interface {
	// LinkRecord handles one record. payload is valid until it returns.
	LinkRecord(l *Link, op byte, ch uint32, payload []byte)
	// LinkBatchDone follows the records of one link message: the time to
	// flush what they queued.
	LinkBatchDone(l *Link)
	// LinkClosed is called once when a link ends.
	LinkClosed(l *Link)
}

// Link is one node-to-node connection. Write and Flush are safe for
// concurrent use.
type Link struct {
	Peer     string // the other node's id
	conn     net.Conn
	client   bool // we dialed it
	m        *Mesh
	mu       sync.Mutex
	buf      []byte
	spare    []byte
	wake     chan struct{}
	done     chan struct{}
	once     sync.Once
	nextChan atomic.Uint32
	sent     atomic.Uint64
	recv     atomic.Uint64
}

// NewChannel allocates a channel id for a channel this side opens.
func (l *Link) NewChannel() uint32 { return l.nextChan.Add(1) }

// Done is closed when the link ends.
func (l *Link) Done() <-chan struct{} { return l.done }

// Write appends a record; it goes out at the next Flush. It fails once
// the link is down or hopelessly behind.
func (l *Link) Write(op byte, ch uint32, payload []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		return ErrLinkDown
	default:
	}
	if len(l.buf)+recordHeader+len(payload) > maxLinkBuffer {
		go l.close(errors.New("link buffer over its bound"))
		return ErrLinkDown
	}
	l.buf = append(l.buf, op)
	l.buf = binary.BigEndian.AppendUint32(l.buf, ch)
	l.buf = binary.BigEndian.AppendUint32(l.buf, uint32(len(payload)))
	l.buf = append(l.buf, payload...)
	return nil
}

// Flush wakes the writer.
func (l *Link) Flush() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// ErrLinkDown is returned by Write on a link that ended.
var ErrLinkDown = errors.New("cluster: link down")

func (l *Link) writer() {
	for {
		select {
		case <-l.done:
			return
		case <-l.wake:
		}
		l.mu.Lock()
		out := l.buf
		l.buf = l.spare[:0]
		l.mu.Unlock()
		if len(out) == 0 {
			l.spare = out
			continue
		}
		_ = l.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		var err error
		if l.client {
			err = wsutil.WriteClientBinary(l.conn, out)
		} else {
			err = wsutil.WriteServerBinary(l.conn, out)
		}
		l.sent.Add(uint64(len(out)))
		l.spare = out[:0]
		if err != nil {
			l.close(err)
			return
		}
	}
}

func (l *Link) reader() {
	defer l.close(io.EOF)
	state := ws.StateServerSide
	if l.client {
		state = ws.StateClientSide
	}
	rd := wsutil.NewReader(l.conn, state)
	rd.OnIntermediate = wsutil.ControlFrameHandler(l.conn, state)
	var msg []byte
	for {
		hdr, err := rd.NextFrame()
		if err != nil {
			return
		}
		if hdr.OpCode.IsControl() {
			if err := rd.OnIntermediate(hdr, rd); err != nil {
				return
			}
			continue
		}
		if hdr.Length > maxLinkBuffer {
			return
		}
		msg = msg[:0]
		if cap(msg) < int(hdr.Length) {
			msg = make([]byte, 0, hdr.Length)
		}
		msg = msg[:hdr.Length]
		if _, err := io.ReadFull(rd, msg); err != nil {
			return
		}
		l.recv.Add(uint64(len(msg)))
		for b := msg; len(b) > 0; {
			if len(b) < recordHeader {
				l.m.log.Warn("cluster: malformed link record", zap.String("peer", l.Peer))
				return
			}
			op, ch, n := b[0], binary.BigEndian.Uint32(b[1:5]), int(binary.BigEndian.Uint32(b[5:9]))
			if n > len(b)-recordHeader {
				l.m.log.Warn("cluster: truncated link record", zap.String("peer", l.Peer))
				return
			}
			l.m.handler.LinkRecord(l, op, ch, b[recordHeader:recordHeader+n])
			b = b[recordHeader+n:]
		}
		l.m.handler.LinkBatchDone(l)
	}
}

func (l *Link) close(err error) {
	l.once.Do(func() {
		close(l.done)
		_ = l.conn.Close()
		l.m.forget(l)
		if !errors.Is(err, io.EOF) {
			l.m.log.Warn("cluster: link closed", zap.String("peer", l.Peer), zap.Error(err))
		}
		l.m.handler.LinkClosed(l)
	})
}

// Close ends the link.
func (l *Link) Close() { l.close(io.EOF) }

// Mesh keeps this node's links to the other nodes: the ones it dialed
// (used for the channels it opens) and the ones it accepted.
type Mesh struct {
	self    string
	secret  string
	handler LinkHandler
	log     *zap.Logger
	resolve func(ctx context.Context, node string) (string, error)

	mu      sync.Mutex
	out     map[string]*Link // dialed, by peer
	in      map[*Link]struct{}
	dialing map[string]chan struct{}
	closed  bool
}

// NewMesh returns a mesh for node self. resolve maps a node id to the
// address to dial; secret authenticates links both ways.
func NewMesh(self, secret string, h LinkHandler, resolve func(ctx context.Context, node string) (string, error), log *zap.Logger) *Mesh {
	if log == nil {
		log = zap.NewNop()
	}
	return &Mesh{self: self, secret: secret, handler: h, resolve: resolve, log: log,
		out: make(map[string]*Link), in: make(map[*Link]struct{}), dialing: make(map[string]chan struct{})}
}

// Link returns the dialed link to node, dialing it if needed.
func (m *Mesh) Link(ctx context.Context, node string) (*Link, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, ErrLinkDown
		}
		if l := m.out[node]; l != nil {
			m.mu.Unlock()
			return l, nil
		}
		if wait, busy := m.dialing[node]; busy {
			m.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		wait := make(chan struct{})
		m.dialing[node] = wait
		m.mu.Unlock()
		l, err := m.dial(ctx, node)
		m.mu.Lock()
		delete(m.dialing, node)
		close(wait)
		if err == nil {
			m.out[node] = l
		}
		m.mu.Unlock()
		if err != nil {
			return nil, err
		}
		go l.writer()
		go l.reader()
		return l, nil
	}
}

func (m *Mesh) dial(ctx context.Context, node string) (*Link, error) {
	addr, err := m.resolve(ctx, node)
	if err != nil {
		return nil, fmt.Errorf("cluster: resolve node %s: %w", node, err)
	}
	d := ws.Dialer{
		Timeout: 3 * time.Second,
		Header:  ws.HandshakeHeaderHTTP(http.Header{headerSecret: {m.secret}, headerNode: {m.self}}),
	}
	conn, br, _, err := d.Dial(ctx, "ws://"+addr+linkPath)
	if err != nil {
		return nil, fmt.Errorf("cluster: dial node %s at %s: %w", node, addr, err)
	}
	if br != nil {
		ws.PutReader(br)
	}
	return &Link{Peer: node, conn: conn, client: true, m: m, wake: make(chan struct{}, 1), done: make(chan struct{})}, nil
}

// ServeHTTP accepts a link from another node.
func (m *Mesh) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(headerSecret)), []byte(m.secret)) != 1 {
		http.Error(w, "cluster secret mismatch", http.StatusForbidden)
		return
	}
	peer := r.Header.Get(headerNode)
	if peer == "" {
		http.Error(w, "missing node header", http.StatusBadRequest)
		return
	}
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	if rw != nil && rw.Reader.Buffered() > 0 {
		conn = &bufferedConn{Conn: conn, r: rw.Reader}
	}
	l := &Link{Peer: peer, conn: conn, m: m, wake: make(chan struct{}, 1), done: make(chan struct{})}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_ = conn.Close()
		return
	}
	m.in[l] = struct{}{}
	m.mu.Unlock()
	go l.writer()
	go l.reader()
}

func (m *Mesh) forget(l *Link) {
	m.mu.Lock()
	if m.out[l.Peer] == l {
		delete(m.out, l.Peer)
	}
	delete(m.in, l)
	m.mu.Unlock()
}

// Close ends every link.
func (m *Mesh) Close() {
	m.mu.Lock()
	m.closed = true
	links := make([]*Link, 0, len(m.out)+len(m.in))
	for _, l := range m.out {
		links = append(links, l)
	}
	for l := range m.in {
		links = append(links, l)
	}
	m.mu.Unlock()
	for _, l := range links {
		l.Close()
	}
}

// Bytes returns the bytes sent and received over every live link.
func (m *Mesh) Bytes() (sent, recv uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.out {
		sent += l.sent.Load()
		recv += l.recv.Load()
	}
	for l := range m.in {
		sent += l.sent.Load()
		recv += l.recv.Load()
	}
	return
}

// LinkPath is the HTTP path links are accepted on.
const LinkPath = linkPath

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
