package game_test

import (
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
	r := &handlerRoom{}
	var got []input
	game.On(r, 0x1001, func(_ game.Room, _ game.Player, v input) error {
		got = append(got, v)
		return nil
	})
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
	if len(got) != len(msgs) {
		t.Fatalf("%d calls, want %d", len(got), len(msgs))
	}
	for i := range msgs {
		if got[i].Seq != msgs[i].Seq || got[i].DX != msgs[i].DX || got[i].DY != msgs[i].DY || strings.Join(got[i].Tags, ",") != strings.Join(msgs[i].Tags, ",") {
			t.Errorf("call %d: %+v, want %+v", i, got[i], msgs[i])
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
