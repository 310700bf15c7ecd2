package room

import (
	"time"

	"github.com/gameserver/gameserver/internal/frame"
)

// Member is a player's session as the engine sees it. Send must not block;
// Flush writes what Send queued. Data and SetData keep the engine's seat
// for the member; they must be safe for concurrent use.
type Member interface {
	ID() string
	UserID() string
	Claims() map[string]any
	Send(f *frame.Frame) error
	Flush()
	RTT() time.Duration
	Data() any
	SetData(v any)
}

// seatOf returns the player the member is seated as (or waiting to be
// seated as), or nil.
func seatOf(m Member) *player {
	p, _ := m.Data().(*player)
	return p
}
