package session

import (
	"bytes"
	"errors"
	"time"

	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

// State is a session in transit between nodes (a drain moves its sessions
// to the nodes their clients reconnect to). It is msgpack-encoded.
type State struct {
	ID       string         `msgpack:"id"`
	Token    string         `msgpack:"token"`
	UserID   string         `msgpack:"user,omitempty"`
	Claims   map[string]any `msgpack:"claims,omitempty"`
	Expires  int64          `msgpack:"exp,omitempty"`
	OutSeq   uint64         `msgpack:"out"`
	InSeq    uint64         `msgpack:"in"`
	FirstSeq uint64         `msgpack:"first"`  // sequence number of Replay[0]
	Replay   [][]byte       `msgpack:"replay"` // the unacknowledged messages, in order
	// Seat is the router's description of where the session sits (its
	// room and player), opaque to the session layer.
	Seat []byte `msgpack:"seat,omitempty"`
}

// Freeze stops a session from taking client messages while it may move
// to another node. From now on its client's messages are held, not
// counted: Thaw hands them on in order if the session stays; if it moves
// (Retire), they are dropped, and the client sends them again after its
// resume elsewhere (RESUMED's clientSeq). Heartbeats are not held. Freeze
// waits for a message being handled to finish, so every message counted
// has reached its room before Freeze returns.
func (s *Session) Freeze() {
	s.msgMu.Lock()
	s.flags.Or(flagFrozen)
	s.msgMu.Unlock()
}

// Thaw undoes Freeze when the move did not happen: the messages held
// meanwhile are handled, in order, and the session takes its client's
// messages again.
func (s *Session) Thaw() {
	s.msgMu.Lock()
	defer s.msgMu.Unlock()
	s.flags.And(^flagFrozen)
	c := s.cold.Load()
	if c == nil || c.held == nil {
		return
	}
	held := c.held
	c.held = nil
	for _, m := range held.msgs {
		s.hub.message(s, nil, m)
	}
}

// heldMsgs are the client messages a frozen session keeps for Thaw.
type heldMsgs struct {
	msgs  [][]byte
	bytes int
	full  bool // past the bound: this and later messages were dropped
}

// hold keeps a copy of a message that arrived while the session was
// frozen, up to max bytes in all; past that, it and every later message
// until Thaw are dropped (a gap would reorder the client's messages).
// msgMu must be held.
func (s *Session) hold(msg []byte, max int) {
	c := s.coldPart()
	if c.held == nil {
		c.held = &heldMsgs{}
	}
	h := c.held
	if h.full || h.bytes+len(msg) > max {
		h.full = true
		return
	}
	h.msgs = append(h.msgs, bytes.Clone(msg))
	h.bytes += len(msg)
}

// Export captures a frozen session for a move. The session keeps running
// until Retire.
func (h *Hub) Export(s *Session, seat []byte) State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{ID: s.id.String(), Token: h.tokenOf(s).String(), UserID: s.UserID(), Claims: s.Claims(), Expires: s.expiry(),
		OutSeq: s.outSeq, InSeq: s.inSeq.Load(), FirstSeq: s.buf.first(s.outSeq), Seat: seat}
	s.buf.each(0, s.outSeq, func(_ uint64, f *frame.Frame) { st.Replay = append(st.Replay, append([]byte(nil), f.B...)) })
	return st
}

// Retire ends a session that moved to another node: its connection is
// closed with code and reason, and the router is not told (the session
// lives on elsewhere).
func (h *Hub) Retire(s *Session, code protocol.CloseCode, reason string) {
	prev := s.state.Swap(stateClosed)
	if prev == stateClosed {
		return
	}
	h.mu.Lock()
	h.forgetLocked(s)
	h.mu.Unlock()
	s.mu.Lock()
	c := s.conn
	s.buf.reset()
	s.mu.Unlock()
	switch prev {
	case stateActive:
		h.stats.Active.Add(-1)
	case stateDetached:
		h.stats.Detached.Add(-1)
	}
	if c != nil {
		c.Close(uint16(code), reason)
	}
}

// ErrSessionExists is returned by Import for a session already here.
var ErrSessionExists = errors.New("session: already here")

// Import recreates a moved session, detached, waiting for its client's
// RESUME for the hub's resume window. The caller restores the router's
// seat from st.Seat.
func (h *Hub) Import(st State) (*Session, error) {
	id, idOK := parseSessionID(st.ID)
	tok, ok := parseToken(st.Token)
	if !idOK || !ok {
		return nil, errors.New("session: state without a well-formed id and token")
	}
	if st.FirstSeq == 0 || st.FirstSeq+uint64(len(st.Replay)) != st.OutSeq+1 {
		return nil, errors.New("session: state with an inconsistent replay buffer")
	}
	s := &Session{
		hub: h, id: id, auth: newIdentity(st.UserID, st.Claims, st.Expires),
		outSeq: st.OutSeq,
	}
	s.coldPart().token = tok
	s.inSeq.Store(st.InSeq)
	if len(st.Replay) > int(h.bounds.msgs) {
		s.coldPart().bounds = newBounds(len(st.Replay), h.cfg.ReplayBytes)
	}
	// The frames are numbered from st.FirstSeq up to outSeq (st.OutSeq),
	// as the check above ensured.
	for _, b := range st.Replay {
		f := frame.New()
		f.Grow(len(b))
		f.B = append(f.B, b...)
		s.buf.push(f.Seal(), s.bounds())
		f.Release()
	}
	s.state.Store(stateDetached)
	s.due.Store(time.Now().Add(h.cfg.ResumeWindow).UnixNano())
	h.mu.Lock()
	if h.byID[s.id] != nil {
		h.mu.Unlock()
		s.buf.reset()
		return nil, ErrSessionExists
	}
	h.byID[s.id] = s
	h.mu.Unlock()
	h.stats.Detached.Add(1)
	return s, nil
}

// EncodeState and DecodeState convert a State for storage.
func EncodeState(st State) ([]byte, error) { return msgpack.Marshal(&st) }

// DecodeState reads a State.
func DecodeState(b []byte) (State, error) {
	var st State
	err := msgpack.Unmarshal(b, &st)
	return st, err
}
