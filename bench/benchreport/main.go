// Command benchreport is the helper of scripts/bench.sh: it waits for a
// server to be ready, and it turns the load-test reports (loadtest --json)
// and the Go micro-benchmark output of a benchmark run into a Markdown
// page with a table and an SVG plot of latency and server CPU against the
// number of bots.
//
//	benchreport wait URL [TIMEOUT]
//	benchreport render --out PAGE.md --svg PLOT.svg [--gobench FILE] [--notes FILE] [--commit REV] REPORT.json...
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: benchreport wait URL [TIMEOUT] | benchreport render --out PAGE.md --svg PLOT.svg [--gobench FILE] [--notes FILE] [--commit REV] REPORT.json...")
		return 2
	}
	var err error
	switch args[0] {
	case "wait":
		err = wait(args[1:])
	case "render":
		err = render(args[1:], stderr)
	default:
		err = fmt.Errorf("unknown command %q (want wait or render)", args[0])
	}
	if err != nil {
		fmt.Fprintf(stderr, "benchreport: %v\n", err)
		return 1
	}
	return 0
}

// wait polls URL until it answers 200 OK or the timeout passes.
func wait(args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return errors.New("usage: benchreport wait URL [TIMEOUT]")
	}
	timeout := 15 * time.Second
	if len(args) == 2 {
		d, err := time.ParseDuration(args[1])
		if err != nil || d <= 0 {
			return fmt.Errorf("bad timeout %q", args[1])
		}
		timeout = d
	}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(args[0])
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v (last error: %v)", args[0], timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// result holds the fields of a loadtest --json report that the page shows.
type result struct {
	Scenario      string             `json:"scenario"`
	Transport     string             `json:"transport"`
	Bots          int                `json:"bots"`
	Processes     int                `json:"processes"`
	Connected     int64              `json:"connected"`
	Joined        int64              `json:"joined"`
	Errors        uint64             `json:"errors"`
	ErrorsByKind  map[string]uint64  `json:"errors_by_kind"`
	LatencyMetric string             `json:"latency_metric"`
	P50           float64            `json:"p50_ms"`
	P99           float64            `json:"p99_ms"`
	P999          float64            `json:"p999_ms"`
	TickP99       float64            `json:"tick_p99_ms"`
	MsgsIn        float64            `json:"msgs_in_per_s"`
	MsgsOut       float64            `json:"msgs_out_per_s"`
	ServerCPU     *float64           `json:"server_cpu_pct"`
	ServerRSS     *float64           `json:"server_rss_mib"`
	RSSPerConn    *float64           `json:"rss_per_conn_kib"`
	HeapPerConn   *float64           `json:"heap_per_conn_kib"`
	Goroutines    *float64           `json:"server_goroutines"`
	DriverCPU     float64            `json:"driver_cpu_pct"`
	DriverPerBot  float64            `json:"driver_kib_per_bot"`
	Latency       map[string]latency `json:"latency"`
	Notes         []string           `json:"notes"`
}

type latency struct {
	Count int64   `json:"count"`
	P99   float64 `json:"p99_ms"`
}

func render(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "Markdown page to write")
	svg := fs.String("svg", "", "SVG plot to write")
	gobench := fs.String("gobench", "", "file with the output of go test -bench")
	notes := fs.String("notes", "", "file with one note per line (skipped configurations)")
	commit := fs.String("commit", "", "revision measured")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *svg == "" {
		return errors.New("render needs --out and --svg")
	}
	var results []result
	for _, path := range fs.Args() {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var r result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if r.Scenario == "" || r.Bots <= 0 {
			return fmt.Errorf("%s: not a loadtest report", path)
		}
		if r.Transport != "" && r.Transport != "ws" {
			r.Scenario += "/" + r.Transport // the HTTP fallback's runs are a scenario of their own
		}
		results = append(results, r)
	}
	sort.SliceStable(results, func(i, j int) bool {
		if results[i].Scenario != results[j].Scenario {
			return results[i].Scenario > results[j].Scenario // idle before chat before arena
		}
		return results[i].Bots < results[j].Bots
	})
	var noteLines []string
	if *notes != "" {
		b, err := os.ReadFile(*notes)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				noteLines = append(noteLines, l)
			}
		}
	}
	var bench string
	if *gobench != "" {
		b, err := os.ReadFile(*gobench)
		if err != nil {
			return err
		}
		bench = string(b)
	}
	if err := os.WriteFile(*svg, []byte(plot(results)), 0o644); err != nil {
		return err
	}
	page := markdown(results, noteLines, bench, *commit, filepath.Base(*svg), time.Now().UTC())
	return os.WriteFile(*out, []byte(page), 0o644)
}

// markdown writes the results page.
func markdown(results []result, notes []string, bench, commit, svgName string, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmark run of %s\n\n", now.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Machine: %d CPUs, %s memory, Linux %s, %s. ", runtime.NumCPU(), memTotal(), osRelease(), runtime.Version())
	if commit != "" {
		fmt.Fprintf(&b, "Revision: `%s`. ", commit)
	}
	b.WriteString("Server and driver share the machine and talk over loopback; every configuration ran against a fresh server.\n\n")
	b.WriteString("## Load tests\n\n")
	b.WriteString("Latency is the scenario's main latency (input-to-state for arena, client ping round trip for idle) in ms; ")
	b.WriteString("tick is tick-to-client. Server figures come from /proc and /metrics over the measured window; ")
	b.WriteString("RSS and heap per connection are growth over the idle server's baseline divided by the connected bots.\n\n")
	b.WriteString("| scenario | bots | connected | errors | latency | p50 | p99 | p99.9 | tick p99 | msgs in/s | msgs out/s | server CPU % | server RSS MiB | RSS/conn KiB | heap/conn KiB | goroutines | driver CPU % | driver KiB/bot |\n")
	b.WriteString("|---|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range results {
		tick := "-"
		if r.Latency["tick_to_client"].Count > 0 {
			tick = f2(r.TickP99)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %s | %s | %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %.1f | %.2f |\n",
			r.Scenario, r.Bots, r.Connected, r.Errors, r.LatencyMetric, f2(r.P50), f2(r.P99), f2(r.P999), tick,
			r.MsgsIn, r.MsgsOut, opt(r.ServerCPU, 1), opt(r.ServerRSS, 1), opt(r.RSSPerConn, 2), opt(r.HeapPerConn, 2),
			opt(r.Goroutines, 0), r.DriverCPU, r.DriverPerBot)
	}
	if lines := marginalRSS(results); len(lines) > 0 {
		b.WriteString("\nMarginal RSS per connection, the slope between a scenario's smallest and largest runs (the runtime's fixed growth weighs on the ratio above at small counts, not on this): ")
		b.WriteString(strings.Join(lines, "; "))
		b.WriteString(".\n")
	}
	fmt.Fprintf(&b, "\n![p99 latency and server CPU against bots](%s)\n\n", svgName)
	var errLines []string
	for _, r := range results {
		if r.Errors > 0 {
			var kinds []string
			for _, k := range sortedKeys(r.ErrorsByKind) {
				kinds = append(kinds, fmt.Sprintf("%s %d", k, r.ErrorsByKind[k]))
			}
			errLines = append(errLines, fmt.Sprintf("%s at %d bots: %s", r.Scenario, r.Bots, strings.Join(kinds, ", ")))
		}
		for _, n := range r.Notes {
			errLines = append(errLines, fmt.Sprintf("%s at %d bots: %s", r.Scenario, r.Bots, n))
		}
	}
	if len(notes)+len(errLines) > 0 {
		b.WriteString("Notes:\n\n")
		for _, n := range append(notes, errLines...) {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	if bench != "" {
		b.WriteString("## Go micro-benchmarks\n\n```text\n")
		b.WriteString(strings.TrimRight(bench, "\n"))
		b.WriteString("\n```\n")
	}
	return b.String()
}

// marginalRSS returns, for each scenario with two runs or more that
// report RSS, the server RSS growth per connection between its run with
// the fewest and the most connected bots, as "idle 5000→19000: 1.51 KiB".
func marginalRSS(results []result) []string {
	var out []string
	done := map[string]bool{}
	for _, r := range results {
		if done[r.Scenario] {
			continue
		}
		done[r.Scenario] = true
		var lo, hi *result
		for i := range results {
			x := &results[i]
			if x.Scenario != r.Scenario || x.ServerRSS == nil || x.Connected <= 0 {
				continue
			}
			if lo == nil || x.Connected < lo.Connected {
				lo = x
			}
			if hi == nil || x.Connected > hi.Connected {
				hi = x
			}
		}
		if lo == nil || hi.Connected == lo.Connected {
			continue
		}
		kib := (*hi.ServerRSS - *lo.ServerRSS) * 1024 / float64(hi.Connected-lo.Connected)
		out = append(out, fmt.Sprintf("%s %d→%d: %.2f KiB", r.Scenario, lo.Connected, hi.Connected, kib))
	}
	return out
}

func f2(v float64) string { return fmt.Sprintf("%.2f", v) }

func opt(v *float64, prec int) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, *v)
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			var kib float64
			if _, err := fmt.Sscan(rest, &kib); err == nil {
				return fmt.Sprintf("%.1f GiB", kib/(1<<20))
			}
		}
	}
	return "?"
}

func osRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// series is one line of a plot panel.
type series struct {
	name   string
	color  string
	points [][2]float64 // bots, value
}

// plot draws two panels side by side: p99 latency against bots, and server
// CPU against bots.
func plot(results []result) string {
	var arenaIn, arenaTick, idleRTT, idleCPU, arenaCPU [][2]float64
	for _, r := range results {
		x := float64(r.Bots)
		switch r.Scenario {
		case "arena":
			if r.Latency["input_to_state"].Count > 0 {
				arenaIn = append(arenaIn, [2]float64{x, r.Latency["input_to_state"].P99})
			}
			if r.Latency["tick_to_client"].Count > 0 {
				arenaTick = append(arenaTick, [2]float64{x, r.Latency["tick_to_client"].P99})
			}
			if r.ServerCPU != nil {
				arenaCPU = append(arenaCPU, [2]float64{x, *r.ServerCPU})
			}
		case "idle":
			if r.Latency["rtt"].Count > 0 {
				idleRTT = append(idleRTT, [2]float64{x, r.Latency["rtt"].P99})
			}
			if r.ServerCPU != nil {
				idleCPU = append(idleCPU, [2]float64{x, *r.ServerCPU})
			}
		}
	}
	const w, h = 960, 380
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	panel(&b, 0, "p99 latency (ms, log scale)", true, []series{
		{"arena input-to-state", "#d62728", arenaIn},
		{"arena tick-to-client", "#ff7f0e", arenaTick},
		{"idle ping round trip", "#1f77b4", idleRTT},
	})
	panel(&b, w/2, "server CPU (% of one core)", false, []series{
		{"arena", "#d62728", arenaCPU},
		{"idle", "#1f77b4", idleCPU},
	})
	b.WriteString("</svg>\n")
	return b.String()
}

// panel draws one 480×380 panel at horizontal offset x0, with a linear
// or a logarithmic value axis.
func panel(b *strings.Builder, x0 int, title string, logY bool, ss []series) {
	const pw, ph = 480, 380
	const left, right, top, bottom = 60, 20, 40, 90
	iw, ih := float64(pw-left-right), float64(ph-top-bottom)
	var xmax, ymax float64
	ymin := math.Inf(1)
	for _, s := range ss {
		for _, p := range s.points {
			xmax, ymax = math.Max(xmax, p[0]), math.Max(ymax, p[1])
			if p[1] > 0 {
				ymin = math.Min(ymin, p[1])
			}
		}
	}
	xmax = niceCeil(xmax)
	// The value axis: ticks and the mapping of a value to [0, 1].
	var yticks []float64
	var yfrac func(float64) float64
	if logY {
		lo, hi := -1.0, 3.0 // 0.1 ms to 1 s when there is nothing to show
		if !math.IsInf(ymin, 1) {
			lo, hi = math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
			if hi <= lo {
				hi = lo + 1
			}
		}
		for e := lo; e <= hi; e++ {
			yticks = append(yticks, math.Pow(10, e))
		}
		yfrac = func(v float64) float64 { return (math.Log10(v) - lo) / (hi - lo) }
	} else {
		ymax = niceCeil(ymax)
		for i := 0; i <= 5; i++ {
			yticks = append(yticks, ymax*float64(i)/5)
		}
		yfrac = func(v float64) float64 { return v / ymax }
	}
	ox, oy := float64(x0+left), float64(top)+ih
	px := func(v float64) float64 { return ox + v/xmax*iw }
	py := func(v float64) float64 { return oy - yfrac(v)*ih }
	fmt.Fprintf(b, `<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", x0+left, escape(title))
	for _, yv := range yticks {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", ox, py(yv), ox+iw, py(yv))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", ox-6, py(yv)+4, tick(yv))
	}
	for i := 0; i <= 5; i++ {
		xv := xmax * float64(i) / 5
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(xv), oy+16, tick(xv))
	}
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", ox, oy, ox+iw, oy)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", ox, oy, ox, float64(top))
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">bots</text>`+"\n", ox+iw/2, oy+34)
	ly := oy + 54
	for i, s := range ss {
		lx := ox + float64(i)*150
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", lx, ly, lx+18, ly, s.color)
		var pts [][2]float64
		for _, p := range s.points {
			if !logY || p[1] > 0 {
				pts = append(pts, p)
			}
		}
		label := s.name
		if len(pts) == 0 {
			label += " (no data)"
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+22, ly+4, escape(label))
		if len(pts) == 0 {
			continue
		}
		var coords []string
		for _, p := range pts {
			coords = append(coords, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(coords, " "), s.color)
		for _, p := range pts {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s: %.0f bots, %.2f</title></circle>`+"\n",
				px(p[0]), py(p[1]), s.color, escape(s.name), p[0], p[1])
		}
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func tick(v float64) string {
	switch {
	case v >= 1000 && math.Mod(v, 1000) == 0:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.1fk", v/1000)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
