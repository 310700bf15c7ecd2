package api

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testKey = "test-key-0123456789"

// fakeBackend records what the handlers ask and answers what a test sets.
type fakeBackend struct {
	mu      sync.Mutex
	calls   []string
	filter  Filter
	create  CreateRequest
	kick    KickRequest
	send    SendRequest
	dispose [2]string
	err     error // returned by every call when set
	block   bool  // calls wait for their context to end
	ov      Overview
}

func (f *fakeBackend) record(name string) error {
	f.mu.Lock()
	f.calls = append(f.calls, name)
	err := f.err
	f.mu.Unlock()
	return err
}

func (f *fakeBackend) wait(ctx context.Context) error {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (f *fakeBackend) Rooms(ctx context.Context, flt Filter) ([]Room, error) {
	f.mu.Lock()
	f.filter = flt
	f.mu.Unlock()
	if err := f.record("rooms"); err != nil {
		return nil, err
	}
	return []Room{{ID: "r1", Kind: "chat", Node: "n1", Players: 2, MaxPlayers: 8, Metadata: map[string]any{"<b>": "x"}}}, f.wait(ctx)
}

func (f *fakeBackend) Room(ctx context.Context, id string) (RoomDetail, error) {
	if err := f.record("room " + id); err != nil {
		return RoomDetail{}, err
	}
	if id != "r1" {
		return RoomDetail{}, Errorf(http.StatusNotFound, "no such room")
	}
	return RoomDetail{Room: Room{ID: "r1", Kind: "chat"}, TickRate: 20}, f.wait(ctx)
}

func (f *fakeBackend) Create(ctx context.Context, req CreateRequest) (Created, error) {
	f.mu.Lock()
	f.create = req
	f.mu.Unlock()
	if err := f.record("create"); err != nil {
		return Created{}, err
	}
	d := time.Unix(1_700_000_010, 0).UTC()
	return Created{Room: Room{ID: "new1", Kind: req.Kind}, Join: JoinInfo{RoomID: "new1", Kind: req.Kind, WSPath: "/ws", Users: req.Reserve, SeatDeadline: &d}}, f.wait(ctx)
}

func (f *fakeBackend) Dispose(ctx context.Context, id, reason string) error {
	f.mu.Lock()
	f.dispose = [2]string{id, reason}
	f.mu.Unlock()
	if err := f.record("dispose"); err != nil {
		return err
	}
	return f.wait(ctx)
}

func (f *fakeBackend) Kick(ctx context.Context, req KickRequest) error {
	f.mu.Lock()
	f.kick = req
	f.mu.Unlock()
	if err := f.record("kick"); err != nil {
		return err
	}
	return f.wait(ctx)
}

func (f *fakeBackend) Send(ctx context.Context, req SendRequest) error {
	f.mu.Lock()
	f.send = req
	f.mu.Unlock()
	if err := f.record("send"); err != nil {
		return err
	}
	return f.wait(ctx)
}

func (f *fakeBackend) Overview(ctx context.Context) (Overview, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ov, nil
}

func (f *fakeBackend) setOverview(o Overview) {
	f.mu.Lock()
	f.ov = o
	f.mu.Unlock()
}

func (f *fakeBackend) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type served struct {
	api     *API
	fb      *fakeBackend
	mux     *http.ServeMux
	mu      sync.Mutex
	metrics map[string]int
}

func newServed(t *testing.T, cfg Config) *served {
	t.Helper()
	s := &served{fb: &fakeBackend{}, metrics: map[string]int{}}
	if cfg.Keys == nil {
		cfg.Keys = []string{"another-key-abcdefgh", testKey}
	}
	cfg.Backend = s.fb
	cfg.OnRequest = func(route string, status int) {
		s.mu.Lock()
		s.metrics[route+" "+http.StatusText(status)]++
		s.mu.Unlock()
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.api = a
	s.mux = http.NewServeMux()
	s.mux.Handle("GET /", http.NotFoundHandler()) // as the server's static files
	a.Mount(s.mux)
	return s
}

// do sends a request with the test key (auth "" means none).
func (s *served) do(method, path, body, auth string, header ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, req)
	return rec
}

const bearer = "Bearer " + testKey

// errorOf checks an error answer's status and body shape.
func errorOf(t *testing.T, rec *httptest.ResponseRecorder, status int, contains string) errorBody {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("content type %q", ct)
	}
	var e errorBody
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body: %v", err)
	}
	if e.Code != status || e.Error == "" {
		t.Fatalf("error body %+v for status %d", e, status)
	}
	if !strings.Contains(e.Error, contains) {
		t.Fatalf("error %q does not say %q", e.Error, contains)
	}
	return e
}

func TestKeysChecked(t *testing.T) {
	cases := map[string][]string{
		"short key":           {"0123456789abcde"},
		"key with space":      {"0123456789 abcdef"},
		"key with comma":      {"0123456789,abcdef"},
		"one good, one short": {"0123456789abcdef", "x"},
	}
	for name, keys := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := New(Config{Keys: keys, Backend: &fakeBackend{}}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := New(Config{Keys: []string{"0123456789abcdef"}}); err == nil {
		t.Fatal("keys without a backend accepted")
	}
	if _, err := New(Config{Keys: []string{"0123456789abcdef"}, Backend: &fakeBackend{}, Timeout: -1}); err == nil {
		t.Fatal("negative timeout accepted")
	}
}

func TestDisabledWithoutKeys(t *testing.T) {
	s := newServed(t, Config{Keys: []string{}})
	for _, m := range []string{"GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"} {
		errorOf(t, s.do(m, "/api/v1/rooms", "", bearer), http.StatusNotFound, "disabled")
	}
	errorOf(t, s.do("GET", "/api/v1", "", ""), http.StatusNotFound, "disabled")
	if rec := s.do("GET", "/monitor", "", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("monitor: %d", rec.Code)
	}
	if rec := s.do("GET", "/monitor/events", "", bearer); rec.Code != http.StatusNotFound {
		t.Fatalf("monitor events: %d", rec.Code)
	}
	if s.fb.callCount() != 0 {
		t.Fatal("the backend was called")
	}
}

func TestAuthentication(t *testing.T) {
	s := newServed(t, Config{})
	refused := map[string]string{
		"no header":          "",
		"wrong key":          "Bearer not-the-key-0123456789",
		"key prefix":         "Bearer " + testKey[:10],
		"key with extra":     "Bearer " + testKey + "x",
		"empty bearer":       "Bearer ",
		"other scheme":       "Token " + testKey,
		"basic wrong":        "Basic " + b64(":wrong-password-0123"),
		"basic not base64":   "Basic %%%",
		"key as basic user":  "Basic " + b64(testKey+":"),
		"raw key, no scheme": testKey,
	}
	for name, auth := range refused {
		t.Run(name, func(t *testing.T) {
			rec := s.do("GET", "/api/v1/rooms", "", auth)
			errorOf(t, rec, http.StatusUnauthorized, "API key")
			if !strings.Contains(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Fatal("no WWW-Authenticate")
			}
		})
	}
	// Unknown paths and wrong methods say 401 too: nothing is revealed
	// before the key.
	errorOf(t, s.do("GET", "/api/v1/secret", "", ""), http.StatusUnauthorized, "API key")
	errorOf(t, s.do("PUT", "/api/v1/rooms", "", ""), http.StatusUnauthorized, "API key")
	if s.fb.callCount() != 0 {
		t.Fatal("the backend was called without a key")
	}
	accepted := map[string]string{
		"bearer":           bearer,
		"bearer lowercase": "bearer " + testKey,
		"second key":       "Bearer another-key-abcdefgh",
		"basic":            "Basic " + b64("ops:"+testKey),
		"basic no user":    "Basic " + b64(":"+testKey),
	}
	for name, auth := range accepted {
		t.Run(name, func(t *testing.T) {
			if rec := s.do("GET", "/api/v1/rooms", "", auth); rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		})
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestRoutingErrors(t *testing.T) {
	s := newServed(t, Config{})
	errorOf(t, s.do("GET", "/api/v1/nothing", "", bearer), http.StatusNotFound, "no such endpoint")
	errorOf(t, s.do("GET", "/api/v1", "", bearer), http.StatusNotFound, "no such endpoint")
	errorOf(t, s.do("GET", "/api/v1/rooms/r1/players", "", bearer), http.StatusNotFound, "no such endpoint")
	cases := []struct{ method, path, allow string }{
		{"PUT", "/api/v1/rooms", "GET, POST"},
		{"DELETE", "/api/v1/rooms", "GET, POST"},
		{"PATCH", "/api/v1/rooms/r1", "GET, DELETE"},
		{"POST", "/api/v1/rooms/r1", "GET, DELETE"},
		{"GET", "/api/v1/rooms/r1/messages", "POST"},
		{"GET", "/api/v1/rooms/r1/players/p1/kick", "POST"},
		{"DELETE", "/api/v1/rooms/r1/players/p1/messages", "POST"},
		{"POST", "/api/v1/nodes", "GET"},
		{"OPTIONS", "/api/v1/rooms", "GET, POST"},
		{"POST", "/monitor/events", "GET"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			rec := s.do(c.method, c.path, "", bearer)
			errorOf(t, rec, http.StatusMethodNotAllowed, "not allowed")
			if rec.Header().Get("Allow") != c.allow {
				t.Fatalf("Allow %q, want %q", rec.Header().Get("Allow"), c.allow)
			}
		})
	}
	if s.fb.callCount() != 0 {
		t.Fatal("the backend was called")
	}
}

func TestListRooms(t *testing.T) {
	s := newServed(t, Config{})
	rec := s.do("GET", "/api/v1/rooms?kind=chat&node=n1", "", bearer)
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if s.fb.filter != (Filter{Kind: "chat", Node: "n1"}) {
		t.Fatalf("filter %+v", s.fb.filter)
	}
	// Metadata is data: no HTML escaping games, no HTML interpretation.
	if !strings.Contains(rec.Body.String(), `"metadata":{"<b>":"x"}`) {
		t.Fatalf("body %s", rec.Body)
	}
	var out struct{ Rooms []Room }
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Rooms) != 1 || out.Rooms[0].ID != "r1" {
		t.Fatalf("%v %+v", err, out)
	}
	errorOf(t, s.do("GET", "/api/v1/rooms?type=chat", "", bearer), http.StatusBadRequest, `unknown query parameter "type"`)
}

func TestGetRoom(t *testing.T) {
	s := newServed(t, Config{})
	rec := s.do("GET", "/api/v1/rooms/r1", "", bearer)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"playerList":[]`) || !strings.Contains(rec.Body.String(), `"reserved":[]`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	errorOf(t, s.do("GET", "/api/v1/rooms/nope", "", bearer), http.StatusNotFound, "no such room")
	errorOf(t, s.do("GET", "/api/v1/rooms/"+strings.Repeat("x", 65), "", bearer), http.StatusNotFound, "no such room")
}

func TestCreateRoom(t *testing.T) {
	s := newServed(t, Config{})
	rec := s.do("POST", "/api/v1/rooms", `{"kind":"chat","options":{"mode":"ffa","size":3,"big":300,"neg":-2,"ratio":0.5,"tags":["a"]},"reserve":["alice","bob","alice"]}`,
		bearer, "Content-Type", "application/json; charset=utf-8")
	if rec.Code != http.StatusCreated {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("Location") != "/api/v1/rooms/new1" {
		t.Fatalf("location %q", rec.Header().Get("Location"))
	}
	c := s.fb.create
	// Sorted keys, smallest integer encodings, floats as float64.
	want := "86" + "a3626967" + "cd012c" + "a46d6f6465" + "a3666661" + "a36e6567" + "fe" + "a5726174696f" + "cb3fe0000000000000" +
		"a473697a65" + "03" + "a474616773" + "91a161"
	if c.Kind != "chat" || hex.EncodeToString(c.Options) != want {
		t.Fatalf("create %+v, options %x, want %s", c, c.Options, want)
	}
	if strings.Join(c.Reserve, ",") != "alice,bob" {
		t.Fatalf("reserve %v: duplicates kept", c.Reserve)
	}
	var out Created
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Join.RoomID != "new1" || out.Join.WSPath != "/ws" ||
		out.Join.SeatDeadline == nil || len(out.Join.Users) != 2 {
		t.Fatalf("%v %+v", err, out)
	}
	// No options, no reserve.
	if rec := s.do("POST", "/api/v1/rooms", `{"kind":"chat","options":null}`, bearer); rec.Code != http.StatusCreated || s.fb.create.Options != nil {
		t.Fatalf("%d %s %x", rec.Code, rec.Body, s.fb.create.Options)
	}
	if !strings.Contains(s.do("POST", "/api/v1/rooms", `{"kind":"chat"}`, bearer).Body.String(), `"users":[]`) {
		t.Fatal("users not an empty list")
	}
}

// Every way a body can be wrong, on every endpoint that takes one.
func TestBadBodies(t *testing.T) {
	s := newServed(t, Config{MaxBodyBytes: 1024})
	big := `{"kind":"` + strings.Repeat("x", 2000) + `"}`
	deep := `{"kind":"chat","options":{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`
	type bad struct {
		name, body, ctype string
		status            int
		says              string
	}
	common := []bad{
		{"malformed", `{"kind":`, "", 400, "malformed JSON"},
		{"syntax", `{"kind" "chat"}`, "", 400, "malformed JSON"},
		{"array body", `["chat"]`, "", 400, "must be a JSON object"},
		{"string body", `"chat"`, "", 400, "must be a JSON object"},
		{"trailing data", `{} {}`, "", 400, "data after the object"},
		{"unknown field", `{"kidn":"chat"}`, "", 400, `unknown field "kidn"`},
		{"oversize", big, "", 413, "over 1024 bytes"},
		{"form content type", `{}`, "application/x-www-form-urlencoded", 415, "application/json"},
		{"bad content type", `{}`, "nonsense/", 415, "application/json"},
	}
	endpoints := []struct {
		path     string
		required bool
		specific []bad
	}{
		{"/api/v1/rooms", true, []bad{
			{"empty", ``, "", 400, "body is required"},
			{"no kind", `{}`, "", 400, "kind"},
			{"empty kind", `{"kind":""}`, "", 400, "kind"},
			{"kind not a string", `{"kind":7}`, "", 400, "field kind: want a string, not a number"},
			{"long kind", `{"kind":"` + strings.Repeat("k", 65) + `"}`, "", 400, "kind"},
			{"options an array", `{"kind":"chat","options":[1]}`, "", 400, "options: want a JSON object"},
			{"options a string", `{"kind":"chat","options":"x"}`, "", 400, "options: want a JSON object"},
			{"options too deep", deep, "", 400, "nested deeper than 32"},
			{"options huge int", `{"kind":"chat","options":{"n":123456789012345678901234567890}}`, "", 400, "out of the 64-bit range"},
			{"reserve not a list", `{"kind":"chat","reserve":"alice"}`, "", 400, "field reserve: want an array of strings, not a string"},
			{"reserve of numbers", `{"kind":"chat","reserve":[1]}`, "", 400, "want a string, not a number"},
			{"reserve empty id", `{"kind":"chat","reserve":[""]}`, "", 400, "reserve[0]"},
		}},
		{"/api/v1/rooms/r1/messages", true, []bad{
			{"empty", ``, "", 400, "body is required"},
			{"no type", `{"body":1}`, "", 400, "type: required"},
			{"type null", `{"type":null,"body":1}`, "", 400, "type: required"},
			{"system type", `{"type":5,"body":1}`, "", 400, "not a game type"},
			{"type too big", `{"type":65536,"body":1}`, "", 400, "not a game type"},
			{"type negative", `{"type":-4096,"body":1}`, "", 400, "type: want an integer"},
			{"type float", `{"type":4096.5,"body":1}`, "", 400, "type: want an integer"},
			{"type bad hex", `{"type":"0xZZ","body":1}`, "", 400, "type: want an integer"},
			{"type a list", `{"type":[4096],"body":1}`, "", 400, "type: want an integer"},
			{"no body", `{"type":4096}`, "", 400, "exactly one of body"},
			{"both bodies", `{"type":4096,"body":1,"bodyBase64":"AQ=="}`, "", 400, "exactly one of body"},
			{"base64 not base64", `{"type":4096,"bodyBase64":"!!"}`, "", 400, "not standard base64"},
			{"base64 not a string", `{"type":4096,"bodyBase64":12}`, "", 400, "field bodyBase64: want a string"},
			{"base64 empty", `{"type":4096,"bodyBase64":""}`, "", 400, "empty"},
			{"base64 two values", `{"type":4096,"bodyBase64":"AQI="}`, "", 400, "more than one msgpack value"},
			{"base64 truncated", `{"type":4096,"bodyBase64":"kwE="}`, "", 400, "not a valid msgpack value"},
			{"body too deep", `{"type":4096,"body":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "", 400, "nested deeper"},
		}},
		{"/api/v1/rooms/r1/players/p1/messages", true, []bad{
			{"empty", ``, "", 400, "body is required"},
			{"system type as string", `{"type":"0x0010","body":1}`, "", 400, "not a game type"},
		}},
		{"/api/v1/rooms/r1/players/p1/kick", false, []bad{
			{"code a string", `{"code":"4000"}`, "", 400, "field code: want an integer, not a string"},
			{"code zero", `{"code":0}`, "", 400, "code: want 1 to 65535"},
			{"code too big", `{"code":70000}`, "", 400, "code: want 1 to 65535"},
			{"code float", `{"code":1.5}`, "", 400, "field code: want an integer"},
			{"message not a string", `{"message":false}`, "", 400, "field message: want a string, not a boolean"},
			{"message empty", `{"message":""}`, "", 400, "message: want 1 to 256"},
			{"message long", `{"message":"` + strings.Repeat("m", 257) + `"}`, "", 400, "message: want 1 to 256"},
		}},
	}
	for _, ep := range endpoints {
		for _, c := range append(append([]bad(nil), common...), ep.specific...) {
			t.Run(ep.path+" "+c.name, func(t *testing.T) {
				before := s.fb.callCount()
				var hdr []string
				if c.ctype != "" {
					hdr = []string{"Content-Type", c.ctype}
				}
				errorOf(t, s.do("POST", ep.path, c.body, bearer, hdr...), c.status, c.says)
				if s.fb.callCount() != before {
					t.Fatal("the backend was called with a bad body")
				}
			})
		}
	}
	// A body over the limit without a Content-Length is cut off as it is read.
	req := httptest.NewRequest("POST", "/api/v1/rooms", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("Authorization", bearer)
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, req)
	errorOf(t, rec, http.StatusRequestEntityTooLarge, "over 1024")
}

func TestDispose(t *testing.T) {
	s := newServed(t, Config{})
	rec := s.do("DELETE", "/api/v1/rooms/r1?reason=season+over", "", bearer)
	if rec.Code != http.StatusAccepted || s.fb.dispose != [2]string{"r1", "season over"} {
		t.Fatalf("%d %s %v", rec.Code, rec.Body, s.fb.dispose)
	}
	s.do("DELETE", "/api/v1/rooms/r1", "", bearer)
	if s.fb.dispose[1] != "disposed by the backend" {
		t.Fatalf("default reason %q", s.fb.dispose[1])
	}
	errorOf(t, s.do("DELETE", "/api/v1/rooms/r1?reason="+strings.Repeat("r", 257), "", bearer), http.StatusBadRequest, "reason")
	errorOf(t, s.do("DELETE", "/api/v1/rooms/r1?force=1", "", bearer), http.StatusBadRequest, "unknown query parameter")
}

func TestKick(t *testing.T) {
	s := newServed(t, Config{})
	if rec := s.do("POST", "/api/v1/rooms/r1/players/p1/kick", "", bearer); rec.Code != http.StatusNoContent {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if s.fb.kick != (KickRequest{RoomID: "r1", PlayerID: "p1", Code: 403, Message: "kicked by the server"}) {
		t.Fatalf("kick %+v", s.fb.kick)
	}
	s.do("POST", "/api/v1/rooms/r1/players/p%2F1/kick", `{"code":4001,"message":"cheating"}`, bearer)
	if s.fb.kick != (KickRequest{RoomID: "r1", PlayerID: "p/1", Code: 4001, Message: "cheating"}) {
		t.Fatalf("kick %+v", s.fb.kick)
	}
}

func TestSend(t *testing.T) {
	s := newServed(t, Config{})
	cases := []struct {
		path, body string
		player     string
		typ        uint16
		hex        string
	}{
		{"/api/v1/rooms/r1/messages", `{"type":4352,"body":["hello",1,true,null]}`, "", 0x1100, "94a568656c6c6f01c3c0"},
		{"/api/v1/rooms/r1/messages", `{"type":"0x1101","body":{"b":1.25,"a":-129}}`, "", 0x1101, "82a161d1ff7fa162cb3ff4000000000000"},
		{"/api/v1/rooms/r1/messages", `{"type":"4352","body":null}`, "", 0x1100, "c0"},
		{"/api/v1/rooms/r1/players/p1/messages", `{"type":65535,"bodyBase64":"kwECAw=="}`, "p1", 0xFFFF, "93010203"},
		{"/api/v1/rooms/r1/players/p1/messages", `{"type":4096,"body":18446744073709551615}`, "p1", 0x1000, "cfffffffffffffffff"},
	}
	for _, c := range cases {
		rec := s.do("POST", c.path, c.body, bearer)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("%s: %d %s", c.body, rec.Code, rec.Body)
		}
		got := s.fb.send
		if got.RoomID != "r1" || got.PlayerID != c.player || got.Type != c.typ || hex.EncodeToString(got.Body) != c.hex {
			t.Fatalf("%s: sent %+v (%x), want type %x body %s", c.body, got, got.Body, c.typ, c.hex)
		}
	}
}

// The backend's errors become answers: its own *Error as it is, a missed
// deadline 504, anything else 500 without details.
func TestBackendErrors(t *testing.T) {
	s := newServed(t, Config{Timeout: 50 * time.Millisecond})
	s.fb.err = &Error{Status: http.StatusUnprocessableEntity, Message: "refused to create", GameCode: 1001}
	e := errorOf(t, s.do("POST", "/api/v1/rooms", `{"kind":"chat"}`, bearer), http.StatusUnprocessableEntity, "refused to create")
	if e.GameCode != 1001 {
		t.Fatalf("game code %d", e.GameCode)
	}
	s.fb.err = errors.New("database on fire at 10.0.0.1")
	rec := s.do("GET", "/api/v1/rooms/r1", "", bearer)
	errorOf(t, rec, http.StatusInternalServerError, "internal error")
	if strings.Contains(rec.Body.String(), "10.0.0.1") {
		t.Fatal("an internal error leaked")
	}
	s.fb.err = nil
	s.fb.block = true
	start := time.Now()
	errorOf(t, s.do("POST", "/api/v1/rooms/r1/players/p1/kick", "", bearer), http.StatusGatewayTimeout, "in time")
	if time.Since(start) > time.Second {
		t.Fatal("the timeout did not apply")
	}
}

func TestRoutesAndMetrics(t *testing.T) {
	s := newServed(t, Config{})
	s.do("GET", "/api/v1/rooms", "", bearer)
	s.do("GET", "/api/v1/rooms", "", bearer)
	s.do("GET", "/api/v1/rooms", "", "")
	s.do("GET", "/api/v1/rooms/nope", "", bearer)
	s.do("GET", "/api/v1/zzz", "", bearer)
	s.do("POST", "/api/v1/rooms/r1/players/p1/kick", "", bearer)
	want := map[string]int{
		"GET /api/v1/rooms OK":                                           2,
		"GET /api/v1/rooms Unauthorized":                                 1,
		"GET /api/v1/rooms/{roomId} Not Found":                           1,
		"unmatched Not Found":                                            1,
		"POST /api/v1/rooms/{roomId}/players/{playerId}/kick No Content": 1,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, n := range want {
		if s.metrics[k] != n {
			t.Fatalf("metric %q = %d, want %d (all: %v)", k, s.metrics[k], n, s.metrics)
		}
	}
	routes := strings.Join(s.api.Routes(), "\n")
	for _, r := range []string{"GET /api/v1/rooms", "POST /api/v1/rooms", "DELETE /api/v1/rooms/{roomId}", "GET /monitor/events"} {
		if !strings.Contains(routes, r) {
			t.Fatalf("routes lack %s", r)
		}
	}
}

func TestJSONToMsgpack(t *testing.T) {
	cases := map[string]string{
		`0`:                           "00",
		`127`:                         "7f",
		`128`:                         "cc80",
		`-1`:                          "ff",
		`-33`:                         "d0df",
		`65536`:                       "ce00010000",
		`-9223372036854775808`:        "d38000000000000000",
		`1.0`:                         "cb3ff0000000000000",
		`1e3`:                         "cb408f400000000000",
		`"é"`:                         "a2c3a9",
		`{"z":1,"a":{"y":[],"b":{}}}`: "82a16182a16280a17990a17a01",
	}
	for in, want := range cases {
		got, err := toMsgpack([]byte(in))
		if err != nil || hex.EncodeToString(got) != want {
			t.Errorf("%s: %x %v, want %s", in, got, err, want)
		}
	}
	for _, in := range []string{`1e400`, `99999999999999999999`, `-99999999999999999999`} {
		if _, err := toMsgpack([]byte(in)); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func TestMonitorPageIsPublicAndLocked(t *testing.T) {
	s := newServed(t, Config{})
	for _, p := range []string{"/monitor", "/monitor/monitor.js", "/monitor/monitor.css"} {
		rec := s.do("GET", p, "", "")
		if rec.Code != http.StatusOK || rec.Body.Len() < 500 {
			t.Fatalf("%s: %d, %d bytes", p, rec.Code, rec.Body.Len())
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
			t.Fatalf("%s: CSP %q", p, csp)
		}
	}
	if ct := s.do("GET", "/monitor", "", "").Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("page content type %q", ct)
	}
	if ct := s.do("GET", "/monitor/monitor.js", "", "").Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Fatalf("script content type %q", ct)
	}
	// The page draws server data as text, never as HTML.
	js := s.do("GET", "/monitor/monitor.js", "", "").Body.String()
	if strings.Contains(js, "innerHTML") || strings.Contains(js, "insertAdjacentHTML") || strings.Contains(js, "document.write") {
		t.Fatal("the monitor script writes HTML")
	}
	errorOf(t, s.do("GET", "/monitor/events", "", ""), http.StatusUnauthorized, "API key")
	errorOf(t, s.do("GET", "/monitor/other.js", "", bearer), http.StatusNotFound, "no such endpoint")
}

// The event stream sends each new overview once, and a last one at Close.
func TestMonitorEvents(t *testing.T) {
	s := newServed(t, Config{MaxStreams: 1})
	srv := httptest.NewServer(s.mux)
	defer srv.Close()
	s.fb.setOverview(Overview{Time: time.Unix(100, 0), Nodes: []Node{{Name: "n1", Status: "ready"}}})
	req, _ := http.NewRequest("GET", srv.URL+"/monitor/events", nil)
	req.Header.Set("Authorization", bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan Overview, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "snapshot":
				var o Overview
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &o) == nil {
					events <- o
				}
			}
		}
		close(events)
	}()
	next := func() (Overview, bool) {
		select {
		case o, ok := <-events:
			return o, ok
		case <-time.After(3 * time.Second):
			t.Fatal("no event within 3 s")
		}
		return Overview{}, false
	}
	if o, _ := next(); o.Nodes[0].Name != "n1" || !o.Time.Equal(time.Unix(100, 0)) {
		t.Fatalf("first %+v", o)
	}
	// A second stream is over the bound.
	req2, _ := http.NewRequest("GET", srv.URL+"/monitor/events", nil)
	req2.Header.Set("Authorization", bearer)
	if resp2, err := http.DefaultClient.Do(req2); err != nil || resp2.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second stream: %v %v", resp2, err)
	} else {
		resp2.Body.Close()
	}
	select {
	case o := <-events:
		t.Fatalf("the same sample sent twice: %+v", o)
	case <-time.After(3 * pollEvery):
	}
	s.fb.setOverview(Overview{Time: time.Unix(101, 0), Nodes: []Node{{Name: "n1", Status: "ready", MessagesInPerSec: 12}}})
	if o, _ := next(); o.Nodes[0].MessagesInPerSec != 12 {
		t.Fatalf("second %+v", o)
	}
	s.fb.setOverview(Overview{Time: time.Unix(101, 0), Nodes: []Node{{Name: "n1", Status: "draining"}}})
	s.api.Close()
	if o, _ := next(); o.Nodes[0].Status != "draining" {
		t.Fatalf("last %+v", o)
	}
	if _, ok := next(); ok {
		t.Fatal("the stream went on after Close")
	}
}

// An answer JSON cannot carry is a 500 with an error body, not a cut-off
// document.
type nanBackend struct{ *fakeBackend }

func (*nanBackend) Room(context.Context, string) (RoomDetail, error) {
	return RoomDetail{Room: Room{ID: "r1", Metadata: map[string]any{"score": math.NaN()}}}, nil
}

func TestUnencodableAnswer(t *testing.T) {
	a, err := New(Config{Keys: []string{testKey}, Backend: &nanBackend{&fakeBackend{}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/v1/rooms/r1", nil)
	req.Header.Set("Authorization", bearer)
	a.ServeHTTP(rec, req)
	errorOf(t, rec, http.StatusInternalServerError, "cannot be encoded")
}
