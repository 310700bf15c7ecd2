package room

import (
	"time"

	"github.com/gameserver/gameserver/internal/frame"
)

// player is a seat in a room; it implements game.Player. Its fields are
// owned by the room's shard except member, which is fixed.
type player struct {
	id      string
	member  Member
	room    *room
	data    any
	seated  bool // OnJoin accepted and OnLeave not yet called
	dropped bool // the connection is lost; the seat waits for a resume
	gone    bool // left, or refused at join
	dirty   bool // has frames queued since the last flush
	index   int  // position in room.players

	heldUntil time.Time // a restored seat waiting for its player; zero otherwise

	joining bool           // inside OnJoin: frames for the player are held
	held    []*frame.Frame // frames sent during OnJoin, released after JOINED
}

func (p *player) ID() string         { return p.id }
func (p *player) UserID() string     { return p.member.UserID() }
func (p *player) RTT() time.Duration { return p.member.RTT() }
func (p *player) Connected() bool    { return !p.gone }
func (p *player) Data() any          { return p.data }
func (p *player) SetData(v any)      { p.data = v }
func (p *player) String() string     { return p.id }
