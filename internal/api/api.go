package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Backend does what the API asks. Its methods are called concurrently,
// each with a context that ends when the request's time is up. Return an
// *Error for anything the caller should hear about (unknown room: 404,
// refused: 409 or 422, ...); any other error is logged and answered 500.
type Backend interface {
	// Rooms lists live rooms matching f, sorted by ID.
	Rooms(ctx context.Context, f Filter) ([]Room, error)
	// Room returns one room with its players and loop figures.
	Room(ctx context.Context, id string) (RoomDetail, error)
	// Create makes a room and holds seats for req.Reserve.
	Create(ctx context.Context, req CreateRequest) (Created, error)
	// Dispose ends a room; its players leave with LEFT (room disposed).
	Dispose(ctx context.Context, id, reason string) error
	// Kick removes a player from a room.
	Kick(ctx context.Context, req KickRequest) error
	// Send delivers a game message to a room's players or to one player.
	Send(ctx context.Context, req SendRequest) error
	// Overview describes the nodes and their rooms, for the monitor. It is
	// called often (several times a second per viewer) and must be cheap:
	// return a recent sample, and set Time to when it was taken.
	Overview(ctx context.Context) (Overview, error)
}

// Filter selects rooms; empty fields match everything.
type Filter struct {
	Kind string
	Node string
}

// Room is a room as the API shows it.
type Room struct {
	ID         string         `json:"id"`
	Kind       string         `json:"kind"`
	Node       string         `json:"node"`
	Players    int            `json:"players"` // seated players and held seats
	MaxPlayers int            `json:"maxPlayers"`
	Locked     bool           `json:"locked"`
	Private    bool           `json:"private"`
	Metadata   map[string]any `json:"metadata,omitempty"`
	Created    time.Time      `json:"created"`
}

// Player is a seated player.
type Player struct {
	ID        string  `json:"id"`
	UserID    string  `json:"userId,omitempty"`
	Connected bool    `json:"connected"`
	RTTMillis float64 `json:"rttMs"`
}

// RoomDetail is a room with its players and its loop's figures.
type RoomDetail struct {
	Room
	PlayerList   []Player `json:"playerList"`
	Reserved     []string `json:"reserved"` // users holding a seat who have not arrived
	Tick         uint64   `json:"tick"`
	TickRate     int      `json:"tickRate"`
	LastTickMs   float64  `json:"lastTickMs"`
	TickOverruns uint64   `json:"tickOverruns"`
}

// CreateRequest asks for a new room.
type CreateRequest struct {
	Kind string
	// Options are the room's create options as one msgpack map, or nil.
	Options []byte
	// Reserve lists the users (token subjects) to hold a seat for,
	// without duplicates.
	Reserve []string
}

// Created is a new room and what its reserved players need to join it.
type Created struct {
	Room Room     `json:"room"`
	Join JoinInfo `json:"join"`
}

// JoinInfo tells a client how to take a held seat: open a session on
// WSPath (with a token whose subject is one of Users) and JOIN RoomID
// (mode 2) before SeatDeadline.
type JoinInfo struct {
	RoomID       string     `json:"roomId"`
	Kind         string     `json:"kind"`
	WSPath       string     `json:"wsPath"`
	Users        []string   `json:"users"`
	SeatDeadline *time.Time `json:"seatDeadline,omitempty"`
}

// KickRequest removes a player.
type KickRequest struct {
	RoomID, PlayerID string
	Code             uint16
	Message          string
}

// SendRequest delivers a game message.
type SendRequest struct {
	RoomID   string
	PlayerID string // "" for every player of the room
	Type     uint16 // a game type, 0x1000 and up
	Body     []byte // one msgpack value
}

// Overview is what the monitor shows.
type Overview struct {
	Time       time.Time     `json:"time"`
	Nodes      []Node        `json:"nodes"`
	Kinds      []Kind        `json:"kinds"`
	Rooms      []Room        `json:"rooms"` // the fullest rooms, at most RoomsLimit
	RoomsTotal int           `json:"roomsTotal"`
	Webhooks   *WebhookStats `json:"webhooks,omitempty"`
}

// RoomsLimit bounds Overview.Rooms.
const RoomsLimit = 200

// Node is one node's figures; rates are per second over the last sample
// interval.
type Node struct {
	Name              string    `json:"name"`
	Status            string    `json:"status"` // "ready" or "draining"
	Started           time.Time `json:"started"`
	ConnectionsWS     int64     `json:"connectionsWs"`
	ConnectionsSSE    int64     `json:"connectionsSse"`
	Sessions          int64     `json:"sessions"`
	Rooms             int64     `json:"rooms"`
	Players           int64     `json:"players"`
	MessagesInPerSec  float64   `json:"messagesInPerSec"`
	MessagesOutPerSec float64   `json:"messagesOutPerSec"`
	TicksPerSec       float64   `json:"ticksPerSec"`
	TickMeanMs        float64   `json:"tickMeanMs"`
	TickP99Ms         float64   `json:"tickP99Ms"` // the 99th percentile is at most this (a histogram bucket's bound)
	Goroutines        int       `json:"goroutines"`
}

// Kind is one room type's figures on the nodes shown.
type Kind struct {
	Kind       string  `json:"kind"`
	Rooms      int     `json:"rooms"`
	Players    int     `json:"players"`
	TickMeanMs float64 `json:"tickMeanMs"`
	TickP99Ms  float64 `json:"tickP99Ms"`
}

// WebhookStats are the webhook dispatcher's totals.
type WebhookStats struct {
	Queued    int64  `json:"queued"`
	Delivered uint64 `json:"delivered"`
	Failed    uint64 `json:"failed"` // failed attempts
	Dropped   uint64 `json:"dropped"`
}

// Error is an answer other than success: an HTTP status and a message,
// and the room's own error code when the room refused.
type Error struct {
	Status   int
	Message  string
	GameCode int
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Message) }

// Errorf returns an *Error with a formatted message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// Config configures the API. Zero values mean the defaults in the
// comments.
type Config struct {
	// Keys are the accepted API keys. Empty disables the API and the
	// monitor: their paths answer 404.
	Keys []string
	// Backend serves the requests; required when Keys is not empty.
	Backend Backend
	// MaxBodyBytes bounds a request body; larger ones get 413. Zero means
	// 64 KiB.
	MaxBodyBytes int64
	// Timeout bounds the Backend's work for one request; past it the
	// answer is 504. Zero means 5 s.
	Timeout time.Duration
	// MaxStreams bounds the monitor's open event streams; past it they get
	// 503. Zero means 64.
	MaxStreams int
	// OnRequest, if set, hears each answered request: its route pattern
	// ("GET /api/v1/rooms/{id}", or "unmatched") and status.
	OnRequest func(route string, status int)
	// Logger receives the API's logs. Nil means no logging.
	Logger *zap.Logger
}

// API serves the REST API and the monitor.
type API struct {
	cfg     Config
	keys    [][32]byte
	log     *zap.Logger
	routes  []route
	streams chan struct{} // a slot per open monitor stream
	closing chan struct{}
	once    sync.Once
	cache   overviewCache
}

// New checks cfg and returns the API.
func New(cfg Config) (*API, error) {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.MaxBodyBytes < 0 || cfg.Timeout < 0 || cfg.MaxStreams < 0 {
		return nil, errors.New("api: limits must not be negative")
	}
	a := &API{cfg: cfg, log: cfg.Logger, streams: make(chan struct{}, cfg.MaxStreams), closing: make(chan struct{})}
	for i, k := range cfg.Keys {
		if len(k) < 16 {
			return nil, fmt.Errorf("api: key %d is %d bytes: keys must be at least 16 bytes", i+1, len(k))
		}
		if strings.ContainsAny(k, " \t\r\n,") {
			return nil, fmt.Errorf("api: key %d contains a space or a comma", i+1)
		}
		a.keys = append(a.keys, sha256.Sum256([]byte(k)))
	}
	if len(a.keys) > 0 && cfg.Backend == nil {
		return nil, errors.New("api: no backend")
	}
	a.routes = a.table()
	return a, nil
}

// Enabled reports whether any key is configured.
func (a *API) Enabled() bool { return len(a.keys) > 0 }

// Close ends the monitor's event streams (each gets a last snapshot
// first), so an HTTP server shutting down is not held by them. Requests
// still work.
func (a *API) Close() { a.once.Do(func() { close(a.closing) }) }

// Mount registers the API's and the monitor's paths on mux. With no keys
// they answer 404.
func (a *API) Mount(mux *http.ServeMux) {
	// One pattern per method: a method-less "/api/v1/" would conflict with
	// the mux's "GET /".
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		mux.Handle(m+" /api/v1/", a)
		mux.Handle(m+" /api/v1", a)
		mux.Handle(m+" /monitor/", a)
		mux.Handle(m+" /monitor", a)
	}
}

// authorized reports whether r carries a configured key, as a Bearer
// token or as the password of Basic auth. Every key is compared, in
// constant time, whatever matches.
func (a *API) authorized(r *http.Request) bool {
	var given string
	h := r.Header.Get("Authorization")
	switch {
	case len(h) > 7 && strings.EqualFold(h[:7], "bearer "):
		given = strings.TrimSpace(h[7:])
	case len(h) > 6 && strings.EqualFold(h[:6], "basic "):
		if _, pw, ok := r.BasicAuth(); ok {
			given = pw
		}
	}
	if given == "" {
		return false
	}
	sum := sha256.Sum256([]byte(given))
	match := 0
	for i := range a.keys {
		match |= subtle.ConstantTimeCompare(sum[:], a.keys[i][:])
	}
	return match == 1
}

// route is one endpoint: a method and a path pattern whose {name}
// segments match any one segment.
type route struct {
	method  string
	pattern string
	segs    []string
	public  bool // served without a key (the monitor's static files)
	handle  func(w http.ResponseWriter, r *http.Request, p params)
}

type params map[string]string

// Routes lists the served endpoints as "METHOD /pattern", for docs and
// tests.
func (a *API) Routes() []string {
	out := make([]string, len(a.routes))
	for i, rt := range a.routes {
		out[i] = rt.method + " " + rt.pattern
	}
	return out
}

func (a *API) table() []route {
	rs := []route{
		{method: "GET", pattern: "/api/v1/rooms", handle: a.listRooms},
		{method: "POST", pattern: "/api/v1/rooms", handle: a.createRoom},
		{method: "GET", pattern: "/api/v1/rooms/{roomId}", handle: a.getRoom},
		{method: "DELETE", pattern: "/api/v1/rooms/{roomId}", handle: a.disposeRoom},
		{method: "POST", pattern: "/api/v1/rooms/{roomId}/messages", handle: a.send},
		{method: "POST", pattern: "/api/v1/rooms/{roomId}/players/{playerId}/messages", handle: a.send},
		{method: "POST", pattern: "/api/v1/rooms/{roomId}/players/{playerId}/kick", handle: a.kick},
		{method: "GET", pattern: "/api/v1/nodes", handle: a.nodes},
		{method: "GET", pattern: "/api/v1/overview", handle: a.overview},
		{method: "GET", pattern: "/monitor", public: true, handle: a.monitorPage},
		{method: "GET", pattern: "/monitor/monitor.js", public: true, handle: a.monitorAsset},
		{method: "GET", pattern: "/monitor/monitor.css", public: true, handle: a.monitorAsset},
		{method: "GET", pattern: "/monitor/events", handle: a.monitorEvents},
	}
	for i := range rs {
		rs[i].segs = strings.Split(strings.Trim(rs[i].pattern, "/"), "/")
	}
	return rs
}

// match finds the route for path segs: the route for the method, or
// whether any route matches the path (for 405) and the methods it takes.
func (a *API) match(method string, segs []string) (*route, params, []string) {
	var allow []string
	for i := range a.routes {
		rt := &a.routes[i]
		p, ok := matchSegs(rt.segs, segs)
		if !ok {
			continue
		}
		if rt.method == method || (method == http.MethodHead && rt.method == http.MethodGet) {
			return rt, p, nil
		}
		allow = append(allow, rt.method)
	}
	return nil, nil, allow
}

func matchSegs(pattern, segs []string) (params, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	var p params
	for i, ps := range pattern {
		if strings.HasPrefix(ps, "{") {
			if segs[i] == "" {
				return nil, false
			}
			if p == nil {
				p = params{}
			}
			p[strings.Trim(ps, "{}")] = segs[i]
			continue
		}
		if ps != segs[i] {
			return nil, false
		}
	}
	return p, true
}

// ServeHTTP serves the API's and the monitor's paths.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusWriter{ResponseWriter: w}
	routeName := "unmatched"
	defer func() {
		if a.cfg.OnRequest != nil {
			a.cfg.OnRequest(routeName, rec.status())
		}
	}()
	w = rec
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !a.Enabled() {
		if strings.HasPrefix(r.URL.Path, "/monitor") {
			http.NotFound(w, r)
			return
		}
		writeError(w, Errorf(http.StatusNotFound, "the API is disabled: no API keys are configured"))
		return
	}
	segs, ok := splitPath(r.URL.EscapedPath())
	var rt *route
	var p params
	var allow []string
	if ok {
		rt, p, allow = a.match(r.Method, segs)
		if rt != nil {
			routeName = rt.method + " " + rt.pattern
		}
	}
	if rt == nil || !rt.public {
		if !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gameserver", Basic realm="gameserver"`)
			writeError(w, Errorf(http.StatusUnauthorized, "missing or invalid API key: send Authorization: Bearer <key>"))
			return
		}
	}
	if rt == nil {
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, Errorf(http.StatusMethodNotAllowed, "method %s not allowed: use %s", r.Method, strings.Join(allow, " or ")))
			return
		}
		writeError(w, Errorf(http.StatusNotFound, "no such endpoint: %s", r.URL.Path))
		return
	}
	rt.handle(w, r, p)
}

// splitPath splits an escaped path into unescaped segments.
func splitPath(escaped string) ([]string, bool) {
	parts := strings.Split(strings.Trim(escaped, "/"), "/")
	for i, s := range parts {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, false
		}
		parts[i] = u
	}
	return parts, true
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

// call runs fn with the request's time limit and turns its error into an
// answer; it reports whether fn succeeded.
func (a *API) call(w http.ResponseWriter, r *http.Request, fn func(ctx context.Context) error) bool {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	err := fn(ctx)
	if err == nil {
		return true
	}
	var ae *Error
	switch {
	case errors.As(err, &ae):
		writeError(w, ae)
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, Errorf(http.StatusGatewayTimeout, "the room did not answer in time"))
	case errors.Is(err, context.Canceled):
		writeError(w, Errorf(499, "request canceled"))
	default:
		a.log.Error("api request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		writeError(w, Errorf(http.StatusInternalServerError, "internal error"))
	}
	return false
}

// checkID answers 404 for an ID no room or player can have.
func checkID(w http.ResponseWriter, what, id string) bool {
	if len(id) > 64 {
		writeError(w, Errorf(http.StatusNotFound, "no such %s", what))
		return false
	}
	return true
}

func (a *API) listRooms(w http.ResponseWriter, r *http.Request, _ params) {
	q := r.URL.Query()
	for k := range q {
		if k != "kind" && k != "node" {
			writeError(w, Errorf(http.StatusBadRequest, "unknown query parameter %q: use kind and node", k))
			return
		}
	}
	f := Filter{Kind: q.Get("kind"), Node: q.Get("node")}
	var rooms []Room
	if !a.call(w, r, func(ctx context.Context) (err error) {
		rooms, err = a.cfg.Backend.Rooms(ctx, f)
		return err
	}) {
		return
	}
	if rooms == nil {
		rooms = []Room{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rooms": rooms})
}

func (a *API) getRoom(w http.ResponseWriter, r *http.Request, p params) {
	id := p["roomId"]
	if !checkID(w, "room", id) {
		return
	}
	var d RoomDetail
	if !a.call(w, r, func(ctx context.Context) (err error) {
		d, err = a.cfg.Backend.Room(ctx, id)
		return err
	}) {
		return
	}
	if d.PlayerList == nil {
		d.PlayerList = []Player{}
	}
	if d.Reserved == nil {
		d.Reserved = []string{}
	}
	writeJSON(w, http.StatusOK, d)
}

type createBody struct {
	Kind    *string  `json:"kind"`
	Options rawJSON  `json:"options"`
	Reserve []string `json:"reserve"`
}

// MaxReserve bounds the users one create may hold seats for.
const MaxReserve = 4096

func (a *API) createRoom(w http.ResponseWriter, r *http.Request, _ params) {
	var b createBody
	if !a.decode(w, r, &b, true) {
		return
	}
	if b.Kind == nil || *b.Kind == "" || len(*b.Kind) > 64 {
		writeError(w, Errorf(http.StatusBadRequest, "kind: a room type of 1 to 64 bytes is required"))
		return
	}
	req := CreateRequest{Kind: *b.Kind}
	if b.Options.set && !b.Options.null() {
		if b.Options.first() != '{' {
			writeError(w, Errorf(http.StatusBadRequest, "options: want a JSON object"))
			return
		}
		mp, err := toMsgpack(b.Options.raw)
		if err != nil {
			writeError(w, Errorf(http.StatusBadRequest, "options: %v", err))
			return
		}
		req.Options = mp
	}
	if len(b.Reserve) > MaxReserve {
		writeError(w, Errorf(http.StatusBadRequest, "reserve: at most %d users", MaxReserve))
		return
	}
	seen := make(map[string]bool, len(b.Reserve))
	for i, u := range b.Reserve {
		if u == "" || len(u) > 256 {
			writeError(w, Errorf(http.StatusBadRequest, "reserve[%d]: a user ID is 1 to 256 bytes", i))
			return
		}
		if !seen[u] {
			seen[u] = true
			req.Reserve = append(req.Reserve, u)
		}
	}
	var c Created
	if !a.call(w, r, func(ctx context.Context) (err error) {
		c, err = a.cfg.Backend.Create(ctx, req)
		return err
	}) {
		return
	}
	if c.Join.Users == nil {
		c.Join.Users = []string{}
	}
	a.log.Info("api: room created", zap.String("room", c.Room.ID), zap.String("kind", c.Room.Kind), zap.Int("reserved", len(req.Reserve)))
	w.Header().Set("Location", "/api/v1/rooms/"+url.PathEscape(c.Room.ID))
	writeJSON(w, http.StatusCreated, c)
}

func (a *API) disposeRoom(w http.ResponseWriter, r *http.Request, p params) {
	id := p["roomId"]
	if !checkID(w, "room", id) {
		return
	}
	q := r.URL.Query()
	for k := range q {
		if k != "reason" {
			writeError(w, Errorf(http.StatusBadRequest, "unknown query parameter %q: use reason", k))
			return
		}
	}
	reason := q.Get("reason")
	if len(reason) > 256 {
		writeError(w, Errorf(http.StatusBadRequest, "reason: at most 256 bytes"))
		return
	}
	if reason == "" {
		reason = "disposed by the backend"
	}
	if !a.call(w, r, func(ctx context.Context) error { return a.cfg.Backend.Dispose(ctx, id, reason) }) {
		return
	}
	a.log.Info("api: room disposed", zap.String("room", id), zap.String("reason", reason))
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "disposing": true})
}

type kickBody struct {
	Code    *int    `json:"code"`
	Message *string `json:"message"`
}

func (a *API) kick(w http.ResponseWriter, r *http.Request, p params) {
	roomID, playerID := p["roomId"], p["playerId"]
	if !checkID(w, "room", roomID) || !checkID(w, "player", playerID) {
		return
	}
	var b kickBody
	if !a.decode(w, r, &b, false) {
		return
	}
	req := KickRequest{RoomID: roomID, PlayerID: playerID, Code: http.StatusForbidden, Message: "kicked by the server"}
	if b.Code != nil {
		if *b.Code < 1 || *b.Code > 65535 {
			writeError(w, Errorf(http.StatusBadRequest, "code: want 1 to 65535"))
			return
		}
		req.Code = uint16(*b.Code)
	}
	if b.Message != nil {
		if *b.Message == "" || len(*b.Message) > 256 {
			writeError(w, Errorf(http.StatusBadRequest, "message: want 1 to 256 bytes"))
			return
		}
		req.Message = *b.Message
	}
	if !a.call(w, r, func(ctx context.Context) error { return a.cfg.Backend.Kick(ctx, req) }) {
		return
	}
	a.log.Info("api: player kicked", zap.String("room", roomID), zap.String("player", playerID), zap.Uint16("code", req.Code))
	w.WriteHeader(http.StatusNoContent)
}

type sendBody struct {
	Type       rawJSON `json:"type"`
	Body       rawJSON `json:"body"`
	BodyBase64 *string `json:"bodyBase64"`
}

func (a *API) send(w http.ResponseWriter, r *http.Request, p params) {
	req := SendRequest{RoomID: p["roomId"], PlayerID: p["playerId"]}
	if !checkID(w, "room", req.RoomID) || !checkID(w, "player", req.PlayerID) {
		return
	}
	var b sendBody
	if !a.decode(w, r, &b, true) {
		return
	}
	t, err := parseType(b.Type)
	if err != nil {
		writeError(w, Errorf(http.StatusBadRequest, "type: %v", err))
		return
	}
	req.Type = t
	switch {
	case b.Body.set == (b.BodyBase64 != nil):
		writeError(w, Errorf(http.StatusBadRequest, "give exactly one of body (a JSON value) and bodyBase64 (base64 msgpack)"))
		return
	case b.Body.set:
		if req.Body, err = toMsgpack(b.Body.raw); err != nil {
			writeError(w, Errorf(http.StatusBadRequest, "body: %v", err))
			return
		}
	default:
		if req.Body, err = base64.StdEncoding.DecodeString(*b.BodyBase64); err != nil {
			writeError(w, Errorf(http.StatusBadRequest, "bodyBase64: not standard base64"))
			return
		}
		if err := oneMsgpackValue(req.Body); err != nil {
			writeError(w, Errorf(http.StatusBadRequest, "bodyBase64: %v", err))
			return
		}
	}
	if !a.call(w, r, func(ctx context.Context) error { return a.cfg.Backend.Send(ctx, req) }) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// overview answers what the monitor shows, as one JSON document.
func (a *API) overview(w http.ResponseWriter, r *http.Request, _ params) {
	if o, ok := a.callOverview(w, r); ok {
		if o.Kinds == nil {
			o.Kinds = []Kind{}
		}
		if o.Rooms == nil {
			o.Rooms = []Room{}
		}
		writeJSON(w, http.StatusOK, o)
	}
}

func (a *API) nodes(w http.ResponseWriter, r *http.Request, _ params) {
	if o, ok := a.callOverview(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"nodes": o.Nodes})
	}
}

// callOverview asks the backend for the overview, or answers the error.
func (a *API) callOverview(w http.ResponseWriter, r *http.Request) (Overview, bool) {
	var o Overview
	ok := a.call(w, r, func(ctx context.Context) (err error) {
		o, err = a.cfg.Backend.Overview(ctx)
		return err
	})
	if o.Nodes == nil {
		o.Nodes = []Node{}
	}
	return o, ok
}
