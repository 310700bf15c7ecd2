package gameserver_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/examples/chat"
	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/golang-jwt/jwt/v5"
	"github.com/vmihailenco/msgpack/v5"
)

const (
	apiKey     = "backend-test-key-0123456789"
	hookSecret = "whsec_backend_test_0123456789"
)

// backendNode is a running server with the test room types; stop shuts it
// down once (the test may do it itself).
type backendNode struct {
	srv  *gameserver.Server
	addr string
	once sync.Once
	err  error
}

func (n *backendNode) stop(ctx context.Context) error {
	n.once.Do(func() { n.err = n.srv.Shutdown(ctx) })
	return n.err
}

func startBackend(t *testing.T, cfg gameserver.Config) *backendNode {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Node == "" {
		cfg.Node = "node-a"
	}
	srv, err := gameserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Register("test", func() game.Handler { return &testRoom{} }, game.RoomConfig{MaxPlayers: 4, EmptyTimeout: 200 * time.Millisecond, ResumeWindow: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Register("chat", chat.New, chat.Config); err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe() }()
	n := &backendNode{srv: srv, addr: srv.Addr().String()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.stop(ctx)
		<-done
	})
	return n
}

// call makes an API request with the test key and decodes a JSON answer
// into out (when not nil).
func (n *backendNode) call(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	return n.callAuth(t, "Bearer "+apiKey, method, path, body, out)
}

func (n *backendNode) callAuth(t *testing.T, auth, method, path, body string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+n.addr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type apiErr struct {
	Code     int    `json:"code"`
	Error    string `json:"error"`
	GameCode int    `json:"gameCode"`
}

// expectErr makes a request that must fail with status and a matching
// error body.
func (n *backendNode) expectErr(t *testing.T, auth, method, path, body string, status int, says string) apiErr {
	t.Helper()
	var e apiErr
	if got := n.callAuth(t, auth, method, path, body, &e); got != status || e.Code != status || !strings.Contains(e.Error, says) {
		t.Fatalf("%s %s %q: %d %+v, want %d saying %q", method, path, body, got, e, status, says)
	}
	return e
}

// metricWith reads one labelled series from /metrics, e.g.
// metricWith(t, srv, `gameserver_webhook_drops_total{reason="queue_full"}`).
func metricWith(t *testing.T, srv *gameserver.Server, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimPrefix(line, series+" "), 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("series %s not found", series)
	return 0
}

func userClient(t *testing.T, addr, user string) *client {
	t.Helper()
	c := dial(t, addr)
	c.send(&protocol.Hello{Version: protocol.Version, Token: signed(t, secret, jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()})})
	c.expect(protocol.TypeWelcome)
	return c
}

func TestBackendDisabledWithoutKeys(t *testing.T) {
	n := startBackend(t, gameserver.Config{})
	for _, m := range []string{"GET", "POST", "DELETE"} {
		n.expectErr(t, "Bearer "+apiKey, m, "/api/v1/rooms", "", http.StatusNotFound, "no API keys")
	}
	n.expectErr(t, "", "GET", "/api/v1/rooms/x/players/y/kick", "", http.StatusNotFound, "no API keys")
	for _, p := range []string{"/monitor", "/monitor/events"} {
		if code := n.callAuth(t, "Bearer "+apiKey, "GET", p, "", nil); code != http.StatusNotFound {
			t.Fatalf("%s: %d", p, code)
		}
	}
	if v := metricWith(t, n.srv, `gameserver_webhook_queue_length`); v != 0 {
		t.Fatalf("queue %v", v)
	}
}

// A backend creates a room holding a seat for alice, watches her take it,
// talks to the room and its players, kicks one and disposes the room.
func TestBackendRoomLifecycle(t *testing.T) {
	n := startBackend(t, gameserver.Config{APIKeys: []string{apiKey}, AuthSecret: secret})
	var created struct {
		Room struct {
			ID       string         `json:"id"`
			Kind     string         `json:"kind"`
			Node     string         `json:"node"`
			Players  int            `json:"players"`
			Metadata map[string]any `json:"metadata"`
		} `json:"room"`
		Join struct {
			RoomID       string    `json:"roomId"`
			Kind         string    `json:"kind"`
			WSPath       string    `json:"wsPath"`
			Users        []string  `json:"users"`
			SeatDeadline time.Time `json:"seatDeadline"`
		} `json:"join"`
	}
	before := time.Now()
	if code := n.call(t, "POST", "/api/v1/rooms", `{"kind":"chat","options":{"topic":"news"},"reserve":["alice"]}`, &created); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	roomID := created.Room.ID
	if roomID == "" || created.Join.RoomID != roomID || created.Join.Kind != "chat" || created.Join.WSPath != "/ws" ||
		created.Room.Node != "node-a" || created.Room.Players != 1 || len(created.Join.Users) != 1 {
		t.Fatalf("created %+v", created)
	}
	if d := created.Join.SeatDeadline.Sub(before); d < 9*time.Second || d > 11*time.Second {
		t.Fatalf("seat deadline %v after the request, want the 10 s reservation", d)
	}

	// alice takes the held seat; bob, anonymous, joins by ID.
	alice := userClient(t, n.addr, "alice")
	ja := alice.join(protocol.JoinByID, "", roomID, opts(t, "name", "alice"))
	bob := player(t, n.addr)
	jb := bob.join(protocol.JoinByID, "", roomID, opts(t, "name", "bob"))

	var list struct {
		Rooms []struct {
			ID      string `json:"id"`
			Players int    `json:"players"`
		} `json:"rooms"`
	}
	for _, q := range []struct {
		query string
		found bool
	}{{"", true}, {"?kind=chat", true}, {"?kind=test", false}, {"?node=node-a", true}, {"?node=node-b", false}, {"?kind=chat&node=node-a", true}} {
		list.Rooms = nil
		if code := n.call(t, "GET", "/api/v1/rooms"+q.query, "", &list); code != http.StatusOK {
			t.Fatalf("list%s: %d", q.query, code)
		}
		if found := len(list.Rooms) == 1 && list.Rooms[0].ID == roomID; found != q.found {
			t.Fatalf("list%s: %+v", q.query, list.Rooms)
		}
	}

	var detail struct {
		ID         string `json:"id"`
		Players    int    `json:"players"`
		TickRate   int    `json:"tickRate"`
		Reserved   []string
		PlayerList []struct {
			ID        string `json:"id"`
			UserID    string `json:"userId"`
			Connected bool   `json:"connected"`
		} `json:"playerList"`
	}
	if code := n.call(t, "GET", "/api/v1/rooms/"+roomID, "", &detail); code != http.StatusOK {
		t.Fatalf("get: %d", code)
	}
	if detail.ID != roomID || detail.Players != 2 || detail.TickRate != 1 || len(detail.Reserved) != 0 || len(detail.PlayerList) != 2 {
		t.Fatalf("detail %+v", detail)
	}
	users := map[string]string{}
	for _, p := range detail.PlayerList {
		users[p.ID] = p.UserID
		if !p.Connected {
			t.Fatalf("player %+v not connected", p)
		}
	}
	if users[ja.PlayerID] != "alice" || users[jb.PlayerID] != "" {
		t.Fatalf("players %v", users)
	}

	// A room-wide message, as JSON: both hear it, msgpack-encoded.
	if code := n.call(t, "POST", "/api/v1/rooms/"+roomID+"/messages", `{"type":"0x1101","body":["sys","server","maintenance at noon"]}`, nil); code != http.StatusNoContent {
		t.Fatalf("send: %d", code)
	}
	for _, c := range []*client{alice, bob} {
		var said []string
		if err := msgpack.Unmarshal(c.expectSkipping(protocol.MsgType(chat.MsgSaid)), &said); err != nil || strings.Join(said, "|") != "sys|server|maintenance at noon" {
			t.Fatalf("said %v %v", said, err)
		}
	}
	// To alice only (base64 msgpack [1, 2]), then to everyone: bob's next
	// of the two is the room-wide one.
	if code := n.call(t, "POST", "/api/v1/rooms/"+roomID+"/players/"+ja.PlayerID+"/messages", `{"type":8738,"bodyBase64":"kgEC"}`, nil); code != http.StatusNoContent {
		t.Fatalf("send to alice: %d", code)
	}
	if code := n.call(t, "POST", "/api/v1/rooms/"+roomID+"/messages", `{"type":8739,"body":{"n":3}}`, nil); code != http.StatusNoContent {
		t.Fatalf("send to all: %d", code)
	}
	var pair []int
	if err := msgpack.Unmarshal(alice.expectSkipping(0x2222), &pair); err != nil || len(pair) != 2 || pair[1] != 2 {
		t.Fatalf("alice got %v %v", pair, err)
	}
	for {
		tp, _, err := bob.next(3 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if tp == 0x2222 {
			t.Fatal("bob got alice's message")
		}
		if tp == 0x2223 {
			break
		}
	}

	// Kick bob with a code of the game's.
	if code := n.call(t, "POST", "/api/v1/rooms/"+roomID+"/players/"+jb.PlayerID+"/kick", `{"code":4001,"message":"bye"}`, nil); code != http.StatusNoContent {
		t.Fatalf("kick: %d", code)
	}
	var left protocol.Left
	if err := left.Decode(bob.expectSkipping(protocol.TypeLeft)); err != nil || left.Reason != protocol.LeftKicked || left.Code != 4001 {
		t.Fatalf("bob left %+v %v", left, err)
	}
	n.expectErr(t, "Bearer "+apiKey, "POST", "/api/v1/rooms/"+roomID+"/players/"+jb.PlayerID+"/kick", "", http.StatusNotFound, "no such player")
	n.expectErr(t, "Bearer "+apiKey, "POST", "/api/v1/rooms/"+roomID+"/players/"+jb.PlayerID+"/messages", `{"type":4096,"body":1}`, http.StatusNotFound, "no such player")

	// Dispose: alice hears it, and the room is gone.
	if code := n.call(t, "DELETE", "/api/v1/rooms/"+roomID+"?reason=maintenance", "", nil); code != http.StatusAccepted {
		t.Fatalf("dispose: %d", code)
	}
	if err := left.Decode(alice.expectSkipping(protocol.TypeLeft)); err != nil || left.Reason != protocol.LeftDisposed {
		t.Fatalf("alice left %+v %v", left, err)
	}
	waitFor(t, func() bool { return n.call(t, "GET", "/api/v1/rooms/"+roomID, "", nil) == http.StatusNotFound })
	n.expectErr(t, "Bearer "+apiKey, "DELETE", "/api/v1/rooms/"+roomID, "", http.StatusNotFound, "no such room")
}

// What the room engine refuses reaches the caller with a fitting status.
func TestBackendCreateRefusals(t *testing.T) {
	n := startBackend(t, gameserver.Config{APIKeys: []string{apiKey}})
	auth := "Bearer " + apiKey
	n.expectErr(t, auth, "POST", "/api/v1/rooms", `{"kind":"nosuchtype"}`, http.StatusUnprocessableEntity, `unknown room type "nosuchtype"`)
	// OnCreate's refusal: 422. (The room engine's Create does not yet
	// return the game's error, only that the room ended at once; when it
	// does, its code comes as gameCode.)
	e := n.expectErr(t, auth, "POST", "/api/v1/rooms", `{"kind":"test","options":{"fail":"yes"}}`, http.StatusUnprocessableEntity, "refused")
	if e.GameCode != 0 && e.GameCode != 1001 {
		t.Fatalf("game code %d", e.GameCode)
	}
	n.expectErr(t, auth, "POST", "/api/v1/rooms", `{"kind":"test","reserve":["a","b","c","d","e"]}`, http.StatusUnprocessableEntity, "more users than the room has seats")
	// Options reach OnCreate as a client's would: the label becomes metadata.
	var c struct {
		Room struct {
			ID       string            `json:"id"`
			Metadata map[string]string `json:"metadata"`
		} `json:"room"`
	}
	if code := n.call(t, "POST", "/api/v1/rooms", `{"kind":"test","options":{"label":"ranked","private":"yes"}}`, &c); code != http.StatusCreated || c.Room.Metadata["label"] != "ranked" {
		t.Fatalf("create: %d %+v", code, c)
	}
	var detail struct {
		Private  bool              `json:"private"`
		Metadata map[string]string `json:"metadata"`
	}
	if n.call(t, "GET", "/api/v1/rooms/"+c.Room.ID, "", &detail); !detail.Private || detail.Metadata["label"] != "ranked" {
		t.Fatalf("detail %+v", detail)
	}
}

// Bad input on every endpoint of a real server: the wiring, not only the
// handlers, answers each with its status and an error body.
func TestBackendBadInput(t *testing.T) {
	n := startBackend(t, gameserver.Config{APIKeys: []string{apiKey}})
	var c struct {
		Room struct{ ID string } `json:"room"`
	}
	if code := n.call(t, "POST", "/api/v1/rooms", `{"kind":"chat"}`, &c); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	room := "/api/v1/rooms/" + c.Room.ID
	auth, wrong := "Bearer "+apiKey, "Bearer wrong-key-0123456789abc"
	oversize := `{"kind":"chat","options":{"pad":"` + strings.Repeat("x", 65<<10) + `"}}`
	type req struct{ method, path, body string }
	endpoints := []req{
		{"GET", "/api/v1/rooms", ""},
		{"POST", "/api/v1/rooms", `{"kind":"chat"}`},
		{"GET", room, ""},
		{"DELETE", room, ""},
		{"POST", room + "/messages", `{"type":4352,"body":["x"]}`},
		{"POST", room + "/players/p1/messages", `{"type":4352,"body":["x"]}`},
		{"POST", room + "/players/p1/kick", `{}`},
		{"GET", "/api/v1/nodes", ""},
		{"GET", "/monitor/events", ""},
	}
	for _, ep := range endpoints {
		t.Run(ep.method+" "+strings.Replace(ep.path, c.Room.ID, "{id}", 1), func(t *testing.T) {
			n.expectErr(t, "", ep.method, ep.path, ep.body, http.StatusUnauthorized, "API key")
			n.expectErr(t, wrong, ep.method, ep.path, ep.body, http.StatusUnauthorized, "API key")
			n.expectErr(t, "Basic "+apiKey, ep.method, ep.path, ep.body, http.StatusUnauthorized, "API key")
			n.expectErr(t, auth, "PATCH", ep.path, ep.body, http.StatusMethodNotAllowed, "not allowed")
			if ep.method != "POST" {
				return
			}
			n.expectErr(t, auth, ep.method, ep.path, `{"kind":`, http.StatusBadRequest, "malformed JSON")
			n.expectErr(t, auth, ep.method, ep.path, `[1,2]`, http.StatusBadRequest, "must be a JSON object")
			n.expectErr(t, auth, ep.method, ep.path, `{"nope":1}`, http.StatusBadRequest, `unknown field "nope"`)
			n.expectErr(t, auth, ep.method, ep.path, oversize, http.StatusRequestEntityTooLarge, "over 65536 bytes")
		})
	}
	// Wrong types, per endpoint.
	n.expectErr(t, auth, "POST", "/api/v1/rooms", `{"kind":["chat"]}`, http.StatusBadRequest, "field kind: want a string")
	n.expectErr(t, auth, "POST", "/api/v1/rooms", `{"kind":"chat","reserve":"alice"}`, http.StatusBadRequest, "field reserve")
	n.expectErr(t, auth, "POST", "/api/v1/rooms", `{"kind":"chat","options":[]}`, http.StatusBadRequest, "options: want a JSON object")
	n.expectErr(t, auth, "POST", room+"/messages", `{"type":"chat","body":1}`, http.StatusBadRequest, "type: want an integer")
	n.expectErr(t, auth, "POST", room+"/messages", `{"type":16,"body":1}`, http.StatusBadRequest, "not a game type")
	n.expectErr(t, auth, "POST", room+"/messages", `{"type":4096,"bodyBase64":"@@"}`, http.StatusBadRequest, "base64")
	n.expectErr(t, auth, "POST", room+"/players/p1/kick", `{"code":"x"}`, http.StatusBadRequest, "field code")
	n.expectErr(t, auth, "DELETE", room+"?reason="+strings.Repeat("r", 300), "", http.StatusBadRequest, "reason")
	n.expectErr(t, auth, "GET", "/api/v1/rooms?sort=players", "", http.StatusBadRequest, "unknown query parameter")
	// Unknown rooms and players.
	for _, ep := range []req{
		{"GET", "/api/v1/rooms/nosuchroom", ""},
		{"DELETE", "/api/v1/rooms/nosuchroom", ""},
		{"POST", "/api/v1/rooms/nosuchroom/messages", `{"type":4352,"body":["x"]}`},
		{"POST", "/api/v1/rooms/nosuchroom/players/p1/kick", ""},
		{"POST", room + "/players/nosuchplayer/kick", ""},
	} {
		n.expectErr(t, auth, ep.method, ep.path, ep.body, http.StatusNotFound, "no such")
	}
	n.expectErr(t, auth, "GET", "/api/v1/players", "", http.StatusNotFound, "no such endpoint")
	// Every answer was counted by route and status.
	if v := metricWith(t, n.srv, `gameserver_api_requests_total{route="POST /api/v1/rooms",status="413"}`); v != 1 {
		t.Fatalf("413s counted: %v", v)
	}
	if v := metricWith(t, n.srv, `gameserver_api_requests_total{route="GET /api/v1/rooms/{roomId}",status="401"}`); v != 3 {
		t.Fatalf("401s counted: %v", v)
	}
	if v := metricWith(t, n.srv, `gameserver_api_requests_total{route="unmatched",status="404"}`); v != 1 {
		t.Fatalf("unmatched counted: %v", v)
	}
}

// hookReceiver is a backend's webhook endpoint on loopback. It checks each
// delivery's signature the way docs/ tell receivers to, and answers as the
// test says.
type hookReceiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	n      int
	events []hookEvent    // accepted (2xx), in arrival order
	seen   map[string]int // attempts per event ID
	forged int
	answer func(n int) (int, time.Duration)
}

type hookEvent struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Seq    uint64 `json:"seq"`
	Node   string `json:"node"`
	Reason string `json:"reason"`
	Room   *struct {
		ID      string `json:"id"`
		Kind    string `json:"kind"`
		Players int    `json:"players"`
	} `json:"room"`
	Player *struct {
		ID     string `json:"id"`
		UserID string `json:"userId"`
	} `json:"player"`
	attempt string
}

func newHookReceiver(t *testing.T, answer func(n int) (int, time.Duration)) *hookReceiver {
	h := &hookReceiver{t: t, answer: answer, seen: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts := r.Header.Get("X-Gameserver-Timestamp")
		sec, err := strconv.ParseInt(ts, 10, 64)
		mac := hmac.New(sha256.New, []byte(hookSecret))
		mac.Write([]byte(ts + "." + string(body)))
		want := "v1=" + hex.EncodeToString(mac.Sum(nil))
		if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute ||
			!hmac.Equal([]byte(r.Header.Get("X-Gameserver-Signature")), []byte(want)) {
			h.mu.Lock()
			h.forged++
			h.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev hookEvent
		if err := json.Unmarshal(body, &ev); err != nil || ev.ID != r.Header.Get("X-Gameserver-Event-Id") || ev.Type != r.Header.Get("X-Gameserver-Event") {
			h.mu.Lock()
			h.forged++
			h.mu.Unlock()
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		ev.attempt = r.Header.Get("X-Gameserver-Attempt")
		h.mu.Lock()
		n := h.n
		h.n++
		h.seen[ev.ID]++
		h.mu.Unlock()
		status, sleep := h.answer(n)
		if sleep > 0 {
			select {
			case <-time.After(sleep):
			case <-r.Context().Done():
				return
			}
		}
		if status < 300 {
			h.mu.Lock()
			if !h.has(ev.ID) { // a receiver drops duplicates by ID
				h.events = append(h.events, ev)
			}
			h.mu.Unlock()
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// has reports whether an event was accepted; h.mu must be held.
func (h *hookReceiver) has(id string) bool {
	for _, e := range h.events {
		if e.ID == id {
			return true
		}
	}
	return false
}

func (h *hookReceiver) accepted() []hookEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookEvent(nil), h.events...)
}

func (h *hookReceiver) acceptedType(typ string) bool {
	for _, e := range h.accepted() {
		if e.Type == typ {
			return true
		}
	}
	return false
}

// Webhooks through a receiver that fails, then times out, then recovers:
// every event arrives, signed, each room's in order, and Shutdown waits
// for the last ones.
func TestBackendWebhooks(t *testing.T) {
	recv := newHookReceiver(t, func(n int) (int, time.Duration) {
		switch n {
		case 0:
			return http.StatusInternalServerError, 0
		case 1:
			return http.StatusOK, time.Second // past the attempt timeout
		}
		return http.StatusNoContent, 0
	})
	n := startBackend(t, gameserver.Config{WebhookURLs: []string{recv.srv.URL + "/hooks"}, WebhookSecret: hookSecret,
		WebhookTimeout: 300 * time.Millisecond, AuthSecret: secret, Node: "hooks-node"})
	a := userClient(t, n.addr, "alice")
	ja := a.join(protocol.JoinCreate, "test", "", nil)
	b := player(t, n.addr)
	jb := b.join(protocol.JoinByID, "", ja.RoomID, nil)
	b.send(&protocol.Leave{ReqID: 3})
	b.expectSkipping(protocol.TypeLeft)
	a.conn.Close() // dropped: the seat is released after the resume window
	waitFor(t, func() bool { return recv.acceptedType("room.disposed") })

	type step struct{ typ, player, reason string }
	want := []step{
		{"room.created", "", ""},
		{"player.joined", ja.PlayerID, ""},
		{"player.joined", jb.PlayerID, ""},
		{"player.left", jb.PlayerID, "left"},
		{"player.left", ja.PlayerID, "dropped"},
		{"room.disposed", "", "empty"},
	}
	got := recv.accepted()
	if len(got) != len(want) {
		t.Fatalf("%d events accepted, want %d: %+v", len(got), len(want), got)
	}
	var lastSeq uint64
	for i, w := range want {
		e := got[i]
		pid := ""
		if e.Player != nil {
			pid = e.Player.ID
		}
		if e.Type != w.typ || pid != w.player || e.Reason != w.reason || e.Room == nil || e.Room.ID != ja.RoomID || e.Room.Kind != "test" ||
			e.Node != "hooks-node" || e.Seq <= lastSeq {
			t.Fatalf("event %d: %+v, want %+v after seq %d", i, e, w, lastSeq)
		}
		lastSeq = e.Seq
	}
	if got[1].Player.UserID != "alice" || got[2].Player.UserID != "" || got[1].Room.Players != 1 || got[5].Room.Players != 0 {
		t.Fatalf("joined %+v %+v, disposed %+v", got[1].Player, got[2].Player, got[5].Room)
	}
	// The first event took three attempts: a 500, a timeout, a success.
	if got[0].attempt != "3" {
		t.Fatalf("room.created accepted at attempt %s, want 3", got[0].attempt)
	}
	if recv.forged != 0 {
		t.Fatalf("%d deliveries failed verification", recv.forged)
	}
	if metricWith(t, n.srv, `gameserver_webhook_failures_total{reason="status_5xx"}`) != 1 ||
		metricWith(t, n.srv, `gameserver_webhook_failures_total{reason="timeout"}`) != 1 {
		t.Fatal("failures not counted by reason")
	}

	// Shutdown announces the drain and flushes it before it returns.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.stop(ctx); err != nil {
		t.Fatal(err)
	}
	last := recv.accepted()
	if e := last[len(last)-1]; e.Type != "node.draining" || e.Room != nil || e.Node != "hooks-node" {
		t.Fatalf("last event %+v", e)
	}
	if d := metricWith(t, n.srv, "gameserver_webhook_deliveries_total"); d != float64(len(last)) {
		t.Fatalf("deliveries %v, accepted %d", d, len(last))
	}
	if metric(t, n.srv, "gameserver_webhook_drops_total") != 0 || metricWith(t, n.srv, "gameserver_webhook_queue_length") != 0 {
		t.Fatal("dropped or still queued")
	}
}

// What cannot be delivered is dropped and counted: retries exhausted,
// queue full, and what is left when Shutdown's context ends, which bounds
// the flush.
func TestBackendWebhookDrops(t *testing.T) {
	t.Run("retries exhausted", func(t *testing.T) {
		recv := newHookReceiver(t, func(int) (int, time.Duration) { return http.StatusBadGateway, 0 })
		n := startBackend(t, gameserver.Config{APIKeys: []string{apiKey}, WebhookURLs: []string{recv.srv.URL}, WebhookSecret: hookSecret, WebhookMaxAttempts: 2})
		if code := n.call(t, "POST", "/api/v1/rooms", `{"kind":"chat"}`, nil); code != http.StatusCreated {
			t.Fatal(code)
		}
		waitFor(t, func() bool {
			return metricWith(t, n.srv, `gameserver_webhook_drops_total{reason="retries_exhausted"}`) == 1
		})
		if f := metricWith(t, n.srv, `gameserver_webhook_failures_total{reason="status_5xx"}`); f != 2 {
			t.Fatalf("%v failed attempts, want 2", f)
		}
	})
	t.Run("queue full and shutdown", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		recv := newHookReceiver(t, func(int) (int, time.Duration) { <-release; return http.StatusOK, 0 })
		n := startBackend(t, gameserver.Config{APIKeys: []string{apiKey}, WebhookURLs: []string{recv.srv.URL}, WebhookSecret: hookSecret,
			WebhookQueueSize: 1, WebhookTimeout: time.Minute})
		for i := 0; i < 5; i++ {
			if code := n.call(t, "POST", "/api/v1/rooms", `{"kind":"chat"}`, nil); code != http.StatusCreated {
				t.Fatal(code)
			}
		}
		waitFor(t, func() bool {
			return metricWith(t, n.srv, `gameserver_webhook_drops_total{reason="queue_full"}`) == 4
		})
		if q := metricWith(t, n.srv, "gameserver_webhook_queue_length"); q != 1 {
			t.Fatalf("queue length %v, want 1", q)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_ = n.stop(ctx)
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("Shutdown took %v with a 300 ms context", took)
		}
		if metricWith(t, n.srv, `gameserver_webhook_drops_total{reason="shutdown"}`) < 1 || metricWith(t, n.srv, "gameserver_webhook_queue_length") != 0 {
			t.Fatal("the undelivered event was not counted as dropped at shutdown")
		}
	})
}

func TestBackendConfigErrors(t *testing.T) {
	cases := map[string]gameserver.Config{
		"short API key":       {APIKeys: []string{"short"}},
		"URLs without secret": {WebhookURLs: []string{"http://127.0.0.1:9/"}},
		"short secret":        {WebhookURLs: []string{"http://127.0.0.1:9/"}, WebhookSecret: "short"},
		"not an http URL":     {WebhookURLs: []string{"127.0.0.1:9"}, WebhookSecret: hookSecret},
		"negative attempts":   {WebhookURLs: []string{"http://127.0.0.1:9/"}, WebhookSecret: hookSecret, WebhookMaxAttempts: -1},
		"negative queue":      {WebhookURLs: []string{"http://127.0.0.1:9/"}, WebhookSecret: hookSecret, WebhookQueueSize: -5},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			cfg.Addr = "127.0.0.1:0"
			if _, err := gameserver.New(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	// The same through the command line and the environment.
	var help bytes.Buffer
	if code := gameserver.Run([]string{"-h"}, func(string) string { return "" }, &help); code != 0 {
		t.Fatalf("-h: %d", code)
	}
	for _, s := range []string{"--api-keys", "GAMESERVER_API_KEYS", "--webhook-urls", "GAMESERVER_WEBHOOK_SECRET", "--webhook-timeout", "--webhook-attempts", "--webhook-queue"} {
		if !strings.Contains(help.String(), s) {
			t.Fatalf("-h does not mention %s", s)
		}
	}
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for name, run := range map[string]func() int{
		"short key flag": func() int {
			return gameserver.Run([]string{"--addr", "127.0.0.1:0", "--api-keys", "0123456789abcdef, short"}, env(), io.Discard)
		},
		"short key env": func() int {
			return gameserver.Run([]string{"--addr", "127.0.0.1:0"}, env("GAMESERVER_API_KEYS", "short"), io.Discard)
		},
		"URLs, no secret": func() int {
			return gameserver.Run([]string{"--addr", "127.0.0.1:0"}, env("GAMESERVER_WEBHOOK_URLS", "http://127.0.0.1:9/"), io.Discard)
		},
	} {
		if code := run(); code != 1 {
			t.Fatalf("%s: exit %d, want 1", name, code)
		}
	}
}

// snapshot is the part of a monitor event the tests read.
type snapshot struct {
	Nodes []struct {
		Name             string  `json:"name"`
		Status           string  `json:"status"`
		Rooms            int     `json:"rooms"`
		Players          int     `json:"players"`
		MessagesInPerSec float64 `json:"messagesInPerSec"`
		TicksPerSec      float64 `json:"ticksPerSec"`
		TickP99Ms        float64 `json:"tickP99Ms"`
	} `json:"nodes"`
	Kinds []struct {
		Kind    string `json:"kind"`
		Rooms   int    `json:"rooms"`
		Players int    `json:"players"`
	} `json:"kinds"`
	Rooms []struct {
		ID   string `json:"id"`
		Kind string `json:"kind"`
	} `json:"rooms"`
	RoomsTotal int `json:"roomsTotal"`
}

// The monitor's stream shows the node's rooms, players and message rate
// while players talk, and ends with a "draining" snapshot that does not
// hold Shutdown up.
func TestBackendMonitorStream(t *testing.T) {
	n := startBackend(t, gameserver.Config{APIKeys: []string{apiKey}})
	resp, err := http.Get("http://" + n.addr + "/monitor")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte("/monitor/monitor.js")) {
		t.Fatalf("page: %d", resp.StatusCode)
	}
	n.expectErr(t, "", "GET", "/monitor/events", "", http.StatusUnauthorized, "API key")

	a, b := player(t, n.addr), player(t, n.addr)
	ja := a.join(protocol.JoinOrCreate, "chat", "", opts(t, "name", "alice"))
	b.join(protocol.JoinOrCreate, "chat", "", opts(t, "name", "bob"))
	stopTalk := make(chan struct{})
	talked := make(chan struct{})
	go func() {
		defer close(talked)
		for i := 0; ; i++ {
			select {
			case <-stopTalk:
				return
			case <-time.After(25 * time.Millisecond):
			}
			body, _ := msgpack.Marshal([]any{fmt.Sprint("line ", i)})
			if _, err := a.conn.Write(wsFrame(append(protocol.AppendType(nil, protocol.MsgType(chat.MsgSay)), body...))); err != nil {
				return
			}
		}
	}()
	stopPlayers := sync.OnceFunc(func() {
		close(stopTalk)
		<-talked
		a.conn.Close()
		b.conn.Close()
	})
	defer stopPlayers()

	req, _ := http.NewRequest("GET", "http://"+n.addr+"/monitor/events", nil)
	req.SetBasicAuth("ops", apiKey)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	snaps := make(chan snapshot, 64)
	go func() {
		defer close(snaps)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var s snapshot
				if json.Unmarshal([]byte(data), &s) == nil {
					snaps <- s
				}
			}
		}
	}()
	deadline := time.After(6 * time.Second)
	for live := false; !live; {
		select {
		case s := <-snaps:
			node := s.Nodes[0]
			live = node.Name == "node-a" && node.Status == "ready" && node.Rooms == 1 && node.Players == 2 &&
				node.MessagesInPerSec >= 10 && node.TicksPerSec >= 1 && s.RoomsTotal == 1 && len(s.Rooms) == 1 && s.Rooms[0].ID == ja.RoomID
			if node.TicksPerSec > 0 && !strings.Contains(" 0.1 0.25 0.5 1 2.5 5 10 25 50 100 ", fmt.Sprint(" ", node.TickP99Ms, " ")) {
				t.Fatalf("tick p99 %v is not a bucket bound of the tick histogram", node.TickP99Ms)
			}
			for _, k := range s.Kinds {
				if k.Kind == "chat" && (k.Rooms != 1 || k.Players != 2) && live {
					t.Fatalf("kind %+v", k)
				}
			}
		case <-deadline:
			t.Fatal("no snapshot showed the room, its players and their messages")
		}
	}

	// The players go first: Shutdown waits for their close handshakes,
	// and these clients read nothing. Then only the monitor's stream is
	// open, and an open stream would hold Shutdown until its context ends.
	stopPlayers()
	stopped := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.stop(ctx)
		stopped <- time.Since(start)
	}()
	var last snapshot
	ended := time.After(5 * time.Second)
	for open := true; open; {
		select {
		case s, ok := <-snaps:
			if ok {
				last = s
			}
			open = ok
		case <-ended:
			t.Fatal("the monitor stream did not end at shutdown")
		}
	}
	if len(last.Nodes) != 1 || last.Nodes[0].Status != "draining" {
		t.Fatalf("last snapshot %+v", last)
	}
	if took := <-stopped; took > 3*time.Second {
		t.Fatalf("Shutdown took %v with a monitor open", took)
	}
}

// wsFrame is a masked binary WebSocket frame, for writing from another
// goroutine than the test's.
func wsFrame(payload []byte) []byte {
	f := []byte{0x82}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	default:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	}
	mask := [4]byte{1, 2, 3, 4}
	f = append(f, mask[:]...)
	for i, c := range payload {
		f = append(f, c^mask[i%4])
	}
	return f
}
