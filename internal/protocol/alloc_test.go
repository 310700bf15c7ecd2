package protocol

import "testing"

// TestHotPathAllocs requires the hot-path encoders and decoders to run
// without allocating, as the benchmarks report.
func TestHotPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	buf := make([]byte, 0, 1024)
	body := make([]byte, 0, 1024)
	s8 := players8()
	input := ArenaInput{Seq: 7, DX: 0.5, DY: -0.5}
	ping := Ping{Nonce: 1, RTTMicros: 2}
	pong := Pong{Nonce: 1}
	_, inputBody, _ := Split(input.Append(nil))
	_, pingBody, _ := Split(ping.Append(nil))
	_, pongBody, _ := Split(pong.Append(nil))
	_, stateBody, _ := Split((&State{Tick: 1, ServerTimeNs: 2, Body: s8.Append(nil)}).Append(nil))
	var st State
	var as ArenaState
	if err := as.Decode(s8.Append(nil)); err != nil { // size Players once
		t.Fatal(err)
	}
	cases := map[string]func(){
		"encode input": func() { buf = input.Append(buf[:0]) },
		"decode input": func() { mustOK(t, input.Decode(inputBody)) },
		"encode ping":  func() { buf = ping.Append(buf[:0]) },
		"decode ping":  func() { mustOK(t, ping.Decode(pingBody)) },
		"encode pong":  func() { buf = pong.Append(buf[:0]) },
		"decode pong":  func() { mustOK(t, pong.Decode(pongBody)) },
		"encode state": func() { buf = s8.Append(AppendStateHeader(buf[:0], 1, 2)) },
		"encode state via Body": func() {
			body = s8.Append(body[:0])
			st := State{Tick: 1, Body: body}
			buf = st.Append(buf[:0])
		},
		"decode state": func() {
			mustOK(t, st.Decode(stateBody))
			mustOK(t, as.Decode(st.Body))
		},
	}
	for name, f := range cases {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, n)
		}
	}
}

func mustOK(t *testing.T, err error) {
	if err != nil {
		t.Fatal(err)
	}
}
