package protocol

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func TestReaderNumbers(t *testing.T) {
	enc := func(v any, compact bool) []byte { return encodeRef(t, v, compact) }
	type uintCase struct {
		in   []byte
		max  uint64
		want uint64
		ok   bool
	}
	uints := []uintCase{
		{[]byte{0x00}, math.MaxUint64, 0, true},
		{[]byte{0x7f}, math.MaxUint64, 127, true},
		{enc(uint8(200), false), 255, 200, true},
		{enc(uint16(200), false), 255, 200, true},
		{enc(uint32(200), false), 255, 200, true},
		{enc(uint64(200), false), 255, 200, true},
		{enc(int8(100), false), 255, 100, true},
		{enc(int16(200), false), 255, 200, true},
		{enc(int32(200), false), 255, 200, true},
		{enc(int64(200), false), 255, 200, true},
		{enc(float32(200), false), 255, 200, true},
		{enc(float64(200), false), 255, 200, true},
		{enc(uint64(math.MaxUint64), false), math.MaxUint64, math.MaxUint64, true},
		{enc(float64(1<<63), false), math.MaxUint64, 1 << 63, true},
		{enc(256, true), 255, 0, false},
		{enc(-1, true), 255, 0, false},
		{enc(int64(-1), false), 255, 0, false},
		{enc(float64(-1), false), 255, 0, false},
		{enc(float64(0.5), false), 255, 0, false},
		{enc(math.Inf(1), false), math.MaxUint64, 0, false},
		{enc(math.NaN(), false), math.MaxUint64, 0, false},
		{enc(float64(1<<64), false), math.MaxUint64, 0, false},
		{enc("1", false), 255, 0, false},
		{enc(nil, false), 255, 0, false},
		{enc(true, false), 255, 0, false},
		{[]byte{0xcd, 0x01}, math.MaxUint64, 0, false},
		{nil, math.MaxUint64, 0, false},
	}
	for _, c := range uints {
		r := NewReader(c.in)
		got, err := r.ReadUint(c.max)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("ReadUint(% x, %d) = %d, %v; want %d, ok=%v", c.in, c.max, got, err, c.want, c.ok)
		}
		if err != nil && r.Offset() != 0 {
			t.Errorf("ReadUint(% x) failed but moved to %d", c.in, r.Offset())
		}
		if err == nil && r.Len() != 0 {
			t.Errorf("ReadUint(% x) left %d bytes", c.in, r.Len())
		}
	}
	type intCase struct {
		in       []byte
		min, max int64
		want     int64
		ok       bool
	}
	ints := []intCase{
		{enc(-1, true), math.MinInt64, math.MaxInt64, -1, true},
		{enc(-32, true), math.MinInt64, math.MaxInt64, -32, true},
		{enc(int64(math.MinInt64), true), math.MinInt64, math.MaxInt64, math.MinInt64, true},
		{enc(int64(math.MaxInt64), true), math.MinInt64, math.MaxInt64, math.MaxInt64, true},
		{enc(uint64(math.MaxInt64+1), true), math.MinInt64, math.MaxInt64, 0, false},
		{enc(float64(-1<<63), false), math.MinInt64, math.MaxInt64, math.MinInt64, true},
		{enc(float64(1<<63), false), math.MinInt64, math.MaxInt64, 0, false},
		{enc(float32(-5), false), -10, 10, -5, true},
		{enc(-11, true), -10, 10, 0, false},
		{enc(11, true), -10, 10, 0, false},
		{enc(-0.5, false), -10, 10, 0, false},
		{enc(int16(-300), false), -1000, 0, -300, true},
	}
	for _, c := range ints {
		r := NewReader(c.in)
		got, err := r.ReadInt(c.min, c.max)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("ReadInt(% x, %d, %d) = %d, %v; want %d, ok=%v", c.in, c.min, c.max, got, err, c.want, c.ok)
		}
	}
	floats := []struct {
		in   []byte
		want float64
		ok   bool
	}{
		{enc(float32(1.5), false), 1.5, true},
		{enc(-2.25, false), -2.25, true},
		{enc(7, true), 7, true},
		{enc(-7, true), -7, true},
		{enc(uint64(math.MaxUint64), false), math.MaxUint64, true},
		{enc("x", false), 0, false},
		{[]byte{0xca, 0, 0}, 0, false},
	}
	for _, c := range floats {
		r := NewReader(c.in)
		got, err := r.ReadFloat()
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("ReadFloat(% x) = %g, %v; want %g, ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestReaderStringsAndContainers(t *testing.T) {
	in := []byte{}
	in = AppendString(in, "héllo")
	in = AppendBin(in, []byte{1, 2, 3})
	in = AppendArrayLen(in, 2)
	in = AppendMapLen(in, 1)
	in = AppendBool(in, true)
	in = AppendBool(in, false)
	in = AppendNil(in)
	r := NewReader(in)
	if r.Peek() != KindString {
		t.Fatalf("Peek = %v", r.Peek())
	}
	if _, err := r.ReadStringBytes(5); CodeOf(err) != CodeTooLarge || r.Offset() != 0 {
		t.Fatalf("limit: %v at %d", err, r.Offset())
	}
	s, err := r.ReadString(6)
	if err != nil || s != "héllo" {
		t.Fatalf("ReadString = %q, %v", s, err)
	}
	if r.Peek() != KindBinary {
		t.Fatalf("Peek = %v", r.Peek())
	}
	if _, err := r.ReadStringBytes(100); CodeOf(err) != CodeBadRequest {
		t.Fatalf("bin as string: %v", err)
	}
	b, err := r.ReadBinBytes(3)
	if err != nil || !bytes.Equal(b, []byte{1, 2, 3}) || cap(b) != 3 {
		t.Fatalf("ReadBinBytes = % x (cap %d), %v", b, cap(b), err)
	}
	if n, err := r.ReadArrayLen(); err != nil || n != 2 {
		t.Fatalf("ReadArrayLen = %d, %v", n, err)
	}
	if n, err := r.ReadMapLen(); err != nil || n != 1 {
		t.Fatalf("ReadMapLen = %d, %v", n, err)
	}
	if v, err := r.ReadBool(); err != nil || !v {
		t.Fatalf("ReadBool = %v, %v", v, err)
	}
	if v, err := r.ReadBool(); err != nil || v {
		t.Fatalf("ReadBool = %v, %v", v, err)
	}
	if !r.IsNil() || r.ReadNil() != nil || r.Len() != 0 || r.Peek() != KindInvalid {
		t.Fatal("nil at the end")
	}
	if r.SkipNil() || r.ReadNil() == nil {
		t.Fatal("nil past the end")
	}
	if _, err := r.ReadBool(); err == nil {
		t.Fatal("ReadBool past the end")
	}
	r.Reset([]byte{0x81, 0x01})
	if _, err := r.ReadMapLen(); CodeOf(err) != CodeBadRequest {
		t.Fatalf("map with 1 pair in 1 byte: %v", err)
	}
	r.Reset([]byte{0xa5, 'a', 'b'})
	if _, err := r.ReadString(10); CodeOf(err) != CodeBadRequest || r.Offset() != 0 {
		t.Fatalf("truncated string: %v", err)
	}
}

func TestReaderRawAndSkip(t *testing.T) {
	values := []any{
		nil, true, false, 0, -1, 127, -33, 300, -300, 70000, -70000, int64(1) << 40, uint64(math.MaxUint64), int64(math.MinInt64),
		float32(1.5), 2.5, "", "short", string(bytes.Repeat([]byte{'x'}, 300)), string(bytes.Repeat([]byte{'y'}, 70000)),
		[]byte{}, []byte{1, 2, 3}, bytes.Repeat([]byte{9}, 70000),
		[]any{}, []any{1, "a", []any{nil, map[string]any{"k": []int{1, 2}}}}, make([]int, 20), make([]int, 70000),
		map[string]any{}, map[string]any{"a": 1, "b": []any{true}},
		time.Unix(1700000000, 123), time.Unix(1700000000, 0), time.Unix(1<<35, 1),
	}
	var all []byte
	for _, v := range values {
		all = append(all, encodeRef(t, v, true)...)
	}
	// Extension types of every size.
	for _, ext := range [][]byte{
		{0xd4, 1, 0}, {0xd5, 1, 0, 0}, {0xd6, 1, 0, 0, 0, 0}, {0xd7, 1, 0, 0, 0, 0, 0, 0, 0, 0},
		append([]byte{0xd8, 1}, make([]byte, 16)...), {0xc7, 0, 1}, {0xc7, 2, 1, 0, 0},
		{0xc8, 0, 1, 1, 0}, {0xc9, 0, 0, 0, 1, 1, 0},
	} {
		all = append(all, ext...)
	}
	r := NewReader(all)
	n := 0
	for r.Len() > 0 {
		start := r.Offset()
		raw, err := r.ReadRaw()
		if err != nil {
			t.Fatalf("value %d at %d: %v", n, start, err)
		}
		if !bytes.Equal(raw, all[start:r.Offset()]) || cap(raw) != len(raw) {
			t.Fatalf("value %d: raw is not the exact sub-slice", n)
		}
		// The reference library agrees on the value's extent.
		dec := msgpack.NewDecoder(bytes.NewReader(raw))
		if err := dec.Skip(); err != nil {
			t.Fatalf("value %d: vmihailenco cannot skip %s: %v", n, short(raw), err)
		}
		if dec.Buffered().(*bytes.Reader).Len() != 0 {
			t.Fatalf("value %d: extent differs from vmihailenco's", n)
		}
		n++
	}
	if n != len(values)+9 {
		t.Fatalf("read %d values", n)
	}
	// Each strict prefix of each value fails without moving.
	r.Reset(all)
	for r.Len() > 0 {
		start := r.Offset()
		if err := r.Skip(); err != nil {
			t.Fatal(err)
		}
		v := all[start:r.Offset()]
		if len(v) > 1000 {
			continue
		}
		for i := 0; i < len(v); i++ {
			pr := NewReader(v[:i])
			if err := pr.Skip(); CodeOf(err) != CodeBadRequest || pr.Offset() != 0 {
				t.Fatalf("prefix %d of % x: %v, offset %d", i, v, err, pr.Offset())
			}
		}
	}
}

func TestReaderHugeHeadersFailFast(t *testing.T) {
	headers := [][]byte{
		{0xdd, 0xff, 0xff, 0xff, 0xff},
		{0xdf, 0xff, 0xff, 0xff, 0xff},
		{0xdb, 0xff, 0xff, 0xff, 0xff},
		{0xc6, 0xff, 0xff, 0xff, 0xff},
		{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01},
		{0xdc, 0xff, 0xff},
	}
	for _, h := range headers {
		in := append(append([]byte{}, h...), make([]byte, 100)...)
		allocs := testing.AllocsPerRun(10, func() {
			r := NewReader(in)
			if r.Skip() == nil {
				t.Errorf("Skip(% x) succeeded", h)
			}
		})
		// Building the *Error is all that may allocate.
		if allocs > 8 {
			t.Errorf("Skip(% x) allocated %v times", h, allocs)
		}
		r := NewReader(in)
		switch h[0] {
		case 0xdd, 0xdc:
			if _, err := r.ReadArrayLen(); CodeOf(err) != CodeBadRequest {
				t.Errorf("ReadArrayLen(% x) = %v", h, err)
			}
		case 0xdf:
			if _, err := r.ReadMapLen(); CodeOf(err) != CodeBadRequest {
				t.Errorf("ReadMapLen(% x) = %v", h, err)
			}
		case 0xdb:
			if _, err := r.ReadStringBytes(math.MaxInt); CodeOf(err) != CodeBadRequest {
				t.Errorf("ReadStringBytes(% x) = %v", h, err)
			}
		case 0xc6:
			if _, err := r.ReadBinBytes(math.MaxInt); CodeOf(err) != CodeBadRequest {
				t.Errorf("ReadBinBytes(% x) = %v", h, err)
			}
		}
	}
}

func TestReaderKinds(t *testing.T) {
	for b := 0; b < 256; b++ {
		r := NewReader([]byte{byte(b)})
		k := r.Peek()
		want := KindInvalid
		switch {
		case b <= 0x7f, b >= 0xe0, b >= 0xcc && b <= 0xd3:
			want = KindInt
		case b <= 0x8f, b == 0xde, b == 0xdf:
			want = KindMap
		case b <= 0x9f, b == 0xdc, b == 0xdd:
			want = KindArray
		case b <= 0xbf, b >= 0xd9 && b <= 0xdb:
			want = KindString
		case b == 0xc0:
			want = KindNil
		case b == 0xc2, b == 0xc3:
			want = KindBool
		case b >= 0xc4 && b <= 0xc6:
			want = KindBinary
		case b >= 0xc7 && b <= 0xc9, b >= 0xd4 && b <= 0xd8:
			want = KindExt
		case b == 0xca, b == 0xcb:
			want = KindFloat
		}
		if k != want {
			t.Errorf("Peek(%#x) = %v, want %v", b, k, want)
		}
	}
}
