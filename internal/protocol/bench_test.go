package protocol

import (
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// The hot-path benchmarks must report 0 allocs/op; TestHotPathAllocs
// enforces the same in ordinary test runs.
//
// On the 2-core reference machine, encoding the 8-player arena STATE
// (BenchmarkEncodeState8) costs about 85–130 ns and 0 allocations, against
// about 1.3–2.2 µs, 4 allocations and 496 bytes for vmihailenco/msgpack's
// reflection-based Marshal of the same value
// (BenchmarkEncodeState8Reflect): about 16 times faster.

var sinkErr error

func BenchmarkEncodeInput(b *testing.B) {
	b.ReportAllocs()
	in := ArenaInput{Seq: 123456, DX: 0.707, DY: -0.707}
	buf := make([]byte, 0, 64)
	for b.Loop() {
		buf = in.Append(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeInput(b *testing.B) {
	b.ReportAllocs()
	_, body, _ := Split((&ArenaInput{Seq: 123456, DX: 0.707, DY: -0.707}).Append(nil))
	var in ArenaInput
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		sinkErr = in.Decode(body)
	}
	if sinkErr != nil {
		b.Fatal(sinkErr)
	}
}

func BenchmarkEncodePing(b *testing.B) {
	b.ReportAllocs()
	p := Ping{Nonce: 0xdeadbeef, RTTMicros: 15300}
	buf := make([]byte, 0, 64)
	for b.Loop() {
		buf = p.Append(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodePing(b *testing.B) {
	b.ReportAllocs()
	_, body, _ := Split((&Ping{Nonce: 0xdeadbeef, RTTMicros: 15300}).Append(nil))
	var p Ping
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		sinkErr = p.Decode(body)
	}
	if sinkErr != nil {
		b.Fatal(sinkErr)
	}
}

// BenchmarkEncodeState8 encodes a STATE message with an 8-player arena
// body into a reused buffer, the way a room broadcasts its state: the
// body is appended in place after the STATE header.
func BenchmarkEncodeState8(b *testing.B) {
	b.ReportAllocs()
	s := players8()
	buf := make([]byte, 0, 1024)
	tick := uint64(1)
	for b.Loop() {
		buf = AppendStateHeader(buf[:0], tick, 1700000000123456789)
		buf = s.Append(buf)
		tick++
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkEncodeState8Copy encodes the same message through State.Body:
// the arena body into one reused buffer, then the STATE into another.
func BenchmarkEncodeState8Copy(b *testing.B) {
	b.ReportAllocs()
	s := players8()
	body := make([]byte, 0, 1024)
	buf := make([]byte, 0, 1024)
	st := State{ServerTimeNs: 1700000000123456789}
	for b.Loop() {
		body = s.Append(body[:0])
		st.Tick++
		st.Body = body
		buf = st.Append(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeState8(b *testing.B) {
	b.ReportAllocs()
	s := players8()
	_, body, _ := Split((&State{Tick: 99, ServerTimeNs: 1700000000123456789, Body: s.Append(nil)}).Append(nil))
	var st State
	var as ArenaState
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if sinkErr = st.Decode(body); sinkErr != nil {
			break
		}
		sinkErr = as.Decode(st.Body)
	}
	if sinkErr != nil || len(as.Players) != 8 {
		b.Fatal(sinkErr)
	}
}

// refState mirrors the 8-player STATE with msgpack struct tags, encoded as
// arrays like the wire format.
type refState struct {
	_msgpack     struct{} `msgpack:",as_array"`
	Tick         uint64
	ServerTimeNs int64
	Players      []refPlayer
}

type refPlayer struct {
	_msgpack struct{} `msgpack:",as_array"`
	ID       string
	X, Y     float32
	LastSeq  uint32
}

// BenchmarkEncodeState8Reflect encodes the same 8-player state with
// vmihailenco/msgpack's reflection-based Marshal, for comparison.
func BenchmarkEncodeState8Reflect(b *testing.B) {
	b.ReportAllocs()
	s := players8()
	ref := refState{Tick: 1, ServerTimeNs: 1700000000123456789}
	for _, p := range s.Players {
		ref.Players = append(ref.Players, refPlayer{ID: string(p.ID), X: p.X, Y: p.Y, LastSeq: p.LastSeq})
	}
	var out []byte
	for b.Loop() {
		var err error
		ref.Tick++
		if out, err = msgpack.Marshal(&ref); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(out) + TypeSize))
}
