package main

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"
)

func TestClientFramesDecode(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 1000, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte{0xab}, n)
		for i := range payload {
			payload[i] = byte(i)
		}
		frame := appendClientFrame(nil, opBinary, payload)
		f, err := ws.ReadFrame(bytes.NewReader(frame))
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !f.Header.Fin || f.Header.OpCode != ws.OpBinary || !f.Header.Masked {
			t.Fatalf("%d bytes: header %+v", n, f.Header)
		}
		ws.Cipher(f.Payload, f.Header.Mask, 0)
		if !bytes.Equal(f.Payload, payload) {
			t.Fatalf("%d bytes: payload differs", n)
		}
	}
	f, err := ws.ReadFrame(bytes.NewReader(appendCloseFrame(nil, 1000, "bye")))
	if err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("close frame %+v %v", f.Header, err)
	}
	ws.Cipher(f.Payload, f.Header.Mask, 0)
	if code, reason := ws.ParseCloseFrameData(f.Payload); code != 1000 || reason != "bye" {
		t.Fatalf("close %d %q", code, reason)
	}
}

func TestParseServerFrames(t *testing.T) {
	var stream []byte
	var want [][]byte
	for _, n := range []int{0, 5, 125, 126, 300, 65536} {
		p := bytes.Repeat([]byte{byte(n)}, n)
		want = append(want, p)
		stream = append(stream, ws.MustCompileFrame(ws.NewBinaryFrame(p))...)
	}
	// Every split point: the parser takes whole frames and waits for the
	// rest of a partial one.
	for cut := 0; cut <= len(stream); cut += 97 {
		var got [][]byte
		buf := append([]byte(nil), stream[:cut]...)
		rest := stream[cut:]
		for {
			f, used := parseServerFrame(buf, maxFrame)
			if used < 0 {
				t.Fatalf("cut %d: malformed", cut)
			}
			if used == 0 {
				if len(rest) == 0 {
					break
				}
				buf = append(buf, rest...)
				rest = nil
				continue
			}
			got = append(got, append([]byte(nil), f.payload...))
			buf = buf[used:]
		}
		if len(got) != len(want) {
			t.Fatalf("cut %d: %d frames, want %d", cut, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("cut %d: frame %d differs", cut, i)
			}
		}
	}
}

func TestParseServerFrameRejects(t *testing.T) {
	long := ws.MustCompileFrame(ws.NewPingFrame(bytes.Repeat([]byte{1}, 125)))
	long[1] = 126 // a control frame over 125 bytes
	cases := map[string][]byte{
		"reserved bits":   {0xc2, 0x00},
		"long control":    append(long[:2:2], 0, 200),
		"fragmented ping": {0x09, 0x00},
		"too large":       {0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0},
	}
	for name, b := range cases {
		if _, used := parseServerFrame(b, maxFrame); used != -1 {
			t.Errorf("%s: used %d, want -1", name, used)
		}
	}
	// A masked server frame is accepted and unmasked.
	masked := appendClientFrame(nil, opBinary, []byte("hi"))
	if f, used := parseServerFrame(masked, maxFrame); used != len(masked) || string(f.payload) != "hi" {
		t.Errorf("masked frame: %q %d", f.payload, used)
	}
}

func TestParseStamp(t *testing.T) {
	for text, want := range map[string]int64{"lt:123": 123, "lt:": -1, "hello": -1, "lt:12a": -1, "lt:99999999999999999999": -1} {
		v, ok := parseStamp([]byte(text))
		if (want < 0 && ok) || (want >= 0 && (!ok || v != want)) {
			t.Errorf("%q: %d %v", text, v, ok)
		}
	}
}
