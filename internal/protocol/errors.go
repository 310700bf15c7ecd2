package protocol

import (
	"errors"
	"fmt"
	"strconv"
)

// Code is an error code carried by [ErrorMsg] and [Kick] and by decoding
// errors. Codes below [FirstGameCode] are reserved for the system; games
// use codes from 1000 up.
type Code uint16

// FirstGameCode is the lowest game-defined error code.
const FirstGameCode Code = 1000

// System error codes.
const (
	CodeBadRequest         Code = 400 // malformed message body
	CodeUnauthorized       Code = 401 // missing or rejected credentials
	CodeForbidden          Code = 403 // not allowed
	CodeRoomNotFound       Code = 404 // no such room
	CodeUnknownType        Code = 405 // unknown message type
	CodeNotInRoom          Code = 406 // a room message outside a room
	CodeHelloTimeout       Code = 408 // no HELLO in time
	CodeAlreadyInRoom      Code = 409 // JOIN while in a room
	CodeRoomFull           Code = 410 // the room has no free seat
	CodeRoomLocked         Code = 411 // the room accepts no new players
	CodeTooLarge           Code = 413 // a field or message over its limit
	CodeResumeFailed       Code = 412 // the session cannot be resumed: start over with HELLO
	CodeInvalidOptions     Code = 422 // room options rejected
	CodeUnsupportedVersion Code = 426 // protocol version not spoken
	CodeHelloRequired      Code = 428 // a message before HELLO
	CodeRateLimited        Code = 429 // over the message rate limit
	CodeInternal           Code = 500 // server fault
	CodeUnavailable        Code = 503 // server full, draining or overloaded
)

var codeNames = map[Code]string{
	CodeBadRequest:         "bad_request",
	CodeUnauthorized:       "unauthorized",
	CodeForbidden:          "forbidden",
	CodeRoomNotFound:       "room_not_found",
	CodeUnknownType:        "unknown_type",
	CodeNotInRoom:          "not_in_room",
	CodeHelloTimeout:       "hello_timeout",
	CodeAlreadyInRoom:      "already_in_room",
	CodeRoomFull:           "room_full",
	CodeRoomLocked:         "room_locked",
	CodeTooLarge:           "too_large",
	CodeResumeFailed:       "resume_failed",
	CodeInvalidOptions:     "invalid_options",
	CodeUnsupportedVersion: "unsupported_version",
	CodeHelloRequired:      "hello_required",
	CodeRateLimited:        "rate_limited",
	CodeInternal:           "internal",
	CodeUnavailable:        "unavailable",
}

// IsGame reports whether c is in the game-defined range.
func (c Code) IsGame() bool { return c >= FirstGameCode }

// String returns the snake_case name of a system code ("bad_request"),
// "game_error(1001)" for a game code and "code(499)" otherwise.
func (c Code) String() string {
	if name, ok := codeNames[c]; ok {
		return name
	}
	if c.IsGame() {
		return "game_error(" + strconv.Itoa(int(c)) + ")"
	}
	return "code(" + strconv.Itoa(int(c)) + ")"
}

// Error is an error with a protocol [Code]. Decoders return *Error; the
// session layer turns one into an [ErrorMsg] for the peer.
type Error struct {
	Code    Code
	Message string
}

// Error returns the code name followed by the message, for example
// "too_large: hello: field 2 (client): string of 200 bytes, limit 128".
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Message
}

// NewError returns an *Error with the given code and message.
func NewError(code Code, message string) *Error {
	return &Error{Code: code, Message: message}
}

// errorf returns an *Error with a formatted message.
func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of the first *Error in err's chain,
// [CodeInternal] for any other non-nil error and 0 for nil.
func CodeOf(err error) Code {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
