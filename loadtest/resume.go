package main

import (
	"time"

	"github.com/gameserver/gameserver/internal/protocol"
)

// A node that drains (or restarts) tells its sessions MOVE: reconnect
// after delayMs, to the MOVE's URL or, when it has none, to the address
// the client used (behind a load balancer another node answers), and
// resume the session there (docs/protocol.md, MOVE and "Sequence numbers
// and resume"). A bot does that: it reconnects to /ws?session=<id> (or
// opens the fallback with RESUME), sends RESUME with the last sequence
// number it received, and after RESUMED sends again the messages the
// server did not receive (those after clientSeq), so that none is lost
// or applied twice. A resume that fails (ERROR 412) starts over with
// HELLO and a new JOIN.

// move handles MOVE: the server is about to close the connection.
func (p *poller) move(b *bot, body []byte, now int64) {
	e := p.e
	var m protocol.Move
	if err := m.Decode(body); err != nil {
		e.errs.add("bad_move")
		return
	}
	var tgt *target
	if m.URL != "" {
		t, err := parseURL(m.URL)
		if err != nil {
			// Only loopback servers are driven: a bot does not follow a MOVE
			// elsewhere.
			e.errs.add("move_url_refused")
		} else {
			tgt = &t
		}
	}
	p.c.add(cMoves, 1)
	b.mu.Lock()
	if m.ResumeToken != "" {
		b.sess.token = m.ResumeToken
	}
	if tgt != nil {
		b.sess.target = tgt
	}
	b.mu.Unlock()
	if ph := b.phase.Load(); ph != phaseMoving && ph != phaseClosing {
		b.movedPhase = ph
		b.moveDelayNs = int64(m.DelayMs) * int64(time.Millisecond)
		b.moving.Store(true)
		b.setPhase(phaseMoving, now)
	}
}

// resumed handles RESUMED: the session is back on this connection. It
// reports false when the connection was closed.
func (p *poller) resumed(b *bot, body []byte, now int64) bool {
	e := p.e
	var m protocol.Resumed
	if err := m.Decode(body); err != nil {
		e.errs.add("bad_resumed")
		p.closeBot(b, "")
		return false
	}
	b.mu.Lock()
	resuming := b.sess.resuming
	b.mu.Unlock()
	if b.phase.Load() != phaseAwaitWelcome || !resuming {
		e.errs.add("unexpected_resumed")
		return true
	}
	if m.FromSeq != b.recvSeq.Load()+1 {
		e.errs.add("resume_from_seq")
	}
	p.c.add(cResumes, 1)
	record(p.hs.h[histConnect], now-b.dialStart.Load())
	b.welcomed.Store(true)
	e.connected.Add(1)

	// Send again what the server did not receive, before anything new: the
	// phase that lets the sender send inputs is set after.
	b.mu.Lock()
	b.sess.resuming, b.sess.resume = false, false
	if m.ResumeToken != "" {
		b.sess.token = m.ResumeToken
	}
	if m.ClientSeq > b.log.seq {
		e.errs.add("resume_client_seq_ahead")
	}
	b.log.ack(m.ClientSeq)
	n := uint64(0)
	complete := b.log.unacked(m.ClientSeq, func(kind uint8, arg uint32) {
		p.wbuf = e.appendSent(p.wbuf[:0], b, kind, arg)
		b.sendLocked(p.wbuf, &p.fbuf, p.c)
		n++
	})
	b.mu.Unlock()
	p.c.add(cResent, n)
	if !complete {
		e.errs.add("resend_gap")
	}

	ph := b.movedPhase
	switch ph {
	case phaseInRoom:
		if !b.inRoom.Swap(true) {
			e.joined.Add(1)
		}
	case phaseReady, phaseJoining, phaseLeaving:
	default:
		ph = phaseReady
	}
	b.setPhase(ph, now)
	if ph == phaseJoining {
		b.joinStart.Store(now)
	}
	return true
}

// appendSent builds again a sequenced message of the bot's log.
func (e *engine) appendSent(dst []byte, b *bot, kind uint8, arg uint32) []byte {
	switch kind {
	case sentInput:
		d := inputDirs[(arg/8+uint32(b.idx))%uint32(len(inputDirs))]
		m := protocol.ArenaInput{Seq: arg, DX: d[0], DY: d[1]}
		return m.Append(dst)
	case sentJoin:
		m := e.joinFor(b, arg)
		return m.Append(dst)
	case sentLeave:
		m := protocol.Leave{ReqID: arg}
		return m.Append(dst)
	default:
		return appendChat(dst)
	}
}

// resumeFailed forgets a session that could not be resumed: the bot
// starts over with a new session.
func (e *engine) resumeFailed(b *bot) {
	b.mu.Lock()
	b.sess = session{}
	b.log.reset()
	b.mu.Unlock()
}

// reconnectAfter queues a bot to connect again after d.
func (e *engine) reconnectAfter(b *bot, d time.Duration) {
	idx := b.idx
	time.AfterFunc(d, func() {
		if e.stopping.Load() {
			return
		}
		select {
		case e.dialq <- idx:
		default:
			e.errs.add("reconnect_queue_full")
		}
	})
}
