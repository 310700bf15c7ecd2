package gameserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// bot is an arena player that survives drops, MOVEs and node deaths the
// way a good client does: it resumes when it can (re-sending what the
// server did not receive) and rejoins its room when it cannot, and it
// checks what it sees: its seat, gap-free state ticks, and the room's
// count of the inputs it received.
type bot struct {
	t    *testing.T
	name string
	lb   string // address to (re)connect to

	mu        sync.Mutex
	conn      net.Conn
	sessionID string
	token     string
	lastSeq   uint64 // sequenced server messages received
	inSeq     uint64 // sequenced client messages sent
	unacked   []sentMsg
	playerID  string
	roomID    string
	inputSeq  uint32 // arena inputs sent
	applied   uint32 // lastSeq the room reported for us
	received  uint32 // inputs the room reported receiving
	lastTick  uint64
	tickGaps  int
	seatLost  int
	resumes   int
	rejoins   int
	states    atomic.Int64
	lastState atomic.Int64  // Unix nanoseconds
	maxGap    time.Duration // longest time between two states
	errs      []string
}

type sentMsg struct {
	seq uint64
	b   []byte
}

func (b *bot) fail(format string, err error) {
	b.mu.Lock()
	b.errs = append(b.errs, format+": "+err.Error())
	b.mu.Unlock()
}

// dial connects to the load balancer, naming the session if resuming.
func (b *bot) dial() (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	url := "ws://" + b.lb + "/ws"
	if b.sessionID != "" {
		url += "?session=" + b.sessionID
	}
	conn, _, _, err := ws.Dial(ctx, url)
	return conn, err
}

func (b *bot) write(conn net.Conn, msg []byte) error {
	_ = conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	return wsutil.WriteClientBinary(conn, msg)
}

// sendSeq sends a sequenced message and keeps it until acknowledged.
func (b *bot) sendSeq(msg []byte) {
	b.mu.Lock()
	b.inSeq++
	b.unacked = append(b.unacked, sentMsg{b.inSeq, msg})
	conn := b.conn
	b.mu.Unlock()
	if conn != nil {
		_ = b.write(conn, msg)
	}
}

func (b *bot) ack(n uint64) {
	b.mu.Lock()
	i := 0
	for i < len(b.unacked) && b.unacked[i].seq <= n {
		i++
	}
	b.unacked = b.unacked[i:]
	b.mu.Unlock()
}

func (b *bot) read(conn net.Conn, d time.Duration) (protocol.MsgType, []byte, error) {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	for {
		hdr, err := ws.ReadHeader(conn)
		if err != nil {
			return 0, nil, err
		}
		p := make([]byte, hdr.Length)
		if _, err := io.ReadFull(conn, p); err != nil {
			return 0, nil, err
		}
		if hdr.OpCode == ws.OpClose {
			return 0, nil, io.EOF
		}
		if hdr.OpCode == ws.OpBinary {
			return protocol.Split(p)
		}
	}
}

// connect opens a session (resuming if it can) and returns the
// connection, already caught up.
func (b *bot) connect() (net.Conn, error) {
	conn, err := b.dial()
	if err != nil {
		return nil, err
	}
	if b.sessionID != "" {
		_ = b.write(conn, (&protocol.Resume{SessionID: b.sessionID, ResumeToken: b.token, LastSeq: b.lastSeq}).Append(nil))
		for {
			t, body, err := b.read(conn, 3*time.Second)
			if err != nil {
				conn.Close()
				return nil, err
			}
			if t == protocol.TypeResumed {
				var r protocol.Resumed
				_ = r.Decode(body)
				b.mu.Lock()
				b.token = r.ResumeToken
				b.resumes++
				b.conn = conn
				b.mu.Unlock()
				b.ack(r.ClientSeq)
				b.mu.Lock()
				resend := append([]sentMsg(nil), b.unacked...)
				b.mu.Unlock()
				for _, m := range resend {
					_ = b.write(conn, m.b)
				}
				return conn, nil
			}
			if t == protocol.TypeError {
				var e protocol.ErrorMsg
				_ = e.Decode(body)
				b.fail("resume", fmt.Errorf("refused %d: %s", e.Code, e.Message))
				break // resume failed: start over
			}
		}
	}
	// A new session, and back into the room.
	_ = b.write(conn, (&protocol.Hello{Version: 1, Client: "bot"}).Append(nil))
	t, body, err := b.read(conn, 3*time.Second)
	if err != nil || t != protocol.TypeWelcome {
		conn.Close()
		return nil, errors.New("no welcome")
	}
	var w protocol.Welcome
	_ = w.Decode(body)
	b.mu.Lock()
	b.sessionID, b.token, b.lastSeq, b.inSeq, b.unacked = w.SessionID, w.ResumeToken, 0, 0, nil
	b.conn = conn
	rejoin := b.roomID != ""
	if rejoin {
		b.rejoins++
	}
	b.mu.Unlock()
	if rejoin {
		b.sendSeq((&protocol.Join{ReqID: 2, Mode: protocol.JoinByID, RoomID: b.roomID}).Append(nil))
	} else {
		b.sendSeq((&protocol.Join{ReqID: 1, Mode: protocol.JoinOrCreate, Kind: "arena"}).Append(nil))
	}
	return conn, nil
}

// run plays until ctx ends.
func (b *bot) run(ctx context.Context) {
	go b.sendInputs(ctx)
	for ctx.Err() == nil {
		conn, err := b.connect()
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		b.serve(ctx, conn)
		b.mu.Lock()
		b.conn = nil
		b.mu.Unlock()
		conn.Close()
	}
}

func (b *bot) serve(ctx context.Context, conn net.Conn) {
	for ctx.Err() == nil {
		t, body, err := b.read(conn, 2*time.Second)
		if err != nil {
			return
		}
		switch t {
		case protocol.TypePing:
			var p protocol.Ping
			_ = p.Decode(body)
			b.ack(p.Ack)
			b.mu.Lock()
			last := b.lastSeq
			b.mu.Unlock()
			_ = b.write(conn, (&protocol.Pong{Nonce: p.Nonce}).Append(nil))
			_ = b.write(conn, (&protocol.Ping{Nonce: 1, Ack: last}).Append(nil))
			continue
		case protocol.TypePong, protocol.TypeResumed, protocol.TypeKick:
			continue
		case protocol.TypeMove:
			var m protocol.Move
			_ = m.Decode(body)
			b.mu.Lock()
			b.token = m.ResumeToken
			b.mu.Unlock()
			time.Sleep(time.Duration(m.DelayMs) * time.Millisecond)
			return
		}
		b.mu.Lock()
		b.lastSeq++
		b.mu.Unlock()
		switch t {
		case protocol.TypeJoined:
			var j protocol.Joined
			_ = j.Decode(body)
			b.mu.Lock()
			if b.playerID != "" && b.playerID != j.PlayerID {
				b.seatLost++
			}
			b.playerID, b.roomID = j.PlayerID, j.RoomID
			b.lastTick = 0
			b.mu.Unlock()
		case protocol.TypeError:
			var e protocol.ErrorMsg
			_ = e.Decode(body)
			if e.Ref == protocol.TypeJoin {
				// The room's node may be dead and the room not back yet:
				// try again shortly, as a client with backoff would.
				go func() {
					time.Sleep(200 * time.Millisecond)
					b.mu.Lock()
					room := b.roomID
					b.mu.Unlock()
					b.sendSeq((&protocol.Join{ReqID: 3, Mode: protocol.JoinByID, RoomID: room}).Append(nil))
				}()
			}
		case protocol.TypeLeft:
			b.mu.Lock()
			b.seatLost++
			b.mu.Unlock()
			b.sendSeq((&protocol.Join{ReqID: 2, Mode: protocol.JoinByID, RoomID: b.roomID}).Append(nil))
		case protocol.TypeState:
			var st protocol.State
			if st.Decode(body) != nil {
				continue
			}
			var as protocol.ArenaState
			if as.Decode(st.Body) != nil {
				continue
			}
			b.mu.Lock()
			if b.lastTick != 0 && st.Tick != b.lastTick+1 {
				b.tickGaps++
			}
			b.lastTick = st.Tick
			for _, p := range as.Players {
				if string(p.ID) == b.playerID {
					b.applied, b.received = p.LastSeq, p.Received
				}
			}
			b.mu.Unlock()
			b.states.Add(1)
			now := time.Now().UnixNano()
			if prev := b.lastState.Swap(now); prev != 0 {
				b.mu.Lock()
				b.maxGap = max(b.maxGap, time.Duration(now-prev))
				b.mu.Unlock()
			}
		}
	}
}

// sendInputs sends an input every 50 ms while seated.
func (b *bot) sendInputs(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		seated := b.playerID != ""
		if seated {
			b.inputSeq++
		}
		seq := b.inputSeq
		b.mu.Unlock()
		if seated {
			b.sendSeq((&protocol.ArenaInput{Seq: seq, DX: 1, DY: 0.5}).Append(nil))
		}
	}
}

// settle waits until the room has received and applied every input sent.
func (b *bot) settle(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		b.mu.Lock()
		ok := b.applied == b.inputSeq
		b.mu.Unlock()
		if ok {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
