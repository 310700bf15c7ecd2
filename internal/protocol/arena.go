package protocol

// This file holds the messages of "arena", the reference game. Arena is
// also the yardstick of the load tests, so its messages are encoded and
// decoded without allocating.

// ArenaInput (C, type [TypeArenaInput]) carries one movement input.
type ArenaInput struct {
	Seq    uint32  // input sequence number, echoed as ArenaPlayer.LastSeq
	DX, DY float32 // movement direction; finite
}

// Type returns [TypeArenaInput].
func (*ArenaInput) Type() MsgType { return TypeArenaInput }

// Append appends the whole message to dst.
func (m *ArenaInput) Append(dst []byte) []byte {
	dst = AppendType(dst, TypeArenaInput)
	dst = append(dst, mpFixArray|3)
	dst = AppendUint(dst, uint64(m.Seq))
	dst = AppendFloat32(dst, m.DX)
	return AppendFloat32(dst, m.DY)
}

// Decode decodes an ARENA_INPUT body without allocating.
func (m *ArenaInput) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "arena input", 0)
	m.Seq = f.u32("seq")
	m.DX = f.f32("dx")
	m.DY = f.f32("dy")
	return f.close()
}

// ArenaPlayer is one player in an [ArenaState].
type ArenaPlayer struct {
	// ID is the player ID, up to MaxIDLen bytes. A decoded ID is a
	// sub-slice of the input, valid until the input buffer is reused.
	ID      []byte
	X, Y    float32 // position; finite
	LastSeq uint32  // sequence number of the player's last applied input
	// Received counts every input message the room received from the
	// player (duplicates and stale ones included), so a client can check
	// that none was lost or delivered twice. Optional (0 when absent).
	Received uint32
}

// ArenaState is the body of the arena's [State] messages: the list of
// players. It is not a message of its own, so it has no type.
type ArenaState struct {
	Players []ArenaPlayer // at most MaxArenaPlayers
}

// Append appends the msgpack body only, to be placed in [State.Body] or
// after [AppendStateHeader]. It does not allocate when dst has room.
func (s *ArenaState) Append(dst []byte) []byte {
	dst = AppendArrayLen(dst, len(s.Players))
	for i := range s.Players {
		p := &s.Players[i]
		dst = append(dst, mpFixArray|5)
		dst = AppendBytesAsString(dst, p.ID)
		dst = AppendFloat32(dst, p.X)
		dst = AppendFloat32(dst, p.Y)
		dst = AppendUint(dst, uint64(p.LastSeq))
		dst = AppendUint(dst, uint64(p.Received))
	}
	return dst
}

// Decode decodes an arena state body (the Body of a [State]); msgpack nil
// decodes as no players. It reuses the capacity of s.Players and does not
// allocate once that capacity suffices. Each ID is a sub-slice of body,
// valid until the input buffer is reused.
func (s *ArenaState) Decode(body []byte) error {
	var f fieldReader
	f.r.buf, f.msg = body, "arena state"
	players := s.Players[:0]
	if !f.r.SkipNil() {
		n := f.listHeader("", MaxArenaPlayers)
		if cap(players) < n {
			players = make([]ArenaPlayer, 0, n)
		}
		players = players[:n]
		for i := range players {
			saved := f.enter("player", i)
			p := &players[i]
			p.ID = f.strBytes("id", MaxIDLen)
			p.X = f.f32("x")
			p.Y = f.f32("y")
			p.LastSeq = f.u32("lastSeq")
			p.Received = f.u32("received")
			f.leave(saved)
			if f.err != nil {
				s.Players = players[:0]
				return f.err
			}
		}
	}
	s.Players = players
	return f.close()
}
