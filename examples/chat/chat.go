// Package chat is an example game: rooms of named players who exchange
// text. Messages (docs/protocol.md lists them):
//
//   - Say (client → server, 0x1100): [text str], 1 to 500 bytes.
//   - Said (server → all, 0x1101): [playerID str, name str, text str].
//   - Roster (server → one, 0x1102): [[playerID str, name str], ...], the
//     members (the joiner last), sent to a player who joins.
//   - History (server → one, 0x1103): [[playerID, name, text], ...], the
//     last 50 messages, sent to a player who joins.
//   - Joined (server → the others, 0x1104): [playerID str, name str], a
//     member who joined after them.
//   - Left (server → the others, 0x1105): [playerID str], a member who left.
//
// A member keeps the roster it was sent up to date from Joined and Left, so
// a join costs one small message per member rather than the whole list.
//
// Join options: {"name": "alice"} (1 to 32 bytes; default "guest-" and the
// player id).
package chat

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gameserver/gameserver/game"
)

// Message types.
const (
	MsgSay     game.MsgType = 0x1100
	MsgSaid    game.MsgType = 0x1101
	MsgRoster  game.MsgType = 0x1102
	MsgHistory game.MsgType = 0x1103
	MsgJoined  game.MsgType = 0x1104
	MsgLeft    game.MsgType = 0x1105
)

// Config is the chat room type's configuration: a slow tick, many seats.
var Config = game.RoomConfig{TickRate: 1, MaxPlayers: 64, EmptyTimeout: 30 * time.Second}

const historyLen = 50

// Say is the client's message.
type Say struct {
	_msgpack struct{} `msgpack:",as_array"`
	Text     string
}

type line struct {
	_msgpack struct{} `msgpack:",as_array"`
	PlayerID string
	Name     string
	Text     string
}

type member struct {
	_msgpack struct{} `msgpack:",as_array"`
	PlayerID string
	Name     string
}

// Chat is the room handler.
type Chat struct {
	game.Base
	history []line
}

// New creates a chat room handler.
func New() game.Handler { return &Chat{} }

// OnCreate routes Say.
func (c *Chat) OnCreate(r game.Room, _ game.Options) error {
	game.On(r, MsgSay, c.say)
	return nil
}

// OnJoin checks the name, sends the joiner the history and the roster, and
// tells the others.
func (c *Chat) OnJoin(r game.Room, p game.Player, req game.JoinRequest) error {
	name := strings.TrimSpace(req.Options.String("name", ""))
	if name == "" {
		name = "guest-" + p.ID()
	}
	if len(name) > 32 || !utf8.ValidString(name) {
		return &game.Error{Code: game.ErrInvalidOptions.Code, Message: "name must be 1 to 32 bytes of UTF-8"}
	}
	p.SetData(name)
	if err := r.Send(p, MsgHistory, c.history); err != nil {
		return err
	}
	// p is not seated while OnJoin runs: Players and Broadcast leave it out.
	if err := r.Send(p, MsgRoster, &rosterBody{members: r.Players(), joining: p}); err != nil {
		return err
	}
	return r.Broadcast(MsgJoined, member{PlayerID: p.ID(), Name: name})
}

// rosterBody encodes the roster straight from the room's players (and the
// joiner, last), without building a list first.
type rosterBody struct {
	members []game.Player
	joining game.Player
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (b *rosterBody) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(len(b.members) + 1); err != nil {
		return err
	}
	for _, p := range b.members {
		if err := encodeMember(enc, p); err != nil {
			return err
		}
	}
	return encodeMember(enc, b.joining)
}

func encodeMember(enc *msgpack.Encoder, p game.Player) error {
	_ = enc.EncodeArrayLen(2)
	_ = enc.EncodeString(p.ID())
	return enc.EncodeString(p.Data().(string))
}

func (c *Chat) say(r game.Room, p game.Player, s Say) error {
	text := strings.TrimSpace(s.Text)
	if text == "" || len(text) > 500 || !utf8.ValidString(text) {
		return &game.Error{Code: game.ErrBadRequest.Code, Message: "text must be 1 to 500 bytes of UTF-8"}
	}
	l := line{PlayerID: p.ID(), Name: p.Data().(string), Text: text}
	c.history = append(c.history, l)
	if len(c.history) > historyLen {
		c.history = c.history[len(c.history)-historyLen:]
	}
	return r.Broadcast(MsgSaid, l)
}

// OnLeave tells the others.
func (c *Chat) OnLeave(r game.Room, p game.Player, _ game.LeaveReason) {
	_ = r.Broadcast(MsgLeft, []string{p.ID()})
}
