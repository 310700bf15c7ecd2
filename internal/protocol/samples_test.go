package protocol

import (
	"math"
	"strconv"
	"strings"
)

// sample is a named message used by the round-trip, cross-check and vector
// tests.
type sample struct {
	name string
	msg  Message
	// arena marks STATE samples whose body is an ArenaState.
	arena bool
}

// optionsSmall is the msgpack encoding of {"map": "small"}.
var optionsSmall = []byte{0x81, 0xa3, 'm', 'a', 'p', 0xa5, 's', 'm', 'a', 'l', 'l'}

// arenaPlayers2 is a two-player arena state.
var arenaPlayers2 = ArenaState{Players: []ArenaPlayer{
	{ID: []byte("p-1"), X: 12.5, Y: -3.25, LastSeq: 17},
	{ID: []byte("p-2"), X: 0, Y: 100, LastSeq: 300},
}}

// arenaBody encodes s as a STATE body.
func arenaBody(s ArenaState) []byte { return s.Append(nil) }

// canonicalSamples are the messages of the shared test vectors: at least
// one per message type, with realistic values.
func canonicalSamples() []sample {
	return []sample{
		{name: "hello", msg: &Hello{Version: 1, Token: "tok-abc", Client: "web/1.2.0"}},
		{name: "hello_minimal", msg: &Hello{Version: 1}},
		{name: "welcome", msg: &Welcome{Version: 1, SessionID: "s-7f3a", Node: "node-1",
			PingIntervalMs: 10000, PingTimeoutMs: 10000, MaxMessage: 65536, ResumeToken: "rt-123"}},
		{name: "ping", msg: &Ping{Nonce: 42, RTTMicros: 15300, Ack: 1234}},
		{name: "pong", msg: &Pong{Nonce: 42, Ack: 1234}},
		{name: "error", msg: &ErrorMsg{Code: CodeRoomNotFound, Message: "room r-9 not found", Ref: TypeJoin, ReqID: 7}},
		{name: "kick", msg: &Kick{Code: CodeForbidden, Reason: "banned"}},
		{name: "move", msg: &Move{URL: "wss://eu2.example.com/ws", ResumeToken: "rt-456", DelayMs: 250}},
		{name: "resume", msg: &Resume{SessionID: "s-7f3a", ResumeToken: "rt-123", LastSeq: 1234}},
		{name: "resumed", msg: &Resumed{SessionID: "s-7f3a", FromSeq: 1235, ClientSeq: 87, ResumeToken: "rt-124"}},
		{name: "join", msg: &Join{ReqID: 1, Mode: JoinOrCreate, Kind: "arena", Options: optionsSmall}},
		{name: "join_by_id", msg: &Join{ReqID: 2, Mode: JoinByID, RoomID: "r-1"}},
		{name: "joined", msg: &Joined{ReqID: 1, RoomID: "r-1", Kind: "arena", PlayerID: "p-1", TickRate: 20}},
		{name: "leave", msg: &Leave{ReqID: 3}},
		{name: "left", msg: &Left{RoomID: "r-1", Reason: LeftKicked, Code: 1001}},
		{name: "list", msg: &List{ReqID: 4, Kind: "arena"}},
		{name: "list_all", msg: &List{ReqID: 5}},
		{name: "rooms", msg: &Rooms{ReqID: 4, Rooms: []RoomInfo{
			{RoomID: "r-1", Kind: "arena", Players: 3, MaxPlayers: 8, Metadata: optionsSmall},
			{RoomID: "r-2", Kind: "arena", Players: 8, MaxPlayers: 8},
		}}},
		{name: "rooms_empty", msg: &Rooms{ReqID: 5}},
		{name: "presence", msg: &Presence{RoomID: "r-1", Event: PresenceJoin, PlayerID: "p-2"}},
		{name: "state_arena", msg: &State{Tick: 1200, ServerTimeNs: 1700000000123456789, Body: arenaBody(arenaPlayers2)}, arena: true},
		{name: "arena_input", msg: &ArenaInput{Seq: 17, DX: 0.5, DY: -1}},
	}
}

// edgeSamples exercise limits and extreme values.
func edgeSamples() []sample {
	long := func(n int) string { return strings.Repeat("x", n) }
	return []sample{
		{name: "hello_limits", msg: &Hello{Version: math.MaxUint32, Token: long(MaxTokenLen), Client: long(MaxClientLen)}},
		{name: "hello_unicode", msg: &Hello{Version: 1, Client: "jeu/1 ünïcødé 🎮"}},
		{name: "welcome_zero", msg: &Welcome{}},
		{name: "welcome_limits", msg: &Welcome{Version: math.MaxUint32, SessionID: long(MaxIDLen), Node: long(MaxNodeLen),
			PingIntervalMs: math.MaxUint32, PingTimeoutMs: 128, MaxMessage: 1 << 16, ResumeToken: long(MaxTokenLen)}},
		{name: "ping_zero", msg: &Ping{}},
		{name: "ping_max", msg: &Ping{Nonce: math.MaxUint32, RTTMicros: 255, Ack: math.MaxUint64}},
		{name: "pong_max", msg: &Pong{Nonce: math.MaxUint32, Ack: math.MaxUint64}},
		{name: "error_limits", msg: &ErrorMsg{Code: math.MaxUint16, Message: long(MaxTextLen), Ref: math.MaxUint16, ReqID: math.MaxUint32}},
		{name: "kick_zero", msg: &Kick{}},
		{name: "move_limits", msg: &Move{URL: long(MaxURLLen), ResumeToken: long(MaxTokenLen), DelayMs: math.MaxUint32}},
		{name: "resume_max", msg: &Resume{SessionID: long(MaxIDLen), ResumeToken: "t", LastSeq: math.MaxUint64, Token: long(MaxTokenLen)}},
		{name: "resumed_max", msg: &Resumed{SessionID: "s", FromSeq: math.MaxUint64, ClientSeq: math.MaxUint64, ResumeToken: "t"}},
		{name: "join_create", msg: &Join{ReqID: math.MaxUint32, Mode: JoinCreate, Kind: long(MaxIDLen), RoomID: long(MaxIDLen),
			Options: []byte{0x92, 0x01, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}}},
		{name: "join_zero", msg: &Join{}},
		{name: "joined_limits", msg: &Joined{ReqID: 65536, RoomID: long(MaxIDLen), Kind: long(MaxIDLen), PlayerID: long(MaxIDLen), TickRate: 60}},
		{name: "leave_zero", msg: &Leave{}},
		{name: "left_dropped", msg: &Left{RoomID: "r", Reason: LeftDropped, Code: CodeInternal}},
		{name: "left_future_reason", msg: &Left{RoomID: "r", Reason: 200}},
		{name: "list_long_kind", msg: &List{ReqID: 1, Kind: long(MaxIDLen)}},
		{name: "rooms_many", msg: &Rooms{ReqID: 1, Rooms: manyRooms(MaxRooms)}},
		{name: "presence_resume", msg: &Presence{RoomID: "r", Event: PresenceResume, PlayerID: "p"}},
		{name: "presence_future_event", msg: &Presence{Event: 99}},
		{name: "state_negative_time", msg: &State{Tick: math.MaxUint64, ServerTimeNs: math.MinInt64, Body: []byte{0x2a}}},
		{name: "state_nil_body", msg: &State{Tick: 1}},
		{name: "state_arena_max", msg: &State{Tick: 7, ServerTimeNs: -1, Body: arenaBody(manyPlayers(MaxArenaPlayers))}, arena: true},
		{name: "arena_input_extremes", msg: &ArenaInput{Seq: math.MaxUint32, DX: math.MaxFloat32, DY: -math.SmallestNonzeroFloat32}},
		{name: "arena_input_negzero", msg: &ArenaInput{DX: float32(math.Copysign(0, -1))}},
	}
}

func manyRooms(n int) []RoomInfo {
	rooms := make([]RoomInfo, n)
	for i := range rooms {
		rooms[i] = RoomInfo{RoomID: "r-" + strconv.Itoa(i), Kind: "arena", Players: uint32(i % 9), MaxPlayers: 8}
	}
	return rooms
}

func manyPlayers(n int) ArenaState {
	s := ArenaState{Players: make([]ArenaPlayer, n)}
	for i := range s.Players {
		s.Players[i] = ArenaPlayer{ID: []byte("p-" + strconv.Itoa(i)), X: float32(i) * 0.5, Y: -float32(i), LastSeq: uint32(i * 1000)}
	}
	return s
}

// players8 is the 8-player arena state of the benchmarks.
func players8() ArenaState {
	s := ArenaState{Players: make([]ArenaPlayer, 8)}
	for i := range s.Players {
		s.Players[i] = ArenaPlayer{
			ID:      []byte("player-" + strconv.Itoa(i)),
			X:       123.456 + float32(i)*10.25,
			Y:       -78.9 - float32(i)*3.5,
			LastSeq: 100000 + uint32(i),
		}
	}
	return s
}
