package main

import (
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c, err := parseConfig(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Scenario != scenarioArena || c.Bots != 100 || c.RoomSize != 8 || c.Transport != "ws" || !c.Join ||
		c.Duration != 30*time.Second || c.processes() != 1 || len(c.Sources) != defaultSources {
		t.Fatalf("defaults %+v", c)
	}
	if len(c.URLs) != 1 || c.URLs[0].wsURL != "ws://127.0.0.1:8080/ws" || c.URLs[0].httpURL != "http://127.0.0.1:8080" {
		t.Fatalf("default url %+v", c.URLs)
	}
}

func TestBadFlags(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--scenario=flood"}, "--scenario"},
		{[]string{"--transport=quic"}, "--transport"},
		{[]string{"--forward"}, "at least two nodes"},
		{[]string{"--forward", "--url=http://127.0.0.1:1,http://127.0.0.1:2", "--scenario=idle", "--join=false"}, "must join rooms"},
		{[]string{"--forward", "--url=http://127.0.0.1:1,http://127.0.0.1:2", "--bots=16", "--processes=3"}, "fill only 2 rooms"},
		{[]string{"--redis=redis://10.1.2.3:6379"}, "not a loopback address"},
		{[]string{"--redis=http://127.0.0.1:6379"}, "want redis://"},
		{[]string{"--transport=sse", "--bots=40000", "--processes=4", "--source=127.0.0.2-127.0.0.3"}, "need at least 5 processes"},
		{[]string{"--bots=0"}, "--bots 0"},
		{[]string{"--bots=-5"}, "--bots"},
		{[]string{"--bots=2000000"}, "--bots"},
		{[]string{"--bots=many"}, "invalid value"},
		{[]string{"--ramp=0"}, "--ramp"},
		{[]string{"--ramp=NaN"}, "--ramp"},
		{[]string{"--duration=0s"}, "--duration"},
		{[]string{"--duration=-1s"}, "--duration"},
		{[]string{"--duration=10"}, "invalid value"},
		{[]string{"--room-size=0"}, "--room-size"},
		{[]string{"--room-size=5000"}, "--room-size"},
		{[]string{"--input-hz=0"}, "--input-hz"},
		{[]string{"--chat-rate=0"}, "--chat-rate"},
		{[]string{"--chat-rate=100"}, "--chat-rate"},
		{[]string{"--churn-life=1ms"}, "--churn-life"},
		{[]string{"--connect-timeout=1ms"}, "--connect-timeout"},
		{[]string{"--processes=-1"}, "--processes"},
		{[]string{"--processes=100"}, "--processes"},
		{[]string{"--bots=3", "--processes=4"}, "more processes than --bots"},
		{[]string{"--bots=40000", "--processes=1", "--source=127.0.0.2-127.0.0.3"}, "need at least 3 processes"},
		{[]string{"--server-pid=-3"}, "--server-pid"},
		{[]string{"--server-pid=999999999"}, "no such process"},
		{[]string{"--server-pid=12x"}, "want a process ID"},
		{[]string{"--server-pid=" + strconv.Itoa(os.Getpid()) + ","}, "want a process ID"},
		{[]string{"--server-pid=" + strconv.Itoa(os.Getpid()) + ",999999999"}, "no such process"},
		{[]string{"--server-pid=" + strconv.Itoa(os.Getpid()) + "," + strconv.Itoa(os.Getpid())}, "given twice"},
		{[]string{"--token=" + strings.Repeat("x", 5000)}, "--token"},
		{[]string{"--url="}, "no server URL"},
		{[]string{"--url=http://example.com:8080"}, "only loopback"},
		{[]string{"--url=http://10.0.0.1:8080"}, "not a loopback address"},
		{[]string{"--url=http://192.168.1.2:80"}, "not a loopback address"},
		{[]string{"--url=http://[2001:db8::1]:80"}, "not a loopback address"},
		{[]string{"--url=https://127.0.0.1:8443"}, "TLS is not supported"},
		{[]string{"--url=wss://127.0.0.1:8443"}, "TLS is not supported"},
		{[]string{"--url=ftp://127.0.0.1"}, "want http"},
		{[]string{"--url=http://127.0.0.1:99999"}, "bad port"},
		{[]string{"--url=http://127.0.0.1:8080/ws?x=1"}, "query"},
		{[]string{"--url=http://127.0.0.1:8080,http://8.8.8.8:80"}, "8.8.8.8"},
		{[]string{"--url=127.0.0.1:8080"}, "--url"},
		{[]string{"--source=10.0.0.1"}, "127.0.0.0/8"},
		{[]string{"--source=127.0.0.5-127.0.0.2"}, "ends before it starts"},
		{[]string{"--source=127.0.0.2-128.0.0.1"}, "127.0.0.0/8"},
		{[]string{"--source=::1"}, "127.0.0.0/8"},
		{[]string{"--source=localhost"}, "not an IPv4 address"},
		{[]string{"--source=127.0.0.0"}, "network and broadcast"},
		{[]string{"--source=127.0.0.1-127.0.255.255"}, "more than"},
		{[]string{"--source=127.0.0.2", "--url=http://[::1]:8080"}, "IPv6"},
		{[]string{"--bots=60000", "--source=127.0.0.2", "--processes=4"}, "ephemeral ports"},
		{[]string{"stray"}, "unexpected argument"},
		{[]string{"--nope"}, "flag provided but not defined"},
	}
	for _, tc := range cases {
		_, err := parseConfig(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
}

func TestGoodFlags(t *testing.T) {
	c, err := parseConfig([]string{
		"--scenario=chat", "--url=http://localhost:9000, ws://127.0.0.2:9001/game ,http://[::1]:9002",
		"--bots=50000", "--json", "--server-pid=" + strconv.Itoa(os.Getpid()),
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ws://127.0.0.1:9000/ws", "ws://127.0.0.2:9001/game", "ws://[::1]:9002/ws"}
	for i, u := range c.URLs {
		if u.wsURL != want[i] {
			t.Errorf("url %d: %s, want %s", i, u.wsURL, want[i])
		}
	}
	if len(c.ServerPIDs) != 1 || c.ServerPIDs[0] != os.Getpid() {
		t.Errorf("server PIDs %v, want [%d]", c.ServerPIDs, os.Getpid())
	}
	if c.processes() != 3 {
		t.Errorf("50000 bots in %d processes", c.processes())
	}
	if c.roomKind() != "chat" || !c.JSON || len(c.Sources) != 0 {
		t.Errorf("config %+v", c)
	}
	if c.URLs[1].addr != "127.0.0.2:9001" || c.URLs[1].prefix != "/game" || c.URLs[0].prefix != "" {
		t.Errorf("fallback addresses %+v", c.URLs)
	}

	c, err = parseConfig([]string{"--transport=sse", "--bots=20000", "--forward", "--redis=redis://127.0.0.1:6379/0",
		"--url=http://127.0.0.1:1,http://127.0.0.1:2/x/ws"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.processes() != 3 || c.URLs[1].prefix != "/x" {
		t.Errorf("fallback config: %d processes, %+v", c.processes(), c.URLs)
	}

	c, err = parseConfig([]string{"--bots=45000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sources) != defaultSources || c.Sources[0] != netip.MustParseAddr("127.0.0.1") || c.Sources[15] != netip.MustParseAddr("127.0.0.16") {
		t.Errorf("automatic sources %v", c.Sources)
	}
	if c, _ := parseConfig([]string{"--bots=400000", "--processes=30"}, io.Discard); c == nil || len(c.Sources) != 20 || c.Sources[19] != netip.MustParseAddr("127.0.0.20") {
		t.Errorf("automatic sources for 400000 bots: %v", c)
	}
	if c, _ := parseConfig([]string{"--bots=3"}, io.Discard); c == nil || len(c.Sources) != 3 {
		t.Errorf("automatic sources for 3 bots: %v", c)
	}
	if c.roomKind() != "arena" {
		t.Errorf("arena joins %q", c.roomKind())
	}
	c, err = parseConfig([]string{"--scenario=idle", "--join=false"}, io.Discard)
	if err != nil || c.roomKind() != "" {
		t.Errorf("--join=false joins %q (%v)", c.roomKind(), err)
	}
}

func TestParseSources(t *testing.T) {
	got, err := parseSources("127.0.0.2-127.0.0.4, 127.0.0.9,127.0.0.3,127.0.1.255-127.0.2.0")
	if err != nil {
		t.Fatal(err)
	}
	want := "127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.9 127.0.1.255 127.0.2.0"
	var s []string
	for _, a := range got {
		s = append(s, a.String())
	}
	if strings.Join(s, " ") != want {
		t.Fatalf("sources %v, want %s", s, want)
	}
	if got, err := parseSources(""); err != nil || got != nil {
		t.Fatalf("empty: %v %v", got, err)
	}
}

func TestWorkerArgsRoundTrip(t *testing.T) {
	c, err := parseConfig([]string{"--scenario=churn", "--bots=30000", "--source=127.0.0.2-127.0.0.3", "--token=secret",
		"--room-size=4", "--ramp=500", "--duration=7s", "--transport=sse", "--forward", "--redis=redis://:pw@127.0.0.1:1",
		"--url=http://127.0.0.1:1,http://127.0.0.1:2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	args := c.workerArgs(9000, 15000, 250)
	if line := strings.Join(args, " "); strings.Contains(line, "secret") || strings.Contains(line, "pw") {
		t.Error("the token or the Redis password is on the worker command line")
	}
	w, err := parseConfig(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Worker || w.WorkerOffset != 15000 || w.Bots != 9000 || w.Ramp != 250 || w.Scenario != scenarioChurn ||
		w.RoomSize != 4 || w.Duration != 7*time.Second || !w.Join || len(w.Sources) != 2 || w.processes() != 1 ||
		w.Transport != transportSSE || !w.Forward || len(w.URLs) != 2 {
		t.Fatalf("worker config %+v", w)
	}
}
