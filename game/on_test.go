package game_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gameserver/gameserver/game"
	"github.com/vmihailenco/msgpack/v5"
)

// handlerRoom is a Room that only records the handler On registers.
type handlerRoom struct {
	game.Room
	t  game.MsgType
	fn func(r game.Room, p game.Player, msg game.Message) error
}

func (r *handlerRoom) Handle(t game.MsgType, fn func(r game.Room, p game.Player, msg game.Message) error) {
	r.t, r.fn = t, fn
}

// inputs routes 0x1001 with On to a handler that keeps each input.
type inputs struct {
	r   *handlerRoom
	got []input
}

func recordInputs() *inputs {
	in := &inputs{r: &handlerRoom{}}
	game.On(in.r, 0x1001, func(_ game.Room, _ game.Player, v input) error {
		in.got = append(in.got, v)
		return nil
	})
	return in
}

type input struct {
	_msgpack struct{} `msgpack:",as_array"`
	Seq      uint32
	DX, DY   float64
	Tags     []string
}

func body(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// On decodes each body into a value of its own: what one call decoded is
// not seen by the next, and a value the game keeps is not changed later.
func TestOnDecodesEachMessageAfresh(t *testing.T) {
	rec := recordInputs()
	r := rec.r
	if r.t != 0x1001 {
		t.Fatalf("registered type %#x", r.t)
	}
	msgs := []input{
		{Seq: 1, DX: 1.5, DY: -2, Tags: []string{"a", "b"}},
		{Seq: 2, DX: 0, DY: 3},
		{Seq: 3, Tags: []string{"c"}},
	}
	for _, m := range msgs {
		b := body(t, m)
		if err := r.fn(r, nil, game.Message{Type: 0x1001, Body: b}); err != nil {
			t.Fatal(err)
		}
		clear(b) // the body is only valid during the call
	}
	if len(rec.got) != len(msgs) {
		t.Fatalf("%d calls, want %d", len(rec.got), len(msgs))
	}
	for i := range msgs {
		if rec.got[i].Seq != msgs[i].Seq || rec.got[i].DX != msgs[i].DX || rec.got[i].DY != msgs[i].DY || strings.Join(rec.got[i].Tags, ",") != strings.Join(msgs[i].Tags, ",") {
			t.Errorf("call %d: %+v, want %+v", i, rec.got[i], msgs[i])
		}
	}
}

// A body that does not decode, or has bytes after its value, is a 400
// naming the type, and the handler is not called; the next good body decodes as if nothing happened.
func TestOnBadBody(t *testing.T) {
	r := &handlerRoom{}
	calls := 0
	game.On(r, 0x10ab, func(_ game.Room, _ game.Player, v input) error {
		calls++
		if v.Seq != 7 {
			t.Errorf("seq %d, want 7", v.Seq)
		}
		return nil
	})
	trailing := append(body(t, input{Seq: 7}), 0x01)
	for _, bad := range [][]byte{{0xc1}, {0x93, 0x01}, body(t, "a string"), {0x94, 0xcf, 0xff}, nil, trailing} {
		err := r.fn(r, nil, game.Message{Type: 0x10ab, Body: bad})
		var ge *game.Error
		if !errors.As(err, &ge) || ge.Code != game.ErrBadRequest.Code || !strings.Contains(ge.Message, "0x10ab") {
			t.Errorf("body %x: error %v, want a 400 naming 0x10ab", bad, err)
		}
	}
	if calls != 0 {
		t.Fatalf("handler called %d times for bad bodies", calls)
	}
	if err := r.fn(r, nil, game.Message{Type: 0x10ab, Body: body(t, input{Seq: 7})}); err != nil || calls != 1 {
		t.Fatalf("good body after bad ones: %v, %d calls", err, calls)
	}
}

// BenchmarkOn measures decoding an arena-like input through On.
func BenchmarkOn(b *testing.B) {
	r := &handlerRoom{}
	var sum float64
	game.On(r, 0x1001, func(_ game.Room, _ game.Player, v input) error {
		sum += v.DX
		return nil
	})
	msg := game.Message{Type: 0x1001, Body: body(b, input{Seq: 9, DX: 0.5, DY: -0.25})}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.fn(r, nil, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// A positional struct is read by the protocol's rules: elements past its
// fields are skipped, fields past the elements sent are zero; the body
// must still be one well-formed value.
func TestOnPositionalBodies(t *testing.T) {
	rec := recordInputs()
	r := rec.r
	deep := append(bytes.Repeat([]byte{0x91}, 40), 0x01)
	good := []struct {
		name string
		body []byte
		want input
	}{
		{"one field", body(t, []any{7}), input{Seq: 7}},
		{"empty array", []byte{0x90}, input{}},
		{"three of four", body(t, []any{7, 0.5, -1}), input{Seq: 7, DX: 0.5, DY: -1}},
		{"two more than known", body(t, []any{7, 0.5, -1, []string{"a"}, "later", map[string]any{"x": []any{1, nil}}}), input{Seq: 7, DX: 0.5, DY: -1, Tags: []string{"a"}}},
		{"sixteen elements (array16)", body(t, []any{1, 2, 3, []string{"b"}, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}), input{Seq: 1, DX: 2, DY: 3, Tags: []string{"b"}}},
	}
	for _, c := range good {
		rec.got = rec.got[:0]
		if err := r.fn(r, nil, game.Message{Type: 0x1001, Body: c.body}); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(rec.got) != 1 || rec.got[0].Seq != c.want.Seq || rec.got[0].DX != c.want.DX || rec.got[0].DY != c.want.DY ||
			strings.Join(rec.got[0].Tags, ",") != strings.Join(c.want.Tags, ",") {
			t.Errorf("%s: %+v, want %+v", c.name, rec.got, c.want)
		}
	}
	bad := map[string][]byte{
		"an extra element cut short":  {0x95, 0x01, 0x02, 0x03, 0x90, 0xa5, 'a'},
		"a missing element's place":   {0x93, 0x01, 0x02},
		"an extra element 40 deep":    append([]byte{0x95, 0x01, 0x02, 0x03, 0x90}, deep...),
		"a byte after a short array":  append(body(t, []any{7}), 0x00),
		"a byte after a long array":   append(body(t, []any{7, 1, 2, nil, "x"}), 0xc0),
		"a huge count, nothing after": {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01},
		"a reserved byte in an extra": {0x95, 0x01, 0x02, 0x03, 0x90, 0xc1},
	}
	for name, b := range bad {
		rec.got = rec.got[:0]
		err := r.fn(r, nil, game.Message{Type: 0x1001, Body: b})
		var ge *game.Error
		if !errors.As(err, &ge) || ge.Code != game.ErrBadRequest.Code || len(rec.got) != 0 {
			t.Errorf("%s (%x): %v, %d calls; want a 400 and no call", name, b, err, len(rec.got))
		}
	}
}

// Pointers to positional structs are fitted too; structs encoded as maps,
// and types that decode themselves, are left to msgpack.
func TestOnPositionalKinds(t *testing.T) {
	r := &handlerRoom{}
	var p *input
	game.On(r, 0x1001, func(_ game.Room, _ game.Player, v *input) error { p = v; return nil })
	if err := r.fn(r, nil, game.Message{Type: 0x1001, Body: body(t, []any{9, 1, 2, nil, "later"})}); err != nil || p == nil || p.Seq != 9 || p.DY != 2 {
		t.Fatalf("pointer: %+v, %v", p, err)
	}

	type named struct {
		Seq  uint32 `msgpack:"seq"`
		Name string `msgpack:"name"`
	}
	var n named
	game.On(r, 0x1002, func(_ game.Room, _ game.Player, v named) error { n = v; return nil })
	if err := r.fn(r, nil, game.Message{Type: 0x1002, Body: body(t, map[string]any{"seq": 3, "name": "x", "new": true})}); err != nil || n.Seq != 3 || n.Name != "x" {
		t.Fatalf("map-encoded struct: %+v, %v", n, err)
	}
	// msgpack reads an array into a map-encoded struct only when it has
	// exactly its fields; On does not change that.
	if err := r.fn(r, nil, game.Message{Type: 0x1002, Body: body(t, []any{3})}); err == nil {
		t.Fatal("a short array reached a map-encoded struct")
	}
}

// SkipValues skips whole values, nested or not, and refuses what is cut
// short or nests deeper than MaxDepth, without recursing.
func TestSkipValues(t *testing.T) {
	nested := func(depth int) []byte { return append(bytes.Repeat([]byte{0x91}, depth), 0x01) }
	two := append(body(t, map[string]any{"a": []any{1, "x", nil}}), body(t, 2.5)...)
	for _, c := range []struct {
		name string
		b    []byte
		n    int
		left int // bytes after the skipped values
		ok   bool
	}{
		{"a map and a float", append(two, 0x07), 2, 1, true},
		{"31 levels", nested(31), 1, 0, true},
		{"32 levels", nested(32), 1, 0, false},
		{"100,000 levels", nested(100000), 1, 0, false},
		{"cut short", two[:len(two)-3], 2, 0, false},
		{"zero values", []byte{0xc1}, 0, 1, true},
	} {
		rd := bytes.NewReader(c.b)
		err := game.SkipValues(msgpack.NewDecoder(rd), c.n)
		if (err == nil) != c.ok || (c.ok && rd.Len() != c.left) {
			t.Errorf("%s: %v, %d bytes left", c.name, err, rd.Len())
		}
		if c.name == "32 levels" && !errors.Is(err, game.ErrTooDeep) {
			t.Errorf("32 levels: %v, want ErrTooDeep", err)
		}
	}
}

// FuzzOnPositional: no body makes On panic, and a body On accepts into a
// positional struct holds the same values as that struct re-encoded.
func FuzzOnPositional(f *testing.F) {
	for _, v := range []any{[]any{7}, []any{7, 0.5, -1, []string{"a"}, "later"}, []any{}, map[string]any{"Seq": 1}, "x"} {
		b, _ := msgpack.Marshal(v)
		f.Add(b)
	}
	f.Add(append([]byte{0x95, 0x01, 0x02, 0x03, 0x90}, bytes.Repeat([]byte{0x91}, 40)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &handlerRoom{}
		var got *input
		game.On(r, 0x1001, func(_ game.Room, _ game.Player, v input) error { got = &v; return nil })
		if err := r.fn(r, nil, game.Message{Type: 0x1001, Body: b}); err != nil || got == nil {
			return
		}
		again, err := msgpack.Marshal(got)
		if err != nil {
			t.Fatalf("%x: %+v does not encode: %v", b, got, err)
		}
		var back input
		if err := msgpack.Unmarshal(again, &back); err != nil {
			t.Fatalf("%x: %+v round-trips to an error: %v", b, got, err)
		}
		if back.Seq != got.Seq || (back.DX != got.DX && back.DX == back.DX) || strings.Join(back.Tags, ",") != strings.Join(got.Tags, ",") {
			t.Fatalf("%x: %+v round-trips to %+v", b, got, back)
		}
	})
}
