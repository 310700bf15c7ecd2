package gameserver

import (
	"sync/atomic"
	"time"

	"github.com/gameserver/gameserver/internal/transport"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// registerMetrics registers the server's metrics. Counters live as atomics
// in the packages that own them; the registry reads them at scrape time, so
// the hot path pays one atomic add and nothing else.
func registerMetrics(s *Server) {
	reg := s.registry
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ts := s.ws.Stats()
	hs := s.hub.Stats()
	counter := func(name, help string, v *atomic.Uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "gameserver", Name: name, Help: help},
			func() float64 { return float64(v.Load()) }))
	}
	gauge := func(name, help string, v *atomic.Int64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "gameserver", Name: name, Help: help},
			func() float64 { return float64(v.Load()) }))
	}
	conns := prometheus.NewDesc("gameserver_connections", "Open connections, by transport (ws: WebSocket; sse: the HTTP fallback).", []string{"transport"}, nil)
	reg.MustRegister(collectorFunc{desc: conns, collect: func(ch chan<- prometheus.Metric) {
		ch <- prometheus.MustNewConstMetric(conns, prometheus.GaugeValue, float64(ts.Open.Load()), "ws")
		ch <- prometheus.MustNewConstMetric(conns, prometheus.GaugeValue, float64(s.sseStats.Open.Load()), "sse")
	}})
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "gameserver", Name: "http_connections_waiting",
		Help: "Connections the server holds while their next request head arrives: new ones, and kept-alive HTTP connections between requests."},
		func() float64 { return float64(s.ws.Waiting()) }))
	ss := s.sseStats
	counter("sse_streams_total", "HTTP fallback connections opened (open requests and stream reconnects).", &ss.Accepted)
	counter("sse_messages_in_total", "Messages received in fallback POSTs.", &ss.MessagesIn)
	counter("sse_events_out_total", "Events written to fallback streams.", &ss.FramesOut)
	counter("sse_bytes_out_total", "Bytes written to fallback streams.", &ss.BytesOut)
	counter("connections_accepted_total", "WebSocket upgrades accepted.", &ts.Accepted)
	counter("messages_in_total", "Complete messages received.", &ts.MessagesIn)
	counter("bytes_in_total", "Bytes received on WebSocket connections.", &ts.BytesIn)
	counter("frames_out_total", "Frames written to WebSocket connections.", &ts.FramesOut)
	counter("bytes_out_total", "Bytes written to WebSocket connections.", &ts.BytesOut)
	counter("slow_consumer_disconnects_total", "Connections closed because their outbound queue overflowed or stalled.", &ts.SlowConsumers)
	counter("protocol_errors_total", "Connections closed for WebSocket protocol violations.", &ts.ProtocolErrors)
	counter("handler_panics_total", "Panics recovered while handling a message.", &ts.HandlerPanics)
	rejected := prometheus.NewDesc("gameserver_handshakes_rejected_total", "WebSocket upgrades refused, by reason.", []string{"reason"}, nil)
	reg.MustRegister(&rejectCollector{desc: rejected, stats: ts})

	gauge("sessions", "Sessions with a connection (past HELLO).", &hs.Active)
	gauge("sessions_detached", "Sessions whose connection dropped, waiting for a resume.", &hs.Detached)
	counter("sessions_resumed_total", "Sessions resumed on a new connection.", &hs.Resumed)
	counter("sessions_resume_failed_total", "RESUME requests refused.", &hs.ResumeFailed)
	counter("sessions_expired_total", "Detached sessions whose resume window ran out.", &hs.Expired)
	counter("auth_failures_total", "Sessions refused or closed for authentication (missing, invalid or expired token).", &hs.AuthFailed)
	counter("sessions_opened_total", "Sessions opened (connections that reached the session layer).", &hs.Opened)
	counter("hello_timeouts_total", "Connections closed for not sending HELLO in time.", &hs.HelloTimeouts)
	counter("heartbeat_timeouts_total", "Sessions closed for being silent past the heartbeat timeout.", &hs.HeartbeatTimeouts)
	counter("rate_limited_total", "Messages refused by the per-session rate limit.", &hs.RateLimited)
	counter("bad_messages_total", "Messages answered with an ERROR (malformed, refused or out of order).", &hs.BadMessages)
	counter("pings_sent_total", "Heartbeat pings sent by the server.", &hs.PingsSent)
	counter("pongs_received_total", "Pongs received for the server's pings.", &hs.PongsReceived)

	rs := s.rooms.Stats()
	gauge("players", "Players seated in rooms.", &rs.Players)
	counter("rooms_created_total", "Rooms created.", &rs.RoomsCreated)
	counter("rooms_disposed_total", "Rooms disposed.", &rs.RoomsDisposed)
	counter("ticks_total", "Room ticks run.", &rs.Ticks)
	counter("tick_overruns_total", "Room ticks that took longer than their budget (1/tick rate).", &rs.TickOverruns)
	counter("room_panics_total", "Panics recovered in room code (each disposes its room).", &rs.Panics)
	counter("room_inbox_full_total", "Messages refused because a room's inbox was full.", &rs.InboxFull)
	roomsDesc := prometheus.NewDesc("gameserver_rooms", "Live rooms, by type.", []string{"kind"}, nil)
	reg.MustRegister(collectorFunc{desc: roomsDesc, collect: func(ch chan<- prometheus.Metric) {
		for kind, n := range s.rooms.RoomsByKind() {
			ch <- prometheus.MustNewConstMetric(roomsDesc, prometheus.GaugeValue, float64(n), kind)
		}
	}})
}

// tickObserver returns the room engine's hook into a tick-duration
// histogram labelled by room type.
func tickObserver(reg *prometheus.Registry) func(kind string) func(time.Duration) {
	hv := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "gameserver", Name: "tick_duration_seconds",
		Help:    "Time one room tick took (OnTick plus flushing what it sent), by room type.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
	}, []string{"kind"})
	reg.MustRegister(hv)
	return func(kind string) func(time.Duration) {
		o := hv.WithLabelValues(kind)
		return func(d time.Duration) { o.Observe(d.Seconds()) }
	}
}

type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

type rejectCollector struct {
	desc  *prometheus.Desc
	stats *transport.Stats
}

func (c *rejectCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *rejectCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range transport.RejectReasons() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.stats.Rejected[r].Load()), r.String())
	}
}
