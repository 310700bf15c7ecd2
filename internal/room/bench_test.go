package room

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/frame"
	"github.com/vmihailenco/msgpack/v5"
)

// sink is a Member that keeps nothing: it releases what it is sent, the
// way a transport does once a frame is written.
type sink struct {
	id    string
	data  atomic.Pointer[any]
	sent  atomic.Int64
	bytes atomic.Int64
}

func (s *sink) ID() string             { return s.id }
func (s *sink) UserID() string         { return "" }
func (s *sink) Claims() map[string]any { return nil }
func (s *sink) RTT() time.Duration     { return time.Millisecond }
func (s *sink) Flush()                 {}
func (s *sink) Send(f *frame.Frame) error {
	f.Retain()
	s.sent.Add(1)
	s.bytes.Add(int64(f.Len()))
	f.Release()
	return nil
}
func (s *sink) Data() any {
	if p := s.data.Load(); p != nil {
		return *p
	}
	return nil
}
func (s *sink) SetData(v any) { s.data.Store(&v) }

// benchRoom builds a room with n seated players without starting its loop,
// so a benchmark can drive the room's methods on its own goroutine.
func benchRoom(b *testing.B, n int) (*room, []*sink) {
	m := NewManager(Config{})
	if err := m.Register("bench", func() game.Handler { return game.Base{} }, game.RoomConfig{MaxPlayers: n}); err != nil {
		b.Fatal(err)
	}
	r := &room{m: m, kind: m.kinds["bench"], id: "bench", tickRate: 20}
	r.handler = game.Base{}
	r.sh = m.shards[0] // its encoder; the loop is not started
	sinks := make([]*sink, n)
	for i := range sinks {
		s := &sink{id: fmt.Sprint(i)}
		p := &player{id: s.id, member: s, room: r, seated: true, index: int32(i)}
		r.players = append(r.players, p)
		r.gamePlayer = append(r.gamePlayer, p)
		sinks[i] = s
	}
	return r, sinks
}

func benchmarkBroadcast(b *testing.B, n int) {
	r, sinks := benchRoom(b, n)
	body := make([]byte, 0, 40*n)
	for i := 0; i < n; i++ {
		body = append(body, 0x94, 0xa2, 'p', byte('0'+i%10), 0xca, 0, 0, 0, 0, 0xca, 0, 0, 0, 0, 0x01)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.tick++
		_ = r.BroadcastStateBytes(body)
		r.flush()
	}
	b.StopTimer()
	if got := sinks[n-1].sent.Load(); got != int64(b.N) {
		b.Fatalf("last recipient got %d frames, want %d", got, b.N)
	}
}

// Recipients share one encoded frame: allocations per broadcast do not
// depend on the number of recipients.
func BenchmarkBroadcast8(b *testing.B)  { benchmarkBroadcast(b, 8) }
func BenchmarkBroadcast64(b *testing.B) { benchmarkBroadcast(b, 64) }

func benchmarkBroadcastValue(b *testing.B, n int) {
	r, _ := benchRoom(b, n)
	v := []int{1, 2, 3, 4}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = r.Broadcast(0x1001, &v)
		r.flush()
	}
}

func BenchmarkBroadcastValue8(b *testing.B)  { benchmarkBroadcastValue(b, 8) }
func BenchmarkBroadcastValue64(b *testing.B) { benchmarkBroadcastValue(b, 64) }

// bigState encodes itself without reflection, as game states should (see
// docs/rooms.md): one entry per player.
type bigState struct{ xs []float32 }

func (s *bigState) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeArrayLen(len(s.xs)); err != nil {
		return err
	}
	for i, x := range s.xs {
		if err := enc.EncodeArrayLen(3); err != nil {
			return err
		}
		if err := enc.EncodeInt(int64(i)); err != nil {
			return err
		}
		if err := enc.EncodeFloat32(x); err != nil {
			return err
		}
		if err := enc.EncodeFloat32(-x); err != nil {
			return err
		}
	}
	return nil
}

// A state larger than the smallest frame buffer (64 players, ≈ 800 bytes)
// is encoded into the room's reusable buffer and copied into a pooled
// frame of the right size: still no allocation per tick.
func BenchmarkBroadcastStateLarge64(b *testing.B) {
	r, sinks := benchRoom(b, 64)
	st := &bigState{xs: make([]float32, 64)}
	for i := range st.xs {
		st.xs[i] = float32(i) * 1.5
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.tick++
		if err := r.BroadcastState(st); err != nil {
			b.Fatal(err)
		}
		r.flush()
	}
	b.StopTimer()
	if got := sinks[0].bytes.Load(); got < int64(b.N)*700 {
		b.Fatalf("%d bytes for %d states: the state is smaller than intended", got, b.N)
	}
}
