package protocol

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// This file checks the codec against github.com/vmihailenco/msgpack/v5,
// an independent msgpack implementation: the reference library must read
// what we write, and we must read what it writes, including the number
// encodings JavaScript encoders produce.

// list marks an array that is a list of entries rather than a record of
// positional fields: a newer encoder appends fields to records, not
// entries to lists.
type list []any

// expectArray spells out, independently of the encoders, the msgpack
// array a message body must hold. Raw fields are msgpack.RawMessage,
// "str|nil" fields are nil when empty.
func expectArray(t *testing.T, m Message) []any {
	t.Helper()
	optStr := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	raw := func(b []byte) any {
		if len(b) == 0 {
			return nil
		}
		return msgpack.RawMessage(b)
	}
	switch m := m.(type) {
	case *Hello:
		return []any{uint64(m.Version), optStr(m.Token), optStr(m.Client)}
	case *Welcome:
		return []any{uint64(m.Version), m.SessionID, m.Node, uint64(m.PingIntervalMs),
			uint64(m.PingTimeoutMs), uint64(m.MaxMessage), optStr(m.ResumeToken)}
	case *Ping:
		return []any{uint64(m.Nonce), uint64(m.RTTMicros), m.Ack}
	case *Pong:
		return []any{uint64(m.Nonce), m.Ack}
	case *ErrorMsg:
		return []any{uint64(m.Code), m.Message, uint64(m.Ref), uint64(m.ReqID)}
	case *Kick:
		return []any{uint64(m.Code), m.Reason}
	case *Move:
		return []any{m.URL, m.ResumeToken, uint64(m.DelayMs)}
	case *Resume:
		return []any{m.SessionID, m.ResumeToken, m.LastSeq, optStr(m.Token)}
	case *Resumed:
		return []any{m.SessionID, m.FromSeq, m.ClientSeq, optStr(m.ResumeToken)}
	case *Join:
		return []any{uint64(m.ReqID), uint64(m.Mode), m.Kind, m.RoomID, raw(m.Options)}
	case *Joined:
		return []any{uint64(m.ReqID), m.RoomID, m.Kind, m.PlayerID, uint64(m.TickRate)}
	case *Leave:
		return []any{uint64(m.ReqID)}
	case *Left:
		return []any{m.RoomID, uint64(m.Reason), uint64(m.Code)}
	case *List:
		return []any{uint64(m.ReqID), optStr(m.Kind)}
	case *Rooms:
		rooms := make(list, len(m.Rooms))
		for i, r := range m.Rooms {
			rooms[i] = []any{r.RoomID, r.Kind, uint64(r.Players), uint64(r.MaxPlayers), raw(r.Metadata)}
		}
		return []any{uint64(m.ReqID), rooms}
	case *Presence:
		return []any{m.RoomID, uint64(m.Event), m.PlayerID}
	case *State:
		return []any{m.Tick, m.ServerTimeNs, raw(m.Body)}
	case *ArenaInput:
		return []any{uint64(m.Seq), m.DX, m.DY}
	}
	t.Fatalf("no expectation for %T", m)
	return nil
}

func expectArena(s ArenaState) list {
	players := make(list, len(s.Players))
	for i, p := range s.Players {
		players[i] = []any{string(p.ID), p.X, p.Y, uint64(p.LastSeq), uint64(p.Received)}
	}
	return players
}

// normalize maps a value decoded by vmihailenco, or an expectation, to a
// canonical form: integers become int64 (negative) or uint64, raw values
// are decoded, []any and maps are normalized recursively.
func normalize(t *testing.T, v any) any {
	t.Helper()
	switch v := v.(type) {
	case int8:
		return normInt(int64(v))
	case int16:
		return normInt(int64(v))
	case int32:
		return normInt(int64(v))
	case int64:
		return normInt(v)
	case int:
		return normInt(int64(v))
	case uint8:
		return uint64(v)
	case uint16:
		return uint64(v)
	case uint32:
		return uint64(v)
	case uint64:
		return v
	case msgpack.RawMessage:
		var x any
		if err := msgpack.Unmarshal(v, &x); err != nil {
			t.Fatalf("raw value % x: %v", []byte(v), err)
		}
		return normalize(t, x)
	case list:
		return normalize(t, []any(v))
	case []any:
		out := make([]any, len(v))
		for i := range v {
			out[i] = normalize(t, v[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = normalize(t, x)
		}
		return out
	}
	return v
}

func normInt(v int64) any {
	if v >= 0 {
		return uint64(v)
	}
	return v
}

// encodeRef encodes v with vmihailenco using compact integers, the
// shortest encodings.
func encodeRef(t *testing.T, v any, compact bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(compact)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("vmihailenco encode: %v", err)
	}
	return buf.Bytes()
}

// TestReferenceDecodesOurs decodes every encoded sample with vmihailenco,
// compares the fields, and checks our bytes equal the reference library's
// shortest encoding of the same array.
func TestReferenceDecodesOurs(t *testing.T) {
	for _, s := range allSamples() {
		t.Run(s.name, func(t *testing.T) {
			_, body, err := Split(s.msg.Append(nil))
			if err != nil {
				t.Fatal(err)
			}
			var got []any
			if err := msgpack.Unmarshal(body, &got); err != nil {
				t.Fatalf("vmihailenco cannot decode %s: %v", short(body), err)
			}
			want := expectArray(t, s.msg)
			if g, w := normalize(t, got), normalize(t, want); !reflect.DeepEqual(g, w) {
				t.Fatalf("vmihailenco decoded\n%.500v\nwant\n%.500v", g, w)
			}
			if ref := encodeRef(t, want, true); !bytes.Equal(ref, body) {
				t.Fatalf("our body\n%s\nvmihailenco's\n%s", short(body), short(ref))
			}
			if s.arena {
				var players []any
				if err := msgpack.Unmarshal(s.msg.(*State).Body, &players); err != nil {
					t.Fatal(err)
				}
				want := expectArena(func() ArenaState {
					var as ArenaState
					if err := as.Decode(s.msg.(*State).Body); err != nil {
						t.Fatal(err)
					}
					return as
				}())
				if g, w := normalize(t, players), normalize(t, want); !reflect.DeepEqual(g, w) {
					t.Fatalf("arena body decoded %.300v, want %.300v", g, w)
				}
				if ref := encodeRef(t, want, true); !bytes.Equal(ref, s.msg.(*State).Body) {
					t.Fatalf("arena body differs from vmihailenco's encoding")
				}
			}
		})
	}
}

// variant rewrites the numbers of an expectation the way another encoder
// would. Raw values (msgpack.RawMessage) are left alone.
type variant struct {
	name string
	// num converts one number; ok false keeps it unchanged.
	num func(v any) (any, bool)
	// extra elements appended to every array.
	extra []any
	// compact selects vmihailenco's compact integer encodings.
	compact bool
}

var variants = []variant{
	{
		// JavaScript encoders that write every number as float64.
		name: "float64",
		num: func(v any) (any, bool) {
			switch v := v.(type) {
			case uint64:
				if v > 1<<53 {
					return nil, false // not exact in a JS number
				}
				return float64(v), true
			case int64:
				if v < -(1<<53) || v > 1<<53 {
					return nil, false
				}
				return float64(v), true
			case float32:
				return float64(v), true
			}
			return nil, false
		},
		compact: true,
	},
	{
		// Integer values of float fields written as integers.
		name: "int_floats",
		num: func(v any) (any, bool) {
			f, ok := v.(float32)
			if ok && f == float32(math.Trunc(float64(f))) && math.Abs(float64(f)) < 1<<62 && !math.Signbit(float64(f)) {
				return int64(f), true
			}
			return nil, false
		},
		compact: true,
	},
	{
		// Fixed-width encodings: uint64 and int64 for every integer.
		name:    "wide_ints",
		num:     func(v any) (any, bool) { return nil, false },
		compact: false,
	},
	{
		// Signed encodings for non-negative integers.
		name: "signed_ints",
		num: func(v any) (any, bool) {
			if u, ok := v.(uint64); ok && u <= math.MaxInt64 {
				return int64(u), true
			}
			return nil, false
		},
		compact: false,
	},
	{
		// A newer encoder with more trailing fields in every array.
		name:    "extra_fields",
		num:     func(v any) (any, bool) { return nil, false },
		extra:   []any{"future", []any{1, map[string]any{"k": []any{nil, true}}}, nil, 1.5},
		compact: true,
	},
}

// rewrite applies a variant to an expectation.
func (vr variant) rewrite(v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, 0, len(v)+len(vr.extra))
		for _, x := range v {
			out = append(out, vr.rewrite(x))
		}
		return append(out, vr.extra...)
	case list:
		out := make(list, len(v))
		for i, x := range v {
			out[i] = vr.rewrite(x)
		}
		return out
	case msgpack.RawMessage, string, nil:
		return v
	}
	if n, ok := vr.num(v); ok {
		return n
	}
	return v
}

// TestOursDecodesReference encodes every sample's array with vmihailenco
// in several styles and checks that our decoder reads the same message.
func TestOursDecodesReference(t *testing.T) {
	for _, vr := range variants {
		for _, s := range allSamples() {
			t.Run(vr.name+"/"+s.name, func(t *testing.T) {
				want := s.msg.Append(nil)
				body := encodeRef(t, vr.rewrite(expectArray(t, s.msg)), vr.compact)
				got, err := DecodeAny(s.msg.Type(), body)
				if err != nil {
					t.Fatalf("decoding %s: %v", short(body), err)
				}
				if re := got.Append(nil); !bytes.Equal(re, want) {
					t.Fatalf("decoded %.300v\nwant %.300v", got, s.msg)
				}
				if s.arena {
					st := s.msg.(*State)
					var as ArenaState
					if err := as.Decode(st.Body); err != nil {
						t.Fatal(err)
					}
					ref := encodeRef(t, vr.rewrite(expectArena(as)), vr.compact)
					var got ArenaState
					if err := got.Decode(ref); err != nil {
						t.Fatalf("arena body %s: %v", short(ref), err)
					}
					if !bytes.Equal(got.Append(nil), st.Body) {
						t.Fatalf("arena body decoded %.300v", got.Players)
					}
				}
			})
		}
	}
}

// TestEncodingsMatchReference compares the append helpers with
// vmihailenco's shortest encodings across the boundaries of every format.
func TestEncodingsMatchReference(t *testing.T) {
	var uints []uint64
	for _, b := range []uint64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64} {
		uints = append(uints, b, b-1, b+1)
	}
	for _, u := range uints {
		if got, want := AppendUint(nil, u), encodeRef(t, u, true); !bytes.Equal(got, want) {
			t.Errorf("AppendUint(%d) = % x, want % x", u, got, want)
		}
	}
	var ints []int64
	for _, b := range []int64{0, -1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64, 127, 128, math.MaxInt64} {
		ints = append(ints, b, b-1, b+1)
	}
	for _, i := range ints {
		if got, want := AppendInt(nil, i), encodeRef(t, i, true); !bytes.Equal(got, want) {
			t.Errorf("AppendInt(%d) = % x, want % x", i, got, want)
		}
	}
	for _, f := range []float32{0, -1.5, math.MaxFloat32, float32(math.Inf(1))} {
		if got, want := AppendFloat32(nil, f), encodeRef(t, f, true); !bytes.Equal(got, want) {
			t.Errorf("AppendFloat32(%g) = % x, want % x", f, got, want)
		}
	}
	for _, f := range []float64{0, -1.5, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		if got, want := AppendFloat64(nil, f), encodeRef(t, f, true); !bytes.Equal(got, want) {
			t.Errorf("AppendFloat64(%g) = % x, want % x", f, got, want)
		}
	}
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536, 70000} {
		s := string(bytes.Repeat([]byte{'s'}, n))
		if got, want := AppendString(nil, s), encodeRef(t, s, true); !bytes.Equal(got, want) {
			t.Errorf("AppendString(len %d) header % x, want % x", n, got[:min(5, len(got))], want[:min(5, len(want))])
		}
		if got, want := AppendBytesAsString(nil, []byte(s)), encodeRef(t, s, true); !bytes.Equal(got, want) {
			t.Errorf("AppendBytesAsString(len %d) differs", n)
		}
		if got, want := AppendBin(nil, []byte(s)), encodeRef(t, []byte(s), true); !bytes.Equal(got, want) {
			t.Errorf("AppendBin(len %d) header % x, want % x", n, got[:min(5, len(got))], want[:min(5, len(want))])
		}
		arr := make([]any, n)
		wantArr := encodeRef(t, arr, true)
		gotArr := AppendArrayLen(nil, n)
		for range n {
			gotArr = AppendNil(gotArr)
		}
		if !bytes.Equal(gotArr, wantArr) {
			t.Errorf("AppendArrayLen(%d) differs", n)
		}
		m := make(map[string]any, n)
		gotMap := AppendMapLen(nil, n)
		for i := range n {
			k := fmt.Sprintf("%06d", i)
			m[k] = true
			gotMap = AppendBool(AppendString(gotMap, k), true)
		}
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.SetSortMapKeys(true)
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gotMap, buf.Bytes()) {
			t.Errorf("AppendMapLen(%d) differs", n)
		}
	}
	if got := AppendBool(AppendNil(nil), false); !bytes.Equal(got, []byte{0xc0, 0xc2}) {
		t.Errorf("nil/false = % x", got)
	}
	if got := AppendRaw([]byte{1}, nil); !bytes.Equal(got, []byte{1, 0xc0}) {
		t.Errorf("AppendRaw(empty) = % x", got)
	}
}

// short formats at most the first 64 bytes of b in hex for messages.
func short(b []byte) string {
	if len(b) <= 64 {
		return fmt.Sprintf("% x", b)
	}
	return fmt.Sprintf("% x ... (%d bytes)", b[:64], len(b))
}
