package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/gameserver/gameserver/internal/protocol"
)

func listUnacked(l *sentLog, seq uint64) (string, bool) {
	var out []string
	complete := l.unacked(seq, func(kind uint8, arg uint32) { out = append(out, fmt.Sprintf("%d:%d", kind, arg)) })
	return strings.Join(out, " "), complete
}

func TestSentLog(t *testing.T) {
	var l sentLog
	l.add(sentJoin, 1) // seq 1
	for in := uint32(1); in <= 5; in++ {
		l.add(sentInput, in) // seq 2..6, one run
	}
	l.add(sentChat, 0)  // 7
	l.add(sentChat, 0)  // 8, same run
	l.add(sentInput, 6) // 9
	if l.seq != 9 || l.n != 4 {
		t.Fatalf("seq %d, runs %d", l.seq, l.n)
	}
	if got, ok := listUnacked(&l, 4); got != "1:4 1:5 4:0 4:0 1:6" || !ok {
		t.Fatalf("after 4: %q %v", got, ok)
	}
	l.ack(3) // JOIN and inputs 1, 2
	if got, _ := listUnacked(&l, 3); got != "1:3 1:4 1:5 4:0 4:0 1:6" || l.base != 4 {
		t.Fatalf("acked to 3: %q, base %d", got, l.base)
	}
	l.ack(9)
	if l.n != 0 {
		t.Fatalf("everything acknowledged, %d runs left", l.n)
	}
	l.add(sentInput, 7) // 10
	if got, _ := listUnacked(&l, 9); got != "1:7" || l.base != 10 {
		t.Fatalf("after a full ack: %q, base %d", got, l.base)
	}

	// A full log forgets its oldest run: a resume that needs it is not
	// complete.
	l.reset()
	for i := range sentRuns + 1 {
		l.add(sentJoin, uint32(i+1))
	}
	if _, ok := listUnacked(&l, 0); ok {
		t.Fatal("a forgotten message was not reported")
	}
	if got, ok := listUnacked(&l, 1); !ok || !strings.HasPrefix(got, "2:2 ") {
		t.Fatalf("from 1: %q %v", got, ok)
	}
}

func TestDechunk(t *testing.T) {
	raw := []byte("5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n")
	// Every split of the input gives the same data.
	for cut := 0; cut <= len(raw); cut++ {
		s := &sseBot{}
		a := append([]byte(nil), raw[:cut]...)
		b := append([]byte(nil), raw[cut:]...)
		d1, ok1 := dechunk(s, a)
		out := append([]byte(nil), d1...)
		d2, ok2 := dechunk(s, b)
		out = append(out, d2...)
		if !ok1 || !ok2 || string(out) != "hello, world" || s.cstate != chunkDone {
			t.Fatalf("cut %d: %q %v %v state %d", cut, out, ok1, ok2, s.cstate)
		}
	}
	if _, ok := dechunk(&sseBot{}, []byte("zz\r\n")); ok {
		t.Fatal("a bad chunk size was accepted")
	}
}

func TestParseResponse(t *testing.T) {
	two := []byte("HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n" +
		"HTTP/1.1 409 Conflict\r\ncontent-length: 25\r\nContent-Type: application/json\r\n\r\n{\"code\":409,\"expected\":7}")
	status, body, used, ok := parseResponse(two)
	if !ok || status != 204 || len(body) != 0 || used == 0 {
		t.Fatalf("first: %d %q %d %v", status, body, used, ok)
	}
	status, body, used2, ok := parseResponse(two[used:])
	if !ok || status != 409 || used+used2 != len(two) {
		t.Fatalf("second: %d %q %v", status, body, ok)
	}
	if v, ok := jsonUint(body, "expected"); !ok || v != 7 {
		t.Fatalf("expected %d %v", v, ok)
	}
	if _, _, used, ok := parseResponse(two[:len(two)-3]); !ok || used == 0 {
		t.Fatal("the complete first response was not parsed")
	}
	if _, _, used, ok := parseResponse(two[used : len(two)-3]); !ok || used != 0 {
		t.Fatal("an incomplete body was taken")
	}
	if _, _, _, ok := parseResponse([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")); ok {
		t.Fatal("a chunked response was accepted")
	}
}

func TestBinsLen(t *testing.T) {
	var b []byte
	sizes := []int{3, 257, 259, 65537, 3}
	for _, n := range sizes {
		b = protocol.AppendBin(b, bytes.Repeat([]byte{1}, n))
	}
	want := 0
	for i, n := range sizes {
		want += n + map[bool]int{true: 2, false: 3}[n < 256]
		if n > 65535 {
			want += 2
		}
		if got := binsLen(b, i+1); got != want {
			t.Fatalf("first %d bins: %d bytes, want %d", i+1, got, want)
		}
	}
}
