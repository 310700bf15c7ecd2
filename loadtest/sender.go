package main

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/gameserver/gameserver/internal/protocol"
)

// wheelSlots is how many groups a sender splits its bots into; one group
// is visited per tick, so each bot is visited once per cycle and the
// sends of many bots are spread over the cycle instead of bunched.
const wheelSlots = 10

// clientPingEvery is how often a bot pings the server.
const clientPingEvery = 5 * time.Second

// closeGrace is how long a close handshake may take before the driver
// ends the connection without it.
const closeGrace = 3 * time.Second

// sender drives the timed behaviour of a share of the bots: inputs, chat
// messages, client pings, churn, and timeouts. One goroutine serves many
// bots, so a bot costs no goroutine and no timer.
type sender struct {
	e     *engine
	slots [wheelSlots][]int32
	c     *counters
	wbuf  []byte
	fbuf  []byte
}

// inputDirs are the directions the bots steer in, in turn.
var inputDirs = func() (d [16][2]float32) {
	for i := range d {
		a := float64(i) * 2 * math.Pi / float64(len(d))
		d[i] = [2]float32{float32(math.Cos(a)), float32(math.Sin(a))}
	}
	return d
}()

// movingTimeout bounds the wait for the server's close after MOVE.
const movingTimeout = 5 * time.Second

func newSender(e *engine) *sender {
	return &sender{e: e, c: new(counters), wbuf: make([]byte, 0, 256), fbuf: make([]byte, 0, 256+maxClientFrameHeader)}
}

// cycle is the time between two visits of the same bot.
func (e *engine) cycle() time.Duration {
	switch e.cfg.Scenario {
	case scenarioArena, scenarioChurn:
		return time.Second / time.Duration(e.cfg.InputHz)
	case scenarioChat:
		return 50 * time.Millisecond
	}
	return 250 * time.Millisecond
}

// run visits one slot of bots per tick until stop is closed.
func (s *sender) run(stop <-chan struct{}, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	t := time.NewTicker(s.e.cycle() / wheelSlots)
	defer t.Stop()
	slot := 0
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := time.Now().UnixNano()
		for _, i := range s.slots[slot] {
			s.visit(&s.e.bots[i], now)
		}
		slot = (slot + 1) % wheelSlots
	}
}

// visit does whatever is due for one bot.
func (s *sender) visit(b *bot, now int64) {
	e := s.e
	if g := b.gen.Load(); g != b.senderGen {
		// A new connection: start its timers afresh, at random offsets so
		// that bots that connected together do not act together.
		b.senderGen = g
		b.nextPing = now + rand.Int64N(int64(clientPingEvery))
		b.nextChat = now + rand.Int64N(int64(float64(time.Second)/e.cfg.ChatRate))
		b.lifeEnd = 0
	}
	if b.hasOut.Load() {
		b.flush(s.c)
	}
	if b.sse != nil {
		b.sseRetry(now, &s.fbuf, s.c)
	}
	ph := b.phase.Load()
	switch ph {
	case phaseIdle, phaseConnecting, phaseDead:
		return
	case phaseMoving:
		if now-b.since.Load() > int64(movingTimeout) {
			b.shutdown()
		}
		return
	case phaseAwaitWelcome:
		if now-b.since.Load() > int64(e.cfg.ConnectTimeout) {
			e.errs.add("welcome_timeout")
			s.closeConn(b, now)
		}
		return
	case phaseClosing:
		if now-b.since.Load() > int64(closeGrace) {
			b.shutdown()
		}
		return
	case phaseJoining:
		if now-b.joinStart.Load() > int64(e.cfg.ConnectTimeout) {
			e.errs.add("join_timeout")
			s.closeConn(b, now)
			return
		}
	case phaseLeaving:
		if now-b.since.Load() > int64(e.cfg.ConnectTimeout) {
			e.errs.add("leave_timeout")
			s.closeConn(b, now)
			return
		}
	case phaseReady:
		if b.awaitRoom.Load() {
			// --forward: the room's first bot has not created the room yet.
			switch {
			case e.groupRoom(b) != "" && now >= b.joinAfter.Load():
				e.join(b, now, &s.wbuf, &s.fbuf, s.c)
				ph = phaseJoining
			case now-b.since.Load() > int64(e.cfg.ConnectTimeout):
				b.awaitRoom.Store(false)
				e.errs.add("room_wait_timeout")
				e.resolve(b)
			}
		}
	}
	if now >= b.nextPing {
		b.nextPing = now + int64(clientPingEvery)
		n := b.pingNonce.Add(1)
		b.pingSent.Store(time.Now().UnixNano())
		m := protocol.Ping{Nonce: n}
		if e.cfg.Ack {
			m.Ack = b.recvSeq.Load()
		}
		if b.sendMsg(m.Append(s.wbuf[:0]), &s.fbuf, s.c) {
			s.c.add(cPingsSent, 1)
		}
	}
	if ph == phaseInRoom {
		switch e.cfg.Scenario {
		case scenarioArena, scenarioChurn:
			s.input(b)
		case scenarioChat:
			if now >= b.nextChat {
				b.nextChat += int64(float64(time.Second) / e.cfg.ChatRate)
				if b.nextChat < now {
					b.nextChat = now // fell behind: do not burst to catch up
				}
				s.chat(b)
			}
		}
	}
	if e.cfg.Scenario == scenarioChurn && (ph == phaseInRoom || ph == phaseReady) {
		s.churn(b, ph, now)
	}
}

// input sends the next arena input.
func (s *sender) input(b *bot) {
	seq := b.seq.Load() + 1
	d := inputDirs[(seq/8+uint32(b.idx))%uint32(len(inputDirs))]
	m := protocol.ArenaInput{Seq: seq, DX: d[0], DY: d[1]}
	msg := m.Append(s.wbuf[:0])
	b.sent[seq%seqRing].Store(time.Now().UnixNano())
	b.seq.Store(seq)
	// Sent even when the write fails: the input is in the bot's log, and a
	// resume sends it again.
	s.c.add(cInputsSent, 1)
	b.sendSeq(msg, sentInput, seq, &s.fbuf, s.c)
}

// chat sends a chat message whose text carries its send time.
func (s *sender) chat(b *bot) {
	if b.sendSeq(appendChat(s.wbuf[:0]), sentChat, 0, &s.fbuf, s.c) {
		s.c.add(cChatSent, 1)
	}
}

// appendChat appends a chat message whose text carries its send time.
func appendChat(dst []byte) []byte {
	var text [32]byte
	t := append(text[:0], chatStamp...)
	t = strconv.AppendInt(t, time.Now().UnixNano(), 10)
	dst = protocol.AppendType(dst, typeChatSend)
	dst = protocol.AppendArrayLen(dst, 1)
	return protocol.AppendBytesAsString(dst, t)
}

// churn ends a bot's stay when its time is up: in turn it leaves the room
// and joins again, closes the connection and reconnects, or drops the
// connection without a close frame and reconnects.
func (s *sender) churn(b *bot, ph uint32, now int64) {
	if b.lifeEnd == 0 {
		life := float64(s.e.cfg.ChurnLife) * (0.5 + rand.Float64())
		b.lifeEnd = now + int64(life)
		return
	}
	if now < b.lifeEnd {
		return
	}
	b.lifeEnd = 0
	b.cycles++
	switch {
	case b.cycles%3 == 1 && ph == phaseInRoom:
		b.setPhase(phaseLeaving, now)
		m := protocol.Leave{ReqID: b.reqID.Add(1)}
		if b.sendSeq(m.Append(s.wbuf[:0]), sentLeave, m.ReqID, &s.fbuf, s.c) {
			s.c.add(cLeaves, 1)
		}
	case b.cycles%3 == 2:
		s.c.add(cDrops, 1)
		b.setPhase(phaseClosing, now)
		b.shutdown()
	default:
		s.c.add(cCloses, 1)
		s.closeConn(b, now)
	}
}

// closeConn starts the close handshake of a bot's connection.
func (s *sender) closeConn(b *bot, now int64) {
	b.setPhase(phaseClosing, now)
	s.e.closeConn(b, &s.fbuf, s.c)
}
