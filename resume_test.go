package gameserver_test

import (
	"context"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/golang-jwt/jwt/v5"
	"github.com/vmihailenco/msgpack/v5"
)

const (
	msgCount game.MsgType = 0x2100
	msgTeam  game.MsgType = 0x2101
)

// counter broadcasts 1, 2, 3... every tick: a stream in which any gap or
// duplicate is visible.
type counter struct {
	game.Base
	n       int
	drops   int
	resumes int
}

func (c *counter) OnTick(r game.Room, _ time.Duration) {
	if len(r.Players()) == 0 {
		return
	}
	c.n++
	_ = r.Broadcast(msgCount, c.n)
}

func (c *counter) OnJoin(r game.Room, p game.Player, req game.JoinRequest) error {
	if want := req.Options.String("user", ""); want != "" && req.UserID != want {
		return game.NewError(1010, "user mismatch")
	}
	if req.Claims != nil && req.Claims["team"] != nil {
		return r.Send(p, msgTeam, req.Claims["team"])
	}
	return nil
}

func (c *counter) OnDrop(r game.Room, p game.Player)   { c.drops++ }
func (c *counter) OnResume(r game.Room, p game.Player) { c.resumes++ }

func startCounter(t *testing.T, cfg gameserver.Config, window time.Duration) (*gameserver.Server, string) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	srv, err := gameserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Register("counter", func() game.Handler { return &counter{} }, game.RoomConfig{TickRate: 100, ResumeWindow: window}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return srv, srv.Addr().String()
}

// player keeps what a resuming client keeps: the session, the resume token
// and the sequence number of the last sequenced message it received.
type resumer struct {
	*client
	sessionID, token string
	lastSeq          uint64
	values           []int // the counter values received, in order
}

func unsequenced(t protocol.MsgType) bool {
	switch t {
	case protocol.TypePing, protocol.TypePong, protocol.TypeWelcome, protocol.TypeResumed, protocol.TypeKick, protocol.TypeMove:
		return true
	}
	return false
}

// read takes one message, counting it if it is sequenced.
func (r *resumer) read(timeout time.Duration) (protocol.MsgType, []byte, error) {
	tp, body, err := r.next(timeout)
	if err != nil {
		return 0, nil, err
	}
	if !unsequenced(tp) {
		r.lastSeq++
	}
	if tp == protocol.MsgType(msgCount) {
		var v int
		if err := msgpack.Unmarshal(body, &v); err != nil {
			r.t.Fatal(err)
		}
		r.values = append(r.values, v)
	}
	return tp, body, nil
}

func newResumer(t *testing.T, addr string, token string) *resumer {
	c := dial(t, addr)
	c.send(&protocol.Hello{Version: protocol.Version, Token: token})
	var w protocol.Welcome
	if err := w.Decode(c.expect(protocol.TypeWelcome)); err != nil {
		t.Fatal(err)
	}
	if w.ResumeToken == "" {
		t.Fatal("welcome without a resume token")
	}
	return &resumer{client: c, sessionID: w.SessionID, token: w.ResumeToken}
}

// resume reconnects and resumes; it returns RESUMED, or the ERROR's code.
func (r *resumer) resume(addr, auth string) (protocol.Resumed, protocol.Code) {
	r.t.Helper()
	r.client = dial(r.t, addr)
	r.send(&protocol.Resume{SessionID: r.sessionID, ResumeToken: r.token, LastSeq: r.lastSeq, Token: auth})
	for {
		tp, body, err := r.next(3 * time.Second)
		if err != nil {
			r.t.Fatalf("resume: %v", err)
		}
		switch tp {
		case protocol.TypeResumed:
			var m protocol.Resumed
			if err := m.Decode(body); err != nil {
				r.t.Fatal(err)
			}
			r.token = m.ResumeToken
			return m, 0
		case protocol.TypeError:
			var e protocol.ErrorMsg
			_ = e.Decode(body)
			return protocol.Resumed{}, e.Code
		}
	}
}

// checkStream asserts the counter values are exactly 1..n.
func (r *resumer) checkStream() {
	r.t.Helper()
	for i, v := range r.values {
		if v != i+1 {
			r.t.Fatalf("value %d is %d: gap or duplicate (around %v)", i, v, r.values[max(0, i-3):min(len(r.values), i+3)])
		}
	}
}

func rst(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close sends RST, not FIN
	}
	_ = c.Close()
}

func TestResumeIsGapFreeAcrossDrops(t *testing.T) {
	srv, addr := startCounter(t, gameserver.Config{MaxResumesPerMinute: 1000}, 5*time.Second)
	r := newResumer(t, addr, "")
	r.send(&protocol.Join{ReqID: 1, Mode: protocol.JoinCreate, Kind: "counter"})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 30; i++ {
		// Read a random number of messages, then drop the connection in
		// one of three ways, stay away a random while, and resume.
		for n := rng.IntN(30); n > 0; n-- {
			if _, _, err := r.read(3 * time.Second); err != nil {
				t.Fatalf("iteration %d: %v", i, err)
			}
		}
		switch i % 3 {
		case 0:
			r.conn.Close() // FIN, no close frame
		case 1:
			rst(r.conn) // TCP reset
		case 2:
			// The server closes: the client stops answering, the
			// connection is cut under it mid-stream.
			_ = r.conn.(*net.TCPConn).CloseWrite()
			r.conn.Close()
		}
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		m, code := r.resume(addr, "")
		if code != 0 {
			t.Fatalf("iteration %d: resume refused with %v", i, code)
		}
		if m.FromSeq != r.lastSeq+1 || m.SessionID != r.sessionID {
			t.Fatalf("resumed %+v after lastSeq %d", m, r.lastSeq)
		}
	}
	for len(r.values) < 100 || r.values[len(r.values)-1] < 300 {
		if _, _, err := r.read(3 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	r.checkStream()
	waitFor(t, func() bool { return metric(t, srv, "gameserver_sessions_resumed_total") == 30 })
}

func TestResumeRefused(t *testing.T) {
	_, addr := startCounter(t, gameserver.Config{}, 300*time.Millisecond)
	watcher := newResumer(t, addr, "")
	watcher.send(&protocol.Join{ReqID: 1, Mode: protocol.JoinCreate, Kind: "counter"})
	var j protocol.Joined
	_ = j.Decode(watcher.expectSkipping(protocol.TypeJoined))
	r := newResumer(t, addr, "")
	r.send(&protocol.Join{ReqID: 1, Mode: protocol.JoinByID, RoomID: j.RoomID})
	r.expectSkipping(protocol.TypeJoined)
	r.lastSeq = 1
	r.conn.Close()

	good := r.token
	r.token = "wrong"
	if _, code := r.resume(addr, ""); code != protocol.CodeResumeFailed {
		t.Fatalf("wrong token: %v", code)
	}
	r.token = good
	sid := r.sessionID
	r.sessionID = "nosuchsession"
	if _, code := r.resume(addr, ""); code != protocol.CodeResumeFailed {
		t.Fatalf("unknown session: %v", code)
	}
	r.sessionID = sid
	r.lastSeq = 1 << 40
	if _, code := r.resume(addr, ""); code != protocol.CodeBadRequest {
		t.Fatalf("lastSeq ahead: %v", code)
	}
	r.lastSeq = 1
	// A resume token works once.
	if _, code := r.resume(addr, ""); code != 0 {
		t.Fatalf("good resume: %v", code)
	}
	r.conn.Close()
	r.token = good
	if _, code := r.resume(addr, ""); code != protocol.CodeResumeFailed {
		t.Fatalf("replayed token: %v", code)
	}
	// After the resume window the seat is released (the room hears the
	// leave) and the session cannot be resumed.
	deadline := time.Now().Add(3 * time.Second)
	for {
		var pr protocol.Presence
		if err := pr.Decode(watcher.expectSkipping(protocol.TypePresence)); err != nil {
			t.Fatal(err)
		}
		if pr.Event == protocol.PresenceLeave {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no leave after the resume window")
		}
	}
	if _, code := r.resume(addr, ""); code != protocol.CodeResumeFailed {
		t.Fatalf("resume after the window: %v", code)
	}
}

func TestResumeReplayBoundExceeded(t *testing.T) {
	_, addr := startCounter(t, gameserver.Config{ReplayMessages: 16}, 5*time.Second)
	r := newResumer(t, addr, "")
	r.send(&protocol.Join{ReqID: 1, Mode: protocol.JoinCreate, Kind: "counter"})
	r.expectSkipping(protocol.TypeJoined)
	r.lastSeq = 1
	r.conn.Close()
	time.Sleep(300 * time.Millisecond) // ~30 counter messages: more than 16 held
	if _, code := r.resume(addr, ""); code != protocol.CodeResumeFailed {
		t.Fatalf("resume past the replay bound: %v", code)
	}
}

func TestResumeTightLoopLimited(t *testing.T) {
	_, addr := startCounter(t, gameserver.Config{}, 5*time.Second)
	r := newResumer(t, addr, "")
	for i := 0; i < 12; i++ {
		r.conn.Close()
		if _, code := r.resume(addr, ""); code != 0 {
			t.Fatalf("resume %d: %v", i, code)
		}
	}
	r.conn.Close()
	if _, code := r.resume(addr, ""); code != protocol.CodeRateLimited {
		t.Fatalf("13th resume in a minute: %v", code)
	}
}

func TestClientSeqTellsWhatToResend(t *testing.T) {
	_, addr := startCounter(t, gameserver.Config{}, 5*time.Second)
	r := newResumer(t, addr, "")
	r.send(&protocol.Join{ReqID: 1, Mode: protocol.JoinCreate, Kind: "counter"})
	r.expectSkipping(protocol.TypeJoined)
	for i := 0; i < 5; i++ {
		r.sendGame(0x3000, i) // answered with ERROR 405, but received
	}
	r.send(&protocol.Ping{Nonce: 1}) // not sequenced
	r.expectSkipping(protocol.TypePong)
	r.conn.Close()
	m, code := r.resume(addr, "")
	if code != 0 || m.ClientSeq != 6 {
		t.Fatalf("resumed %+v (%v): the server received 6 sequenced messages", m, code)
	}
}

func signed(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

const secret = "0123456789abcdef0123456789abcdef"

func TestAuthentication(t *testing.T) {
	_, addr := startCounter(t, gameserver.Config{AuthSecret: secret, RequireAuth: true}, 5*time.Second)
	exp := time.Now().Add(time.Hour).Unix()
	refused := func(name, token string, want string) {
		t.Run(name, func(t *testing.T) {
			c := dial(t, addr)
			c.send(&protocol.Hello{Version: protocol.Version, Token: token})
			e := c.expectError(protocol.CodeUnauthorized)
			if e.Message != want {
				t.Fatalf("message %q, want %q", e.Message, want)
			}
			if code := c.expectClose(3 * time.Second); code != uint16(protocol.CloseUnauthorized) {
				t.Fatalf("close %d", code)
			}
		})
	}
	refused("missing", "", "token required")
	refused("malformed", "not.a.jwt", "token malformed")
	refused("expired", signed(t, secret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()}), "token expired")
	refused("wrong signature", signed(t, "another-secret-another-secret-xx", jwt.MapClaims{"sub": "alice", "exp": exp}), "token signature invalid")
	refused("no subject", signed(t, secret, jwt.MapClaims{"exp": exp}), "token must carry sub and exp claims")
	refused("no expiry", signed(t, secret, jwt.MapClaims{"sub": "alice"}), "token must carry sub and exp claims")
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": exp})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	refused("alg none", noneTok, "token must be signed with HS256")

	t.Run("valid, claims reach the room, resume needs the same user", func(t *testing.T) {
		alice := signed(t, secret, jwt.MapClaims{"sub": "alice", "exp": exp, "team": "red"})
		r := newResumer(t, addr, alice)
		r.send(&protocol.Join{ReqID: 1, Mode: protocol.JoinCreate, Kind: "counter", Options: opts(t, "user", "alice")})
		for {
			tp, body, err := r.read(3 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if tp == protocol.MsgType(msgTeam) {
				var team string
				if err := msgpack.Unmarshal(body, &team); err != nil || team != "red" {
					t.Fatalf("claims in OnJoin: %q %v", team, err)
				}
				break
			}
		}
		r.values = nil
		r.conn.Close()
		bob := signed(t, secret, jwt.MapClaims{"sub": "bob", "exp": exp})
		if _, code := r.resume(addr, bob); code != protocol.CodeForbidden {
			t.Fatalf("bob resuming alice: %v", code)
		}
		if _, code := r.resume(addr, ""); code != protocol.CodeUnauthorized {
			t.Fatalf("resume without a token: %v", code)
		}
		if _, code := r.resume(addr, alice); code != 0 {
			t.Fatalf("alice resuming: %v", code)
		}
	})
	t.Run("expiry mid-session closes", func(t *testing.T) {
		soon := signed(t, secret, jwt.MapClaims{"sub": "carol", "exp": time.Now().Add(1500 * time.Millisecond).Unix()})
		r := newResumer(t, addr, soon)
		if code := r.expectClose(10 * time.Second); code != uint16(protocol.CloseUnauthorized) {
			t.Fatalf("close %d", code)
		}
	})
}

func TestAnonymousRefusesTokenWithoutSecret(t *testing.T) {
	_, addr := startCounter(t, gameserver.Config{}, time.Second)
	c := dial(t, addr)
	c.send(&protocol.Hello{Version: protocol.Version, Token: "x.y.z"})
	c.expectError(protocol.CodeUnauthorized)
}

func TestHandshakeRateLimited(t *testing.T) {
	_, addr := startCounter(t, gameserver.Config{HandshakeRate: 1, HandshakeBurst: 3}, time.Second)
	for i := 0; i < 3; i++ {
		dial(t, addr)
	}
	resp, err := httpGetUpgrade(addr)
	if err != nil {
		t.Fatal(err)
	}
	if resp != 429 {
		t.Fatalf("4th upgrade in a second: %d", resp)
	}
}
