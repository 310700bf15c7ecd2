package gameserver

import (
	"sync/atomic"

	"github.com/gameserver/gameserver/internal/transport"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newMetrics registers the server's metrics. Counters live as atomics in
// the packages that own them; the registry reads them at scrape time, so
// the hot path pays one atomic add and nothing else.
func newMetrics(s *Server) *prometheus.Registry {
	reg := prometheus.NewRegistry()
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
	gauge("connections", "Open WebSocket connections.", &ts.Open)
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

	gauge("sessions", "Sessions that completed HELLO.", &hs.Active)
	counter("sessions_opened_total", "Sessions opened (connections that reached the session layer).", &hs.Opened)
	counter("hello_timeouts_total", "Connections closed for not sending HELLO in time.", &hs.HelloTimeouts)
	counter("heartbeat_timeouts_total", "Sessions closed for being silent past the heartbeat timeout.", &hs.HeartbeatTimeouts)
	counter("rate_limited_total", "Messages refused by the per-session rate limit.", &hs.RateLimited)
	counter("bad_messages_total", "Messages answered with an ERROR (malformed, refused or out of order).", &hs.BadMessages)
	counter("pings_sent_total", "Heartbeat pings sent by the server.", &hs.PingsSent)
	counter("pongs_received_total", "Pongs received for the server's pings.", &hs.PongsReceived)
	return reg
}

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
