package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// report is the result of a run, printed as text or, with --json, as one
// JSON object. Latencies are in milliseconds, sizes in MiB or KiB as
// named. Server figures are null when they were not measured.
type report struct {
	Scenario     string            `json:"scenario"`
	Transport    string            `json:"transport"`
	Bots         int               `json:"bots"`
	Processes    int               `json:"processes"`
	Connected    int64             `json:"connected"`
	Joined       int64             `json:"joined"`
	Errors       uint64            `json:"errors"`
	ErrorsByKind map[string]uint64 `json:"errors_by_kind"`
	Reconnects   uint64            `json:"reconnects"`
	RoomsMissing bool              `json:"rooms_missing"`
	RampS        float64           `json:"ramp_s"`
	DurationS    float64           `json:"duration_s"`

	// The scenario's main latency: input_to_state (arena, churn),
	// chat_delivery (chat) or rtt (idle, and any scenario without rooms).
	LatencyMetric string  `json:"latency_metric"`
	P50           float64 `json:"p50_ms"`
	P90           float64 `json:"p90_ms"`
	P99           float64 `json:"p99_ms"`
	P999          float64 `json:"p999_ms"`
	Max           float64 `json:"max_ms"`
	TickP50       float64 `json:"tick_p50_ms"`
	TickP99       float64 `json:"tick_p99_ms"`
	TickP999      float64 `json:"tick_p999_ms"`
	ConnectP50    float64 `json:"connect_p50_ms"`
	ConnectP99    float64 `json:"connect_p99_ms"`

	// Arena: the inputs the rooms did not count (the state's received,
	// compared with what each seated bot sent, after a settle at the end)
	// and those they counted twice.
	InputsLost       uint64 `json:"inputs_lost"`
	InputsDuplicated uint64 `json:"inputs_duplicated"`
	// Per bot, the longest time between two states in the window: the
	// pause a player sees (a node drain, a resume).
	PauseP50 float64 `json:"pause_p50_ms"`
	PauseP99 float64 `json:"pause_p99_ms"`
	PauseMax float64 `json:"pause_max_ms"`
	// --redis: input_to_state of players on their room's node and of
	// forwarded players.
	LocalP50     float64 `json:"local_p50_ms"`
	LocalP99     float64 `json:"local_p99_ms"`
	ForwardedP50 float64 `json:"forwarded_p50_ms"`
	ForwardedP99 float64 `json:"forwarded_p99_ms"`

	Latency map[string]latencySummary `json:"latency"`

	MsgsInPerS   float64           `json:"msgs_in_per_s"`
	MsgsOutPerS  float64           `json:"msgs_out_per_s"`
	BytesInPerS  float64           `json:"bytes_in_per_s"`
	BytesOutPerS float64           `json:"bytes_out_per_s"`
	Counters     map[string]uint64 `json:"counters"`

	ServerCPUPct         *float64 `json:"server_cpu_pct"`
	ServerRSSMiB         *float64 `json:"server_rss_mib"`
	ServerRSSBaseMiB     *float64 `json:"server_rss_base_mib"`
	RSSPerConnKiB        *float64 `json:"rss_per_conn_kib"`
	ServerHeapInuseMiB   *float64 `json:"server_heap_inuse_mib"`
	HeapPerConnKiB       *float64 `json:"heap_per_conn_kib"`
	ServerGoroutines     *float64 `json:"server_goroutines"`
	ServerGoroutinesBase *float64 `json:"server_goroutines_base"`

	DriverCPUPct     float64 `json:"driver_cpu_pct"`
	DriverRSSMiB     float64 `json:"driver_rss_mib"`
	DriverKiBPerBot  float64 `json:"driver_kib_per_bot"`
	DriverCPUUsPerMs float64 `json:"driver_cpu_us_per_msg"`

	Notes []string `json:"notes"`
}

func ptr(v float64) *float64 { return &v }

// buildReport merges the processes' results with the server's figures.
func buildReport(cfg *config, processes int, results []*procResult, sv *serverView) (*report, error) {
	r := &report{
		Scenario:     cfg.Scenario,
		Transport:    cfg.Transport,
		Bots:         cfg.Bots,
		Processes:    processes,
		ErrorsByKind: map[string]uint64{},
		Counters:     map[string]uint64{},
		Latency:      map[string]latencySummary{},
		Notes:        []string{},
	}
	hists := map[string]*hdrhistogram.Histogram{}
	for _, name := range histNames {
		hists[name] = newHist()
	}
	var driverCPU, driverGrowth float64
	for _, p := range results {
		r.Connected += p.Connected
		r.Joined += p.Joined
		r.RoomsMissing = r.RoomsMissing || p.RoomsMissing
		r.RampS = max(r.RampS, p.RampSec)
		r.DurationS = max(r.DurationS, p.WindowSec)
		for k, v := range p.Errors {
			r.ErrorsByKind[k] += v
			r.Errors += v
		}
		for k, v := range p.Totals {
			r.Counters[k] += v
		}
		if p.WindowSec > 0 {
			r.MsgsInPerS += float64(p.Window["msgs_in"]) / p.WindowSec
			r.MsgsOutPerS += float64(p.Window["msgs_out"]) / p.WindowSec
			r.BytesInPerS += float64(p.Window["bytes_in"]) / p.WindowSec
			r.BytesOutPerS += float64(p.Window["bytes_out"]) / p.WindowSec
			driverCPU += p.DriverCPUSec / p.WindowSec * 100
		}
		for name, s := range p.Hists {
			h, ok := hists[name]
			if !ok || s == nil {
				continue
			}
			imported, err := importHist(s)
			if err != nil {
				return nil, err
			}
			h.Merge(imported)
		}
		r.DriverRSSMiB += float64(p.DriverRSSPeak) / (1 << 20)
		driverGrowth += float64(max(p.DriverRSSEnd-p.DriverRSSBase, 0))
	}
	r.Reconnects = r.Counters["reconnects"]
	for name, h := range hists {
		r.Latency[name] = summarize(h)
	}
	kind := cfg.roomKind()
	switch {
	case cfg.Scenario == scenarioChat && kind != "":
		r.LatencyMetric = histChat
	case (cfg.Scenario == scenarioArena || cfg.Scenario == scenarioChurn) && kind != "":
		r.LatencyMetric = histInput
	default:
		r.LatencyMetric = histRTT
	}
	main := r.Latency[r.LatencyMetric]
	r.P50, r.P90, r.P99, r.P999, r.Max = main.P50, main.P90, main.P99, main.P999, main.Max
	tick := r.Latency[histTick]
	r.TickP50, r.TickP99, r.TickP999 = tick.P50, tick.P99, tick.P999
	conn := r.Latency[histConnect]
	r.ConnectP50, r.ConnectP99 = conn.P50, conn.P99
	pause := r.Latency[histPause]
	r.PauseP50, r.PauseP99, r.PauseMax = pause.P50, pause.P99, pause.Max
	local, fwd := r.Latency[histInputLocal], r.Latency[histInputForwarded]
	r.LocalP50, r.LocalP99, r.ForwardedP50, r.ForwardedP99 = local.P50, local.P99, fwd.P50, fwd.P99
	r.InputsLost, r.InputsDuplicated = r.Counters["inputs_lost"], r.Counters["inputs_duplicated"]
	r.DriverCPUPct = driverCPU
	r.DriverKiBPerBot = driverGrowth / 1024 / float64(cfg.Bots)
	if msgs := r.MsgsInPerS + r.MsgsOutPerS; msgs > 0 {
		r.DriverCPUUsPerMs = driverCPU / 100 * 1e6 / msgs
	}

	if s := sv.sampler; s != nil {
		r.ServerCPUPct = ptr(s.CPUPct)
		r.ServerRSSMiB = ptr(float64(s.PeakRSS) / (1 << 20))
		r.ServerRSSBaseMiB = ptr(float64(s.BaseRSS) / (1 << 20))
		if r.Connected > 0 {
			r.RSSPerConnKiB = ptr(float64(s.EndRSS-s.BaseRSS) / 1024 / float64(r.Connected))
		}
		if s.Gone() {
			r.Notes = append(r.Notes, fmt.Sprintf("a server process (of %v) ended during the run", cfg.ServerPIDs))
		}
	}
	if sv.end.OK {
		r.ServerHeapInuseMiB = ptr(sv.end.HeapInuse / (1 << 20))
		if sv.base.OK && r.Connected > 0 {
			r.HeapPerConnKiB = ptr((sv.end.HeapInuse - sv.base.HeapInuse) / 1024 / float64(r.Connected))
		}
	}
	if sv.ramped.OK {
		r.ServerGoroutines = ptr(sv.ramped.Goroutines)
	}
	if sv.base.OK {
		r.ServerGoroutinesBase = ptr(sv.base.Goroutines)
	}
	if cfg.Redis != "" && r.Counters["bots_local"]+r.Counters["bots_forwarded"] == 0 {
		r.Notes = append(r.Notes, "no bot's room was found in the cluster directory (--redis): no local/forwarded split")
	}
	if r.RoomsMissing {
		r.Notes = append(r.Notes, fmt.Sprintf("the server answered JOIN %q with room_not_found: it has no rooms of that kind (run with --join=false to skip joining)", kind))
	}
	if processes > 1 && len(results) < processes {
		r.Notes = append(r.Notes, fmt.Sprintf("only %d of %d worker processes reported", len(results), processes))
	}
	return r, nil
}

// writeJSON prints the report as one JSON object.
func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeText prints the report for people.
func (r *report) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s over %s: %d bots in %d process(es), ramp %.1fs, measured %.1fs\n",
		r.Scenario, r.Transport, r.Bots, r.Processes, r.RampS, r.DurationS)
	fmt.Fprintf(&b, "connected %d, in rooms %d, reconnects %d, errors %d\n", r.Connected, r.Joined, r.Reconnects, r.Errors)
	for _, k := range sortedKeys(r.ErrorsByKind) {
		fmt.Fprintf(&b, "  %-32s %d\n", k, r.ErrorsByKind[k])
	}
	b.WriteString("\nlatency (ms)\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tsamples\tp50\tp90\tp99\tp99.9\tmax\t")
	for _, name := range histNames {
		s := r.Latency[name]
		if s.Count == 0 {
			continue
		}
		label := name
		if name == r.LatencyMetric {
			label += " *"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", label, s.Count, s.P50, s.P90, s.P99, s.P999, s.Max)
	}
	_ = tw.Flush()
	fmt.Fprintf(&b, "  (* the scenario's main latency: p50_ms, p99_ms and p999_ms in --json)\n")
	fmt.Fprintf(&b, "\ntraffic: in %.0f msg/s (%.2f MB/s), out %.0f msg/s (%.2f MB/s)\n",
		r.MsgsInPerS, r.BytesInPerS/1e6, r.MsgsOutPerS, r.BytesOutPerS/1e6)
	c := r.Counters
	fmt.Fprintf(&b, "events: connects %d, states %d, inputs sent %d / acknowledged %d / expired %d, chat sent %d / received %d, pings %d / pongs %d, server pings %d\n",
		c["connects"], c["states_in"], c["inputs_sent"], c["inputs_acked"], c["inputs_expired"],
		c["chat_sent"], c["chat_in"], c["pings_sent"], c["pongs_in"], c["server_pings"])
	if r.Scenario == scenarioChurn {
		fmt.Fprintf(&b, "churn: leaves %d, rejoins %d, closes %d, drops %d\n", c["leaves"], c["rejoins"], c["closes"], c["drops"])
	}
	if r.Scenario == scenarioArena || r.Scenario == scenarioChurn {
		fmt.Fprintf(&b, "inputs the rooms did not count: %d (counted twice: %d)\n", r.InputsLost, r.InputsDuplicated)
	}
	if c["moves"] > 0 || c["resumes"] > 0 {
		fmt.Fprintf(&b, "moves %d, resumes %d, messages sent again %d; longest pause between states per bot: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
			c["moves"], c["resumes"], c["resent"], r.PauseP50, r.PauseP99, r.PauseMax)
	}
	if c["bots_local"]+c["bots_forwarded"] > 0 {
		fmt.Fprintf(&b, "bots on their room's node %d, forwarded %d: input_to_state p50/p99 local %.2f/%.2f ms, forwarded %.2f/%.2f ms\n",
			c["bots_local"], c["bots_forwarded"], r.LocalP50, r.LocalP99, r.ForwardedP50, r.ForwardedP99)
	}
	if r.Transport == transportSSE {
		fmt.Fprintf(&b, "fallback: POSTs %d (retried %d)\n", c["posts"], c["post_retries"])
	}
	b.WriteString("\nserver\n")
	opt := func(label string, v *float64, unit string) {
		switch {
		case v == nil:
			fmt.Fprintf(&b, "  %-22s n/a\n", label)
		case unit == "":
			fmt.Fprintf(&b, "  %-22s %.0f\n", label, *v)
		default:
			fmt.Fprintf(&b, "  %-22s %.2f %s\n", label, *v, unit)
		}
	}
	opt("CPU", r.ServerCPUPct, "% of one core")
	opt("RSS peak", r.ServerRSSMiB, "MiB")
	opt("RSS baseline", r.ServerRSSBaseMiB, "MiB")
	opt("RSS per connection", r.RSSPerConnKiB, "KiB")
	opt("Go heap in use", r.ServerHeapInuseMiB, "MiB")
	opt("heap per connection", r.HeapPerConnKiB, "KiB")
	opt("goroutines (ramped)", r.ServerGoroutines, "")
	opt("goroutines (before)", r.ServerGoroutinesBase, "")
	fmt.Fprintf(&b, "\ndriver: CPU %.1f%% of one core (%.2f µs per message), RSS %.1f MiB, %.2f KiB per bot\n",
		r.DriverCPUPct, r.DriverCPUUsPerMs, r.DriverRSSMiB, r.DriverKiBPerBot)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
