package room

import (
	"time"
)

// player is a seat in a room; it implements game.Player. Its fields are
// owned by the room's shard except member, which is fixed.
type player struct {
	id     string
	member Member
	room   *room
	data   any
	index  int32 // position in room.players
	// A seat held for a player of another node (a restored or moved
	// room) has a *heldMember as its member, which says until when.
	seated  bool // OnJoin accepted and OnLeave not yet called
	dropped bool // the connection is lost; the seat waits for a resume
	gone    bool // left, or refused at join
	dirty   bool // has frames queued since the last flush
}

// held returns the seat's heldMember while it is held for a player of
// another node.
func (p *player) held() (*heldMember, bool) {
	h, ok := p.member.(*heldMember)
	return h, ok
}

func (p *player) ID() string         { return p.id }
func (p *player) UserID() string     { return p.member.UserID() }
func (p *player) RTT() time.Duration { return p.member.RTT() }
func (p *player) Connected() bool    { return !p.gone }
func (p *player) Data() any          { return p.data }
func (p *player) SetData(v any)      { p.data = v }
func (p *player) String() string     { return p.id }
