package game

import "strconv"

// Error is an error that travels to the client in an ERROR message. Codes
// below 1000 are the system's (the Err values below); games use 1000 and
// up.
type Error struct {
	Code    uint16
	Message string
}

func (e *Error) Error() string { return "error " + strconv.Itoa(int(e.Code)) + ": " + e.Message }

// NewError returns an *Error with a game-defined code (1000 or more).
func NewError(code uint16, message string) *Error { return &Error{Code: code, Message: message} }

// System errors a Handler may return or compare against. Their codes match
// docs/protocol.md.
var (
	ErrBadRequest     = &Error{Code: 400, Message: "bad request"}
	ErrForbidden      = &Error{Code: 403, Message: "forbidden"}
	ErrUnknownMessage = &Error{Code: 405, Message: "message type not handled by this room"}
	ErrRoomFull       = &Error{Code: 410, Message: "room is full"}
	ErrRoomLocked     = &Error{Code: 411, Message: "room is locked"}
	ErrInvalidOptions = &Error{Code: 422, Message: "invalid room options"}
	ErrRateLimited    = &Error{Code: 429, Message: "rate limited"}
	ErrInternal       = &Error{Code: 500, Message: "internal error"}
)
