package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/gameserver/gameserver/internal/frame"
	"github.com/gobwas/ws"
)

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opContinuation = byte(ws.OpContinuation)
	opText         = byte(ws.OpText)
	opBinary       = byte(ws.OpBinary)
	opClose        = byte(ws.OpClose)
	opPing         = byte(ws.OpPing)
	opPong         = byte(ws.OpPong)
)

// CloseCode is a WebSocket close status code. The 4000-4999 range belongs to
// gameserver: 4000-4499 tell the client it may reconnect, 4500-4999 that it
// must not (docs/protocol.md has the table).
type CloseCode uint16

// Close codes sent by the server.
const (
	CloseNormal          CloseCode = 1000
	CloseGoingAway       CloseCode = 1001
	CloseProtocolError   CloseCode = 1002
	CloseUnsupportedData CloseCode = 1003
	CloseNoStatus        CloseCode = 1005 // never sent; reported when a close frame had no code
	CloseAbnormal        CloseCode = 1006 // never sent; the connection dropped without a close frame
	CloseInvalidPayload  CloseCode = 1007
	ClosePolicyViolation CloseCode = 1008
	CloseMessageTooBig   CloseCode = 1009
	CloseInternalError   CloseCode = 1011

	CloseHeartbeatTimeout   CloseCode = 4000
	CloseSlowConsumer       CloseCode = 4001
	CloseServerShutdown     CloseCode = 4002
	CloseHelloTimeout       CloseCode = 4003
	CloseUnauthorized       CloseCode = 4500
	CloseUnsupportedVersion CloseCode = 4501
	CloseKicked             CloseCode = 4502
)

// String names the code; it doubles as a metric label.
func (c CloseCode) String() string {
	switch c {
	case CloseNormal:
		return "normal"
	case CloseGoingAway:
		return "going_away"
	case CloseProtocolError:
		return "protocol_error"
	case CloseUnsupportedData:
		return "unsupported_data"
	case CloseNoStatus:
		return "no_status"
	case CloseAbnormal:
		return "abnormal"
	case CloseInvalidPayload:
		return "invalid_payload"
	case ClosePolicyViolation:
		return "policy_violation"
	case CloseMessageTooBig:
		return "message_too_big"
	case CloseInternalError:
		return "internal_error"
	case CloseHeartbeatTimeout:
		return "heartbeat_timeout"
	case CloseSlowConsumer:
		return "slow_consumer"
	case CloseServerShutdown:
		return "server_shutdown"
	case CloseHelloTimeout:
		return "hello_timeout"
	case CloseUnauthorized:
		return "unauthorized"
	case CloseUnsupportedVersion:
		return "unsupported_version"
	case CloseKicked:
		return "kicked"
	}
	return fmt.Sprintf("close_%d", uint16(c))
}

// validPeerCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 section 7.4).
func validPeerCloseCode(c uint16) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1011:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// frameHeader is a parsed client frame header.
type frameHeader struct {
	fin    bool
	rsv    byte
	op     byte
	masked bool
	mask   [4]byte
	length int64
	size   int // header bytes
}

var errShortHeader = errors.New("short header")

// parseHeader parses a frame header at the start of b. It returns
// errShortHeader while b is too short to hold the whole header, and never
// reads past len(b).
func parseHeader(b []byte) (h frameHeader, err error) {
	if len(b) < 2 {
		return h, errShortHeader
	}
	h.fin = b[0]&0x80 != 0
	h.rsv = (b[0] >> 4) & 0x7
	h.op = b[0] & 0x0F
	h.masked = b[1]&0x80 != 0
	l := int64(b[1] & 0x7F)
	h.size = 2
	switch l {
	case 126:
		if len(b) < 4 {
			return h, errShortHeader
		}
		l = int64(binary.BigEndian.Uint16(b[2:4]))
		h.size = 4
	case 127:
		if len(b) < 10 {
			return h, errShortHeader
		}
		u := binary.BigEndian.Uint64(b[2:10])
		if u>>63 != 0 {
			return h, protocolErr(CloseProtocolError, "frame length has its most significant bit set")
		}
		l = int64(u)
		h.size = 10
	}
	h.length = l
	if h.masked {
		if len(b) < h.size+4 {
			return h, errShortHeader
		}
		copy(h.mask[:], b[h.size:h.size+4])
		h.size += 4
	}
	return h, nil
}

// closeErr is a reason to close a connection, with the code to send.
type closeErr struct {
	code   CloseCode
	reason string
}

func (e *closeErr) Error() string { return e.code.String() + ": " + e.reason }

func protocolErr(code CloseCode, reason string) *closeErr {
	return &closeErr{code: code, reason: reason}
}

// Pre-built errors for the frame checks, so a hostile peer costs no
// allocation.
var (
	errUnmasked      = protocolErr(CloseProtocolError, "client frames must be masked")
	errRsv           = protocolErr(CloseProtocolError, "reserved bits set without a negotiated extension")
	errOpcode        = protocolErr(CloseProtocolError, "reserved opcode")
	errControlLong   = protocolErr(CloseProtocolError, "control frame payload over 125 bytes")
	errControlFrag   = protocolErr(CloseProtocolError, "fragmented control frame")
	errContinuation  = protocolErr(CloseProtocolError, "continuation frame without a message to continue")
	errInterleaved   = protocolErr(CloseProtocolError, "new data frame while a fragmented message is unfinished")
	errText          = protocolErr(CloseUnsupportedData, "text frames are not supported: send binary messages")
	errTooBig        = protocolErr(CloseMessageTooBig, "message over the size limit")
	errCloseLen1     = protocolErr(CloseProtocolError, "close frame payload of one byte")
	errCloseCode     = protocolErr(CloseProtocolError, "invalid close code")
	errCloseUTF8     = protocolErr(CloseInvalidPayload, "close reason is not valid UTF-8")
	errAfterClose    = protocolErr(CloseProtocolError, "data after close frame")
	errInternalPanic = protocolErr(CloseInternalError, "internal error")
)

// checkHeader validates a client frame header against RFC 6455 and the
// message size limit. fragmenting tells whether a fragmented message is in
// progress and fragLen its size so far.
func checkHeader(h *frameHeader, fragmenting bool, fragLen, max int) *closeErr {
	if !h.masked {
		return errUnmasked
	}
	if h.rsv != 0 {
		return errRsv
	}
	switch h.op {
	case opClose, opPing, opPong:
		if h.length > 125 {
			return errControlLong
		}
		if !h.fin {
			return errControlFrag
		}
		return nil
	case opContinuation:
		if !fragmenting {
			return errContinuation
		}
	case opBinary:
		if fragmenting {
			return errInterleaved
		}
	case opText:
		if fragmenting {
			return errInterleaved
		}
		return errText
	default:
		return errOpcode
	}
	if h.length > int64(max-fragLen) {
		return errTooBig
	}
	return nil
}

// parseClosePayload validates a peer's close frame payload and returns the
// code to echo.
func parseClosePayload(p []byte) (CloseCode, *closeErr) {
	switch {
	case len(p) == 0:
		return CloseNoStatus, nil
	case len(p) == 1:
		return 0, errCloseLen1
	}
	code := binary.BigEndian.Uint16(p[:2])
	if !validPeerCloseCode(code) {
		return 0, errCloseCode
	}
	if !utf8.Valid(p[2:]) {
		return 0, errCloseUTF8
	}
	return CloseCode(code), nil
}

// newControlFrame builds a sealed control frame.
func newControlFrame(op byte, payload []byte) *frame.Frame {
	f := frame.New()
	f.B = append(f.B, payload...)
	return f.SealOp(op)
}

// newCloseFrame builds a sealed close frame; the reason is cut to fit the
// 125-byte control payload limit without splitting a UTF-8 sequence.
func newCloseFrame(code CloseCode, reason string) *frame.Frame {
	f := frame.New()
	if code != CloseNoStatus {
		if len(reason) > 123 {
			reason = reason[:123]
			for len(reason) > 0 && !utf8.ValidString(reason) {
				reason = reason[:len(reason)-1]
			}
		}
		f.B = binary.BigEndian.AppendUint16(f.B, uint16(code))
		f.B = append(f.B, reason...)
	}
	return f.SealOp(frame.OpClose)
}
