package main

import (
	"io"
	"testing"
	"time"

	"github.com/gameserver/gameserver/internal/protocol"
	"golang.org/x/sys/unix"
)

// TestHotPathDoesNotAllocate checks the per-message work of a bot: an
// arena input sent, a state received and measured, a server ping
// answered.
func TestHotPathDoesNotAllocate(t *testing.T) {
	e, b, peer := seatedBot(t)
	e.measuring.Store(true)
	p, s := b.p, e.senders[0]

	state := protocol.ArenaState{Players: []protocol.ArenaPlayer{{ID: []byte("p-0")}, {ID: []byte("p-1")}, {ID: []byte("p-2")}}}
	ping := (&protocol.Ping{Nonce: 7}).Append(nil)
	drain := make([]byte, 64<<10)
	var msg []byte
	allocs := testing.AllocsPerRun(500, func() {
		s.input(b)
		state.Players[1].LastSeq = b.seq.Load()
		msg = protocol.AppendStateHeader(msg[:0], 1, time.Now().UnixNano())
		msg = state.Append(msg)
		p.hs.mu.Lock()
		p.message(b, msg, time.Now().UnixNano())
		p.message(b, ping, time.Now().UnixNano())
		p.hs.mu.Unlock()
		_, _ = unix.Read(peer, drain)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per input, state and ping", allocs)
	}
	if e.errs.total() != 0 {
		t.Errorf("errors %v", e.errs.snapshot())
	}
	// States are sequenced and acknowledged; pings are not.
	if seq, states := b.recvSeq.Load(), p.c.v[cStatesIn].Load(); seq != states {
		t.Errorf("%d messages counted for the ack, %d states received", seq, states)
	}
	if n := p.hs.h[histInput].TotalCount(); n < 500 {
		t.Errorf("%d input latencies recorded", n)
	}
}

// The server's acknowledgements release the bot's log of sent messages,
// whether they come in its PINGs or in its PONGs to the bot's PINGs.
func TestServerAcksReleaseSentLog(t *testing.T) {
	e, b, _ := seatedBot(t)
	p, s := b.p, e.senders[0]
	for i := 0; i < 10; i++ {
		s.input(b)
	}
	logged := func() (n uint32) {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, r := range b.log.runs[:b.log.n] {
			n += r.n
		}
		return n
	}
	if n := logged(); n != 10 {
		t.Fatalf("%d inputs logged, want 10", n)
	}
	for _, step := range []struct {
		msg  []byte
		want uint32
	}{
		{(&protocol.Pong{Nonce: 1, Ack: 4}).Append(nil), 6},
		{(&protocol.Ping{Nonce: 2, Ack: 9}).Append(nil), 1},
		{(&protocol.Pong{Nonce: 3, Ack: 10}).Append(nil), 0},
	} {
		p.hs.mu.Lock()
		p.message(b, step.msg, time.Now().UnixNano())
		p.hs.mu.Unlock()
		if n := logged(); n != step.want {
			t.Fatalf("after %x: %d inputs logged, want %d", step.msg, n, step.want)
		}
	}
	if e.errs.total() != 0 {
		t.Errorf("errors %v", e.errs.snapshot())
	}
}

// seatedBot returns an engine of one arena bot, in a room, whose
// connection is one end of a socketpair; peer is the other end.
func seatedBot(t *testing.T) (e *engine, b *bot, peer int) {
	t.Helper()
	cfg, err := parseConfig([]string{"--scenario=arena", "--bots=1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	e, err = newEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.closePollers)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	b = &e.bots[0]
	b.fd.Store(int32(fds[0]))
	b.playerID = []byte("p-1")
	b.setPhase(phaseInRoom, time.Now().UnixNano())
	return e, b, fds[1]
}
