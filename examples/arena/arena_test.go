package arena_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/gameserver/gameserver/examples/arena"
	"github.com/gameserver/gameserver/game"
	"github.com/vmihailenco/msgpack/v5"
)

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(b []byte) (arena.Input, error) {
	var in arena.Input
	err := msgpack.NewDecoder(bytes.NewReader(b)).Decode(&in)
	return in, err
}

// nested is a value nesting depth arrays: [[[...[1]...]]].
func nested(depth int) []byte {
	return append(bytes.Repeat([]byte{0x91}, depth-1), 0x91, 0x01)
}

// An input decodes by the protocol's rules for positional bodies
// (docs/protocol.md, Extensibility and Numbers).
func TestInputDecodes(t *testing.T) {
	cases := []struct {
		name string
		body []byte
		want arena.Input
	}{
		{"floats", encode(t, []any{uint32(7), 0.5, -0.25}), arena.Input{Seq: 7, DX: 0.5, DY: -0.25}},
		{"integer directions", encode(t, []any{1, 1, -1}), arena.Input{Seq: 1, DX: 1, DY: -1}},
		{"float32 directions", encode(t, []any{uint64(1 << 31), float32(0.75), float32(-1)}), arena.Input{Seq: 1 << 31, DX: 0.75, DY: -1}},
		{"largest seq", encode(t, []any{uint64(math.MaxUint32), 0, 0}), arena.Input{Seq: math.MaxUint32}},
		{"seq as int8", encode(t, []any{int8(5), 0, 0}), arena.Input{Seq: 5}},
		{"seq as a whole float", encode(t, []any{5.0, 0, 0}), arena.Input{Seq: 5}},
		{"seq as a whole float32", encode(t, []any{float32(6), 0, 0}), arena.Input{Seq: 6}},
		{"fewer fields", encode(t, []any{3}), arena.Input{Seq: 3}},
		{"two fields", encode(t, []any{3, 0.5}), arena.Input{Seq: 3, DX: 0.5}},
		{"empty array", []byte{0x90}, arena.Input{}},
		{"nil", []byte{0xc0}, arena.Input{}},
		{"trailing fields", encode(t, []any{4, 0.5, 0.5, "later", map[string]any{"a": []any{1, 2}}, nil}), arena.Input{Seq: 4, DX: 0.5, DY: 0.5}},
		{"trailing nesting 31 deep", append([]byte{0x94, 0x04, 0x01, 0x02}, nested(31)...), arena.Input{Seq: 4, DX: 1, DY: 2}},
	}
	for _, c := range cases {
		got, err := decode(c.body)
		if err != nil || got != c.want {
			t.Errorf("%s (%x): %+v, %v; want %+v", c.name, c.body, got, err, c.want)
		}
	}
}

// Whatever else a client sends is an error, and game.On answers it with
// ERROR 400 naming the message type.
func TestInputRefused(t *testing.T) {
	bad := []struct {
		name, body string
		b          []byte
	}{
		{"empty", "", nil},
		{"map", "", encode(t, map[string]any{"Seq": 1, "DX": 0.5, "DY": 0})},
		{"string", "", encode(t, "up")},
		{"string seq", "seq", encode(t, []any{"1", 0.5, 0})},
		{"negative seq", "seq", encode(t, []any{-1, 0, 0})},
		{"seq past uint32", "seq", encode(t, []any{uint64(1 << 32), 0, 0})},
		{"seq past int64", "seq", encode(t, []any{uint64(math.MaxUint64), 0, 0})},
		{"fractional seq", "seq", encode(t, []any{1.5, 0, 0})},
		{"NaN seq", "seq", encode(t, []any{math.NaN(), 0, 0})},
		{"string dx", "dx and dy", encode(t, []any{1, "left", 0})},
		{"bool dy", "dx and dy", encode(t, []any{1, 0.5, true})},
		{"NaN dx", "dx and dy", encode(t, []any{1, math.NaN(), 0})},
		{"infinite dy", "dx and dy", encode(t, []any{1, 0, math.Inf(-1)})},
		{"dx beyond float32", "dx and dy", encode(t, []any{1, 1e39, 0})},
		{"truncated", "", encode(t, []any{1, 0.5, 0.25})[:6]},
		{"huge array, no elements", "", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"huge trailing map", "", []byte{0x94, 0x01, 0x00, 0x00, 0xdf, 0xff, 0xff, 0xff, 0xff}},
		{"trailing string cut", "", []byte{0x94, 0x01, 0x00, 0x00, 0xa5, 'a'}},
		{"trailing nesting 32 deep", "nests", append([]byte{0x94, 0x04, 0x01, 0x02}, nested(32)...)},
		{"trailing nesting 100000 deep", "nests", append([]byte{0x94, 0x04, 0x01, 0x02}, nested(100000)...)},
	}
	r := &handlerRoom{}
	calls := 0
	game.On(r, arena.MsgInput, func(game.Room, game.Player, arena.Input) error { calls++; return nil })
	for _, c := range bad {
		in, err := decode(c.b)
		if err == nil || !strings.Contains(err.Error(), c.body) {
			t.Errorf("%s (%x): %+v, %v; want an error naming %q", c.name, c.b, in, err, c.body)
		}
		err = r.fn(r, nil, game.Message{Type: arena.MsgInput, Body: c.b})
		var ge *game.Error
		if !errors.As(err, &ge) || ge.Code != game.ErrBadRequest.Code || !strings.Contains(ge.Message, "0x1000") {
			t.Errorf("%s through game.On: %v, want a 400 naming 0x1000", c.name, err)
		}
	}
	if calls != 0 {
		t.Fatalf("the room was handed %d refused inputs", calls)
	}
	if err := r.fn(r, nil, game.Message{Type: arena.MsgInput, Body: encode(t, []any{2, 0, 1})}); err != nil || calls != 1 {
		t.Fatalf("a good input after the refused ones: %v, %d calls", err, calls)
	}
}

// FuzzInputDecode: no body makes the decoder panic, and an input it
// accepts is finite and survives a round trip through the arena's wire
// form.
func FuzzInputDecode(f *testing.F) {
	for _, v := range [][]any{{7, 0.5, -0.25}, {1}, {}, {4, 1, 2, "x", []any{1}}, {1.0, float32(1), -1}} {
		f.Add(encode(f, v))
	}
	f.Add(append([]byte{0x94, 0x04, 0x01, 0x02}, nested(40)...))
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decode(b)
		if err != nil {
			return
		}
		if f32 := float32(in.DX); math.IsNaN(float64(f32)) || math.IsInf(float64(f32), 0) {
			t.Fatalf("%x: dx %v", b, in.DX)
		}
		if f32 := float32(in.DY); math.IsNaN(float64(f32)) || math.IsInf(float64(f32), 0) {
			t.Fatalf("%x: dy %v", b, in.DY)
		}
		again, err := decode(encode(t, []any{in.Seq, in.DX, in.DY}))
		if err != nil || again != in {
			t.Fatalf("%x: %+v round-trips to %+v, %v", b, in, again, err)
		}
	})
}

// handlerRoom is a Room that only records the handler game.On registers.
type handlerRoom struct {
	game.Room
	fn func(r game.Room, p game.Player, msg game.Message) error
}

func (r *handlerRoom) Handle(_ game.MsgType, fn func(r game.Room, p game.Player, msg game.Message) error) {
	r.fn = fn
}

// reflected is Input without its decoder: what msgpack makes of the same
// bytes by reflection.
type reflected struct {
	_msgpack struct{} `msgpack:",as_array"`
	Seq      uint32
	DX, DY   float64
}

// An input through game.On, decoded by its own decoder and by reflection.
func BenchmarkInputDecode(b *testing.B) {
	msg := game.Message{Type: arena.MsgInput, Body: encode(b, []any{uint32(9), 0.5, -0.25})}
	var sum float64
	run := func(b *testing.B, r *handlerRoom) {
		b.ReportAllocs()
		for b.Loop() {
			if err := r.fn(r, nil, msg); err != nil {
				b.Fatal(err)
			}
		}
		if sum == 0 {
			b.Fatal("nothing decoded")
		}
	}
	b.Run("custom", func(b *testing.B) {
		r := &handlerRoom{}
		game.On(r, arena.MsgInput, func(_ game.Room, _ game.Player, in arena.Input) error { sum += in.DX; return nil })
		run(b, r)
	})
	b.Run("reflection", func(b *testing.B) {
		r := &handlerRoom{}
		game.On(r, arena.MsgInput, func(_ game.Room, _ game.Player, in reflected) error { sum += in.DX; return nil })
		run(b, r)
	})
}

// An input through game.On costs no allocation.
func TestInputDecodeAllocs(t *testing.T) {
	r := &handlerRoom{}
	var sum float64
	game.On(r, arena.MsgInput, func(_ game.Room, _ game.Player, in arena.Input) error { sum += in.DY; return nil })
	msg := game.Message{Type: arena.MsgInput, Body: encode(t, []any{9, 0.5, -0.25, "later"})}
	if n := testing.AllocsPerRun(100, func() {
		if err := r.fn(r, nil, msg); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocs per input, want 0", n)
	}
	if sum != -0.25*101 {
		t.Errorf("sum of dy %v", sum)
	}
}
