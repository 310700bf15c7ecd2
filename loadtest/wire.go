package main

import (
	"encoding/binary"
	"math/rand/v2"
)

// WebSocket opcodes (RFC 6455).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// maxClientFrameHeader is the longest header a client frame can have:
// 2 bytes, 8 bytes of extended length and the 4-byte mask.
const maxClientFrameHeader = 14

// appendClientFrame appends one final, masked client frame carrying
// payload to dst. It does not allocate when dst has room.
func appendClientFrame(dst []byte, op byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	p := dst[start:]
	for i := range p {
		p[i] ^= mask[i&3]
	}
	return dst
}

// appendCloseFrame appends a masked close frame with a status code and a
// short reason.
func appendCloseFrame(dst []byte, code uint16, reason string) []byte {
	var body [2 + 64]byte
	binary.BigEndian.PutUint16(body[:], code)
	n := copy(body[2:], reason)
	return appendClientFrame(dst, opClose, body[:2+n])
}

// serverFrame is one parsed server frame.
type serverFrame struct {
	fin     bool
	op      byte
	payload []byte // unmasked, a sub-slice of the input
}

// parseServerFrame parses the frame at the start of b. It returns the
// frame and its total length, 0 when b holds only part of a frame, or -1
// when the frame is malformed or longer than maxPayload.
func parseServerFrame(b []byte, maxPayload int) (serverFrame, int) {
	if len(b) < 2 {
		return serverFrame{}, 0
	}
	f := serverFrame{fin: b[0]&0x80 != 0, op: b[0] & 0x0f}
	if b[0]&0x70 != 0 {
		return f, -1 // no extension was negotiated
	}
	masked := b[1]&0x80 != 0
	n := uint64(b[1] & 0x7f)
	hdr := 2
	switch n {
	case 126:
		if len(b) < 4 {
			return f, 0
		}
		n, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return f, 0
		}
		n, hdr = binary.BigEndian.Uint64(b[2:]), 10
	}
	if f.op >= opClose && (n > 125 || !f.fin) {
		return f, -1 // control frames are short and never fragmented
	}
	if n > uint64(maxPayload) {
		return f, -1
	}
	var mask [4]byte
	if masked {
		if len(b) < hdr+4 {
			return f, 0
		}
		copy(mask[:], b[hdr:hdr+4])
		hdr += 4
	}
	total := hdr + int(n)
	if len(b) < total {
		return f, 0
	}
	f.payload = b[hdr:total]
	if masked {
		for i := range f.payload {
			f.payload[i] ^= mask[i&3]
		}
	}
	return f, total
}
