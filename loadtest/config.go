package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gameserver/gameserver/internal/protocol"
)

// Scenarios.
const (
	scenarioIdle  = "idle"
	scenarioArena = "arena"
	scenarioChat  = "chat"
	scenarioChurn = "churn"
)

// Limits of the driver.
const (
	// maxBotsPerProcess is how many bots one process drives before the
	// driver splits into worker processes: one process may hold at most
	// 20,000 descriptors here, and the rest is headroom.
	maxBotsPerProcess = 18000
	// maxBots bounds --bots.
	maxBots = 1_000_000
	// maxProcesses bounds --processes.
	maxProcesses = 64
	// maxSources bounds the number of --source addresses.
	maxSources = 4096
	// defaultSources is how many source addresses (127.0.0.1 up) the
	// bots spread over when --source is not given ...
	defaultSources = 16
	// ... or more, so that no address carries more than this many bots.
	botsPerSourceAuto = 20000
)

// Transports.
const (
	transportWS  = "ws"
	transportSSE = "sse"
)

// target is one server node the bots connect to.
type target struct {
	wsURL   string // ws://host:port/path
	httpURL string // http://host:port (for /metrics)
	addr    string // host:port
	prefix  string // path before the fallback's /sse/... (the WebSocket path without its final /ws)
	ipv6    bool
}

// config is everything the command line sets, validated.
type config struct {
	Scenario       string
	URLs           []target
	rawURL         string
	Bots           int
	Ramp           float64 // bots per second
	Duration       time.Duration
	RoomSize       int
	Transport      string
	Sources        []netip.Addr
	rawSource      string
	Token          string
	JSON           bool
	ServerPIDs     []int
	rawServerPID   string
	Processes      int
	Join           bool
	Ack            bool
	InputHz        int
	ChatRate       float64
	ChurnLife      time.Duration
	ConnectTimeout time.Duration
	CPUProfile     string
	Forward        bool
	Redis          string

	// Worker mode: this process runs bots [WorkerOffset, WorkerOffset+Bots)
	// of a larger run and reports to its parent on stdout.
	Worker       bool
	WorkerOffset int
}

// hiddenFlags are set by the driver for its worker processes and are not
// listed by --help.
var hiddenFlags = map[string]bool{"worker": true, "worker-offset": true}

// parseConfig reads the command line. It returns flag.ErrHelp for -h.
func parseConfig(args []string, out io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Scenario, "scenario", scenarioArena, "what the bots do: idle, arena, chat or churn")
	fs.StringVar(&c.rawURL, "url", "http://127.0.0.1:8080", "server base URL (loopback only); comma-separated for several nodes, bots spread round-robin")
	fs.IntVar(&c.Bots, "bots", 100, "number of bots")
	fs.Float64Var(&c.Ramp, "ramp", 1000, "bots connected per second while ramping up")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "measured time after the ramp")
	fs.IntVar(&c.RoomSize, "room-size", 8, "players per room, sent as the join option {\"size\": N}")
	fs.StringVar(&c.Transport, "transport", transportWS, "transport: ws (WebSocket) or sse (the HTTP fallback: Server-Sent Events and POST)")
	fs.StringVar(&c.rawSource, "source", "", "source addresses in 127.0.0.0/8: a comma-separated list and/or ranges such as 127.0.0.2-127.0.0.20; bots spread over them (default: 127.0.0.1 to 127.0.0.16, more past 320,000 bots)")
	fs.StringVar(&c.Token, "token", "", "authentication token sent in HELLO")
	fs.BoolVar(&c.JSON, "json", false, "print the report as one JSON object")
	fs.StringVar(&c.rawServerPID, "server-pid", "", "PID of the server process to sample (CPU, RSS) through /proc; comma-separated for a cluster's nodes, whose figures add up")
	fs.IntVar(&c.Processes, "processes", 0, "driver processes (0: one per 18,000 bots, 9,000 over the fallback)")
	fs.BoolVar(&c.Join, "join", true, "join rooms (idle joins chat rooms; churn joins arena rooms)")
	fs.BoolVar(&c.Ack, "ack", true, "acknowledge received messages in the bots' PINGs and PONGs, so the server can free its replay buffers")
	fs.IntVar(&c.InputHz, "input-hz", 20, "arena inputs per second per bot")
	fs.Float64Var(&c.ChatRate, "chat-rate", 1, "chat messages per second per bot (chat scenario)")
	fs.DurationVar(&c.ChurnLife, "churn-life", 5*time.Second, "mean time a churn bot stays before it leaves, closes or drops")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", 10*time.Second, "time allowed for dial, upgrade and WELCOME, and for JOINED")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the driver's CPU profile to this file (single-process runs)")
	fs.BoolVar(&c.Forward, "forward", false, "split each room's bots over the --url nodes: the first creates the room, the others join it by ID through the nodes in turn")
	fs.StringVar(&c.Redis, "redis", "", "the cluster's Redis URL (loopback only): report input_to_state separately for players on their room's node and forwarded ones")
	fs.BoolVar(&c.Worker, "worker", false, "run as a worker process of a multi-process run")
	fs.IntVar(&c.WorkerOffset, "worker-offset", 0, "global index of this worker's first bot")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: loadtest [flags]\n\n"+
			"Drives bots that speak the gameserver protocol against servers on this\n"+
			"machine (loopback addresses only) and reports latency and cost.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if hiddenFlags[f.Name] {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(out, "  --%s %s\n    \t%s", f.Name, name, usage)
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
				fmt.Fprintf(out, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *config) validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch c.Scenario {
	case scenarioIdle, scenarioArena, scenarioChat, scenarioChurn:
	default:
		add("--scenario %q: want idle, arena, chat or churn", c.Scenario)
	}
	switch c.Transport {
	case transportWS, transportSSE:
	default:
		add("--transport %q: want ws or sse", c.Transport)
	}
	if c.Bots < 1 || c.Bots > maxBots {
		add("--bots %d: want 1 to %d", c.Bots, maxBots)
	}
	if !(c.Ramp > 0) || c.Ramp > 100000 || math.IsInf(c.Ramp, 0) {
		add("--ramp %v: want more than 0 and at most 100000 bots per second", c.Ramp)
	}
	if c.Duration <= 0 || c.Duration > 24*time.Hour {
		add("--duration %v: want more than 0 and at most 24h", c.Duration)
	}
	if c.RoomSize < 1 || c.RoomSize > protocol.MaxArenaPlayers {
		add("--room-size %d: want 1 to %d", c.RoomSize, protocol.MaxArenaPlayers)
	}
	if len(c.Token) > protocol.MaxTokenLen {
		add("--token: %d bytes, the protocol allows %d", len(c.Token), protocol.MaxTokenLen)
	}
	if c.InputHz < 1 || c.InputHz > 60 {
		add("--input-hz %d: want 1 to 60", c.InputHz)
	}
	if !(c.ChatRate > 0) || c.ChatRate > 20 {
		add("--chat-rate %v: want more than 0 and at most 20 messages per second", c.ChatRate)
	}
	if c.ChurnLife < 100*time.Millisecond || c.ChurnLife > time.Hour {
		add("--churn-life %v: want 100ms to 1h", c.ChurnLife)
	}
	if c.ConnectTimeout < 100*time.Millisecond || c.ConnectTimeout > 5*time.Minute {
		add("--connect-timeout %v: want 100ms to 5m", c.ConnectTimeout)
	}
	if c.Processes < 0 || c.Processes > maxProcesses {
		add("--processes %d: want 0 (auto) to %d", c.Processes, maxProcesses)
	} else if c.Processes > c.Bots && c.Bots > 0 {
		add("--processes %d: more processes than --bots %d", c.Processes, c.Bots)
	} else if c.Processes > 0 && c.Bots > 0 && ceilDiv(c.Bots, c.Processes) > c.perProcess() && !c.Worker {
		add("--processes %d: %d bots need at least %d processes (at most %d bots each)",
			c.Processes, c.Bots, ceilDiv(c.Bots, c.perProcess()), c.perProcess())
	} else if c.Forward && c.RoomSize > 0 && c.Processes > ceilDiv(c.Bots, c.RoomSize) {
		add("--processes %d: --forward keeps each room's bots in one process, and %d bots fill only %d rooms", c.Processes, c.Bots, ceilDiv(c.Bots, c.RoomSize))
	}
	if c.Worker && c.Bots > c.perProcess()+protocol.MaxArenaPlayers {
		add("--bots %d: a worker runs at most %d bots", c.Bots, c.perProcess())
	}
	if c.WorkerOffset < 0 || c.WorkerOffset > maxBots {
		add("--worker-offset %d: out of range", c.WorkerOffset)
	}
	c.ServerPIDs = nil
	for f := range strings.SplitSeq(c.rawServerPID, ",") {
		if c.rawServerPID == "" {
			break // none: no server figures
		}
		pid, err := strconv.Atoi(strings.TrimSpace(f))
		switch {
		case err != nil || pid <= 0:
			add("--server-pid %q: want a process ID", f)
		case slices.Contains(c.ServerPIDs, pid):
			add("--server-pid %d: given twice", pid)
		default:
			if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
				add("--server-pid %d: no such process (%v)", pid, errors.Unwrap(err))
			}
			c.ServerPIDs = append(c.ServerPIDs, pid)
		}
	}
	targets, err := parseURLs(c.rawURL)
	if err != nil {
		errs = append(errs, err)
	}
	c.URLs = targets
	if c.Forward {
		switch {
		case err == nil && len(targets) < 2:
			add("--forward: give at least two nodes in --url")
		case c.roomKind() == "":
			add("--forward: the bots must join rooms (not --join=false)")
		}
	}
	if c.Redis != "" {
		if err := checkRedisURL(c.Redis); err != nil {
			errs = append(errs, err)
		}
		if c.roomKind() == "" {
			add("--redis: the bots must join rooms (not --join=false)")
		}
	}
	sources, err := parseSources(c.rawSource)
	if err != nil {
		errs = append(errs, err)
	}
	c.Sources = sources
	if len(sources) > 0 {
		for _, t := range targets {
			if t.ipv6 {
				add("--source: IPv4 source addresses cannot reach the IPv6 server %s", t.wsURL)
				break
			}
		}
	}
	if len(errs) == 0 {
		anyV6 := false
		for _, t := range c.URLs {
			anyV6 = anyV6 || t.ipv6
		}
		if len(c.Sources) == 0 && !anyV6 {
			// Bots spread over several loopback addresses by default, as
			// players come from many: servers limit upgrades and
			// connections per address, and one address has only so many
			// ephemeral ports.
			n := min(max(defaultSources, ceilDiv(c.Bots, botsPerSourceAuto)), c.Bots, maxSources)
			for i := 1; i <= n; i++ {
				c.Sources = append(c.Sources, netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}))
			}
		}
		if len(c.Sources) > 0 {
			ports := ephemeralPorts()
			if per := ceilDiv(c.Bots, len(c.Sources)); per > ports {
				add("--source: %d bots per source address, but only %d ephemeral ports exist; give more addresses", per, ports)
			}
		} else if len(c.URLs) == 1 && c.Bots > ephemeralPorts() {
			add("--bots %d: more than the %d ephemeral ports of one source address; give --source addresses", c.Bots, ephemeralPorts())
		}
	}
	return errors.Join(errs...)
}

// processes returns how many driver processes the run needs.
func (c *config) processes() int {
	if c.Worker {
		return 1
	}
	if c.Processes > 0 {
		return c.Processes
	}
	return ceilDiv(c.Bots, c.perProcess())
}

// perProcess is how many bots one process drives: a bot holds one
// descriptor over WebSocket, two over the fallback.
func (c *config) perProcess() int {
	if c.Transport == transportSSE {
		return maxBotsPerProcess / 2
	}
	return maxBotsPerProcess
}

// roomKind is the kind of room the scenario joins, or "" when it joins
// none.
func (c *config) roomKind() string {
	if !c.Join {
		return ""
	}
	switch c.Scenario {
	case scenarioIdle, scenarioChat:
		return "chat"
	default:
		return "arena"
	}
}

// parseURLs parses --url: comma-separated http:// or ws:// base URLs whose
// host is a loopback address.
func parseURLs(raw string) ([]target, error) {
	var out []target
	for _, s := range strings.Split(raw, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		t, err := parseURL(s)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, errors.New("--url: no server URL given")
	}
	return out, nil
}

func parseURL(s string) (target, error) {
	u, err := url.Parse(s)
	if err != nil {
		return target{}, fmt.Errorf("--url %q: %v", s, err)
	}
	switch u.Scheme {
	case "http", "ws":
	case "https", "wss":
		return target{}, fmt.Errorf("--url %q: TLS is not supported; this tool drives servers on loopback over http:// or ws://", s)
	default:
		return target{}, fmt.Errorf("--url %q: want http://host:port or ws://host:port", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return target{}, fmt.Errorf("--url %q: user info, query and fragment are not allowed", s)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return target{}, fmt.Errorf("--url %q: no host", s)
	}
	if port == "" {
		port = "80"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return target{}, fmt.Errorf("--url %q: bad port %q", s, port)
	}
	ip, err := loopbackIP(host)
	if err != nil {
		return target{}, fmt.Errorf("--url %q: %v", s, err)
	}
	path := u.EscapedPath()
	if path == "" || path == "/" {
		path = "/ws"
	}
	hp := net.JoinHostPort(ip.String(), port)
	prefix := strings.TrimSuffix(strings.TrimSuffix(path, "/"), "/ws")
	return target{wsURL: "ws://" + hp + path, httpURL: "http://" + hp, addr: hp, prefix: prefix, ipv6: ip.Is6()}, nil
}

// checkRedisURL checks --redis: a redis:// URL on a loopback address.
func checkRedisURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "redis" || u.Host == "" {
		return fmt.Errorf("--redis %q: want redis://host:port[/db]", raw)
	}
	if _, err := loopbackIP(u.Hostname()); err != nil {
		return fmt.Errorf("--redis %q: %v", raw, err)
	}
	return nil
}

// loopbackIP resolves a URL host and refuses anything but loopback: this
// tool is for one's own servers on this machine.
func loopbackIP(host string) (netip.Addr, error) {
	if host == "localhost" {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("host %q is not an IP address or localhost; only loopback servers may be driven", host)
	}
	ip = ip.Unmap()
	if !ip.IsLoopback() {
		return netip.Addr{}, fmt.Errorf("host %s is not a loopback address; only servers on this machine (127.0.0.0/8, ::1) may be driven", ip)
	}
	if ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("host %s: zones are not allowed", ip)
	}
	return ip, nil
}

var loopbackNet = netip.MustParsePrefix("127.0.0.0/8")

// parseSources parses --source: addresses and ranges in 127.0.0.0/8.
func parseSources(raw string) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, item := range strings.Split(raw, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		first, last := item, item
		if a, b, ok := strings.Cut(item, "-"); ok {
			first, last = strings.TrimSpace(a), strings.TrimSpace(b)
		}
		lo, err := parseSource(first)
		if err != nil {
			return nil, err
		}
		hi, err := parseSource(last)
		if err != nil {
			return nil, err
		}
		if hi.Less(lo) {
			return nil, fmt.Errorf("--source %q: the range ends before it starts", item)
		}
		for a := lo; ; a = a.Next() {
			if len(out) >= maxSources {
				return nil, fmt.Errorf("--source: more than %d addresses", maxSources)
			}
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
			if a == hi {
				break
			}
		}
	}
	if raw != "" && len(out) == 0 {
		return nil, errors.New("--source: no address given")
	}
	return out, nil
}

func parseSource(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--source %q: not an IPv4 address", s)
	}
	a = a.Unmap()
	if !a.Is4() || !loopbackNet.Contains(a) {
		return netip.Addr{}, fmt.Errorf("--source %s: only addresses in 127.0.0.0/8 are allowed", a)
	}
	if a == netip.AddrFrom4([4]byte{127, 0, 0, 0}) || a == netip.AddrFrom4([4]byte{127, 255, 255, 255}) {
		return netip.Addr{}, fmt.Errorf("--source %s: network and broadcast addresses cannot be used", a)
	}
	return a, nil
}

// ephemeralPorts is the size of the kernel's ephemeral port range (the
// connections one source address can open to one server).
func ephemeralPorts() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 28232
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 28232
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || hi < lo {
		return 28232
	}
	return hi - lo + 1
}

// workerArgs is the command line of one worker process running bots
// [offset, offset+bots) at its share of the ramp. The token is not on it:
// command lines are visible to every user of the machine.
func (c *config) workerArgs(bots, offset int, ramp float64) []string {
	args := []string{
		"--worker",
		"--worker-offset=" + strconv.Itoa(offset),
		"--scenario=" + c.Scenario,
		"--url=" + c.rawURL,
		"--bots=" + strconv.Itoa(bots),
		"--ramp=" + strconv.FormatFloat(ramp, 'g', -1, 64),
		"--duration=" + c.Duration.String(),
		"--room-size=" + strconv.Itoa(c.RoomSize),
		"--transport=" + c.Transport,
		"--join=" + strconv.FormatBool(c.Join),
		"--ack=" + strconv.FormatBool(c.Ack),
		"--input-hz=" + strconv.Itoa(c.InputHz),
		"--chat-rate=" + strconv.FormatFloat(c.ChatRate, 'g', -1, 64),
		"--churn-life=" + c.ChurnLife.String(),
		"--connect-timeout=" + c.ConnectTimeout.String(),
		"--forward=" + strconv.FormatBool(c.Forward),
	}
	if len(c.Sources) > 0 {
		s := make([]string, len(c.Sources))
		for i, a := range c.Sources {
			s[i] = a.String()
		}
		args = append(args, "--source="+strings.Join(s, ","))
	}
	return args // the token and the Redis URL travel in the environment (tokenEnv, redisEnv)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
