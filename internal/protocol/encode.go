package protocol

import (
	"math"
)

// msgpack format bytes.
const (
	mpPosFixIntMax = 0x7f
	mpFixMap       = 0x80
	mpFixArray     = 0x90
	mpFixStr       = 0xa0
	mpNil          = 0xc0
	mpNeverUsed    = 0xc1
	mpFalse        = 0xc2
	mpTrue         = 0xc3
	mpBin8         = 0xc4
	mpBin16        = 0xc5
	mpBin32        = 0xc6
	mpExt8         = 0xc7
	mpExt16        = 0xc8
	mpExt32        = 0xc9
	mpFloat32      = 0xca
	mpFloat64      = 0xcb
	mpUint8        = 0xcc
	mpUint16       = 0xcd
	mpUint32       = 0xce
	mpUint64       = 0xcf
	mpInt8         = 0xd0
	mpInt16        = 0xd1
	mpInt32        = 0xd2
	mpInt64        = 0xd3
	mpFixExt1      = 0xd4
	mpFixExt2      = 0xd5
	mpFixExt4      = 0xd6
	mpFixExt8      = 0xd7
	mpFixExt16     = 0xd8
	mpStr8         = 0xd9
	mpStr16        = 0xda
	mpStr32        = 0xdb
	mpArray16      = 0xdc
	mpArray32      = 0xdd
	mpMap16        = 0xde
	mpMap32        = 0xdf
	mpNegFixIntMin = 0xe0
)

// The Append functions append the shortest msgpack encoding of a value to
// dst and return the extended slice. They never allocate when dst has
// enough capacity.

// AppendNil appends msgpack nil.
func AppendNil(dst []byte) []byte { return append(dst, mpNil) }

// AppendBool appends a msgpack boolean.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, mpTrue)
	}
	return append(dst, mpFalse)
}

// AppendUint appends an unsigned integer in 1, 2, 3, 5 or 9 bytes.
func AppendUint(dst []byte, v uint64) []byte {
	switch {
	case v <= mpPosFixIntMax:
		return append(dst, byte(v))
	case v <= math.MaxUint8:
		return append(dst, mpUint8, byte(v))
	case v <= math.MaxUint16:
		return append(dst, mpUint16, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(dst, mpUint32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return append(dst, mpUint64, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
			byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
}

// AppendInt appends a signed integer in 1, 2, 3, 5 or 9 bytes.
// Non-negative values use the unsigned encodings.
func AppendInt(dst []byte, v int64) []byte {
	switch {
	case v >= 0:
		return AppendUint(dst, uint64(v))
	case v >= -32:
		return append(dst, byte(v))
	case v >= math.MinInt8:
		return append(dst, mpInt8, byte(v))
	case v >= math.MinInt16:
		return append(dst, mpInt16, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return append(dst, mpInt32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return append(dst, mpInt64, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
			byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
}

// AppendFloat32 appends a msgpack float32.
func AppendFloat32(dst []byte, v float32) []byte {
	b := math.Float32bits(v)
	return append(dst, mpFloat32, byte(b>>24), byte(b>>16), byte(b>>8), byte(b))
}

// AppendFloat64 appends a msgpack float64.
func AppendFloat64(dst []byte, v float64) []byte {
	b := math.Float64bits(v)
	return append(dst, mpFloat64, byte(b>>56), byte(b>>48), byte(b>>40), byte(b>>32),
		byte(b>>24), byte(b>>16), byte(b>>8), byte(b))
}

// AppendString appends s as a msgpack str. The caller is responsible for
// s being valid UTF-8.
func AppendString(dst []byte, s string) []byte {
	dst = appendStrHeader(dst, len(s))
	return append(dst, s...)
}

// AppendBytesAsString appends b as a msgpack str (not bin), for string
// values held in byte slices.
func AppendBytesAsString(dst []byte, b []byte) []byte {
	dst = appendStrHeader(dst, len(b))
	return append(dst, b...)
}

// AppendBin appends b as msgpack bin.
func AppendBin(dst []byte, b []byte) []byte {
	n := checkLen(len(b))
	switch {
	case n <= math.MaxUint8:
		dst = append(dst, mpBin8, byte(n))
	case n <= math.MaxUint16:
		dst = append(dst, mpBin16, byte(n>>8), byte(n))
	default:
		dst = append(dst, mpBin32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, b...)
}

// AppendArrayLen appends the header of an array of n elements; the caller
// appends the n elements after it.
func AppendArrayLen(dst []byte, n int) []byte {
	u := checkLen(n)
	switch {
	case u <= 15:
		return append(dst, mpFixArray|byte(u))
	case u <= math.MaxUint16:
		return append(dst, mpArray16, byte(u>>8), byte(u))
	default:
		return append(dst, mpArray32, byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	}
}

// AppendMapLen appends the header of a map of n key/value pairs; the
// caller appends the 2n keys and values after it.
func AppendMapLen(dst []byte, n int) []byte {
	u := checkLen(n)
	switch {
	case u <= 15:
		return append(dst, mpFixMap|byte(u))
	case u <= math.MaxUint16:
		return append(dst, mpMap16, byte(u>>8), byte(u))
	default:
		return append(dst, mpMap32, byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	}
}

// AppendRaw appends raw, which must hold exactly one encoded msgpack
// value, as-is. An empty raw appends msgpack nil.
func AppendRaw(dst []byte, raw []byte) []byte {
	if len(raw) == 0 {
		return append(dst, mpNil)
	}
	return append(dst, raw...)
}

// appendOptString appends s, or msgpack nil when s is empty. It encodes
// the "str|nil" fields, where nil means "not given".
func appendOptString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, mpNil)
	}
	return AppendString(dst, s)
}

func appendStrHeader(dst []byte, n int) []byte {
	u := checkLen(n)
	switch {
	case u <= 31:
		return append(dst, mpFixStr|byte(u))
	case u <= math.MaxUint8:
		return append(dst, mpStr8, byte(u))
	case u <= math.MaxUint16:
		return append(dst, mpStr16, byte(u>>8), byte(u))
	default:
		return append(dst, mpStr32, byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	}
}

// checkLen converts a length to uint32. msgpack cannot represent longer
// values, and asking for one is a programming error.
func checkLen(n int) uint32 {
	if n < 0 || uint64(n) > math.MaxUint32 {
		panic("protocol: msgpack length out of range")
	}
	return uint32(n)
}
