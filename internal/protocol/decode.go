package protocol

// New returns a new zero message of type t, or nil if t is neither a
// system type nor a game type known to this package.
func New(t MsgType) Message {
	switch t {
	case TypeHello:
		return new(Hello)
	case TypeWelcome:
		return new(Welcome)
	case TypePing:
		return new(Ping)
	case TypePong:
		return new(Pong)
	case TypeError:
		return new(ErrorMsg)
	case TypeKick:
		return new(Kick)
	case TypeMove:
		return new(Move)
	case TypeResume:
		return new(Resume)
	case TypeResumed:
		return new(Resumed)
	case TypeJoin:
		return new(Join)
	case TypeJoined:
		return new(Joined)
	case TypeLeave:
		return new(Leave)
	case TypeLeft:
		return new(Left)
	case TypeList:
		return new(List)
	case TypeRooms:
		return new(Rooms)
	case TypePresence:
		return new(Presence)
	case TypeState:
		return new(State)
	case TypeArenaInput:
		return new(ArenaInput)
	}
	return nil
}

// DecodeAny decodes body as a message of type t into a newly allocated
// struct (a *Hello for TypeHello, and so on). A type unknown to this
// package fails with [CodeUnknownType]. It is meant for tools and tests;
// the server decodes into reused structs.
func DecodeAny(t MsgType, body []byte) (Message, error) {
	m := New(t)
	if m == nil {
		return nil, errorf(CodeUnknownType, "unknown message type %s", t)
	}
	if err := m.Decode(body); err != nil {
		return nil, err
	}
	return m, nil
}
