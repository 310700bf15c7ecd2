package protocol

import (
	"strconv"
	"time"
)

// CloseCode is a WebSocket close status code used by the server. The
// application range 4000–4499 means the client may reconnect; 4500–4999
// means it must not reconnect automatically.
type CloseCode uint16

// WebSocket close codes (RFC 6455 and the server's application codes).
const (
	CloseNormal             CloseCode = 1000 // normal closure
	CloseGoingAway          CloseCode = 1001 // server shutting down; reconnect with backoff
	CloseProtocolError      CloseCode = 1002 // bad WebSocket framing
	CloseUnsupportedData    CloseCode = 1003 // a text frame or other unsupported data
	CloseInvalidPayload     CloseCode = 1007 // close payload not valid UTF-8
	ClosePolicyViolation    CloseCode = 1008 // sustained rate limit or malformed messages
	CloseMessageTooBig      CloseCode = 1009 // message over the maximum size
	CloseInternalError      CloseCode = 1011 // server fault
	CloseHeartbeatTimeout   CloseCode = 4000 // connection silent too long
	CloseSlowConsumer       CloseCode = 4001 // outbound queue over its bound
	CloseDraining           CloseCode = 4002 // server draining; reconnect after a jittered delay
	CloseHelloTimeout       CloseCode = 4003 // no HELLO in time
	CloseResumeFailed       CloseCode = 4004 // the fallback stream could not resume: open a new session
	CloseUnauthorized       CloseCode = 4500 // credentials rejected
	CloseUnsupportedVersion CloseCode = 4501 // protocol version not spoken
	CloseKicked             CloseCode = 4502 // removed by the server
)

var closeNames = map[CloseCode]string{
	CloseNormal:             "normal",
	CloseGoingAway:          "going_away",
	CloseProtocolError:      "protocol_error",
	CloseUnsupportedData:    "unsupported_data",
	CloseInvalidPayload:     "invalid_payload",
	ClosePolicyViolation:    "policy_violation",
	CloseMessageTooBig:      "message_too_big",
	CloseInternalError:      "internal_error",
	CloseHeartbeatTimeout:   "heartbeat_timeout",
	CloseSlowConsumer:       "slow_consumer",
	CloseDraining:           "draining",
	CloseHelloTimeout:       "hello_timeout",
	CloseResumeFailed:       "resume_failed",
	CloseUnauthorized:       "unauthorized",
	CloseUnsupportedVersion: "unsupported_version",
	CloseKicked:             "kicked",
}

// String returns the snake_case name of a known code, else "close(N)".
func (c CloseCode) String() string {
	if name, ok := closeNames[c]; ok {
		return name
	}
	return "close(" + strconv.Itoa(int(c)) + ")"
}

// Terminal reports whether a client must not reconnect automatically
// after this code (the range 4500–4999).
func (c CloseCode) Terminal() bool { return c >= 4500 && c <= 4999 }

// Defaults of the parameters a server advertises or enforces. Servers may
// be configured otherwise; [Welcome] carries the values in force.
const (
	// DefaultMaxMessage is the default largest message, in bytes.
	DefaultMaxMessage = 64 << 10
	// DefaultPingInterval is the default interval between server pings.
	DefaultPingInterval = 10 * time.Second
	// DefaultPingTimeout is the default grace after a ping interval before
	// a silent connection is closed.
	DefaultPingTimeout = 10 * time.Second
	// HelloTimeout is how long a new connection has to send HELLO.
	HelloTimeout = 10 * time.Second
)
