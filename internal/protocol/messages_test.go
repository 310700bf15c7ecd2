package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

func allSamples() []sample { return append(canonicalSamples(), edgeSamples()...) }

func TestRoundTrip(t *testing.T) {
	for _, s := range allSamples() {
		t.Run(s.name, func(t *testing.T) {
			enc := s.msg.Append(nil)
			typ, body, err := Split(enc)
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			if typ != s.msg.Type() {
				t.Fatalf("type prefix %v, want %v", typ, s.msg.Type())
			}
			got, err := DecodeAny(typ, body)
			if err != nil {
				t.Fatalf("Decode(%s): %v", short(body), err)
			}
			if !reflect.DeepEqual(got, s.msg) {
				t.Fatalf("decoded %.300v, want %.300v", got, s.msg)
			}
			if re := got.Append(nil); !bytes.Equal(re, enc) {
				t.Fatalf("re-encoded %s, want %s", short(re), short(enc))
			}
			// Append extends dst without disturbing its contents.
			out := s.msg.Append([]byte("abc"))
			if string(out[:3]) != "abc" || !bytes.Equal(out[3:], enc) {
				t.Fatalf("Append to non-empty dst gave %s", short(out))
			}
			if s.arena {
				want := s.msg.(*State).Body
				var as ArenaState
				if err := as.Decode(want); err != nil {
					t.Fatalf("ArenaState.Decode: %v", err)
				}
				if re := as.Append(nil); !bytes.Equal(re, want) {
					t.Fatalf("arena body re-encoded %s, want %s", short(re), short(want))
				}
			}
		})
	}
}

// TestDecodeResetsFields checks that decoding into a used struct leaves
// nothing of its previous contents.
func TestDecodeResetsFields(t *testing.T) {
	for _, s := range canonicalSamples() {
		t.Run(s.name, func(t *testing.T) {
			m := New(s.msg.Type())
			_, body, _ := Split(s.msg.Append(nil))
			if err := m.Decode(body); err != nil {
				t.Fatal(err)
			}
			zero := New(s.msg.Type())
			_, zbody, _ := Split(zero.Append(nil))
			if err := m.Decode(zbody); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, zero) {
				t.Fatalf("after decoding a zero message: %+v", m)
			}
		})
	}
}

func TestArenaStateRoundTrip(t *testing.T) {
	cases := map[string]ArenaState{
		"empty":    {},
		"one":      {Players: []ArenaPlayer{{ID: []byte("a"), X: 1, Y: 2, LastSeq: 3}}},
		"two":      arenaPlayers2,
		"eight":    players8(),
		"max":      manyPlayers(MaxArenaPlayers),
		"empty_id": {Players: []ArenaPlayer{{X: -1}}},
	}
	for name, st := range cases {
		t.Run(name, func(t *testing.T) {
			enc := st.Append(nil)
			var got ArenaState
			if err := got.Decode(enc); err != nil {
				t.Fatal(err)
			}
			if len(got.Players) != len(st.Players) {
				t.Fatalf("%d players, want %d", len(got.Players), len(st.Players))
			}
			for i := range st.Players {
				w, g := st.Players[i], got.Players[i]
				if !bytes.Equal(w.ID, g.ID) || w.X != g.X || w.Y != g.Y || w.LastSeq != g.LastSeq {
					t.Fatalf("player %d = %+v, want %+v", i, g, w)
				}
			}
			if re := got.Append(nil); !bytes.Equal(re, enc) {
				t.Fatalf("re-encoded differs")
			}
		})
	}
}

func TestArenaStateReusesCapacity(t *testing.T) {
	s8 := players8()
	enc := s8.Append(nil)
	var st ArenaState
	if err := st.Decode(enc); err != nil {
		t.Fatal(err)
	}
	first := &st.Players[0]
	small := arenaPlayers2.Append(nil)
	if err := st.Decode(small); err != nil {
		t.Fatal(err)
	}
	if len(st.Players) != 2 || &st.Players[0] != first {
		t.Fatalf("Players not reused: len %d", len(st.Players))
	}
	// The ID is a sub-slice of the input.
	if &st.Players[0].ID[0] != &small[bytes.Index(small, []byte("p-1"))] {
		t.Fatalf("ID is not a sub-slice of the input")
	}
	if err := st.Decode([]byte{mpNil}); err != nil || len(st.Players) != 0 {
		t.Fatalf("nil body: %v, %d players", err, len(st.Players))
	}
	if err := st.Decode(nil); CodeOf(err) != CodeBadRequest {
		t.Fatalf("empty body: %v", err)
	}
}

func TestAppendStateHeader(t *testing.T) {
	s := players8()
	want := (&State{Tick: 99, ServerTimeNs: 123456789, Body: s.Append(nil)}).Append(nil)
	got := s.Append(AppendStateHeader(nil, 99, 123456789))
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
}

// TestLenientDecoding covers the extensibility rules with hand-made bodies.
func TestLenientDecoding(t *testing.T) {
	cases := []struct {
		name string
		typ  MsgType
		body []byte
		want Message
	}{
		{"welcome_fewer_fields", TypeWelcome, []byte{0x91, 0x01}, &Welcome{Version: 1}},
		{"welcome_empty_array", TypeWelcome, []byte{0x90}, &Welcome{}},
		{"hello_nil_strings", TypeHello, []byte{0x93, 0x01, 0xc0, 0xc0}, &Hello{Version: 1}},
		{"hello_empty_strings", TypeHello, []byte{0x93, 0x01, 0xa0, 0xa0}, &Hello{Version: 1}},
		{"kick_nil_reason", TypeKick, []byte{0x92, 0xcd, 0x01, 0x93, 0xc0}, &Kick{Code: 403}},
		{"ping_extra_fields", TypePing, []byte{0x96, 0x07, 0x08, 0x09, 0xa1, 'x', 0x92, 0x01, 0x80, 0xd6, 0xff, 1, 2, 3, 4}, &Ping{Nonce: 7, RTTMicros: 8, Ack: 9}},
		{"ping_float64_nonce", TypePing, []byte{0x91, 0xcb, 0x40, 0x45, 0, 0, 0, 0, 0, 0}, &Ping{Nonce: 42}},
		{"ping_float32_nonce", TypePing, []byte{0x91, 0xca, 0x42, 0x28, 0, 0}, &Ping{Nonce: 42}},
		{"ping_uint64_nonce", TypePing, []byte{0x91, 0xcf, 0, 0, 0, 0, 0, 0, 0, 42}, &Ping{Nonce: 42}},
		{"ping_int8_nonce", TypePing, []byte{0x91, 0xd0, 42}, &Ping{Nonce: 42}},
		{"ping_int64_nonce", TypePing, []byte{0x91, 0xd3, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, &Ping{Nonce: 0xffffffff}},
		{"ping_negzero_float", TypePing, []byte{0x91, 0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0}, &Ping{}},
		{"input_int_floats", TypeArenaInput, []byte{0x93, 0x01, 0xff, 0xd0, 0x80}, &ArenaInput{Seq: 1, DX: -1, DY: -128}},
		{"input_float64_floats", TypeArenaInput, []byte{0x93, 0x01, 0xcb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0, 0xcb, 0xbf, 0xf0, 0, 0, 0, 0, 0, 0}, &ArenaInput{Seq: 1, DX: 0.5, DY: -1}},
		{"state_negative_time_int8", TypeState, []byte{0x93, 0x00, 0xd0, 0x9c, 0xc0}, &State{ServerTimeNs: -100}},
		{"state_time_float", TypeState, []byte{0x92, 0x00, 0xcb, 0xc0, 0x59, 0, 0, 0, 0, 0, 0}, &State{ServerTimeNs: -100}},
		{"rooms_nil_list", TypeRooms, []byte{0x92, 0x01, 0xc0}, &Rooms{ReqID: 1}},
		{"rooms_short_entry", TypeRooms, []byte{0x92, 0x01, 0x91, 0x91, 0xa1, 'r'}, &Rooms{ReqID: 1, Rooms: []RoomInfo{{RoomID: "r"}}}},
		{"rooms_long_entry", TypeRooms, []byte{0x92, 0x01, 0x91, 0x96, 0xa1, 'r', 0xc0, 1, 2, 0xc0, 0xc3}, &Rooms{ReqID: 1, Rooms: []RoomInfo{{RoomID: "r", Players: 1, MaxPlayers: 2}}}},
		{"join_nil_options", TypeJoin, []byte{0x95, 0x01, 0x00, 0xa1, 'a', 0xc0, 0xc0}, &Join{ReqID: 1, Kind: "a"}},
		{"join_ext_options", TypeJoin, []byte{0x95, 0x01, 0x00, 0xa1, 'a', 0xc0, 0xc7, 0x01, 0x05, 0xaa}, &Join{ReqID: 1, Kind: "a", Options: []byte{0xc7, 0x01, 0x05, 0xaa}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeAny(c.typ, c.body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestArenaStateLenient(t *testing.T) {
	// One player with a float64 x, an int y, a float64 lastSeq, a
	// received count and an extra trailing field; a second player with
	// only an ID.
	body := []byte{0x92,
		0x96, 0xa1, 'a', 0xcb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0, 0x05, 0xcb, 0x40, 0x24, 0, 0, 0, 0, 0, 0, 0x07, 0xc3,
		0x91, 0xa1, 'b'}
	var st ArenaState
	if err := st.Decode(body); err != nil {
		t.Fatal(err)
	}
	want := []ArenaPlayer{{ID: []byte("a"), X: 0.5, Y: 5, LastSeq: 10, Received: 7}, {ID: []byte("b")}}
	if !reflect.DeepEqual(st.Players, want) {
		t.Fatalf("got %+v", st.Players)
	}
}

func TestSplit(t *testing.T) {
	typ, body, err := Split([]byte{0x10, 0x01, 0x90})
	if err != nil || typ != 0x1001 || !bytes.Equal(body, []byte{0x90}) {
		t.Fatalf("Split = %v, % x, %v", typ, body, err)
	}
	typ, body, err = Split([]byte{0x00, 0x03})
	if err != nil || typ != TypePing || len(body) != 0 {
		t.Fatalf("Split of a bare prefix = %v, % x, %v", typ, body, err)
	}
	for _, in := range [][]byte{nil, {}, {0x00}} {
		if _, _, err := Split(in); CodeOf(err) != CodeBadRequest {
			t.Errorf("Split(% x) error = %v, want bad_request", in, err)
		}
	}
	if got := AppendType([]byte{0xff}, 0xabcd); !bytes.Equal(got, []byte{0xff, 0xab, 0xcd}) {
		t.Fatalf("AppendType = % x", got)
	}
}

func TestNames(t *testing.T) {
	cases := []struct {
		got, want string
	}{
		{TypeHello.String(), "hello"},
		{TypeState.String(), "state"},
		{TypePresence.String(), "presence"},
		{MsgType(0x1001).String(), "game(0x1001)"},
		{TypeArenaInput.String(), "game(0x1000)"},
		{MsgType(0xffff).String(), "game(0xffff)"},
		{MsgType(0x00ff).String(), "unknown(0x00ff)"},
		{CodeBadRequest.String(), "bad_request"},
		{CodeRoomNotFound.String(), "room_not_found"},
		{CodeUnsupportedVersion.String(), "unsupported_version"},
		{CodeUnavailable.String(), "unavailable"},
		{Code(1001).String(), "game_error(1001)"},
		{Code(499).String(), "code(499)"},
		{JoinByID.String(), "join_by_id"},
		{LeftDropped.String(), "dropped"},
		{PresenceResume.String(), "resume"},
		{KindMap.String(), "map"},
		{CloseHeartbeatTimeout.String(), "heartbeat_timeout"},
		{CloseCode(4999).String(), "close(4999)"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if TypeState.IsGame() || !MsgType(0x1000).IsGame() || !Code(1000).IsGame() || Code(999).IsGame() {
		t.Error("IsGame boundaries wrong")
	}
	if CloseDraining.Terminal() || !CloseUnsupportedVersion.Terminal() || CloseNormal.Terminal() {
		t.Error("Terminal wrong")
	}
	// Every system code of the specification has a distinct snake_case name.
	seen := map[string]bool{}
	for _, c := range []Code{400, 401, 403, 404, 405, 406, 408, 409, 410, 411, 413, 422, 426, 428, 429, 500, 503} {
		name := c.String()
		if seen[name] || name == fmt.Sprintf("code(%d)", c) {
			t.Errorf("code %d has name %q", c, name)
		}
		seen[name] = true
	}
}

func TestError(t *testing.T) {
	e := NewError(CodeTooLarge, "x is big")
	if e.Error() != "too_large: x is big" {
		t.Fatalf("Error() = %q", e.Error())
	}
	if (&Error{Code: CodeInternal}).Error() != "internal" {
		t.Fatal("empty message")
	}
	wrapped := fmt.Errorf("decoding: %w", e)
	if CodeOf(wrapped) != CodeTooLarge || CodeOf(errors.New("x")) != CodeInternal || CodeOf(nil) != 0 {
		t.Fatal("CodeOf wrong")
	}
	_, err := DecodeAny(TypeHello, []byte{0x93, 0x01, 0xa0, 0xd9, 200})
	if err == nil {
		t.Fatal("no error")
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodeTooLarge {
		t.Fatalf("err = %v", err)
	}
	want := "too_large: hello: field 2 (client): string of 200 bytes at offset 3, limit 128"
	if err.Error() != want {
		t.Fatalf("err = %q, want %q", err, want)
	}
}

func TestNewCoversAllTypes(t *testing.T) {
	for typ := range typeNames {
		m := New(typ)
		if m == nil || m.Type() != typ {
			t.Errorf("New(%v) = %T", typ, m)
		}
	}
	if New(0x00ff) != nil || New(0x1234) != nil {
		t.Error("New of unknown type is not nil")
	}
}
