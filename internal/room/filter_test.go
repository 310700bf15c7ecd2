package room

import (
	"math"
	"testing"

	"github.com/gameserver/gameserver/game"
	"github.com/vmihailenco/msgpack/v5"
)

// Option values compare by value: the same number from two clients
// matches whatever encoding each chose.
func TestSameOption(t *testing.T) {
	same := [][2]any{
		{int8(5), uint8(5)},
		{uint8(200), int64(200)},
		{int16(-3), int64(-3)},
		{uint64(math.MaxInt64), int64(math.MaxInt64)},
		{int64(math.MinInt64), float64(math.MinInt64)},
		{uint32(7), 7.0},
		{float32(0.5), 0.5},
		{int8(0), -0.0},
		{"ffa", "ffa"},
		{true, true},
		{nil, nil},
		{[]byte{1, 2}, []byte{1, 2}},
		{[]any{int8(1), "a", []any{uint16(2)}}, []any{int64(1), "a", []any{2.0}}},
		{map[string]any{"x": uint8(1), "y": []any{}}, map[string]any{"x": 1.0, "y": []any{}}},
	}
	for _, p := range same {
		if !SameOption(p[0], p[1]) || !SameOption(p[1], p[0]) {
			t.Errorf("%#v and %#v differ", p[0], p[1])
		}
	}
	differ := [][2]any{
		{int8(5), uint8(6)},
		{int8(-1), uint64(math.MaxUint64)},
		{int64(-1), uint8(1)},
		{uint64(math.MaxUint64), math.Pow(2, 64)},
		{int8(1), 1.5},
		{float32(0.1), 0.1}, // float32(0.1) is not the float64 0.1
		{math.NaN(), math.NaN()},
		{math.Inf(1), uint64(math.MaxUint64)},
		{"1", int8(1)},
		{true, int8(1)},
		{nil, int8(0)},
		{nil, ""},
		{[]any{int8(1)}, []any{int8(1), int8(2)}},
		{[]any{int8(1)}, map[string]any{"0": int8(1)}},
		{map[string]any{"x": int8(1)}, map[string]any{"y": int8(1)}},
		{map[string]any{"x": int8(1)}, map[string]any{"x": int8(1), "y": nil}},
	}
	for _, p := range differ {
		if SameOption(p[0], p[1]) || SameOption(p[1], p[0]) {
			t.Errorf("%#v and %#v are the same", p[0], p[1])
		}
	}
}

// Only the filtered keys the player gives decide; a room created without
// a filtered key matches a player who gives it only if the player asks
// for nothing there.
func TestFiltersMatch(t *testing.T) {
	keys := []string{"mode", "level"}
	room := game.Options{"mode": "ffa", "level": uint8(200)}
	cases := []struct {
		want  game.Options
		match bool
	}{
		{nil, true},
		{game.Options{"mode": "ffa"}, true},
		{game.Options{"mode": "ffa", "level": int64(200)}, true},
		{game.Options{"level": 200.0, "map": "any"}, true}, // map is not filtered
		{game.Options{"mode": "ctf"}, false},
		{game.Options{"level": int8(100)}, false},
	}
	for _, c := range cases {
		if got := FiltersMatch(keys, room, c.want); got != c.match {
			t.Errorf("room %v, player %v: match %v", room, c.want, got)
		}
	}
	if FiltersMatch(keys, game.Options{"mode": "ffa"}, game.Options{"level": int8(1)}) {
		t.Error("a room created without level matched a player asking for level 1")
	}
}

// Options as clients send them: a JavaScript client's 200 is a msgpack
// uint8, Go's msgpack.Marshal(int64(200)) an int64; 0.5 a float32 or a
// float64. Decoded, they match.
func TestFiltersMatchAcrossEncodings(t *testing.T) {
	decode := func(v map[string]any) game.Options {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var o game.Options
		if err := msgpack.Unmarshal(b, &o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	have := decode(map[string]any{"level": uint8(200), "speed": float32(0.5)})
	want := decode(map[string]any{"level": int64(200), "speed": 0.5})
	if _, ok := have["level"].(uint8); !ok {
		t.Fatalf("level decoded as %T", have["level"])
	}
	if _, ok := want["level"].(int64); !ok {
		t.Fatalf("level decoded as %T", want["level"])
	}
	if !FiltersMatch([]string{"level", "speed"}, have, want) {
		t.Fatalf("%#v does not match %#v", have, want)
	}
}
