package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/examples/arena"
	"github.com/gameserver/gameserver/examples/chat"
)

// TestMain lets the test binary act as the driver's worker process: the
// multi-process test re-executes this binary with --worker.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "--worker" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	gameserver.Define("arena", arena.New, arena.Config)
	gameserver.Define("chat", chat.New, chat.Config)
	os.Exit(m.Run())
}

// startServer runs a real server on a loopback port and stops it when the
// test ends.
func startServer(t *testing.T) (*gameserver.Server, string) {
	t.Helper()
	return startServerConfig(t, gameserver.Config{})
}

func startServerConfig(t *testing.T, cfg gameserver.Config) (*gameserver.Server, string) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	srv, err := gameserver.New(cfg)
	if err != nil {
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
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv, "http://" + srv.Addr().String()
}

// metric scrapes one unlabelled metric from the server's /metrics.
func metric(t *testing.T, srv *gameserver.Server, name string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// waitMetric waits up to 5 s for a metric to reach a value.
func waitMetric(t *testing.T, srv *gameserver.Server, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for metric(t, srv, name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v, want %v", name, metric(t, srv, name), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// driveArgs runs the driver in this process with a command line.
func driveArgs(t *testing.T, args ...string) *report {
	t.Helper()
	cfg, err := parseConfig(args, io.Discard)
	if err != nil {
		t.Fatalf("parseConfig(%q): %v", args, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := drive(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("drive: %v", err)
	}
	return rep
}

// skipWithoutRooms skips a test whose server has no rooms of the kind the
// scenario joins.
func skipWithoutRooms(t *testing.T, rep *report) {
	t.Helper()
	if rep.RoomsMissing {
		t.Skipf("the server answered JOIN with 404 room_not_found: no %s rooms yet (%v)", rep.Scenario, rep.ErrorsByKind)
	}
}

// checkClean asserts the invariants of every run: all bots connected,
// no errors, every connection closed in order.
func checkClean(t *testing.T, rep *report, bots int) {
	t.Helper()
	if rep.Errors != 0 {
		t.Errorf("errors: %v", rep.ErrorsByKind)
	}
	if rep.Connected != int64(bots) {
		t.Errorf("connected %d of %d", rep.Connected, bots)
	}
	c := rep.Counters
	if c["connects"] != uint64(bots)+rep.Reconnects {
		t.Errorf("connects %d, want %d bots + %d reconnects", c["connects"], bots, rep.Reconnects)
	}
	if c["closed_clean"] != c["connects"] {
		t.Errorf("closed in order %d of %d connections", c["closed_clean"], c["connects"])
	}
	if rep.Latency[histConnect].Count != int64(c["connects"]) {
		t.Errorf("connect samples %d, connects %d", rep.Latency[histConnect].Count, c["connects"])
	}
	// At least a HELLO and a close frame out, a WELCOME in, per connection.
	if rep.DurationS <= 0 || c["msgs_out"] < 2*c["connects"] || c["msgs_in"] < c["connects"] {
		t.Errorf("window %.2fs, messages out %d, in %d", rep.DurationS, c["msgs_out"], c["msgs_in"])
	}
	if pings, pongs := c["pings_sent"], c["pongs_in"]; pongs > pings || pings-pongs > uint64(bots) {
		t.Errorf("pings %d, pongs %d", pings, pongs)
	}
}

func TestIdleSmoke(t *testing.T) {
	srv, url := startServer(t)
	const bots = 30
	rep := driveArgs(t, "--scenario=idle", "--join=false", "--bots=30", "--ramp=200", "--duration=2s",
		"--url="+url, fmt.Sprintf("--server-pid=%d", os.Getpid()))
	checkClean(t, rep, bots)
	if rep.Joined != 0 || rep.Counters["joins"] != 0 {
		t.Errorf("joined %d without --join", rep.Joined)
	}
	if rep.LatencyMetric != histRTT || rep.Latency[histRTT].Count == 0 {
		t.Errorf("main latency %s with %d rtt samples", rep.LatencyMetric, rep.Latency[histRTT].Count)
	}
	if rep.ServerCPUPct == nil || rep.ServerRSSMiB == nil || rep.RSSPerConnKiB == nil || *rep.ServerRSSMiB <= 0 {
		t.Errorf("server figures missing: cpu %v rss %v per conn %v", rep.ServerCPUPct, rep.ServerRSSMiB, rep.RSSPerConnKiB)
	}
	if rep.ServerGoroutines == nil || rep.HeapPerConnKiB == nil {
		t.Errorf("metrics not scraped: goroutines %v heap %v", rep.ServerGoroutines, rep.HeapPerConnKiB)
	}
	// The server saw the same sessions, and none is left.
	if n := metric(t, srv, "gameserver_sessions_opened_total"); n != bots {
		t.Errorf("server opened %v sessions", n)
	}
	waitMetric(t, srv, "gameserver_sessions", 0)
}

func TestIdleJoinsChatRooms(t *testing.T) {
	_, url := startServer(t)
	rep := driveArgs(t, "--scenario=idle", "--bots=20", "--duration=1s", "--url="+url)
	skipWithoutRooms(t, rep)
	checkClean(t, rep, 20)
	if rep.Joined != 20 || rep.Counters["joins"] != 20 {
		t.Errorf("joined %d (%d JOINED)", rep.Joined, rep.Counters["joins"])
	}
}

func TestArenaSmoke(t *testing.T) {
	_, url := startServer(t)
	const bots = 40
	rep := driveArgs(t, "--scenario=arena", "--bots=40", "--room-size=8", "--duration=2s", "--url="+url)
	skipWithoutRooms(t, rep)
	checkClean(t, rep, bots)
	c := rep.Counters
	if rep.Joined != bots || c["joins"] != bots {
		t.Fatalf("joined %d (%d JOINED)", rep.Joined, c["joins"])
	}
	in, tick := rep.Latency[histInput], rep.Latency[histTick]
	if in.Count == 0 || tick.Count == 0 {
		t.Fatalf("samples: input %d, tick %d", in.Count, tick.Count)
	}
	// 20 Hz inputs and ticks for 2 s: loose bounds, this checks counting.
	if c["inputs_sent"] < bots*20 || c["states_in"] < bots*20 {
		t.Errorf("inputs %d, states %d", c["inputs_sent"], c["states_in"])
	}
	if c["inputs_acked"]+c["inputs_expired"] > c["inputs_sent"] || c["inputs_acked"] < c["inputs_sent"]/2 {
		t.Errorf("inputs sent %d, acknowledged %d, expired %d", c["inputs_sent"], c["inputs_acked"], c["inputs_expired"])
	}
	if rep.LatencyMetric != histInput || rep.P50 <= 0 || rep.P99 < rep.P50 || rep.P999 < rep.P99 || rep.TickP99 <= 0 {
		t.Errorf("latency %s p50 %v p99 %v p99.9 %v tick p99 %v", rep.LatencyMetric, rep.P50, rep.P99, rep.P999, rep.TickP99)
	}
}

func TestChatSmoke(t *testing.T) {
	_, url := startServer(t)
	rep := driveArgs(t, "--scenario=chat", "--bots=20", "--chat-rate=5", "--duration=2s", "--url="+url)
	skipWithoutRooms(t, rep)
	checkClean(t, rep, 20)
	c := rep.Counters
	if c["chat_sent"] == 0 || c["chat_in"] < c["chat_sent"] {
		t.Errorf("chat sent %d, received %d", c["chat_sent"], c["chat_in"])
	}
	if rep.LatencyMetric != histChat || rep.Latency[histChat].Count == 0 {
		t.Errorf("main latency %s, %d chat samples", rep.LatencyMetric, rep.Latency[histChat].Count)
	}
}

func TestChurnSmoke(t *testing.T) {
	_, url := startServer(t)
	rep := driveArgs(t, "--scenario=churn", "--bots=20", "--churn-life=300ms", "--duration=2s", "--url="+url)
	skipWithoutRooms(t, rep)
	if rep.Errors != 0 {
		t.Errorf("errors: %v", rep.ErrorsByKind)
	}
	c := rep.Counters
	if rep.Reconnects == 0 || c["leaves"] == 0 || c["rejoins"] == 0 || c["drops"] == 0 || c["closes"] == 0 {
		t.Errorf("churn counters: %v", c)
	}
	if c["connects"] != 20+rep.Reconnects {
		t.Errorf("connects %d, reconnects %d", c["connects"], rep.Reconnects)
	}
	if c["joins"] < 20 || rep.Latency[histInput].Count == 0 {
		t.Errorf("joins %d, input samples %d", c["joins"], rep.Latency[histInput].Count)
	}
}

func TestChurnWithoutRooms(t *testing.T) {
	_, url := startServer(t)
	rep := driveArgs(t, "--scenario=churn", "--join=false", "--bots=10", "--churn-life=200ms", "--duration=1500ms", "--url="+url)
	if rep.Errors != 0 {
		t.Errorf("errors: %v", rep.ErrorsByKind)
	}
	if rep.Reconnects == 0 || rep.Counters["joins"] != 0 {
		t.Errorf("reconnects %d, joins %d", rep.Reconnects, rep.Counters["joins"])
	}
}

// TestWorkerProcesses runs the multi-process path: this test binary is
// re-executed as two workers, whose reports are merged.
func TestWorkerProcesses(t *testing.T) {
	srv, url := startServer(t)
	const bots = 12
	rep := driveArgs(t, "--scenario=idle", "--join=false", "--bots=12", "--processes=2", "--duration=2s", "--url="+url)
	if rep.Processes != 2 {
		t.Fatalf("processes %d", rep.Processes)
	}
	checkClean(t, rep, bots)
	if n := metric(t, srv, "gameserver_sessions_opened_total"); n != bots {
		t.Errorf("server opened %v sessions", n)
	}
	waitMetric(t, srv, "gameserver_sessions", 0)
}

func TestUpgradeRateLimitRetried(t *testing.T) {
	// One source address, a server that takes 40 upgrades per second from
	// it: the bots over the burst are refused with 429 and ask again.
	_, url := startServerConfig(t, gameserver.Config{HandshakeRate: 40, HandshakeBurst: 5})
	rep := driveArgs(t, "--scenario=idle", "--join=false", "--bots=25", "--source=127.0.0.2", "--duration=200ms", "--url="+url)
	checkClean(t, rep, 25)
	if rep.Counters["connect_retries"] == 0 {
		t.Error("no upgrade was refused and asked again")
	}
}

func TestRoomsMissingIsReported(t *testing.T) {
	_, url := startServer(t)
	// A kind no server defines: JOIN is refused with 404 and the bots stay
	// connected.
	cfg, err := parseConfig([]string{"--scenario=idle", "--bots=3", "--duration=500ms", "--url=" + url}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.kind = "no-such-kind"
	res, err := e.run(context.Background(), hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.RoomsMissing || res.Errors["join_room_not_found"] != 3 || res.Connected != 3 || res.Joined != 0 {
		t.Fatalf("result: missing %v errors %v connected %d joined %d", res.RoomsMissing, res.Errors, res.Connected, res.Joined)
	}
}

func TestNoServer(t *testing.T) {
	// A port nothing listens on: every dial is refused and counted.
	rep := driveArgs(t, "--scenario=idle", "--bots=3", "--duration=200ms", "--url=http://127.0.0.1:1")
	if rep.Connected != 0 || rep.ErrorsByKind["dial_refused"] != 3 {
		t.Fatalf("connected %d, errors %v", rep.Connected, rep.ErrorsByKind)
	}
}

func TestRunExitCodes(t *testing.T) {
	var out, errOut strings.Builder
	if code := run([]string{"--bots=0"}, strings.NewReader(""), &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--bots 0") {
		t.Errorf("bad flag: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"-h"}, strings.NewReader(""), &out, &errOut); code != 0 || strings.Contains(errOut.String(), "worker") {
		t.Errorf("help: exit %d, lists hidden flags: %q", code, errOut.String())
	}
}

func TestJSONReport(t *testing.T) {
	_, url := startServer(t)
	var out, errOut strings.Builder
	code := run([]string{"--scenario=idle", "--join=false", "--bots=5", "--duration=300ms", "--json", "--url=" + url}, strings.NewReader(""), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, field := range []string{`"scenario"`, `"bots"`, `"connected"`, `"errors"`, `"p50_ms"`, `"p99_ms"`, `"p999_ms"`,
		`"tick_p99_ms"`, `"msgs_in_per_s"`, `"msgs_out_per_s"`, `"server_cpu_pct"`, `"server_rss_mib"`, `"rss_per_conn_kib"`} {
		if !strings.Contains(out.String(), field) {
			t.Errorf("JSON report lacks %s", field)
		}
	}
}

func TestArenaSSESmoke(t *testing.T) {
	srv, url := startServer(t)
	const bots = 20
	rep := driveArgs(t, "--transport=sse", "--scenario=arena", "--bots=20", "--room-size=8", "--duration=2s", "--url="+url)
	skipWithoutRooms(t, rep)
	checkClean(t, rep, bots)
	c := rep.Counters
	if rep.Transport != "sse" || rep.Joined != bots || c["joins"] != bots {
		t.Fatalf("transport %s, joined %d (%d JOINED)", rep.Transport, rep.Joined, c["joins"])
	}
	in, tick := rep.Latency[histInput], rep.Latency[histTick]
	if in.Count == 0 || tick.Count == 0 {
		t.Fatalf("samples: input %d, tick %d", in.Count, tick.Count)
	}
	if c["inputs_sent"] < bots*20 || c["states_in"] < bots*20 {
		t.Errorf("inputs %d, states %d", c["inputs_sent"], c["states_in"])
	}
	// Every input reached its room, once: the rooms' counts (the arena
	// state's received) match what the bots sent.
	if rep.InputsLost != 0 || rep.InputsDuplicated != 0 {
		t.Errorf("inputs lost %d, counted twice %d", rep.InputsLost, rep.InputsDuplicated)
	}
	if c["inputs_acked"]+c["inputs_expired"] > c["inputs_sent"] || c["inputs_acked"] < c["inputs_sent"]*9/10 {
		t.Errorf("inputs sent %d, acknowledged %d, expired %d", c["inputs_sent"], c["inputs_acked"], c["inputs_expired"])
	}
	if c["posts"] == 0 || c["posts"] > c["msgs_out"] {
		t.Errorf("posts %d for %d messages out", c["posts"], c["msgs_out"])
	}
	if rep.P50 <= 0 || rep.P99 < rep.P50 || rep.TickP99 <= 0 {
		t.Errorf("latency p50 %v p99 %v tick p99 %v", rep.P50, rep.P99, rep.TickP99)
	}
	if n := metric(t, srv, "gameserver_sse_streams_total"); n != bots {
		t.Errorf("server opened %v fallback connections", n)
	}
	if n := metric(t, srv, "gameserver_sse_messages_in_total"); n < float64(c["inputs_sent"]) {
		t.Errorf("server received %v fallback messages, bots sent %d inputs", n, c["inputs_sent"])
	}
	waitMetric(t, srv, "gameserver_sessions", 0)
}

// TestSSEScenarios runs the other scenarios over the fallback.
func TestSSEScenarios(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		srv, url := startServer(t)
		// Long enough for every bot's first PING to come back even on a
		// loaded machine: a round trip is only counted inside the window.
		rep := driveArgs(t, "--transport=sse", "--scenario=idle", "--join=false", "--bots=15", "--duration=3s", "--url="+url)
		checkClean(t, rep, 15)
		if rep.Latency[histRTT].Count == 0 {
			t.Error("no ping round trip measured")
		}
		waitMetric(t, srv, "gameserver_sessions", 0)
	})
	t.Run("chat", func(t *testing.T) {
		_, url := startServer(t)
		rep := driveArgs(t, "--transport=sse", "--scenario=chat", "--bots=12", "--chat-rate=5", "--duration=2s", "--url="+url)
		skipWithoutRooms(t, rep)
		checkClean(t, rep, 12)
		if c := rep.Counters; c["chat_sent"] == 0 || c["chat_in"] < c["chat_sent"] {
			t.Errorf("chat sent %d, received %d", c["chat_sent"], c["chat_in"])
		}
	})
	t.Run("churn", func(t *testing.T) {
		_, url := startServer(t)
		rep := driveArgs(t, "--transport=sse", "--scenario=churn", "--bots=12", "--churn-life=300ms", "--duration=2s", "--url="+url)
		skipWithoutRooms(t, rep)
		if rep.Errors != 0 {
			t.Errorf("errors: %v", rep.ErrorsByKind)
		}
		c := rep.Counters
		if rep.Reconnects == 0 || c["leaves"] == 0 || c["rejoins"] == 0 || c["drops"] == 0 || c["closes"] == 0 {
			t.Errorf("churn counters: %v", c)
		}
		if c["connects"] != 12+rep.Reconnects || rep.Latency[histInput].Count == 0 {
			t.Errorf("connects %d, reconnects %d, input samples %d", c["connects"], rep.Reconnects, rep.Latency[histInput].Count)
		}
	})
}
