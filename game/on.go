package game

import (
	"bytes"
	"errors"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// On routes message type t to fn with its body decoded into a T. A body
// that does not decode, or has bytes after its value, is refused with
// ErrBadRequest and never reaches fn.
// Call it in OnCreate.
//
// A struct tagged `msgpack:",as_array"` (or a pointer to one) is read by
// the protocol's rules for positional bodies, so clients of a newer or
// older version of the game still get through: elements past the
// struct's fields are checked and skipped (SkipValues), and fields past
// the elements sent are zero. msgpack alone refuses an array whose length
// is not the number of fields.
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
	fields := positionalFields(reflect.TypeFor[T]())
	var fitted []byte
	r.Handle(t, func(r Room, p Player, msg Message) error {
		body := msg.Body
		if fields >= 0 {
			var err error
			if body, err = fitArray(dec, &rd, body, fields, &fitted); err != nil {
				return &Error{Code: ErrBadRequest.Code, Message: "body of message " + hexType(t) + " does not decode: " + err.Error()}
			}
		}
		rd.Reset(body)
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
		if cap(fitted) > maxFitted {
			fitted = nil // a rare large body: not kept for the room's life
		}
		return fn(r, p, *v)
	})
}

// maxFitted bounds the buffer On keeps for fitting positional bodies.
const maxFitted = 4 << 10

// positionalFields is the number of fields msgpack reads from an array
// into a value of type t, or -1 when t is not a positional struct (or
// decodes itself).
func positionalFields(t reflect.Type) int {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(reflect.TypeFor[msgpack.CustomDecoder]()) ||
		reflect.PointerTo(t).Implements(reflect.TypeFor[msgpack.Unmarshaler]()) {
		return -1
	}
	b, err := msgpack.Marshal(reflect.New(t).Interface())
	if err != nil || len(b) == 0 {
		return -1
	}
	n, hdr := arrayHeader(b)
	if hdr == 0 {
		return -1 // encoded as a map: msgpack matches names
	}
	return n
}

// arrayHeader reads the msgpack array header at the start of b: the
// element count and the header's length, or a length of 0 when b does not
// start with one.
func arrayHeader(b []byte) (n, hdr int) {
	switch c := b[0]; {
	case msgpcode.IsFixedArray(c):
		return int(c & 0x0f), 1
	case c == msgpcode.Array16 && len(b) >= 3:
		return int(b[1])<<8 | int(b[2]), 3
	case c == msgpcode.Array32 && len(b) >= 5:
		return int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4]), 5
	}
	return 0, 0
}

func appendArrayHeader(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, msgpcode.FixedArrayLow|byte(n))
	case n < 1<<16:
		return append(b, msgpcode.Array16, byte(n>>8), byte(n))
	}
	return append(b, msgpcode.Array32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// fitArray returns body with its array made fields long: extra elements
// skipped (each checked), missing ones nil, which msgpack decodes as
// zero. Anything after the array is kept, for the caller to refuse. A
// body that is not an array, or already fits, comes back as it is.
func fitArray(dec *msgpack.Decoder, rd *bytes.Reader, body []byte, fields int, buf *[]byte) ([]byte, error) {
	if len(body) == 0 {
		return body, nil
	}
	n, hdr := arrayHeader(body)
	if hdr == 0 || n == fields {
		return body, nil
	}
	elems := body[hdr:]
	rd.Reset(elems)
	dec.Reset(rd)
	offset := func() int { return len(elems) - rd.Len() }
	out := appendArrayHeader((*buf)[:0], fields)
	if n < fields {
		if err := SkipValues(dec, n); err != nil {
			return nil, err
		}
		end := offset()
		out = append(out, elems[:end]...)
		for range fields - n {
			out = append(out, msgpcode.Nil)
		}
		out = append(out, elems[end:]...)
	} else {
		if err := SkipValues(dec, fields); err != nil {
			return nil, err
		}
		cut := offset()
		if err := SkipValues(dec, n-fields); err != nil {
			return nil, err
		}
		out = append(out, elems[:cut]...)
		out = append(out, elems[offset():]...)
	}
	*buf = out
	return out, nil
}

// MaxDepth bounds how deep SkipValues lets containers nest, as the
// protocol's own decoder does.
const MaxDepth = 32

// ErrTooDeep is SkipValues' error for a value nested deeper than MaxDepth.
var ErrTooDeep = errors.New("a value nests deeper than 32 levels")

// SkipValues reads past the next n msgpack values of dec, checking that
// each is well formed and nests at most MaxDepth levels. It is for a
// msgpack.CustomDecoder that follows the protocol's rule for positional
// bodies: read the fields you know, skip the elements a newer client
// added. It does not recurse, so a hostile body cannot grow the stack.
func SkipValues(dec *msgpack.Decoder, n int) error {
	var left [MaxDepth]int // values still to skip at each level
	depth := 0
	left[0] = n
	for {
		for left[depth] <= 0 {
			if depth == 0 {
				return nil
			}
			depth--
		}
		left[depth]--
		c, err := dec.PeekCode()
		if err != nil {
			return err
		}
		var k int
		switch {
		case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
			k, err = dec.DecodeArrayLen()
		case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
			k, err = dec.DecodeMapLen()
			k *= 2
		default:
			err = dec.Skip()
		}
		if err != nil {
			return err
		}
		if k > 0 {
			if depth+1 == MaxDepth {
				return ErrTooDeep
			}
			depth++
			left[depth] = k
		}
	}
}

func hexType(t MsgType) string {
	const digits = "0123456789abcdef"
	return string([]byte{'0', 'x', digits[t>>12&0xF], digits[t>>8&0xF], digits[t>>4&0xF], digits[t&0xF]})
}
