package game

import (
	"github.com/vmihailenco/msgpack/v5"
)

// On routes message type t to fn with its body decoded into a T. A body
// that does not decode is refused with ErrBadRequest and never reaches fn.
// Call it in OnCreate.
func On[T any](r Room, t MsgType, fn func(r Room, p Player, v T) error) {
	r.Handle(t, func(r Room, p Player, msg Message) error {
		var v T
		if err := msgpack.Unmarshal(msg.Body, &v); err != nil {
			return &Error{Code: ErrBadRequest.Code, Message: "body of message " + hexType(t) + " does not decode: " + err.Error()}
		}
		return fn(r, p, v)
	})
}

func hexType(t MsgType) string {
	const digits = "0123456789abcdef"
	return string([]byte{'0', 'x', digits[t>>12&0xF], digits[t>>8&0xF], digits[t>>4&0xF], digits[t&0xF]})
}
