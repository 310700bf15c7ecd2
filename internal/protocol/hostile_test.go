package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// decodeMessage splits a whole message and decodes it, turning a panic
// into a test failure.
func decodeMessage(t *testing.T, msg []byte) (m Message, err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("panic decoding %s: %v", short(msg), p)
		}
	}()
	typ, body, err := Split(msg)
	if err != nil {
		return nil, err
	}
	if typ == TypeState {
		// Also decode the body as an arena state, as a client would.
		var st State
		if err := st.Decode(body); err == nil {
			var as ArenaState
			_ = as.Decode(st.Body)
		}
	}
	return DecodeAny(typ, body)
}

// wantCode checks that err is an *Error with the given code.
func wantCode(t *testing.T, err error, code Code) {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T), want *Error with code %v", err, err, code)
	}
	if pe.Code != code {
		t.Fatalf("error %q has code %v, want %v", pe, pe.Code, code)
	}
	if pe.Message == "" {
		t.Fatalf("error with code %v has no message", pe.Code)
	}
}

// msg builds a message from a type and body parts.
func msg(typ MsgType, parts ...[]byte) []byte {
	out := AppendType(nil, typ)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func str(s string) []byte { return AppendString(nil, s) }

// nested returns n nested one-element arrays around a nil.
func nested(n int) []byte {
	return append(bytes.Repeat([]byte{0x91}, n), mpNil)
}

func TestHostileInputs(t *testing.T) {
	long := func(n int) []byte { return str(strings.Repeat("a", n)) }
	cases := []struct {
		name string
		msg  []byte
		code Code
	}{
		{"empty", nil, CodeBadRequest},
		{"one_byte", []byte{0x00}, CodeBadRequest},
		{"unknown_system_type", msg(0x00ff, []byte{0x90}), CodeUnknownType},
		{"unknown_type_zero", msg(0x0000, []byte{0x90}), CodeUnknownType},
		{"unknown_game_type", msg(0x1234, []byte{0x90}), CodeUnknownType},
		{"prefix_only", msg(TypePing), CodeBadRequest},
		{"trailing_garbage", msg(TypePing, []byte{0x91, 0x01, 0x00}), CodeBadRequest},
		{"two_bodies", msg(TypePing, []byte{0x91, 0x01, 0x91, 0x01}), CodeBadRequest},
		{"map_body", msg(TypeHello, []byte{0x81, 0xa1, 'v', 0x01}), CodeBadRequest},
		{"nil_body", msg(TypeHello, []byte{mpNil}), CodeBadRequest},
		{"int_body", msg(TypePing, []byte{0x01}), CodeBadRequest},
		{"reserved_byte_body", msg(TypePing, []byte{0xc1}), CodeBadRequest},
		{"reserved_byte_field", msg(TypePing, []byte{0x91, 0xc1}), CodeBadRequest},
		{"reserved_byte_extra", msg(TypePing, []byte{0x92, 0x01, 0xc1}), CodeBadRequest},
		{"missing_required_hello", msg(TypeHello, []byte{0x90}), CodeBadRequest},
		{"missing_required_ping", msg(TypePing, []byte{0x90}), CodeBadRequest},
		{"missing_required_pong", msg(TypePong, []byte{0x90}), CodeBadRequest},
		{"missing_required_error", msg(TypeError, []byte{0x90}), CodeBadRequest},
		{"nil_required_int", msg(TypePing, []byte{0x91, mpNil}), CodeBadRequest},
		{"string_for_int", msg(TypeHello, []byte{0x91}, str("1")), CodeBadRequest},
		{"bool_for_int", msg(TypeLeave, []byte{0x91, mpTrue}), CodeBadRequest},
		{"int_for_string", msg(TypeHello, []byte{0x92, 0x01, 0x05}), CodeBadRequest},
		{"bin_for_string", msg(TypeHello, []byte{0x92, 0x01, 0xc4, 0x01, 'x'}), CodeBadRequest},
		{"array_for_string", msg(TypeJoined, []byte{0x92, 0x01, 0x90}), CodeBadRequest},
		{"string_for_float", msg(TypeArenaInput, []byte{0x92, 0x01}, str("0.5")), CodeBadRequest},
		{"negative_uint", msg(TypePing, []byte{0x91, 0xff}), CodeBadRequest},
		{"uint32_overflow", msg(TypePing, []byte{0x91, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0}), CodeBadRequest},
		{"uint16_overflow", msg(TypeError, []byte{0x91, 0xce, 0, 1, 0, 0}), CodeBadRequest},
		{"uint8_overflow_mode", msg(TypeJoin, []byte{0x92, 0x01, 0xcd, 0x01, 0x00}), CodeBadRequest},
		{"unknown_join_mode", msg(TypeJoin, []byte{0x92, 0x01, 0x03}), CodeBadRequest},
		{"int64_time_from_uint64", msg(TypeState, []byte{0x92, 0x00, 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}), CodeBadRequest},
		{"fractional_int", msg(TypePing, []byte{0x91, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}), CodeBadRequest},
		{"nan_int", msg(TypePing, []byte{0x91, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1}), CodeBadRequest},
		{"inf_int", msg(TypePing, []byte{0x91, 0xca, 0x7f, 0x80, 0, 0}), CodeBadRequest},
		{"huge_float_int", msg(TypeResumed, []byte{0x92, 0xa0, 0xcb, 0x43, 0xf0, 0, 0, 0, 0, 0, 0}), CodeBadRequest}, // 2^64
		{"nan_float", msg(TypeArenaInput, []byte{0x92, 0x01, 0xca, 0x7f, 0xc0, 0, 0}), CodeBadRequest},
		{"inf_float", msg(TypeArenaInput, []byte{0x92, 0x01, 0xcb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0}), CodeBadRequest},
		{"float32_overflow", msg(TypeArenaInput, []byte{0x93, 0x01, 0x00, 0xcb, 0x47, 0xf0, 0, 0, 0, 0, 0, 0}), CodeBadRequest},
		{"invalid_utf8", msg(TypeHello, []byte{0x93, 0x01, 0xc0, 0xa2, 0xc3, 0x28}), CodeBadRequest},
		{"array32_claims_2^32", msg(TypePing, []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}), CodeBadRequest},
		{"array16_claims_more", msg(TypePing, []byte{0xdc, 0xff, 0xff, 0x01, 0x02}), CodeBadRequest},
		{"map32_claims_2^32_in_raw", msg(TypeJoin, []byte{0x95, 0x01, 0x00, 0xa0, 0xa0, 0xdf, 0xff, 0xff, 0xff, 0xff}), CodeBadRequest},
		{"array32_claims_2^32_in_raw", msg(TypeState, []byte{0x93, 0x00, 0x00, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}), CodeBadRequest},
		{"array32_claims_2^32_in_extra", msg(TypePong, []byte{0x92, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff}), CodeBadRequest},
		{"rooms_list_claims_2^32", msg(TypeRooms, []byte{0x92, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff}), CodeTooLarge},
		{"rooms_list_claims_more_than_left", msg(TypeRooms, []byte{0x92, 0x01, 0xdc, 0x04, 0x00, 0x90}), CodeBadRequest},
		{"str32_claims_4GiB_token", msg(TypeHello, []byte{0x92, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}), CodeTooLarge},
		{"str32_claims_4GiB_in_raw", msg(TypeJoin, []byte{0x95, 0x01, 0x00, 0xa0, 0xa0, 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}), CodeBadRequest},
		{"bin32_claims_4GiB_in_extra", msg(TypePing, []byte{0x92, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff}), CodeBadRequest},
		{"ext32_claims_4GiB_in_raw", msg(TypeState, []byte{0x93, 0x00, 0x00, 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}), CodeBadRequest},
		{"deep_nesting_10000_in_raw", msg(TypeJoin, []byte{0x95, 0x01, 0x00, 0xa0, 0xa0}, nested(10000)), CodeTooLarge},
		{"deep_nesting_10000_maps_in_raw", msg(TypeState, []byte{0x93, 0x00, 0x00}, bytes.Repeat([]byte{0x81, 0x00}, 10000), []byte{0xc0}), CodeTooLarge},
		{"deep_nesting_10000_in_extra", msg(TypePing, []byte{0x94, 0x01, 0x00, 0x00}, nested(10000)), CodeTooLarge},
		{"nesting_33_in_raw", msg(TypeState, []byte{0x93, 0x00, 0x00}, nested(MaxDepth+1)), CodeTooLarge},
		{"nesting_33_empty_in_raw", msg(TypeState, []byte{0x93, 0x00, 0x00}, bytes.Repeat([]byte{0x91}, MaxDepth), []byte{0x90}), CodeTooLarge},
		{"token_over_limit", msg(TypeHello, []byte{0x92, 0x01}, long(MaxTokenLen+1)), CodeTooLarge},
		{"client_over_limit", msg(TypeHello, []byte{0x93, 0x01, 0xc0}, long(MaxClientLen+1)), CodeTooLarge},
		{"session_id_over_limit", msg(TypeResume, []byte{0x91}, long(MaxIDLen+1)), CodeTooLarge},
		{"room_id_over_limit", msg(TypeJoin, []byte{0x94, 0x01, 0x02, 0xa0}, long(MaxIDLen+1)), CodeTooLarge},
		{"kind_over_limit", msg(TypeList, []byte{0x92, 0x01}, long(MaxIDLen+1)), CodeTooLarge},
		{"player_id_over_limit", msg(TypePresence, []byte{0x93, 0xa0, 0x00}, long(MaxIDLen+1)), CodeTooLarge},
		{"message_over_limit", msg(TypeError, []byte{0x92, 0xcd, 0x01, 0x90}, long(MaxTextLen+1)), CodeTooLarge},
		{"reason_over_limit", msg(TypeKick, []byte{0x92, 0x00}, long(MaxTextLen+1)), CodeTooLarge},
		{"node_over_limit", msg(TypeWelcome, []byte{0x93, 0x01, 0xa0}, long(MaxNodeLen+1)), CodeTooLarge},
		{"url_over_limit", msg(TypeMove, []byte{0x91}, long(MaxURLLen+1)), CodeTooLarge},
		{"rooms_over_limit", (&Rooms{Rooms: manyRooms(MaxRooms + 1)}).Append(nil), CodeTooLarge},
		{"room_entry_is_map", msg(TypeRooms, []byte{0x92, 0x01, 0x91, 0x80}), CodeBadRequest},
		{"room_entry_bad_field", msg(TypeRooms, []byte{0x92, 0x01, 0x91, 0x93, 0xa0, 0xa0, 0xa0}), CodeBadRequest},
		{"room_metadata_too_deep", msg(TypeRooms, []byte{0x92, 0x01, 0x91, 0x95, 0xa0, 0xa0, 0x00, 0x00}, nested(100)), CodeTooLarge},
		{"rooms_list_is_map", msg(TypeRooms, []byte{0x92, 0x01, 0x80}), CodeBadRequest},
		{"arena_players_over_limit", (&State{Body: arenaBody(manyPlayers(MaxArenaPlayers + 1))}).Append(nil), CodeTooLarge},
		{"arena_input_missing_floats_ok_but_extra_bad", msg(TypeArenaInput, []byte{0x94, 0x01, 0x00, 0x00, 0xc1}), CodeBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			_, err := decodeMessage(t, c.msg)
			if c.name == "arena_players_over_limit" {
				// STATE itself is fine; the arena body is over its limit.
				if err != nil {
					t.Fatalf("STATE: %v", err)
				}
				_, body, _ := Split(c.msg)
				var st State
				if err := st.Decode(body); err != nil {
					t.Fatal(err)
				}
				var as ArenaState
				err = as.Decode(st.Body)
			}
			wantCode(t, err, c.code)
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Fatalf("took %v", d)
			}
		})
	}
}

// TestNestingLimitBoundary checks that exactly MaxDepth levels pass.
func TestNestingLimitBoundary(t *testing.T) {
	m := (&State{Body: nested(MaxDepth)}).Append(nil)
	if _, err := decodeMessage(t, m); err != nil {
		t.Fatalf("%d levels: %v", MaxDepth, err)
	}
	deepEmpty := append(bytes.Repeat([]byte{0x91}, MaxDepth-1), 0x80)
	if _, err := decodeMessage(t, (&State{Body: deepEmpty}).Append(nil)); err != nil {
		t.Fatalf("%d levels ending in an empty map: %v", MaxDepth, err)
	}
}

// TestTruncatedEverywhere truncates every vector message at every offset:
// each prefix must fail with bad_request, without panicking.
func TestTruncatedEverywhere(t *testing.T) {
	for _, s := range allSamples() {
		full := s.msg.Append(nil)
		if len(full) > 4096 {
			continue // the long edge samples add nothing but time
		}
		t.Run(s.name, func(t *testing.T) {
			for i := 0; i < len(full); i++ {
				_, err := decodeMessage(t, full[:i])
				if err == nil {
					t.Fatalf("prefix of %d/%d bytes decoded", i, len(full))
				}
				wantCode(t, err, CodeBadRequest)
			}
			if s.arena {
				body := s.msg.(*State).Body
				for i := 0; i < len(body); i++ {
					var as ArenaState
					wantCode(t, as.Decode(body[:i]), CodeBadRequest)
				}
			}
		})
	}
}

// TestCorruptedEverywhere flips every byte of every vector message to
// every value: decoding must never panic and must return nil or *Error.
func TestCorruptedEverywhere(t *testing.T) {
	for _, s := range canonicalSamples() {
		full := s.msg.Append(nil)
		t.Run(s.name, func(t *testing.T) {
			buf := make([]byte, len(full))
			for i := range full {
				for v := 0; v < 256; v++ {
					copy(buf, full)
					buf[i] = byte(v)
					_, err := decodeMessage(t, buf)
					if err != nil {
						var pe *Error
						if !errors.As(err, &pe) {
							t.Fatalf("error %v is %T", err, err)
						}
						switch pe.Code {
						case CodeBadRequest, CodeTooLarge, CodeUnknownType:
						default:
							t.Fatalf("unexpected code in %v", err)
						}
					}
				}
			}
		})
	}
}

// TestErrorMessagesNameTheField checks the error text of a few failures.
func TestErrorMessagesNameTheField(t *testing.T) {
	cases := []struct {
		msg  []byte
		want string
	}{
		{msg(TypeHello, []byte{0x90}), "bad_request: hello: field 0 (version) is required, the array has 0 elements"},
		{msg(TypeHello, []byte{0x92, 0x01}, str(strings.Repeat("t", 5000))), "too_large: hello: field 1 (token): string of 5000 bytes at offset 2, limit 4096"},
		{msg(TypePing, []byte{0x91, 0xff}), "bad_request: ping: field 0 (nonce): integer -1 at offset 1 is negative"},
		{msg(TypeJoin, []byte{0x92, 0x01, 0x09}), "bad_request: join: field 1 (mode): unknown join mode 9"},
		{msg(TypeRooms, []byte{0x92, 0x01, 0x92, 0x90, 0x91, 0x05}), "bad_request: rooms: room 1: field 0 (roomID): string expected at offset 5, found integer"},
		{msg(TypePong, []byte{0x91, 0x01, 0x00}), "bad_request: pong: 1 trailing bytes after the body"},
		{msg(TypePong, []byte{0x93, 0x01, 0x00}, nested(40)), "too_large: pong: field 2 (extra): value at offset 35 nests deeper than 32 levels"},
		{msg(TypeHello, []byte{0x81}), "bad_request: hello: array expected at offset 0, found map"},
	}
	for _, c := range cases {
		_, err := decodeMessage(t, c.msg)
		if err == nil || err.Error() != c.want {
			t.Errorf("decoding %s:\n got %v\nwant %s", short(c.msg), err, c.want)
		}
	}
}

// TestLimitBoundaries checks that values exactly at each limit decode.
func TestLimitBoundaries(t *testing.T) {
	for _, s := range edgeSamples() {
		if _, err := decodeMessage(t, s.msg.Append(nil)); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
}
