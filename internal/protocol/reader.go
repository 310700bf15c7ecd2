package protocol

import (
	"encoding/binary"
	"math"
)

// Kind is the family of an encoded msgpack value.
type Kind uint8

// Value kinds reported by [Reader.Peek].
const (
	KindInvalid Kind = iota // end of input, or the reserved byte 0xc1
	KindNil
	KindBool
	KindInt // every integer encoding, signed or not
	KindFloat
	KindString
	KindBinary
	KindArray
	KindMap
	KindExt
)

var kindNames = [...]string{
	KindInvalid: "invalid",
	KindNil:     "nil",
	KindBool:    "bool",
	KindInt:     "integer",
	KindFloat:   "float",
	KindString:  "string",
	KindBinary:  "binary",
	KindArray:   "array",
	KindMap:     "map",
	KindExt:     "extension",
}

// String returns the lowercase name of the kind.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid"
}

// kindOf classifies a msgpack format byte.
func kindOf(b byte) Kind {
	switch {
	case b <= mpPosFixIntMax || b >= mpNegFixIntMin:
		return KindInt
	case b < mpFixArray:
		return KindMap
	case b < mpFixStr:
		return KindArray
	case b < mpNil:
		return KindString
	}
	switch b {
	case mpNil:
		return KindNil
	case mpFalse, mpTrue:
		return KindBool
	case mpBin8, mpBin16, mpBin32:
		return KindBinary
	case mpExt8, mpExt16, mpExt32, mpFixExt1, mpFixExt2, mpFixExt4, mpFixExt8, mpFixExt16:
		return KindExt
	case mpFloat32, mpFloat64:
		return KindFloat
	case mpUint8, mpUint16, mpUint32, mpUint64, mpInt8, mpInt16, mpInt32, mpInt64:
		return KindInt
	case mpStr8, mpStr16, mpStr32:
		return KindString
	case mpArray16, mpArray32:
		return KindArray
	case mpMap16, mpMap32:
		return KindMap
	}
	return KindInvalid // 0xc1
}

// Reader decodes msgpack values from a byte slice, front to back.
//
// Every length read from the input is checked against the remaining bytes
// before it is used, so a header that claims 2^32 elements or a 4 GiB
// string fails at once, without allocating or looping. Reads never
// allocate on success; byte slices they return are sub-slices of the
// input, valid until the input buffer is reused. Failed reads return an
// *[Error] and leave the position unchanged.
//
// The zero Reader reads an empty input.
type Reader struct {
	buf []byte
	off int
}

// NewReader returns a Reader positioned at the start of b.
func NewReader(b []byte) Reader { return Reader{buf: b} }

// Reset makes r read b from its start.
func (r *Reader) Reset(b []byte) { r.buf, r.off = b, 0 }

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.buf) - r.off }

// Offset returns the number of bytes read so far.
func (r *Reader) Offset() int { return r.off }

// Rest returns the unread bytes without consuming them.
func (r *Reader) Rest() []byte { return r.buf[r.off:] }

// Peek returns the kind of the next value without consuming it, or
// [KindInvalid] at the end of the input.
func (r *Reader) Peek() Kind {
	if r.off >= len(r.buf) {
		return KindInvalid
	}
	return kindOf(r.buf[r.off])
}

// IsNil reports whether the next value is nil, without consuming it.
func (r *Reader) IsNil() bool {
	return r.off < len(r.buf) && r.buf[r.off] == mpNil
}

// SkipNil consumes the next value and returns true if it is nil; otherwise
// it consumes nothing and returns false.
func (r *Reader) SkipNil() bool {
	if r.IsNil() {
		r.off++
		return true
	}
	return false
}

// ReadNil reads a nil.
func (r *Reader) ReadNil() error {
	if r.SkipNil() {
		return nil
	}
	return r.errType("nil")
}

// ReadBool reads a boolean.
func (r *Reader) ReadBool() (bool, error) {
	if r.off < len(r.buf) {
		switch r.buf[r.off] {
		case mpFalse:
			r.off++
			return false, nil
		case mpTrue:
			r.off++
			return true, nil
		}
	}
	return false, r.errType("bool")
}

// ReadArrayLen reads an array header and returns the number of elements,
// which the caller then reads one by one.
func (r *Reader) ReadArrayLen() (int, error) {
	n, hdr, err := r.arrayHeader()
	if err != nil {
		return 0, err
	}
	if err := r.checkCount(n, 1, hdr); err != nil {
		return 0, err
	}
	r.off += hdr
	return int(n), nil
}

// ReadMapLen reads a map header and returns the number of key/value
// pairs, which the caller then reads as 2n values.
func (r *Reader) ReadMapLen() (int, error) {
	n, hdr, err := r.mapHeader()
	if err != nil {
		return 0, err
	}
	if err := r.checkCount(n, 2, hdr); err != nil {
		return 0, err
	}
	r.off += hdr
	return int(n), nil
}

// arrayHeader decodes the array header at the current position without
// consuming it or checking the count.
func (r *Reader) arrayHeader() (n uint64, hdr int, err error) {
	if r.off >= len(r.buf) {
		return 0, 0, r.errType("array")
	}
	b := r.buf[r.off]
	switch {
	case b&0xf0 == mpFixArray:
		return uint64(b & 0x0f), 1, nil
	case b == mpArray16:
		if r.Len() < 3 {
			return 0, 0, r.errTruncated(3)
		}
		return uint64(binary.BigEndian.Uint16(r.buf[r.off+1:])), 3, nil
	case b == mpArray32:
		if r.Len() < 5 {
			return 0, 0, r.errTruncated(5)
		}
		return uint64(binary.BigEndian.Uint32(r.buf[r.off+1:])), 5, nil
	}
	return 0, 0, r.errType("array")
}

// mapHeader is arrayHeader for maps.
func (r *Reader) mapHeader() (n uint64, hdr int, err error) {
	if r.off >= len(r.buf) {
		return 0, 0, r.errType("map")
	}
	b := r.buf[r.off]
	switch {
	case b&0xf0 == mpFixMap:
		return uint64(b & 0x0f), 1, nil
	case b == mpMap16:
		if r.Len() < 3 {
			return 0, 0, r.errTruncated(3)
		}
		return uint64(binary.BigEndian.Uint16(r.buf[r.off+1:])), 3, nil
	case b == mpMap32:
		if r.Len() < 5 {
			return 0, 0, r.errTruncated(5)
		}
		return uint64(binary.BigEndian.Uint32(r.buf[r.off+1:])), 5, nil
	}
	return 0, 0, r.errType("map")
}

// checkCount fails unless n values of at least perElem bytes each fit in
// the input after a header of hdr bytes.
func (r *Reader) checkCount(n uint64, perElem uint64, hdr int) error {
	left := uint64(r.Len() - hdr)
	if n > left/perElem {
		return errorf(CodeBadRequest, "truncated: %d elements announced at offset %d, only %d bytes follow",
			n*perElem, r.off, left)
	}
	return nil
}

// numKind classifies a decoded msgpack number.
type numKind uint8

const (
	numUint  numKind = iota // a non-negative integer
	numNeg                  // a negative integer, as int64 bits
	numFloat                // a float, as float64 bits
)

// readNumber reads any integer or float encoding and returns its kind and
// its value as 64 bits; want names the expected kind in the error for a
// non-number.
func (r *Reader) readNumber(want string) (numKind, uint64, error) {
	p := r.off
	if p >= len(r.buf) {
		return 0, 0, r.errType(want)
	}
	b := r.buf[p]
	if b <= mpPosFixIntMax {
		r.off++
		return numUint, uint64(b), nil
	}
	if b >= mpNegFixIntMin {
		r.off++
		return numNeg, uint64(int64(int8(b))), nil
	}
	if b < mpFloat32 || b > mpInt64 {
		return 0, 0, r.errType(want)
	}
	// 0xca..0xd3: float32, float64, uint8..uint64, int8..int64.
	size := 1 + numSizes[b-mpFloat32]
	if len(r.buf)-p < size {
		return 0, 0, r.errTruncated(size)
	}
	d := r.buf[p+1 : p+size]
	r.off += size
	switch b {
	case mpUint8:
		return numUint, uint64(d[0]), nil
	case mpUint16:
		return numUint, uint64(binary.BigEndian.Uint16(d)), nil
	case mpUint32:
		return numUint, uint64(binary.BigEndian.Uint32(d)), nil
	case mpUint64:
		return numUint, binary.BigEndian.Uint64(d), nil
	case mpInt8:
		return signed(int64(int8(d[0])))
	case mpInt16:
		return signed(int64(int16(binary.BigEndian.Uint16(d))))
	case mpInt32:
		return signed(int64(int32(binary.BigEndian.Uint32(d))))
	case mpInt64:
		return signed(int64(binary.BigEndian.Uint64(d)))
	case mpFloat32:
		return numFloat, math.Float64bits(float64(math.Float32frombits(binary.BigEndian.Uint32(d)))), nil
	default: // mpFloat64
		return numFloat, binary.BigEndian.Uint64(d), nil
	}
}

// numSizes holds the payload sizes of the number formats 0xca..0xd3.
var numSizes = [...]int{4, 8, 1, 2, 4, 8, 1, 2, 4, 8}

// signed classifies a value read from a signed encoding.
func signed(v int64) (numKind, uint64, error) {
	if v >= 0 {
		return numUint, uint64(v), nil
	}
	return numNeg, uint64(v), nil
}

// ReadUint reads an unsigned integer no greater than max. It accepts every
// integer encoding and floats that hold an exact integer; negative values,
// fractions, non-finite floats and values above max are errors.
func (r *Reader) ReadUint(max uint64) (uint64, error) {
	if r.off < len(r.buf) {
		if b := r.buf[r.off]; b <= mpPosFixIntMax && uint64(b) <= max {
			r.off++ // positive fixint, the most common case
			return uint64(b), nil
		}
	}
	return r.readUint(max)
}

func (r *Reader) readUint(max uint64) (uint64, error) {
	start := r.off
	kind, v, err := r.readNumber("integer")
	if err != nil {
		return 0, err
	}
	switch kind {
	case numUint:
		if v <= max {
			return v, nil
		}
		r.off = start
		return 0, errorf(CodeBadRequest, "integer %d at offset %d is above %d", v, start, max)
	case numNeg:
		r.off = start
		return 0, errorf(CodeBadRequest, "integer %d at offset %d is negative", int64(v), start)
	}
	// Floats: 2^64 is the first float64 above every uint64.
	f := math.Float64frombits(v)
	if f == math.Trunc(f) && f >= 0 && f < 1<<64 && uint64(f) <= max {
		return uint64(f), nil
	}
	r.off = start
	return 0, errorf(CodeBadRequest, "float %g at offset %d is not an integer in [0, %d]", f, start, max)
}

// ReadInt reads a signed integer in [min, max], with the same encodings
// accepted as [Reader.ReadUint].
func (r *Reader) ReadInt(min, max int64) (int64, error) {
	start := r.off
	kind, v, err := r.readNumber("integer")
	if err != nil {
		return 0, err
	}
	switch kind {
	case numUint:
		if v <= math.MaxInt64 && int64(v) >= min && int64(v) <= max {
			return int64(v), nil
		}
		r.off = start
		return 0, errorf(CodeBadRequest, "integer %d at offset %d is outside [%d, %d]", v, start, min, max)
	case numNeg:
		if i := int64(v); i >= min && i <= max {
			return i, nil
		}
		r.off = start
		return 0, errorf(CodeBadRequest, "integer %d at offset %d is outside [%d, %d]", int64(v), start, min, max)
	}
	// Floats: -2^63 is exact and 2^63 is the first float64 above MaxInt64.
	f := math.Float64frombits(v)
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		if i := int64(f); i >= min && i <= max {
			return i, nil
		}
	}
	r.off = start
	return 0, errorf(CodeBadRequest, "float %g at offset %d is not an integer in [%d, %d]", f, start, min, max)
}

// ReadFloat reads a float32, a float64 or any integer as a float64.
// Integers beyond 2^53 are rounded to the nearest float64.
func (r *Reader) ReadFloat() (float64, error) {
	if p := r.off; p+5 <= len(r.buf) && r.buf[p] == mpFloat32 {
		r.off += 5 // float32, the most common case
		return float64(math.Float32frombits(binary.BigEndian.Uint32(r.buf[p+1:]))), nil
	}
	kind, v, err := r.readNumber("number")
	if err != nil {
		return 0, err
	}
	switch kind {
	case numUint:
		return float64(v), nil
	case numNeg:
		return float64(int64(v)), nil
	}
	return math.Float64frombits(v), nil
}

// ReadStringBytes reads a msgpack str of at most max bytes and returns its
// bytes as a sub-slice of the input (no copy, no UTF-8 check). A length
// over max fails with [CodeTooLarge] before the input length is checked.
func (r *Reader) ReadStringBytes(max int) ([]byte, error) {
	if r.off >= len(r.buf) {
		return nil, r.errType("string")
	}
	b := r.buf[r.off]
	var n uint64
	var hdr int
	switch {
	case b&0xe0 == mpFixStr:
		n, hdr = uint64(b&0x1f), 1
	case b == mpStr8, b == mpStr16, b == mpStr32:
		var err error
		if n, hdr, err = r.lenHeader(b - mpStr8); err != nil {
			return nil, err
		}
	default:
		return nil, r.errType("string")
	}
	return r.payload(n, hdr, max, "string")
}

// ReadString is [Reader.ReadStringBytes] returning a newly allocated
// string.
func (r *Reader) ReadString(max int) (string, error) {
	b, err := r.ReadStringBytes(max)
	return string(b), err
}

// ReadBinBytes reads a msgpack bin of at most max bytes as a sub-slice of
// the input.
func (r *Reader) ReadBinBytes(max int) ([]byte, error) {
	if r.off >= len(r.buf) {
		return nil, r.errType("binary")
	}
	b := r.buf[r.off]
	if b < mpBin8 || b > mpBin32 {
		return nil, r.errType("binary")
	}
	n, hdr, err := r.lenHeader(b - mpBin8)
	if err != nil {
		return nil, err
	}
	return r.payload(n, hdr, max, "binary")
}

// lenHeader reads the length that follows a str8/bin8 (width 0),
// str16/bin16 (1) or str32/bin32 (2) format byte.
func (r *Reader) lenHeader(width byte) (n uint64, hdr int, err error) {
	hdr = 1 + 1<<width // format byte, then 1, 2 or 4 length bytes
	if r.Len() < hdr {
		return 0, 0, r.errTruncated(hdr)
	}
	d := r.buf[r.off+1:]
	switch width {
	case 0:
		n = uint64(d[0])
	case 1:
		n = uint64(binary.BigEndian.Uint16(d))
	default:
		n = uint64(binary.BigEndian.Uint32(d))
	}
	return n, hdr, nil
}

// payload consumes a header of hdr bytes and the n bytes that follow it,
// after checking n against max and the remaining input.
func (r *Reader) payload(n uint64, hdr, max int, what string) ([]byte, error) {
	if n > uint64(max) {
		return nil, errorf(CodeTooLarge, "%s of %d bytes at offset %d, limit %d", what, n, r.off, max)
	}
	if n > uint64(r.Len()-hdr) {
		return nil, errorf(CodeBadRequest, "truncated: %s of %d bytes at offset %d, only %d bytes follow",
			what, n, r.off, r.Len()-hdr)
	}
	start := r.off + hdr
	end := start + int(n)
	r.off = end
	return r.buf[start:end:end], nil
}

// ReadRaw reads one complete msgpack value of any kind and returns its
// encoding as a sub-slice of the input. The value is validated: every
// length must fit the input and containers may nest at most [MaxDepth]
// levels (deeper nesting fails with [CodeTooLarge]).
func (r *Reader) ReadRaw() ([]byte, error) {
	start := r.off
	if err := r.Skip(); err != nil {
		return nil, err
	}
	return r.buf[start:r.off:r.off], nil
}

// Skip consumes one complete msgpack value, validated as by
// [Reader.ReadRaw]. It runs in time linear in the value's size and uses a
// fixed amount of stack whatever the input.
func (r *Reader) Skip() error {
	// pending[d] counts the values still to read in the container open at
	// depth d.
	var pending [MaxDepth]uint64
	depth := 0
	p := r.off
	for {
		size, children, container, err := r.valueHeader(p)
		if err != nil {
			return err
		}
		if container {
			if depth >= MaxDepth {
				return errorf(CodeTooLarge, "value at offset %d nests deeper than %d levels", p, MaxDepth)
			}
			p += size
			if children > 0 {
				pending[depth] = children
				depth++
				continue
			}
		} else {
			p += size
		}
		// One value is complete: close every container it completes.
		for depth > 0 {
			pending[depth-1]--
			if pending[depth-1] > 0 {
				break
			}
			depth--
		}
		if depth == 0 {
			r.off = p
			return nil
		}
	}
}

// format describes how the encoding of a value starts, by format byte.
type format struct {
	hdr      uint8 // header size; for fixed-size values, the whole size
	lenBytes uint8 // width of the length field after the format byte: 0, 1, 2 or 4
	fixLen   uint8 // length or count held in the format byte itself
	flags    uint8
}

const (
	fmtContainer = 1 << iota // array or map: the length counts child values
	fmtMap                   // map: two child values per entry
	fmtInvalid               // the reserved byte 0xc1
)

// formats maps each format byte to its format.
var formats = func() (t [256]format) {
	for b := 0; b < 256; b++ {
		f := &t[b]
		switch {
		case b <= mpPosFixIntMax || b >= mpNegFixIntMin:
			f.hdr = 1
		case b < mpFixArray:
			f.hdr, f.fixLen, f.flags = 1, uint8(b&0x0f), fmtContainer|fmtMap
		case b < mpFixStr:
			f.hdr, f.fixLen, f.flags = 1, uint8(b&0x0f), fmtContainer
		case b < mpNil:
			f.hdr, f.fixLen = 1, uint8(b&0x1f)
		}
	}
	fixed := map[byte]uint8{
		mpNil: 1, mpFalse: 1, mpTrue: 1,
		mpUint8: 2, mpInt8: 2, mpUint16: 3, mpInt16: 3,
		mpUint32: 5, mpInt32: 5, mpFloat32: 5, mpUint64: 9, mpInt64: 9, mpFloat64: 9,
		// fixext: format byte, type byte, then 1 to 16 data bytes
		mpFixExt1: 3, mpFixExt2: 4, mpFixExt4: 6, mpFixExt8: 10, mpFixExt16: 18,
	}
	for b, size := range fixed {
		t[b].hdr = size
	}
	// Formats with an explicit length: format byte, length, and for ext
	// a type byte.
	sized := map[byte]format{
		mpStr8: {hdr: 2, lenBytes: 1}, mpStr16: {hdr: 3, lenBytes: 2}, mpStr32: {hdr: 5, lenBytes: 4},
		mpBin8: {hdr: 2, lenBytes: 1}, mpBin16: {hdr: 3, lenBytes: 2}, mpBin32: {hdr: 5, lenBytes: 4},
		mpExt8: {hdr: 3, lenBytes: 1}, mpExt16: {hdr: 4, lenBytes: 2}, mpExt32: {hdr: 6, lenBytes: 4},
		mpArray16: {hdr: 3, lenBytes: 2, flags: fmtContainer},
		mpArray32: {hdr: 5, lenBytes: 4, flags: fmtContainer},
		mpMap16:   {hdr: 3, lenBytes: 2, flags: fmtContainer | fmtMap},
		mpMap32:   {hdr: 5, lenBytes: 4, flags: fmtContainer | fmtMap},
	}
	for b, f := range sized {
		t[b] = f
	}
	t[mpNeverUsed] = format{flags: fmtInvalid}
	return t
}()

// valueHeader examines the value starting at p. For a container it
// returns the header size and the number of child values (two per map
// entry), checked to fit in the rest of the input; for anything else it
// returns the size of the whole value, checked to fit.
func (r *Reader) valueHeader(p int) (size int, children uint64, container bool, err error) {
	if p >= len(r.buf) {
		return 0, 0, false, errorf(CodeBadRequest, "truncated: value expected at offset %d", p)
	}
	b := r.buf[p]
	f := formats[b]
	if f.hdr == 1 && f.fixLen == 0 {
		return 1, 0, f.flags&fmtContainer != 0, nil // the most common case
	}
	if f.flags&fmtInvalid != 0 {
		return 0, 0, false, errorf(CodeBadRequest, "invalid format byte 0xc1 at offset %d", p)
	}
	left := uint64(len(r.buf) - p)
	hdr := uint64(f.hdr)
	if hdr > left {
		return 0, 0, false, errorf(CodeBadRequest, "truncated: %d-byte header at offset %d, only %d bytes left", hdr, p, left)
	}
	n := uint64(f.fixLen)
	switch f.lenBytes {
	case 1:
		n = uint64(r.buf[p+1])
	case 2:
		n = uint64(binary.BigEndian.Uint16(r.buf[p+1:]))
	case 4:
		n = uint64(binary.BigEndian.Uint32(r.buf[p+1:]))
	}
	if f.flags&fmtContainer != 0 {
		if f.flags&fmtMap != 0 {
			n *= 2
		}
		if n > left-hdr {
			return 0, 0, false, errorf(CodeBadRequest, "truncated: container at offset %d announces %d values, only %d bytes follow", p, n, left-hdr)
		}
		return int(hdr), n, true, nil
	}
	if n > left-hdr {
		return 0, 0, false, errorf(CodeBadRequest, "truncated: %s at offset %d needs %d bytes, only %d left", kindOf(b), p, hdr+n, left)
	}
	return int(hdr + n), 0, false, nil
}

// errType reports that the value at the current position is not of the
// wanted kind (or that the input has ended).
func (r *Reader) errType(want string) error {
	if r.off >= len(r.buf) {
		return errorf(CodeBadRequest, "truncated: %s expected at offset %d", want, r.off)
	}
	b := r.buf[r.off]
	if b == mpNeverUsed {
		return errorf(CodeBadRequest, "invalid format byte 0xc1 at offset %d", r.off)
	}
	return errorf(CodeBadRequest, "%s expected at offset %d, found %s", want, r.off, kindOf(b))
}

// errTruncated reports that the value at the current position needs n
// bytes.
func (r *Reader) errTruncated(n int) error {
	return errorf(CodeBadRequest, "truncated: value at offset %d needs %d bytes, only %d left", r.off, n, r.Len())
}
