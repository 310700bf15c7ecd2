package game

import (
	"bytes"

	"github.com/vmihailenco/msgpack/v5"
)

// On routes message type t to fn with its body decoded into a T. A body
// that does not decode, or has bytes after its value, is refused with
// ErrBadRequest and never reaches fn.
// Call it in OnCreate.
//
// Each message is decoded into a zero T, so fn may keep it and whatever
// it points to. The decoder and the T it decodes into are the handler's
// own: a room's callbacks run one at a time, so they are reused from
// message to message without a lock or a pool, and a T that decodes
// without allocating (a struct of numbers, or one implementing
// msgpack.CustomDecoder) costs no allocation per message.
func On[T any](r Room, t MsgType, fn func(r Room, p Player, v T) error) {
	var rd bytes.Reader
	dec := msgpack.NewDecoder(&rd)
	v := new(T)
	r.Handle(t, func(r Room, p Player, msg Message) error {
		rd.Reset(msg.Body)
		dec.Reset(&rd)
		dec.UsePreallocateValues(true)
		var zero T
		*v = zero
		if err := dec.Decode(v); err != nil {
			return &Error{Code: ErrBadRequest.Code, Message: "body of message " + hexType(t) + " does not decode: " + err.Error()}
		}
		if rd.Len() != 0 {
			return &Error{Code: ErrBadRequest.Code, Message: "body of message " + hexType(t) + " has bytes after its value"}
		}
		return fn(r, p, *v)
	})
}

func hexType(t MsgType) string {
	const digits = "0123456789abcdef"
	return string([]byte{'0', 'x', digits[t>>12&0xF], digits[t>>8&0xF], digits[t>>4&0xF], digits[t&0xF]})
}
