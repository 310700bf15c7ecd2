package gameserver

import (
	"context"
	"errors"
	"math"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gameserver/gameserver/game"
	"github.com/gameserver/gameserver/internal/api"
	"github.com/gameserver/gameserver/internal/protocol"
	"github.com/gameserver/gameserver/internal/room"
	"github.com/gameserver/gameserver/internal/webhook"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/zap"
)

// The backend integration: the REST API under /api/v1, signed webhooks,
// and the operator's monitor page.
//
// The API and the monitor are served by internal/api from an api.Backend:
// localBackend below over this node's room engine, and in a cluster
// clusterBackend (backend_cluster.go), which asks the other nodes' peer
// APIs for what is theirs.
// Webhooks are internal/webhook's Dispatcher, fed by the room engine's
// Observer callbacks, which only queue.

// backend is a Server's share of the integration.
type backend struct {
	s       *Server
	started time.Time
	api     *api.API
	peerAPI *api.API        // the API other nodes call (cluster mode), or nil
	hookCfg *webhook.Config // nil: no webhooks
	hooks   *webhook.Dispatcher
	sampler *sampler
	stopped sync.Once
}

// backends holds each Server's backend: the Server struct has no field
// for it.
var backends sync.Map // *Server → *backend

func (s *Server) backend() *backend {
	b, _ := backends.Load(s)
	bb, _ := b.(*backend)
	return bb
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// initBackend prepares the backend integration from the configuration; it
// runs in New before the room engine exists. Nothing is started here (New
// may still fail): mountBackend starts it.
func (s *Server) initBackend() error {
	b := &backend{s: s, started: time.Now()}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gameserver", Name: "api_requests_total",
		Help: "Backend API and monitor requests, by route and status.",
	}, []string{"route", "status"})
	local := localBackend{s: s, b: b}
	var backend api.Backend = local
	if s.cfg.Redis != "" {
		backend = newClusterBackend(local)
		peer, err := api.New(api.Config{
			Keys:    []string{peerKey(s.cfg.ClusterSecret)},
			Backend: local,
			Logger:  s.log.Named("api.peer"),
			OnRequest: func(route string, status int) {
				requests.WithLabelValues("peer "+route, strconv.Itoa(status)).Inc()
			},
		})
		if err != nil {
			return err
		}
		b.peerAPI = peer
	}
	a, err := api.New(api.Config{
		Keys:    s.cfg.APIKeys,
		Backend: backend,
		Logger:  s.log.Named("api"),
		OnRequest: func(route string, status int) {
			requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
		},
	})
	if err != nil {
		return err
	}
	b.api = a
	s.registry.MustRegister(requests)
	b.registerMetrics()
	if len(s.cfg.WebhookURLs) > 0 {
		if s.cfg.WebhookSecret == "" {
			return errors.New("webhook URLs need a webhook secret (16 bytes or more)")
		}
		b.hookCfg = &webhook.Config{
			URLs:        s.cfg.WebhookURLs,
			Secret:      s.cfg.WebhookSecret,
			Node:        s.cfg.Node,
			Timeout:     s.cfg.WebhookTimeout,
			MaxAttempts: s.cfg.WebhookMaxAttempts,
			QueueSize:   s.cfg.WebhookQueueSize,
			Logger:      s.log.Named("webhook"),
		}
		if err := webhook.Validate(*b.hookCfg); err != nil {
			return err
		}
	}
	backends.Store(s, b)
	return nil
}

// observer returns what hears the room engine's events: the webhooks'
// feed, or nil without webhooks (the monitor samples counters instead).
func (s *Server) observer() room.Observer {
	b := s.backend()
	if b == nil || b.hookCfg == nil {
		return nil
	}
	return hookObserver{b}
}

// mountBackend adds the backend endpoints to the server's mux. It runs
// last in New, so what it starts cannot leak from a failed New.
func (s *Server) mountBackend(mux *http.ServeMux) {
	b := s.backend()
	if b == nil {
		return
	}
	if b.hookCfg != nil {
		d, err := webhook.New(*b.hookCfg)
		if err != nil { // Validate accepted the same Config
			s.log.Error("webhooks off", zap.Error(err))
		} else {
			b.hooks = d
		}
	}
	if b.api.Enabled() || b.peerAPI != nil {
		b.sampler = newSampler(b)
	}
	b.api.Mount(mux)
	if b.peerAPI != nil {
		peer := http.StripPrefix(peerPrefix, b.peerAPI)
		for _, m := range []string{"GET", "POST", "DELETE"} {
			mux.Handle(m+" "+peerPrefix+"/api/v1/", peer)
		}
	}
}

// backendDraining announces that the node is draining.
func (s *Server) backendDraining() {
	b := s.backend()
	if b == nil {
		return
	}
	if b.hooks != nil {
		b.hooks.Emit(webhook.Event{Type: webhook.NodeDraining})
	}
	b.api.Close()
}

// stopBackend flushes what the backend still has to deliver, until ctx ends.
func (s *Server) stopBackend(ctx context.Context) {
	b := s.backend()
	if b == nil {
		return
	}
	defer backends.Delete(s)
	b.stopped.Do(func() {
		if b.sampler != nil {
			b.sampler.stop()
		}
		if b.hooks != nil {
			if err := b.hooks.Close(ctx); err != nil {
				s.log.Warn("webhooks not all delivered before shutdown", zap.Error(err))
			}
		}
	})
}

// registerMetrics registers the webhook metrics; they read the dispatcher
// at scrape time (zero while there is none).
func (b *backend) registerMetrics() {
	reg := b.s.registry
	stats := func() *webhook.Stats {
		if b.hooks == nil {
			return nil
		}
		return b.hooks.Stats()
	}
	delivered := prometheus.NewDesc("gameserver_webhook_deliveries_total", "Webhook deliveries accepted (2xx) by a receiver, per URL.", nil, nil)
	attempts := prometheus.NewDesc("gameserver_webhook_attempts_total", "Webhook delivery attempts made.", nil, nil)
	failures := prometheus.NewDesc("gameserver_webhook_failures_total", "Webhook delivery attempts that failed, by reason.", []string{"reason"}, nil)
	drops := prometheus.NewDesc("gameserver_webhook_drops_total", "Webhook events given up for a URL, by reason.", []string{"reason"}, nil)
	queue := prometheus.NewDesc("gameserver_webhook_queue_length", "Webhook events waiting or being delivered, summed over URLs.", nil, nil)
	for _, c := range []collectorFunc{
		{desc: delivered, collect: func(ch chan<- prometheus.Metric) {
			var n uint64
			if st := stats(); st != nil {
				n = st.Delivered.Load()
			}
			ch <- prometheus.MustNewConstMetric(delivered, prometheus.CounterValue, float64(n))
		}},
		{desc: attempts, collect: func(ch chan<- prometheus.Metric) {
			var n uint64
			if st := stats(); st != nil {
				n = st.Attempts.Load()
			}
			ch <- prometheus.MustNewConstMetric(attempts, prometheus.CounterValue, float64(n))
		}},
		{desc: failures, collect: func(ch chan<- prometheus.Metric) {
			st := stats()
			for _, f := range webhook.Failures() {
				var n uint64
				if st != nil {
					n = st.Failures[f].Load()
				}
				ch <- prometheus.MustNewConstMetric(failures, prometheus.CounterValue, float64(n), f.String())
			}
		}},
		{desc: drops, collect: func(ch chan<- prometheus.Metric) {
			st := stats()
			for _, d := range webhook.Drops() {
				var n uint64
				if st != nil {
					n = st.Drops[d].Load()
				}
				ch <- prometheus.MustNewConstMetric(drops, prometheus.CounterValue, float64(n), d.String())
			}
		}},
		{desc: queue, collect: func(ch chan<- prometheus.Metric) {
			var n int64
			if st := stats(); st != nil {
				n = st.Queued.Load()
			}
			ch <- prometheus.MustNewConstMetric(queue, prometheus.GaugeValue, float64(n))
		}},
	} {
		reg.MustRegister(c)
	}
}

// hookObserver turns room events into webhook events. Its methods run on
// room shards: they only queue.
type hookObserver struct{ b *backend }

func hookRoom(r room.RoomInfo) *webhook.Room {
	return &webhook.Room{ID: r.ID, Kind: r.Kind, Players: r.Players, MaxPlayers: r.MaxPlayers, Locked: r.Locked,
		Private: r.Private, Metadata: r.Metadata, Created: r.Created}
}

func (o hookObserver) emit(ev webhook.Event) {
	if d := o.b.hooks; d != nil {
		d.Emit(ev)
	}
}

// A room that a drain moves is stopped on its node (reason "moved") and
// restored on another: the backend hears one room.moved, from the node it
// now runs on, and neither a disposal nor a creation.
func (o hookObserver) RoomCreated(r room.RoomInfo) {
	if r.Restored {
		o.emit(webhook.Event{Type: webhook.RoomMoved, Room: hookRoom(r)})
		return
	}
	o.emit(webhook.Event{Type: webhook.RoomCreated, Room: hookRoom(r)})
}

func (o hookObserver) RoomDisposed(r room.RoomInfo, reason string) {
	if reason == room.ReasonMoved {
		return
	}
	o.emit(webhook.Event{Type: webhook.RoomDisposed, Room: hookRoom(r), Reason: reason})
}

func (o hookObserver) PlayerJoined(r room.RoomInfo, p room.PlayerInfo) {
	o.emit(webhook.Event{Type: webhook.PlayerJoined, Room: hookRoom(r), Player: &webhook.Player{ID: p.ID, UserID: p.UserID}})
}

func (o hookObserver) PlayerLeft(r room.RoomInfo, p room.PlayerInfo, why game.LeaveReason) {
	o.emit(webhook.Event{Type: webhook.PlayerLeft, Room: hookRoom(r), Player: &webhook.Player{ID: p.ID, UserID: p.UserID}, Reason: why.String()})
}

// localBackend serves the API from this node's room engine. A cluster-wide
// api.Backend can replace it.
type localBackend struct {
	s *Server
	b *backend
}

var _ api.Backend = localBackend{}

func apiRoom(r room.RoomInfo) api.Room {
	return api.Room{ID: r.ID, Kind: r.Kind, Node: r.Node, Players: r.Players, MaxPlayers: r.MaxPlayers, Locked: r.Locked,
		Private: r.Private, Metadata: r.Metadata, Created: r.Created}
}

func (l localBackend) Rooms(_ context.Context, f api.Filter) ([]api.Room, error) {
	if f.Node != "" && f.Node != l.s.cfg.Node {
		return nil, nil
	}
	list := l.s.rooms.Rooms(f.Kind)
	out := make([]api.Room, len(list))
	for i, r := range list {
		out[i] = apiRoom(r)
	}
	return out, nil
}

func (l localBackend) Room(ctx context.Context, id string) (api.RoomDetail, error) {
	d, err := l.s.rooms.Room(ctx, id)
	if err != nil {
		return api.RoomDetail{}, apiError(err)
	}
	out := api.RoomDetail{Room: apiRoom(d.RoomInfo), Reserved: d.Reserved, Tick: d.Tick, TickRate: d.TickRate,
		LastTickMs: d.LastTickMs, TickOverruns: d.TickOverruns}
	for _, p := range d.PlayerList {
		out.PlayerList = append(out.PlayerList, api.Player{ID: p.ID, UserID: p.UserID, Connected: p.Connected, RTTMillis: p.RTTMillis})
	}
	return out, nil
}

func (l localBackend) Create(ctx context.Context, req api.CreateRequest) (api.Created, error) {
	if !l.s.ready.Load() {
		return api.Created{}, api.Errorf(http.StatusServiceUnavailable, "the node is draining: it takes no new rooms")
	}
	var opts game.Options
	if len(req.Options) > 0 {
		if err := msgpack.Unmarshal(req.Options, &opts); err != nil {
			return api.Created{}, api.Errorf(http.StatusBadRequest, "options: want a map with string keys")
		}
	}
	info, err := l.s.rooms.Create(ctx, req.Kind, opts, req.Reserve)
	if err != nil {
		switch {
		case errors.Is(err, room.ErrUnknownKind):
			return api.Created{}, api.Errorf(http.StatusUnprocessableEntity, "kind: unknown room type %q", req.Kind)
		case errors.Is(err, room.ErrNoRoom):
			// The room ended before Create could read it: its OnCreate
			// refused (the engine does not report the refusal's code).
			return api.Created{}, api.Errorf(http.StatusUnprocessableEntity, "the room type refused to create the room")
		}
		return api.Created{}, apiError(err)
	}
	c := api.Created{Room: apiRoom(info), Join: api.JoinInfo{RoomID: info.ID, Kind: info.Kind, WSPath: "/ws", Users: req.Reserve}}
	if len(req.Reserve) > 0 && !info.ReservedUntil.IsZero() {
		d := info.ReservedUntil.UTC()
		c.Join.SeatDeadline = &d
	}
	return c, nil
}

func (l localBackend) Dispose(_ context.Context, id, reason string) error {
	return apiError(l.s.rooms.Dispose(id, reason))
}

func (l localBackend) Kick(ctx context.Context, req api.KickRequest) error {
	return apiError(l.s.rooms.Kick(ctx, req.RoomID, req.PlayerID, req.Code, req.Message))
}

func (l localBackend) Send(ctx context.Context, req api.SendRequest) error {
	return apiError(l.s.rooms.Send(ctx, req.RoomID, req.PlayerID, protocol.MsgType(req.Type), req.Body))
}

func (l localBackend) Overview(context.Context) (api.Overview, error) {
	if l.b.sampler == nil {
		return api.Overview{}, api.Errorf(http.StatusServiceUnavailable, "no sample yet")
	}
	return l.b.sampler.latest(), nil
}

// apiError maps the room engine's errors to API answers; context errors
// and unknown errors pass through.
func apiError(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, room.ErrNoRoom):
		return api.Errorf(http.StatusNotFound, "no such room")
	case errors.Is(err, room.ErrNoPlayer):
		return api.Errorf(http.StatusNotFound, "no such player in the room")
	case errors.Is(err, room.ErrUnknownKind):
		return api.Errorf(http.StatusUnprocessableEntity, "unknown room type")
	case errors.Is(err, room.ErrTooMany):
		return api.Errorf(http.StatusUnprocessableEntity, "reserve: more users than the room has seats")
	}
	var code uint16
	var msg string
	var ge *game.Error
	var pe *protocol.Error
	switch {
	case errors.As(err, &ge):
		code, msg = ge.Code, ge.Message
	case errors.As(err, &pe):
		code, msg = uint16(pe.Code), pe.Message
	default:
		return err
	}
	e := &api.Error{Message: msg}
	switch code {
	case 400, 403, 404, 409, 413, 422, 429, 500, 503:
		e.Status = int(code)
	case 406: // not in a room: the player is gone
		e.Status = http.StatusNotFound
	case 410, 411: // full, locked
		e.Status = http.StatusConflict
	default:
		e.Status = http.StatusUnprocessableEntity
		if code >= uint16(protocol.FirstGameCode) {
			e.GameCode = int(code)
		}
	}
	return e
}

// sampler takes the monitor's figures once a second; Overview hands out
// the latest, so any number of viewers costs one sample a second.
type sampler struct {
	b    *backend
	mu   sync.Mutex
	cur  api.Overview
	prev sample
	quit chan struct{}
	done chan struct{}
}

// sample is the counters rates are computed from.
type sample struct {
	at       time.Time
	msgsIn   uint64
	msgsOut  uint64
	ticks    uint64
	tickHist map[string]histogram // by room type
}

// histogram is a cumulative Prometheus histogram's state.
type histogram struct {
	count  uint64
	sum    float64
	bounds []float64
	counts []uint64 // cumulative, per bound
}

func newSampler(b *backend) *sampler {
	sp := &sampler{b: b, quit: make(chan struct{}), done: make(chan struct{})}
	sp.prev = sp.read()
	sp.publish(sp.prev, sp.prev)
	go sp.run()
	return sp
}

func (sp *sampler) run() {
	defer close(sp.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			cur := sp.read()
			sp.publish(sp.prev, cur)
			sp.prev = cur
		case <-sp.quit:
			return
		}
	}
}

func (sp *sampler) stop() {
	close(sp.quit)
	<-sp.done
}

func (sp *sampler) latest() api.Overview {
	sp.mu.Lock()
	o := sp.cur
	sp.mu.Unlock()
	// The status is read now, so a draining node says so at once.
	o.Nodes = append([]api.Node(nil), o.Nodes...)
	for i := range o.Nodes {
		o.Nodes[i].Status = sp.status()
	}
	return o
}

func (sp *sampler) status() string {
	if sp.b.s.ready.Load() {
		return "ready"
	}
	return "draining"
}

// read takes the counters.
func (sp *sampler) read() sample {
	s := sp.b.s
	ts, rs := s.ws.Stats(), s.rooms.Stats()
	smp := sample{
		at:       time.Now(),
		msgsIn:   ts.MessagesIn.Load() + s.sseStats.MessagesIn.Load(),
		msgsOut:  ts.FramesOut.Load() + s.sseStats.FramesOut.Load(),
		ticks:    rs.Ticks.Load(),
		tickHist: map[string]histogram{},
	}
	mfs, err := s.registry.Gather()
	if err != nil && len(mfs) == 0 {
		return smp
	}
	for _, mf := range mfs {
		if mf.GetName() != "gameserver_tick_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			smp.tickHist[labelValue(m, "kind")] = histogramOf(m.GetHistogram())
		}
	}
	return smp
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func histogramOf(h *dto.Histogram) histogram {
	out := histogram{count: h.GetSampleCount(), sum: h.GetSampleSum()}
	for _, b := range h.GetBucket() {
		out.bounds = append(out.bounds, b.GetUpperBound())
		out.counts = append(out.counts, b.GetCumulativeCount())
	}
	return out
}

// delta is what a histogram gained between two samples.
func (h histogram) delta(prev histogram) histogram {
	d := histogram{count: h.count - prev.count, sum: h.sum - prev.sum, bounds: h.bounds, counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		d.counts[i] = h.counts[i]
		if i < len(prev.counts) {
			d.counts[i] -= prev.counts[i]
		}
	}
	return d
}

func (h *histogram) add(o histogram) {
	h.count += o.count
	h.sum += o.sum
	if h.bounds == nil {
		h.bounds = o.bounds
		h.counts = make([]uint64, len(o.counts))
	}
	for i := range h.counts {
		if i < len(o.counts) {
			h.counts[i] += o.counts[i]
		}
	}
}

func (h histogram) meanMs() float64 {
	if h.count == 0 {
		return 0
	}
	return h.sum / float64(h.count) * 1000
}

// quantileBoundMs is the upper bound of the bucket that holds quantile q,
// in ms: the quantile is at most this. (Interpolating inside a bucket
// would report 99 µs for ticks of 1 µs in the first one, 0 to 100 µs.)
// Past the last bound it answers the last bound.
func (h histogram) quantileBoundMs(q float64) float64 {
	if h.count == 0 || len(h.bounds) == 0 {
		return 0
	}
	rank := q * float64(h.count)
	for i, c := range h.counts {
		if float64(c) >= rank && !math.IsInf(h.bounds[i], 1) {
			return h.bounds[i] * 1000
		}
	}
	last := h.bounds[len(h.bounds)-1]
	if math.IsInf(last, 1) && len(h.bounds) > 1 {
		last = h.bounds[len(h.bounds)-2]
	}
	return last * 1000
}

// publish computes the overview from two samples.
func (sp *sampler) publish(prev, cur sample) {
	s := sp.b.s
	secs := cur.at.Sub(prev.at).Seconds()
	rate := func(a, b uint64) float64 {
		if secs <= 0 || b < a {
			return 0
		}
		return math.Round(float64(b-a)/secs*10) / 10
	}
	ts, hs, rs := s.ws.Stats(), s.hub.Stats(), s.rooms.Stats()
	node := api.Node{
		Name: s.cfg.Node, Status: sp.status(), Started: sp.b.started,
		ConnectionsWS: ts.Open.Load(), ConnectionsSSE: s.sseStats.Open.Load(), Sessions: hs.Active.Load(),
		Rooms: rs.Rooms.Load(), Players: rs.Players.Load(),
		MessagesInPerSec: rate(prev.msgsIn, cur.msgsIn), MessagesOutPerSec: rate(prev.msgsOut, cur.msgsOut),
		TicksPerSec: rate(prev.ticks, cur.ticks), Goroutines: runtime.NumGoroutine(),
	}
	var all histogram
	kinds := map[string]*api.Kind{}
	for _, k := range s.rooms.Kinds() {
		kinds[k] = &api.Kind{Kind: k}
		if h, ok := cur.tickHist[k]; ok {
			d := h.delta(prev.tickHist[k])
			kinds[k].TickMeanMs, kinds[k].TickP99Ms = round3(d.meanMs()), round3(d.quantileBoundMs(0.99))
			all.add(d)
		}
	}
	node.TickMeanMs, node.TickP99Ms = round3(all.meanMs()), round3(all.quantileBoundMs(0.99))
	if len(cur.tickHist) > 0 && secs > 0 {
		// The ticks the histogram saw, so the rate, the mean and the p99
		// describe the same ticks (the counter is read at another instant).
		node.TicksPerSec = math.Round(float64(all.count)/secs*10) / 10
	}
	rooms := s.rooms.Rooms("")
	for _, r := range rooms {
		if k := kinds[r.Kind]; k != nil {
			k.Rooms++
			k.Players += r.Players
		}
	}
	sort.SliceStable(rooms, func(i, j int) bool {
		if rooms[i].Players != rooms[j].Players {
			return rooms[i].Players > rooms[j].Players
		}
		return rooms[i].Created.Before(rooms[j].Created)
	})
	o := api.Overview{Time: cur.at.UTC(), Nodes: []api.Node{node}, RoomsTotal: len(rooms), Kinds: make([]api.Kind, 0, len(kinds))}
	for _, r := range rooms[:min(len(rooms), api.RoomsLimit)] {
		o.Rooms = append(o.Rooms, apiRoom(r))
	}
	for _, k := range s.rooms.Kinds() {
		o.Kinds = append(o.Kinds, *kinds[k])
	}
	if d := sp.b.hooks; d != nil {
		st := d.Stats()
		w := &api.WebhookStats{Queued: st.Queued.Load(), Delivered: st.Delivered.Load()}
		for _, f := range webhook.Failures() {
			w.Failed += st.Failures[f].Load()
		}
		for _, r := range webhook.Drops() {
			w.Dropped += st.Drops[r].Load()
		}
		o.Webhooks = w
	}
	sp.mu.Lock()
	sp.cur = o
	sp.mu.Unlock()
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
