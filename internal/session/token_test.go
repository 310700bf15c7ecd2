package session

import (
	"strings"
	"testing"

	"github.com/gameserver/gameserver/internal/protocol"
)

func TestParseToken(t *testing.T) {
	tok := newResumeToken()
	text := tok.String()
	if len(text) != 43 {
		t.Fatalf("token text %q is %d characters, want 43", text, len(text))
	}
	if got, ok := parseToken(text); !ok || got != tok {
		t.Fatalf("parseToken(%q) = %x, %v; want %x", text, got[:], ok, tok[:])
	}
	if other := newResumeToken(); other == tok {
		t.Fatal("two tokens alike")
	}
	for _, bad := range []string{
		"",
		text[:42],
		text + "A",
		text + "=",
		strings.Repeat("A", 42) + "=",
		strings.Repeat("+", 43), // standard, not URL, alphabet
		strings.Repeat("\x00", 43),
		strings.Repeat("é", 21) + "A",
		text[:42] + "B", // last character has bits past the 32 bytes
	} {
		if got, ok := parseToken(bad); ok {
			t.Errorf("parseToken(%q) = %x, accepted", bad, got[:])
		}
	}
}

// RESUME succeeds with the token WELCOME gave, and only with it; each
// refusal leaves the session resumable.
func TestResumeTokenChecked(t *testing.T) {
	h := testHub(t, Config{}, &countingRouter{})
	s, c, w := welcomed(t, h)
	h.ConnClosed(s, c, 1006, true)
	zero := token{}
	flipped := []byte(w.ResumeToken)
	flipped[10] ^= 1
	for _, bad := range []string{"", "wrong", w.ResumeToken + "A", string(flipped), zero.String(), newResumeToken().String()} {
		nc := &fakeConn{}
		p := h.Open(nc)
		h.Message(p, nc, (&protocol.Resume{SessionID: w.SessionID, ResumeToken: bad}).Append(nil))
		var e protocol.ErrorMsg
		if err := e.Decode(nc.find(t, protocol.TypeError)); err != nil || e.Code != protocol.CodeResumeFailed {
			t.Fatalf("token %q: error %+v (%v), want resume-failed", bad, e, err)
		}
	}
	nc := &fakeConn{}
	p := h.Open(nc)
	h.Message(p, nc, (&protocol.Resume{SessionID: w.SessionID, ResumeToken: w.ResumeToken}).Append(nil))
	var r protocol.Resumed
	if err := r.Decode(nc.find(t, protocol.TypeResumed)); err != nil {
		t.Fatal(err)
	}
	if r.ResumeToken == w.ResumeToken || len(r.ResumeToken) != 43 {
		t.Fatalf("RESUMED token %q after %q: want a new one", r.ResumeToken, w.ResumeToken)
	}
}

func TestImportRefusesMalformedToken(t *testing.T) {
	h := testHub(t, Config{}, &countingRouter{})
	tok := newResumeToken()
	good := State{ID: "abc", Token: tok.String(), OutSeq: 0, FirstSeq: 1}
	for _, bad := range []string{"", "short", tok.String() + "x"} {
		st := good
		st.Token = bad
		if _, err := h.Import(st); err == nil {
			t.Errorf("Import with token %q accepted", bad)
		}
	}
	s, err := h.Import(good)
	if err != nil {
		t.Fatal(err)
	}
	if s.token != tok {
		t.Fatalf("imported token %x, want %x", s.token[:], tok[:])
	}
}
