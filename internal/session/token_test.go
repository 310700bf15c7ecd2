package session

import (
	"crypto/rand"
	"strings"
	"testing"

	"github.com/gameserver/gameserver/internal/protocol"
)

// randomToken is a token no hub made.
func randomToken() (t token) {
	_, _ = rand.Read(t[:])
	return t
}

func TestParseToken(t *testing.T) {
	tok := randomToken()
	text := tok.String()
	if len(text) != 43 {
		t.Fatalf("token text %q is %d characters, want 43", text, len(text))
	}
	if got, ok := parseToken(text); !ok || got != tok {
		t.Fatalf("parseToken(%q) = %x, %v; want %x", text, got[:], ok, tok[:])
	}
	if other := randomToken(); other == tok {
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
	for _, bad := range []string{"", "wrong", w.ResumeToken + "A", string(flipped), zero.String(), randomToken().String()} {
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

func TestParseSessionID(t *testing.T) {
	id := newSessionID()
	text := id.String()
	if len(text) != 22 {
		t.Fatalf("id text %q is %d characters, want 22", text, len(text))
	}
	if got, ok := parseSessionID(text); !ok || got != id {
		t.Fatalf("parseSessionID(%q) = %x, %v; want %x", text, got[:], ok, id[:])
	}
	if (sessionID{}).String() != "" {
		t.Fatalf("the zero id reads %q, want empty", (sessionID{}).String())
	}
	for _, bad := range []string{
		"",
		"abc",
		text[:21],
		text + "A",
		strings.Repeat("A", 22), // the zero id: no session's
		strings.Repeat("+", 22),
		text[:21] + "B", // last character has bits past the 16 bytes
	} {
		if got, ok := parseSessionID(bad); ok {
			t.Errorf("parseSessionID(%q) = %x, accepted", bad, got[:])
		}
	}
}

// Tokens are the hub's MAC of the id and the resume count: the same
// inputs give the same token, any other input another, and another
// hub's key another still.
func TestTokensDerived(t *testing.T) {
	m, other := newTokenMACs(), newTokenMACs()
	id := newSessionID()
	tok := m.token(id, 0)
	if tok == (token{}) || m.token(id, 0) != tok {
		t.Fatalf("token %x, then %x: want the same, not zero", tok[:], m.token(id, 0))
	}
	seen := map[token]string{tok: "id, 0"}
	for name, t2 := range map[string]token{
		"id, 1":         m.token(id, 1),
		"another id, 0": m.token(newSessionID(), 0),
		"another key":   other.token(id, 0),
	} {
		if prev, dup := seen[t2]; dup {
			t.Fatalf("token for %s equals the one for %s", name, prev)
		}
		seen[t2] = name
	}
	if n := testing.AllocsPerRun(100, func() { _ = m.token(id, 7) }); n != 0 && !raceEnabled {
		t.Fatalf("a token allocates %v times, want 0", n)
	}
}

func TestImportRefusesMalformedState(t *testing.T) {
	h := testHub(t, Config{}, &countingRouter{})
	tok := randomToken()
	good := State{ID: newSessionID().String(), Token: tok.String(), OutSeq: 0, FirstSeq: 1}
	for _, bad := range []string{"", "short", tok.String() + "x"} {
		st := good
		st.Token = bad
		if _, err := h.Import(st); err == nil {
			t.Errorf("Import with token %q accepted", bad)
		}
	}
	for _, bad := range []string{"", "abc", strings.Repeat("A", 22), good.ID + "A"} {
		st := good
		st.ID = bad
		if _, err := h.Import(st); err == nil {
			t.Errorf("Import with id %q accepted", bad)
		}
	}
	s, err := h.Import(good)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	got := h.tokenOf(s)
	s.mu.Unlock()
	if got != tok {
		t.Fatalf("imported token %x, want %x", got[:], tok[:])
	}
}

// A session moved here resumes with the token the other node gave it,
// once; the token RESUMED gives is this hub's, and works in turn.
func TestImportedTokenWorksOnce(t *testing.T) {
	h := testHub(t, Config{}, &countingRouter{})
	tok := randomToken()
	st := State{ID: newSessionID().String(), Token: tok.String(), OutSeq: 0, FirstSeq: 1}
	if _, err := h.Import(st); err != nil {
		t.Fatal(err)
	}
	resume := func(text string) (protocol.Resumed, bool) {
		nc := &fakeConn{}
		p := h.Open(nc)
		h.Message(p, nc, (&protocol.Resume{SessionID: st.ID, ResumeToken: text}).Append(nil))
		var r protocol.Resumed
		nc.mu.Lock()
		defer nc.mu.Unlock()
		for _, m := range nc.msgs {
			if tp, body, _ := protocol.Split(m); tp == protocol.TypeResumed {
				if err := r.Decode(body); err != nil {
					t.Fatal(err)
				}
				return r, true
			}
		}
		return r, false
	}
	r, ok := resume(tok.String())
	if !ok || r.SessionID != st.ID {
		t.Fatalf("resume with the brought token: %+v, %v", r, ok)
	}
	s := h.Get(st.ID)
	s.mu.Lock()
	want := h.tokens.token(s.id, 1)
	c := s.conn
	s.mu.Unlock()
	if r.ResumeToken != want.String() {
		t.Fatalf("RESUMED gave %q, want the hub's %q", r.ResumeToken, want.String())
	}
	h.ConnClosed(s, c, 1006, true)
	if _, ok := resume(tok.String()); ok {
		t.Fatal("the brought token worked twice")
	}
	if r2, ok := resume(r.ResumeToken); !ok || r2.ResumeToken == r.ResumeToken {
		t.Fatalf("resume with the hub's token: %+v, %v; want a new token", r2, ok)
	}
}
