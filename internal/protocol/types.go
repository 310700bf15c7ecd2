package protocol

import (
	"encoding/binary"
	"strconv"
)

// Version is the protocol version this package speaks. A client announces
// its version in [Hello]; the server answers with the version it will use
// in [Welcome].
const Version = 1

// MsgType identifies the schema of a message body. It is the first two
// bytes of every message, big-endian.
type MsgType uint16

// FirstGameType is the lowest game-defined message type. Types below it
// are reserved for the system.
const FirstGameType MsgType = 0x1000

// System message types. The direction is C (client to server), S (server
// to client) or both.
const (
	TypeHello    MsgType = 0x0001 // C: open a session
	TypeWelcome  MsgType = 0x0002 // S: session accepted
	TypePing     MsgType = 0x0003 // both: heartbeat probe
	TypePong     MsgType = 0x0004 // both: heartbeat answer
	TypeError    MsgType = 0x0005 // S: a request failed
	TypeKick     MsgType = 0x0006 // S: the connection is about to be closed
	TypeMove     MsgType = 0x0007 // S: reconnect elsewhere and resume
	TypeResume   MsgType = 0x0008 // C: resume an earlier session
	TypeResumed  MsgType = 0x0009 // S: session resumed
	TypeJoin     MsgType = 0x0010 // C: join or create a room
	TypeJoined   MsgType = 0x0011 // S: joined a room
	TypeLeave    MsgType = 0x0012 // C: leave the current room
	TypeLeft     MsgType = 0x0013 // S: no longer in a room
	TypeList     MsgType = 0x0014 // C: list rooms
	TypeRooms    MsgType = 0x0015 // S: room list
	TypePresence MsgType = 0x0016 // S: a player joined, left, dropped or resumed
	TypeState    MsgType = 0x0020 // S: room state broadcast
)

// TypeArenaInput is the input message of the reference game "arena".
const TypeArenaInput MsgType = FirstGameType

// IsGame reports whether t is in the game-defined range (0x1000–0xFFFF).
func (t MsgType) IsGame() bool { return t >= FirstGameType }

var typeNames = map[MsgType]string{
	TypeHello:    "hello",
	TypeWelcome:  "welcome",
	TypePing:     "ping",
	TypePong:     "pong",
	TypeError:    "error",
	TypeKick:     "kick",
	TypeMove:     "move",
	TypeResume:   "resume",
	TypeResumed:  "resumed",
	TypeJoin:     "join",
	TypeJoined:   "joined",
	TypeLeave:    "leave",
	TypeLeft:     "left",
	TypeList:     "list",
	TypeRooms:    "rooms",
	TypePresence: "presence",
	TypeState:    "state",
}

// String returns the lowercase name of a system type ("hello"),
// "game(0x1001)" for a game type and "unknown(0x00ff)" for an unassigned
// system type.
func (t MsgType) String() string {
	if name, ok := typeNames[t]; ok {
		return name
	}
	if t.IsGame() {
		return "game(" + hex4(uint16(t)) + ")"
	}
	return "unknown(" + hex4(uint16(t)) + ")"
}

// hex4 formats v as 0x followed by four lowercase hex digits.
func hex4(v uint16) string {
	s := strconv.FormatUint(uint64(v), 16)
	for len(s) < 4 {
		s = "0" + s
	}
	return "0x" + s
}

// TypeSize is the length of the type prefix of every message.
const TypeSize = 2

// Split separates a message into its type and its body. The body is a
// sub-slice of msg. It fails with [CodeBadRequest] when msg is shorter
// than the type prefix; the body is not examined.
func Split(msg []byte) (MsgType, []byte, error) {
	if len(msg) < TypeSize {
		return 0, nil, errorf(CodeBadRequest, "message of %d bytes has no type prefix", len(msg))
	}
	return MsgType(binary.BigEndian.Uint16(msg)), msg[TypeSize:], nil
}

// AppendType appends the 2-byte type prefix of a message to dst.
func AppendType(dst []byte, t MsgType) []byte {
	return append(dst, byte(t>>8), byte(t))
}

// Size limits enforced by the decoders. A whole message is limited by the
// transport (see [DefaultMaxMessage]), not here.
const (
	// MaxIDLen limits identifiers: session, room and player IDs and room
	// kinds.
	MaxIDLen = 64
	// MaxTokenLen limits authentication and resume tokens.
	MaxTokenLen = 4096
	// MaxClientLen limits the client name/version in [Hello].
	MaxClientLen = 128
	// MaxTextLen limits human-readable text: error messages and kick
	// reasons.
	MaxTextLen = 1024
	// MaxNodeLen limits the server node name in [Welcome].
	MaxNodeLen = 255
	// MaxURLLen limits the URL in [Move].
	MaxURLLen = 2048
	// MaxDepth limits the nesting of containers inside a raw value (and
	// inside skipped unknown fields).
	MaxDepth = 32
	// MaxRooms limits the number of entries in [Rooms].
	MaxRooms = 1024
	// MaxArenaPlayers limits the number of players in [ArenaState].
	MaxArenaPlayers = 1024
)
