package session

import (
	"bytes"
	"testing"

	"github.com/gameserver/gameserver/internal/protocol"
)

// A session moved to a node whose replay bound is smaller than what it
// holds keeps all of it: the resume there replays every message the
// client has not acknowledged, and the session keeps a bound of its own
// that large.
func TestMovedSessionKeepsReplayPastLocalBound(t *testing.T) {
	from := testHub(t, Config{}, &countingRouter{})
	to := testHub(t, Config{ReplayMessages: 4}, &countingRouter{})
	s, c, _ := welcomed(t, from)
	sendErrors(t, s, 10)
	c.mu.Lock()
	sent := append([][]byte(nil), c.msgs[len(c.msgs)-10:]...)
	c.mu.Unlock()

	s.Freeze()
	st := from.Export(s, nil)
	from.Retire(s, protocol.CloseDraining, "moved")
	if len(st.Replay) != 10 || st.FirstSeq != 1 || st.OutSeq != 10 {
		t.Fatalf("exported %d messages from %d to %d, want 10 from 1 to 10", len(st.Replay), st.FirstSeq, st.OutSeq)
	}
	moved, err := to.Import(st)
	if err != nil {
		t.Fatal(err)
	}
	if got := moved.bounds().msgs; got != 10 {
		t.Fatalf("moved session's bound %d, want its own 10 (the node's is 4)", got)
	}

	nc := &fakeConn{}
	p := to.Open(nc)
	to.Message(p, nc, (&protocol.Resume{SessionID: st.ID, ResumeToken: st.Token, LastSeq: 0}).Append(nil))
	var r protocol.Resumed
	if err := r.Decode(nc.find(t, protocol.TypeResumed)); err != nil {
		t.Fatal(err)
	}
	if r.FromSeq != 1 {
		t.Fatalf("RESUMED from %d, want 1", r.FromSeq)
	}
	nc.mu.Lock()
	var replayed [][]byte
	for _, m := range nc.msgs {
		if tp, _, _ := protocol.Split(m); tp == protocol.TypeError {
			replayed = append(replayed, m)
		}
	}
	nc.mu.Unlock()
	if len(replayed) != 10 {
		t.Fatalf("%d messages replayed, want all 10", len(replayed))
	}
	for i := range replayed {
		if !bytes.Equal(replayed[i], sent[i]) {
			t.Fatalf("replayed message %d differs from the one sent", i+1)
		}
	}
	// More messages: the session holds 10, its own bound, not the node's 4.
	sendErrors(t, moved, 3)
	if got := heldFrames(moved); got != 10 {
		t.Fatalf("%d held after 13 messages, want 10", got)
	}
}
