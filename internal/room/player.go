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
	// heldUntil is when a seat held for a player of another node (a
	// restored or moved room) expires, in Unix nanoseconds; 0 otherwise.
	heldUntil int64
	index     int32 // position in room.players
	seated    bool  // OnJoin accepted and OnLeave not yet called
	dropped   bool  // the connection is lost; the seat waits for a resume
	gone      bool  // left, or refused at join
	dirty     bool  // has frames queued since the last flush
}

func (p *player) ID() string         { return p.id }
func (p *player) UserID() string     { return p.member.UserID() }
func (p *player) RTT() time.Duration { return p.member.RTT() }
func (p *player) Connected() bool    { return !p.gone }
func (p *player) Data() any          { return p.data }
func (p *player) SetData(v any)      { p.data = v }
func (p *player) String() string     { return p.id }
