package cluster

import (
	"errors"

	"github.com/gameserver/gameserver/internal/protocol"
)

// Member is what the entry node tells a room's owner about a player when
// it opens a seat channel.
type Member struct {
	SessionID string
	UserID    string
	Claims    []byte // msgpack map, or empty
}

// EncodeMember appends m as a SeatOpen payload.
func EncodeMember(dst []byte, m Member) []byte {
	dst = protocol.AppendArrayLen(dst, 3)
	dst = protocol.AppendString(dst, m.SessionID)
	dst = protocol.AppendString(dst, m.UserID)
	if len(m.Claims) == 0 {
		return protocol.AppendNil(dst)
	}
	return protocol.AppendRaw(dst, m.Claims)
}

// DecodeMember reads a SeatOpen payload.
func DecodeMember(b []byte) (Member, error) {
	var m Member
	r := protocol.NewReader(b)
	n, err := r.ReadArrayLen()
	if err != nil || n < 3 {
		return m, errors.New("cluster: malformed member")
	}
	id, err := r.ReadStringBytes(protocol.MaxIDLen)
	if err != nil {
		return m, errors.New("cluster: malformed member session id")
	}
	user, err := r.ReadStringBytes(protocol.MaxIDLen * 4)
	if err != nil {
		return m, errors.New("cluster: malformed member user id")
	}
	m.SessionID, m.UserID = string(id), string(user)
	if !r.SkipNil() {
		raw, err := r.ReadRaw()
		if err != nil {
			return m, errors.New("cluster: malformed member claims")
		}
		m.Claims = append([]byte(nil), raw...)
	}
	return m, nil
}

// EncodeReseat appends an OpSeatReopen payload.
func EncodeReseat(dst []byte, m Member, roomID, playerID string) []byte {
	dst = EncodeMember(dst, m)
	dst = protocol.AppendString(dst, roomID)
	return protocol.AppendString(dst, playerID)
}

// DecodeReseat reads an OpSeatReopen payload.
func DecodeReseat(b []byte) (m Member, roomID, playerID string, err error) {
	r := protocol.NewReader(b)
	raw, err := r.ReadRaw()
	if err != nil {
		return m, "", "", errors.New("cluster: malformed reseat")
	}
	if m, err = DecodeMember(raw); err != nil {
		return m, "", "", err
	}
	room, err1 := r.ReadStringBytes(protocol.MaxIDLen)
	player, err2 := r.ReadStringBytes(protocol.MaxIDLen)
	if err1 != nil || err2 != nil {
		return m, "", "", errors.New("cluster: malformed reseat ids")
	}
	return m, string(room), string(player), nil
}
