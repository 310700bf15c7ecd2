package main

import (
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const idleReport = `{"scenario":"idle","bots":5000,"processes":1,"connected":5000,"errors":0,"errors_by_kind":{},
"latency_metric":"rtt","p50_ms":0.4,"p99_ms":2.5,"p999_ms":4,"tick_p99_ms":0,"msgs_in_per_s":1500,"msgs_out_per_s":1500,
"server_cpu_pct":4.2,"server_rss_mib":30,"rss_per_conn_kib":2.9,"heap_per_conn_kib":1.6,"server_goroutines":16,
"driver_cpu_pct":5,"driver_kib_per_bot":0.7,"latency":{"rtt":{"count":900,"p99_ms":2.5}},"notes":[]}`

const arenaReport = `{"scenario":"arena","bots":1000,"processes":1,"connected":1000,"errors":2,"errors_by_kind":{"join_timeout":2},
"latency_metric":"input_to_state","p50_ms":26,"p99_ms":70,"p999_ms":100,"tick_p99_ms":19,"msgs_in_per_s":20000,"msgs_out_per_s":20000,
"server_cpu_pct":67,"server_rss_mib":37,"rss_per_conn_kib":26,"heap_per_conn_kib":null,"server_goroutines":141,
"driver_cpu_pct":51,"driver_kib_per_bot":6,"latency":{"input_to_state":{"count":100,"p99_ms":70},"tick_to_client":{"count":100,"p99_ms":19}},"notes":[]}`

func TestRender(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	idle := write("idle.json", idleReport)
	idle10k := write("idle10k.json", strings.NewReplacer(`"bots":5000`, `"bots":10000`, `"connected":5000`, `"connected":10000`, `"server_rss_mib":30`, `"server_rss_mib":37.5`).Replace(idleReport))
	arena := write("arena.json", arenaReport)
	notes := write("notes.txt", "chat at 100 bots: skipped\n")
	gobench := write("bench.txt", "BenchmarkX-2  100  10 ns/op  0 B/op  0 allocs/op\n")
	md, svg := filepath.Join(dir, "page.md"), filepath.Join(dir, "page.svg")
	code := run([]string{"render", "--out", md, "--svg", svg, "--notes", notes, "--gobench", gobench, "--commit", "abc123", arena, idle, idle10k}, io.Discard, io.Discard)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	page, _ := os.ReadFile(md)
	for _, want := range []string{
		"| idle | 5000 | 5000 | 0 | rtt | 0.40 | 2.50 | 4.00 | - |",
		"| arena | 1000 | 1000 | 2 | input_to_state | 26.00 | 70.00 | 100.00 | 19.00 |",
		"![p99 latency and server CPU against bots](page.svg)",
		"chat at 100 bots: skipped", "join_timeout 2", "BenchmarkX-2", "`abc123`",
		"idle 5000→10000: 1.54 KiB",
	} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if strings.Index(string(page), "| idle |") > strings.Index(string(page), "| arena |") {
		t.Error("idle rows should come first")
	}
	f, err := os.Open(svg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	polylines := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg is not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			polylines++
		}
	}
	if polylines != 5 {
		t.Errorf("%d lines drawn, want 5", polylines)
	}
}

func TestRenderRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte(`{"hello":1}`), 0o644)
	if code := run([]string{"render", "--out", filepath.Join(dir, "x.md"), "--svg", filepath.Join(dir, "x.svg"), bad}, io.Discard, io.Discard); code == 0 {
		t.Error("accepted a file that is not a report")
	}
	if code := run([]string{"render", bad}, io.Discard, io.Discard); code == 0 {
		t.Error("accepted no --out")
	}
	if code := run([]string{"frobnicate"}, io.Discard, io.Discard); code == 0 {
		t.Error("accepted an unknown command")
	}
}

func TestNiceCeil(t *testing.T) {
	for v, want := range map[float64]float64{0: 1, 0.3: 0.5, 1: 1, 7: 10, 12: 20, 7500: 10000, 19000: 20000, 45: 50} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
}

// Runs over the HTTP fallback are a scenario of their own, with their own
// marginal RSS.
func TestRenderNamesTransport(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i, body := range []string{
		arenaReport,
		strings.Replace(arenaReport, `"scenario":"arena"`, `"scenario":"arena","transport":"sse"`, 1),
		strings.NewReplacer(`"scenario":"arena"`, `"scenario":"arena","transport":"sse"`, `"bots":1000`, `"bots":2000`, `"connected":1000`, `"connected":2000`, `"server_rss_mib":37`, `"server_rss_mib":47`).Replace(arenaReport),
	} {
		p := filepath.Join(dir, "r"+string(rune('0'+i))+".json")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	md, svg := filepath.Join(dir, "page.md"), filepath.Join(dir, "page.svg")
	if code := run(append([]string{"render", "--out", md, "--svg", svg}, paths...), io.Discard, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	page, _ := os.ReadFile(md)
	for _, want := range []string{"| arena | 1000 |", "| arena/sse | 1000 |", "| arena/sse | 2000 |", "arena/sse 1000→2000: 10.24 KiB"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
}
