package protocol

import "strconv"

// Message is implemented by every message struct of the protocol: the
// system messages and [ArenaInput].
type Message interface {
	// Type returns the message type written in the prefix.
	Type() MsgType
	// Append appends the whole message, type prefix and body, to dst.
	Append(dst []byte) []byte
	// Decode decodes a body (the bytes after the prefix) into the
	// message. On failure it returns an *Error and the message holds
	// unspecified values.
	Decode(body []byte) error
}

// Hello (C) opens a session. It must be the first message on a
// connection.
type Hello struct {
	Version uint32 // protocol version the client speaks; required
	Token   string // authentication token, up to MaxTokenLen bytes; optional
	Client  string // client name/version, up to MaxClientLen bytes; optional
}

// Type returns [TypeHello].
func (*Hello) Type() MsgType { return TypeHello }

// Append appends the whole message to dst.
func (m *Hello) Append(dst []byte) []byte {
	dst = AppendType(dst, TypeHello)
	dst = AppendArrayLen(dst, 3)
	dst = AppendUint(dst, uint64(m.Version))
	dst = appendOptString(dst, m.Token)
	return appendOptString(dst, m.Client)
}

// Decode decodes a HELLO body.
func (m *Hello) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "hello", 1)
	m.Version = f.u32("version")
	m.Token = f.str("token", MaxTokenLen)
	m.Client = f.str("client", MaxClientLen)
	return f.close()
}

// Welcome (S) accepts a session and gives its parameters.
type Welcome struct {
	Version        uint32 // protocol version in use
	SessionID      string // up to MaxIDLen bytes
	Node           string // name of the serving node, up to MaxNodeLen bytes
	PingIntervalMs uint32 // the server pings every this many milliseconds
	PingTimeoutMs  uint32 // grace after an interval before a silent peer is dead
	MaxMessage     uint32 // largest accepted message in bytes
	ResumeToken    string // token for RESUME, up to MaxTokenLen bytes; empty if resuming is off
}

// Type returns [TypeWelcome].
func (*Welcome) Type() MsgType { return TypeWelcome }

// Append appends the whole message to dst.
func (m *Welcome) Append(dst []byte) []byte {
	dst = AppendType(dst, TypeWelcome)
	dst = AppendArrayLen(dst, 7)
	dst = AppendUint(dst, uint64(m.Version))
	dst = AppendString(dst, m.SessionID)
	dst = AppendString(dst, m.Node)
	dst = AppendUint(dst, uint64(m.PingIntervalMs))
	dst = AppendUint(dst, uint64(m.PingTimeoutMs))
	dst = AppendUint(dst, uint64(m.MaxMessage))
	return appendOptString(dst, m.ResumeToken)
}

// Decode decodes a WELCOME body.
func (m *Welcome) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "welcome", 0)
	m.Version = f.u32("version")
	m.SessionID = f.str("sessionID", MaxIDLen)
	m.Node = f.str("node", MaxNodeLen)
	m.PingIntervalMs = f.u32("pingIntervalMs")
	m.PingTimeoutMs = f.u32("pingTimeoutMs")
	m.MaxMessage = f.u32("maxMessage")
	m.ResumeToken = f.str("resumeToken", MaxTokenLen)
	return f.close()
}

// Ping (both directions) probes the peer, which answers with a [Pong]
// carrying the same nonce.
type Ping struct {
	Nonce     uint32 // required
	RTTMicros uint32 // the sender's latest measured round trip in µs; 0 = unknown
	// Ack is the sequence number of the last sequenced message the sender
	// received from the peer (0 = none): the peer may forget everything up
	// to it. See "Sequence numbers and resume" in docs/protocol.md.
	Ack uint64
}

// Type returns [TypePing].
func (*Ping) Type() MsgType { return TypePing }

// Append appends the whole message to dst.
func (m *Ping) Append(dst []byte) []byte {
	dst = append(dst, byte(TypePing>>8), byte(TypePing), mpFixArray|3)
	dst = AppendUint(dst, uint64(m.Nonce))
	dst = AppendUint(dst, uint64(m.RTTMicros))
	return AppendUint(dst, m.Ack)
}

// Decode decodes a PING body without allocating.
func (m *Ping) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "ping", 1)
	m.Nonce = f.u32("nonce")
	m.RTTMicros = f.u32("rttUs")
	m.Ack = f.u64("ack")
	return f.close()
}

// Pong (both directions) answers a [Ping].
type Pong struct {
	Nonce uint32 // the nonce of the ping answered; required
	// Ack is as in [Ping]: the sequence number of the last sequenced
	// message the sender received (0 = none). The server pings when the
	// messages a client has not acknowledged pile up, and trims its replay
	// buffer when the answer comes.
	Ack uint64
}

// Type returns [TypePong].
func (*Pong) Type() MsgType { return TypePong }

// Append appends the whole message to dst.
func (m *Pong) Append(dst []byte) []byte {
	dst = append(dst, byte(TypePong>>8), byte(TypePong), mpFixArray|2)
	dst = AppendUint(dst, uint64(m.Nonce))
	return AppendUint(dst, m.Ack)
}

// Decode decodes a PONG body without allocating.
func (m *Pong) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "pong", 1)
	m.Nonce = f.u32("nonce")
	m.Ack = f.u64("ack")
	return f.close()
}

// ErrorMsg (S) reports that a request failed. The connection stays open.
type ErrorMsg struct {
	Code    Code    // required
	Message string  // human-readable detail, up to MaxTextLen bytes
	Ref     MsgType // type of the message that caused it; 0 = none
	ReqID   uint32  // request id it answers; 0 = none
}

// Type returns [TypeError].
func (*ErrorMsg) Type() MsgType { return TypeError }

// Append appends the whole message to dst.
func (m *ErrorMsg) Append(dst []byte) []byte {
	dst = AppendType(dst, TypeError)
	dst = AppendArrayLen(dst, 4)
	dst = AppendUint(dst, uint64(m.Code))
	dst = AppendString(dst, m.Message)
	dst = AppendUint(dst, uint64(m.Ref))
	return AppendUint(dst, uint64(m.ReqID))
}

// Decode decodes an ERROR body.
func (m *ErrorMsg) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "error", 1)
	m.Code = Code(f.u16("code"))
	m.Message = f.str("message", MaxTextLen)
	m.Ref = MsgType(f.u16("ref"))
	m.ReqID = f.u32("reqID")
	return f.close()
}

// Kick (S) announces that the server is about to close the connection; it
// is sent just before the WebSocket close frame.
type Kick struct {
	Code   Code
	Reason string // up to MaxTextLen bytes
}

// Type returns [TypeKick].
func (*Kick) Type() MsgType { return TypeKick }

// Append appends the whole message to dst.
func (m *Kick) Append(dst []byte) []byte {
	dst = AppendType(dst, TypeKick)
	dst = AppendArrayLen(dst, 2)
	dst = AppendUint(dst, uint64(m.Code))
	return AppendString(dst, m.Reason)
}

// Decode decodes a KICK body.
func (m *Kick) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "kick", 0)
	m.Code = Code(f.u16("code"))
	m.Reason = f.str("reason", MaxTextLen)
	return f.close()
}

// Move (S) asks the client to reconnect to URL after DelayMs and resume
// its session there with ResumeToken.
type Move struct {
	URL         string // up to MaxURLLen bytes
	ResumeToken string // up to MaxTokenLen bytes
	DelayMs     uint32
}

// Type returns [TypeMove].
func (*Move) Type() MsgType { return TypeMove }

// Append appends the whole message to dst.
func (m *Move) Append(dst []byte) []byte {
	dst = AppendType(dst, TypeMove)
	dst = AppendArrayLen(dst, 3)
	dst = AppendString(dst, m.URL)
	dst = AppendString(dst, m.ResumeToken)
	return AppendUint(dst, uint64(m.DelayMs))
}

// Decode decodes a MOVE body.
func (m *Move) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "move", 0)
	m.URL = f.str("url", MaxURLLen)
	m.ResumeToken = f.str("resumeToken", MaxTokenLen)
	m.DelayMs = f.u32("delayMs")
	return f.close()
}

// Resume (C) opens a connection by resuming an earlier session instead of
// sending [Hello].
type Resume struct {
	SessionID   string // up to MaxIDLen bytes
	ResumeToken string // up to MaxTokenLen bytes
	LastSeq     uint64 // sequence number of the last message the client received
	Token       string // authentication token, up to MaxTokenLen bytes; optional
}

// Type returns [TypeResume].
func (*Resume) Type() MsgType { return TypeResume }

// Append appends the whole message to dst.
func (m *Resume) Append(dst []byte) []byte {
	dst = AppendType(dst, TypeResume)
	dst = AppendArrayLen(dst, 4)
	dst = AppendString(dst, m.SessionID)
	dst = AppendString(dst, m.ResumeToken)
	dst = AppendUint(dst, m.LastSeq)
	return appendOptString(dst, m.Token)
}

// Decode decodes a RESUME body.
func (m *Resume) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "resume", 0)
	m.SessionID = f.str("sessionID", MaxIDLen)
	m.ResumeToken = f.str("resumeToken", MaxTokenLen)
	m.LastSeq = f.u64("lastSeq")
	m.Token = f.str("token", MaxTokenLen)
	return f.close()
}

// Resumed (S) confirms a [Resume]; the server replays its messages from
// sequence number FromSeq on. ClientSeq is the number of sequenced
// messages the server has received from the client on this session: the
// client re-sends those it sent after that, and no others.
type Resumed struct {
	SessionID string // up to MaxIDLen bytes
	FromSeq   uint64
	ClientSeq uint64
	// ResumeToken replaces the one used: a resume token works once.
	ResumeToken string // up to MaxTokenLen bytes
}

// Type returns [TypeResumed].
func (*Resumed) Type() MsgType { return TypeResumed }

// Append appends the whole message to dst.
func (m *Resumed) Append(dst []byte) []byte {
	dst = AppendType(dst, TypeResumed)
	dst = AppendArrayLen(dst, 4)
	dst = AppendString(dst, m.SessionID)
	dst = AppendUint(dst, m.FromSeq)
	dst = AppendUint(dst, m.ClientSeq)
	return appendOptString(dst, m.ResumeToken)
}

// Decode decodes a RESUMED body.
func (m *Resumed) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "resumed", 0)
	m.SessionID = f.str("sessionID", MaxIDLen)
	m.FromSeq = f.u64("fromSeq")
	m.ClientSeq = f.u64("clientSeq")
	m.ResumeToken = f.str("resumeToken", MaxTokenLen)
	return f.close()
}

// JoinMode selects how [Join] finds a room.
type JoinMode uint8

// Join modes.
const (
	JoinOrCreate JoinMode = 0 // join a room of the kind with a free seat, or create one
	JoinCreate   JoinMode = 1 // create a new room of the kind
	JoinByID     JoinMode = 2 // join the room with the given ID
)

// String returns the mode's name.
func (m JoinMode) String() string {
	switch m {
	case JoinOrCreate:
		return "join_or_create"
	case JoinCreate:
		return "create"
	case JoinByID:
		return "join_by_id"
	}
	return "join_mode(" + strconv.Itoa(int(m)) + ")"
}

// Join (C) asks to join a room. The server answers [Joined] or an
// [ErrorMsg] with the same ReqID.
type Join struct {
	ReqID   uint32
	Mode    JoinMode // one of the defined modes; others are rejected
	Kind    string   // room type, up to MaxIDLen bytes
	RoomID  string   // for JoinByID, up to MaxIDLen bytes
	Options []byte   // raw msgpack value for the room; empty = nil
}

// Type returns [TypeJoin].
func (*Join) Type() MsgType { return TypeJoin }

// Append appends the whole message to dst.
func (m *Join) Append(dst []byte) []byte {
	dst = AppendType(dst, TypeJoin)
	dst = AppendArrayLen(dst, 5)
	dst = AppendUint(dst, uint64(m.ReqID))
	dst = AppendUint(dst, uint64(m.Mode))
	dst = AppendString(dst, m.Kind)
	dst = AppendString(dst, m.RoomID)
	return AppendRaw(dst, m.Options)
}

// Decode decodes a JOIN body. Options is a sub-slice of body.
func (m *Join) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "join", 0)
	m.ReqID = f.u32("reqID")
	m.Mode = JoinMode(f.u8("mode"))
	if m.Mode > JoinByID && f.err == nil {
		f.failf("mode", "unknown join mode "+strconv.Itoa(int(m.Mode)))
	}
	m.Kind = f.str("kind", MaxIDLen)
	m.RoomID = f.str("roomID", MaxIDLen)
	m.Options = f.raw("options")
	return f.close()
}

// Joined (S) confirms a [Join].
type Joined struct {
	ReqID    uint32
	RoomID   string // up to MaxIDLen bytes
	Kind     string // up to MaxIDLen bytes
	PlayerID string // the client's player ID in the room, up to MaxIDLen bytes
	TickRate uint32 // room simulation ticks per second
}

// Type returns [TypeJoined].
func (*Joined) Type() MsgType { return TypeJoined }

// Append appends the whole message to dst.
func (m *Joined) Append(dst []byte) []byte {
	dst = AppendType(dst, TypeJoined)
	dst = AppendArrayLen(dst, 5)
	dst = AppendUint(dst, uint64(m.ReqID))
	dst = AppendString(dst, m.RoomID)
	dst = AppendString(dst, m.Kind)
	dst = AppendString(dst, m.PlayerID)
	return AppendUint(dst, uint64(m.TickRate))
}

// Decode decodes a JOINED body.
func (m *Joined) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "joined", 0)
	m.ReqID = f.u32("reqID")
	m.RoomID = f.str("roomID", MaxIDLen)
	m.Kind = f.str("kind", MaxIDLen)
	m.PlayerID = f.str("playerID", MaxIDLen)
	m.TickRate = f.u32("tickRate")
	return f.close()
}

// Leave (C) asks to leave the current room. The server answers [Left]
// or an [ErrorMsg] with the same ReqID.
type Leave struct {
	ReqID uint32
}

// Type returns [TypeLeave].
func (*Leave) Type() MsgType { return TypeLeave }

// Append appends the whole message to dst.
func (m *Leave) Append(dst []byte) []byte {
	dst = append(dst, byte(TypeLeave>>8), byte(TypeLeave), mpFixArray|1)
	return AppendUint(dst, uint64(m.ReqID))
}

// Decode decodes a LEAVE body.
func (m *Leave) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "leave", 0)
	m.ReqID = f.u32("reqID")
	return f.close()
}

// LeftReason tells why a session is no longer in a room.
type LeftReason uint8

// Reasons for [Left]. Decoders accept other values so that servers can
// add reasons; clients treat an unknown reason like LeftDisposed.
const (
	LeftNormal   LeftReason = 0 // the client asked to leave
	LeftKicked   LeftReason = 1 // removed by the room
	LeftDisposed LeftReason = 2 // the room was disposed
	LeftDropped  LeftReason = 3 // dropped or timed out
)

// String returns the reason's name.
func (r LeftReason) String() string {
	switch r {
	case LeftNormal:
		return "left"
	case LeftKicked:
		return "kicked"
	case LeftDisposed:
		return "disposed"
	case LeftDropped:
		return "dropped"
	}
	return "left_reason(" + strconv.Itoa(int(r)) + ")"
}

// Left (S) tells the client it is no longer in a room, in answer to
// [Leave] or on the server's initiative.
type Left struct {
	RoomID string // up to MaxIDLen bytes
	Reason LeftReason
	Code   Code // detail for kicks and drops; 0 = none
}

// Type returns [TypeLeft].
func (*Left) Type() MsgType { return TypeLeft }

// Append appends the whole message to dst.
func (m *Left) Append(dst []byte) []byte {
	dst = AppendType(dst, TypeLeft)
	dst = AppendArrayLen(dst, 3)
	dst = AppendString(dst, m.RoomID)
	dst = AppendUint(dst, uint64(m.Reason))
	return AppendUint(dst, uint64(m.Code))
}

// Decode decodes a LEFT body.
func (m *Left) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "left", 0)
	m.RoomID = f.str("roomID", MaxIDLen)
	m.Reason = LeftReason(f.u8("reason"))
	m.Code = Code(f.u16("code"))
	return f.close()
}

// List (C) asks for the rooms of a kind, or of every kind when Kind is
// empty. The server answers [Rooms].
type List struct {
	ReqID uint32
	Kind  string // up to MaxIDLen bytes; empty (nil on the wire) = all kinds
}

// Type returns [TypeList].
func (*List) Type() MsgType { return TypeList }

// Append appends the whole message to dst.
func (m *List) Append(dst []byte) []byte {
	dst = AppendType(dst, TypeList)
	dst = AppendArrayLen(dst, 2)
	dst = AppendUint(dst, uint64(m.ReqID))
	return appendOptString(dst, m.Kind)
}

// Decode decodes a LIST body.
func (m *List) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "list", 0)
	m.ReqID = f.u32("reqID")
	m.Kind = f.str("kind", MaxIDLen)
	return f.close()
}

// RoomInfo describes one room in [Rooms].
type RoomInfo struct {
	RoomID     string // up to MaxIDLen bytes
	Kind       string // up to MaxIDLen bytes
	Players    uint32
	MaxPlayers uint32
	Metadata   []byte // raw msgpack value published by the room; empty = nil
}

// Rooms (S) answers [List].
type Rooms struct {
	ReqID uint32
	Rooms []RoomInfo // at most MaxRooms entries
}

// Type returns [TypeRooms].
func (*Rooms) Type() MsgType { return TypeRooms }

// Append appends the whole message to dst.
func (m *Rooms) Append(dst []byte) []byte {
	dst = AppendType(dst, TypeRooms)
	dst = AppendArrayLen(dst, 2)
	dst = AppendUint(dst, uint64(m.ReqID))
	dst = AppendArrayLen(dst, len(m.Rooms))
	for i := range m.Rooms {
		ri := &m.Rooms[i]
		dst = AppendArrayLen(dst, 5)
		dst = AppendString(dst, ri.RoomID)
		dst = AppendString(dst, ri.Kind)
		dst = AppendUint(dst, uint64(ri.Players))
		dst = AppendUint(dst, uint64(ri.MaxPlayers))
		dst = AppendRaw(dst, ri.Metadata)
	}
	return dst
}

// Decode decodes a ROOMS body. Each Metadata is a sub-slice of body; an
// empty list decodes as a nil Rooms.
func (m *Rooms) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "rooms", 0)
	m.ReqID = f.u32("reqID")
	n := f.list("rooms", MaxRooms)
	m.Rooms = nil
	if n > 0 {
		m.Rooms = make([]RoomInfo, n)
	}
	for i := range m.Rooms {
		saved := f.enter("room", i)
		ri := &m.Rooms[i]
		ri.RoomID = f.str("roomID", MaxIDLen)
		ri.Kind = f.str("kind", MaxIDLen)
		ri.Players = f.u32("players")
		ri.MaxPlayers = f.u32("maxPlayers")
		ri.Metadata = f.raw("metadata")
		f.leave(saved)
		if f.err != nil {
			return f.err
		}
	}
	return f.close()
}

// PresenceEvent is what happened to a player in [Presence].
type PresenceEvent uint8

// Presence events. Decoders accept other values so that servers can add
// events; clients ignore events they do not know.
const (
	PresenceJoin   PresenceEvent = 0 // the player joined the room
	PresenceLeave  PresenceEvent = 1 // the player left the room
	PresenceDrop   PresenceEvent = 2 // the player's connection dropped; it may resume
	PresenceResume PresenceEvent = 3 // a dropped player resumed
)

// String returns the event's name.
func (e PresenceEvent) String() string {
	switch e {
	case PresenceJoin:
		return "join"
	case PresenceLeave:
		return "leave"
	case PresenceDrop:
		return "drop"
	case PresenceResume:
		return "resume"
	}
	return "presence_event(" + strconv.Itoa(int(e)) + ")"
}

// Presence (S) tells the players of a room that another player joined,
// left, dropped or resumed.
type Presence struct {
	RoomID   string // up to MaxIDLen bytes
	Event    PresenceEvent
	PlayerID string // up to MaxIDLen bytes
}

// Type returns [TypePresence].
func (*Presence) Type() MsgType { return TypePresence }

// Append appends the whole message to dst.
func (m *Presence) Append(dst []byte) []byte {
	dst = AppendType(dst, TypePresence)
	dst = AppendArrayLen(dst, 3)
	dst = AppendString(dst, m.RoomID)
	dst = AppendUint(dst, uint64(m.Event))
	return AppendString(dst, m.PlayerID)
}

// Decode decodes a PRESENCE body.
func (m *Presence) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "presence", 0)
	m.RoomID = f.str("roomID", MaxIDLen)
	m.Event = PresenceEvent(f.u8("event"))
	m.PlayerID = f.str("playerID", MaxIDLen)
	return f.close()
}

// State (S) is a room's state broadcast. Body is the game's msgpack value,
// for the arena an encoded [ArenaState].
type State struct {
	Tick         uint64 // room tick the state belongs to
	ServerTimeNs int64  // Unix nanoseconds when the server encoded it
	Body         []byte // raw msgpack value; empty = nil
}

// Type returns [TypeState].
func (*State) Type() MsgType { return TypeState }

// Append appends the whole message to dst without allocating when dst
// has room.
func (m *State) Append(dst []byte) []byte {
	dst = AppendStateHeader(dst, m.Tick, m.ServerTimeNs)
	return AppendRaw(dst, m.Body)
}

// AppendStateHeader appends a STATE message up to, not including, its
// body, so that a game can append its body value in place after it
// instead of encoding it into a separate buffer first. The caller must
// append exactly one msgpack value.
func AppendStateHeader(dst []byte, tick uint64, serverTimeNs int64) []byte {
	dst = append(dst, byte(TypeState>>8), byte(TypeState), mpFixArray|3)
	dst = AppendUint(dst, tick)
	return AppendInt(dst, serverTimeNs)
}

// Decode decodes a STATE body without allocating. Body is a sub-slice of
// body, valid until the input buffer is reused.
func (m *State) Decode(body []byte) error {
	var f fieldReader
	f.begin(body, "state", 0)
	m.Tick = f.u64("tick")
	m.ServerTimeNs = f.i64("serverTimeNs")
	m.Body = f.raw("body")
	return f.close()
}
