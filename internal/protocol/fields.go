package protocol

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// fieldReader decodes the positional fields of a msgpack array body, and
// of arrays nested in list entries (see enter). It implements the
// extensibility rules: fields beyond the array's length read as zero
// values unless they are required, and elements beyond the known fields
// are skipped.
//
// Errors are sticky: after the first failure every accessor returns a zero
// value and close returns that failure, so decoders read straight through
// their fields and check once.
//
// The Reader is held by value and nested arrays reuse the same
// fieldReader, so that decoding keeps everything on the stack.
type fieldReader struct {
	r        Reader
	msg      string // what is decoded, for error messages: "hello"
	entry    string // inside a list entry, the entry noun: "room"
	index    int    // inside a list entry, the entry's index
	n        int    // number of elements in the current array
	i        int    // index of the next field
	required int    // fields below this index must be present
	err      error
}

// begin starts decoding a message body: one array, and nothing after it
// (checked by close). f must be a zero fieldReader.
func (f *fieldReader) begin(body []byte, msg string, required int) {
	f.r.buf, f.msg, f.required = body, msg, required
	f.open()
}

// open reads the array header of the current array.
func (f *fieldReader) open() {
	n, err := f.r.ReadArrayLen()
	if err != nil {
		f.fail("", err)
		return
	}
	f.n = n
}

// frame is the state of an enclosing array while a nested one is decoded.
type frame struct {
	entry           string
	index, n, i, rq int
}

// enter starts decoding entry index of a list as a nested array of
// fields, none of them required. leave ends it.
func (f *fieldReader) enter(noun string, index int) frame {
	saved := frame{entry: f.entry, index: f.index, n: f.n, i: f.i, rq: f.required}
	f.entry, f.index, f.n, f.i, f.required = noun, index, 0, 0, 0
	if f.err == nil {
		f.open()
	}
	return saved
}

// leave skips the unknown trailing fields of the nested array and returns
// to the enclosing one.
func (f *fieldReader) leave(saved frame) {
	f.skipRest()
	f.entry, f.index, f.n, f.i, f.required = saved.entry, saved.index, saved.n, saved.i, saved.rq
}

// next advances to the next field and reports whether it is present.
func (f *fieldReader) next(name string) bool {
	if f.err != nil {
		return false
	}
	i := f.i
	f.i++
	if i < f.n {
		return true
	}
	if i < f.required {
		f.err = &Error{Code: CodeBadRequest, Message: f.where("") +
			"field " + strconv.Itoa(i) + " (" + name + ") is required, the array has " +
			strconv.Itoa(f.n) + " elements"}
	}
	return false
}

// fail records err, prefixed with where it happened.
func (f *fieldReader) fail(name string, err error) {
	code, msg := CodeBadRequest, err.Error()
	if e, ok := err.(*Error); ok {
		code, msg = e.Code, e.Message
	}
	f.err = &Error{Code: code, Message: f.where(name) + msg}
}

// failf records a bad_request error about the current field.
func (f *fieldReader) failf(name, msg string) {
	f.err = &Error{Code: CodeBadRequest, Message: f.where(name) + msg}
}

// where formats the location prefix of an error message.
func (f *fieldReader) where(name string) string {
	s := f.msg + ": "
	if f.entry != "" {
		s += f.entry + " " + strconv.Itoa(f.index) + ": "
	}
	if name != "" {
		s += "field " + strconv.Itoa(f.i-1) + " (" + name + "): "
	}
	return s
}

// uint reads an unsigned integer field no greater than max.
func (f *fieldReader) uint(name string, max uint64) uint64 {
	if !f.next(name) {
		return 0
	}
	v, err := f.r.ReadUint(max)
	if err != nil {
		f.fail(name, err)
		return 0
	}
	return v
}

func (f *fieldReader) u8(name string) uint8   { return uint8(f.uint(name, math.MaxUint8)) }
func (f *fieldReader) u16(name string) uint16 { return uint16(f.uint(name, math.MaxUint16)) }
func (f *fieldReader) u32(name string) uint32 { return uint32(f.uint(name, math.MaxUint32)) }
func (f *fieldReader) u64(name string) uint64 { return f.uint(name, math.MaxUint64) }

// i64 reads a signed 64-bit integer field.
func (f *fieldReader) i64(name string) int64 {
	if !f.next(name) {
		return 0
	}
	v, err := f.r.ReadInt(math.MinInt64, math.MaxInt64)
	if err != nil {
		f.fail(name, err)
		return 0
	}
	return v
}

// f32 reads a float field that must be finite as a float32.
func (f *fieldReader) f32(name string) float32 {
	if !f.next(name) {
		return 0
	}
	v, err := f.r.ReadFloat()
	if err != nil {
		f.fail(name, err)
		return 0
	}
	x := float32(v)
	if math.IsNaN(v) || math.IsInf(float64(x), 0) {
		f.failf(name, "not a finite float32: "+strconv.FormatFloat(v, 'g', -1, 64))
		return 0
	}
	return x
}

// strBytes reads a string field of at most max bytes of valid UTF-8 as a
// sub-slice of the input; nil reads as nil.
func (f *fieldReader) strBytes(name string, max int) []byte {
	if !f.next(name) || f.r.SkipNil() {
		return nil
	}
	b, err := f.r.ReadStringBytes(max)
	if err != nil {
		f.fail(name, err)
		return nil
	}
	if !validUTF8(b) {
		f.failf(name, "string is not valid UTF-8")
		return nil
	}
	return b
}

// str reads a string field as a new string; nil reads as "".
func (f *fieldReader) str(name string, max int) string {
	return string(f.strBytes(name, max))
}

// raw reads a raw field as a sub-slice of the input; nil reads as nil.
func (f *fieldReader) raw(name string) []byte {
	if !f.next(name) || f.r.SkipNil() {
		return nil
	}
	b, err := f.r.ReadRaw()
	if err != nil {
		f.fail(name, err)
		return nil
	}
	return b
}

// list reads the header of a list field of at most max entries and
// returns the number of entries, which the caller decodes next; nil reads
// as an empty list. A count over max fails with [CodeTooLarge] before it
// is checked against the input.
func (f *fieldReader) list(name string, max int) int {
	if !f.next(name) || f.r.SkipNil() {
		return 0
	}
	return f.listHeader(name, max)
}

// listHeader reads a list header at the current position.
func (f *fieldReader) listHeader(name string, max int) int {
	n, hdr, err := f.r.arrayHeader()
	if err != nil {
		f.fail(name, err)
		return 0
	}
	if n > uint64(max) {
		f.err = &Error{Code: CodeTooLarge, Message: f.where(name) +
			"list of " + strconv.FormatUint(n, 10) + " entries, limit " + strconv.Itoa(max)}
		return 0
	}
	if err := f.r.checkCount(n, 1, hdr); err != nil {
		f.fail(name, err)
		return 0
	}
	f.r.off += hdr
	return int(n)
}

// skipRest skips the elements beyond the known fields of the current
// array.
func (f *fieldReader) skipRest() {
	for ; f.err == nil && f.i < f.n; f.i++ {
		if err := f.r.Skip(); err != nil {
			f.i++
			f.fail("extra", err)
		}
	}
}

// close ends a message body: it skips unknown trailing fields, rejects
// bytes after the array and returns the first error.
func (f *fieldReader) close() error {
	f.skipRest()
	if f.err != nil {
		return f.err
	}
	if n := f.r.Len(); n > 0 {
		return &Error{Code: CodeBadRequest, Message: f.msg + ": " + strconv.Itoa(n) + " trailing bytes after the body"}
	}
	return nil
}

// validUTF8 is utf8.Valid with a fast path for the short ASCII strings
// that make up most fields.
func validUTF8(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return utf8.Valid(b)
		}
	}
	return true
}
