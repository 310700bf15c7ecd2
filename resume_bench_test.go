package gameserver_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// BenchmarkResume measures the time from starting a reconnect (TCP dial and
// WebSocket upgrade included) to receiving RESUMED, on loopback, and
// reports its p50 and p99.
func BenchmarkResume(b *testing.B) {
	srv, err := gameserver.New(gameserver.Config{Addr: "127.0.0.1:0", MaxResumesPerMinute: 1 << 30, HandshakeRate: -1})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.ListenAndServe() }()
	defer srv.Shutdown(context.Background())
	url := "ws://" + srv.Addr().String() + "/ws"
	ctx := context.Background()

	conn, _, _, err := ws.Dial(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	_ = wsutil.WriteClientBinary(conn, (&protocol.Hello{Version: 1}).Append(nil))
	msg, err := wsutil.ReadServerBinary(conn)
	if err != nil {
		b.Fatal(err)
	}
	var w protocol.Welcome
	_, body, _ := protocol.Split(msg)
	if err := w.Decode(body); err != nil {
		b.Fatal(err)
	}
	token := w.ResumeToken
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conn.Close()
		start := time.Now()
		conn, _, _, err = ws.Dial(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		_ = wsutil.WriteClientBinary(conn, (&protocol.Resume{SessionID: w.SessionID, ResumeToken: token}).Append(nil))
		for {
			msg, err := wsutil.ReadServerBinary(conn)
			if err != nil {
				b.Fatal(err)
			}
			t, body, _ := protocol.Split(msg)
			if t == protocol.TypeError {
				var e protocol.ErrorMsg
				_ = e.Decode(body)
				b.Fatalf("resume %d refused: %+v", i, e)
			}
			if t == protocol.TypeResumed {
				var r protocol.Resumed
				_ = r.Decode(body)
				token = r.ResumeToken
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	conn.Close()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
