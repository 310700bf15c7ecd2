package gameserver

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gameserver/gameserver/internal/transport"
)

// envPrefix is prepended to a flag's upper-cased name (dashes become
// underscores) to form its environment variable: --ping-interval is
// GAMESERVER_PING_INTERVAL.
const envPrefix = "GAMESERVER_"

// options is everything the command line sets.
type options struct {
	cfg       Config
	debugAddr string
	logFormat string
	logLevel  string
}

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags reads the environment first and the command line second, so a
// flag overrides its variable. It returns flag.ErrHelp for -h.
func parseFlags(args []string, getenv func(string) string, out io.Writer) (*options, error) {
	o := &options{}
	c := &o.cfg
	fs := flag.NewFlagSet("gameserver", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Addr, "addr", ":8080", "listen address, host:port")
	fs.StringVar(&c.Node, "node", "", "node name reported to clients (default: the host name)")
	fs.IntVar(&c.MaxMessageBytes, "max-message", 64<<10, "largest inbound message in bytes; larger ones close the connection with 1009")
	fs.IntVar(&c.MaxOutboundBytes, "max-outbound", 1<<20, "bytes a connection may have queued before it is closed as a slow consumer (4001)")
	fs.IntVar(&c.MaxConns, "max-conns", 0, "most open connections (0: the descriptor limit minus a reserve)")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", 0, "most open connections from one IP address (0: no limit)")
	origins := fs.String("allowed-origins", "", "comma-separated browser origins allowed to connect, e.g. https://game.example.com,https://*.example.com or * (empty: same host only)")
	proxies := fs.String("trusted-proxies", "", "comma-separated addresses and CIDR prefixes of the proxies in front of the server, e.g. 10.0.0.0/8; their X-Forwarded-For names the client the per-IP limits count (empty: the TCP peer is the client)")
	fs.DurationVar(&c.HandshakeTimeout, "handshake-timeout", 5*time.Second, "time to read an HTTP request's headers, WebSocket upgrades included")
	fs.DurationVar(&c.HelloTimeout, "hello-timeout", 10*time.Second, "time from upgrade to the client's HELLO")
	fs.DurationVar(&c.PingInterval, "ping-interval", 10*time.Second, "how often the server pings each session")
	fs.DurationVar(&c.PingTimeout, "ping-timeout", 10*time.Second, "how long past the ping interval a silent session is kept")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", 5*time.Second, "how long queued data may wait on a socket that takes nothing")
	fs.StringVar(&c.AuthSecret, "auth-secret", "", "shared secret (32+ bytes) of the HS256 JWTs clients send in HELLO; empty: no token accepted")
	anonymous := fs.Bool("anonymous", true, "admit clients without a token (the demo's mode); --anonymous=false requires a valid token")
	fs.DurationVar(&c.ResumeWindow, "resume-window", 30*time.Second, "how long a dropped session keeps its seat for a resume, unless its room type sets its own")
	fs.Float64Var(&c.HandshakeRate, "handshake-rate", 100, "WebSocket upgrades per second one IP address may make (0: no limit)")
	fs.IntVar(&c.HandshakeBurst, "handshake-burst", 200, "burst of upgrades one IP address may make above the rate")
	fs.Float64Var(&c.RateLimit, "rate-limit", 50, "messages per second one session may send")
	fs.IntVar(&c.RateBurst, "rate-burst", 100, "burst of messages one session may send above the rate")
	fs.StringVar(&c.Redis, "redis", "", "Redis URL (redis://host:port/db) for cluster mode; empty: a single node, all in memory")
	fs.StringVar(&c.Advertise, "advertise", "", "host:port other nodes reach this node at (default: the listen address)")
	fs.StringVar(&c.ClusterSecret, "cluster-secret", "", "shared secret authenticating node-to-node links (required with --redis)")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", 5*time.Second, "how long a node's registration and room leases last without renewal")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long SIGTERM waits for connections to close")
	fs.StringVar(&o.debugAddr, "debug-addr", "", "listen address of a separate server with Go's /debug/pprof profiles (keep it private; empty: off)")
	fs.StringVar(&o.logFormat, "log-format", "auto", "log format: console, json, or auto (console on a terminal, json otherwise)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.Func("api-keys", "comma-separated keys (16+ bytes each) for the backend API and the monitor; empty: both off", func(v string) error { c.APIKeys = splitList(v); return nil })
	fs.Func("webhook-urls", "comma-separated URLs that receive the node's events as signed JSON POSTs", func(v string) error { c.WebhookURLs = splitList(v); return nil })
	fs.StringVar(&c.WebhookSecret, "webhook-secret", "", "secret (16+ bytes) that signs webhook deliveries; required with --webhook-urls")
	fs.DurationVar(&c.WebhookTimeout, "webhook-timeout", 5*time.Second, "time one webhook delivery attempt may take")
	fs.IntVar(&c.WebhookMaxAttempts, "webhook-attempts", 8, "attempts per webhook event and URL before it is dropped")
	fs.IntVar(&c.WebhookQueueSize, "webhook-queue", 4096, "webhook events that may wait per URL; more are dropped")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: gameserver [flags]\n\nRuns a gameserver node. Every flag can also be set by the environment\nvariable named beside it; a flag given on the command line wins.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(out, "  --%s %s\t(env %s)\n    \t%s", f.Name, name, envName(f.Name), usage)
			if f.DefValue != "" && f.DefValue != "0" {
				fmt.Fprintf(out, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("invalid value %q for %s: %v", v, envName(f.Name), err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	c.RequireAuth = !*anonymous
	if c.HandshakeRate == 0 {
		c.HandshakeRate = -1 // the flag's 0 means off; the Config's zero means the default
	}
	if *origins != "" {
		for _, o := range strings.Split(*origins, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.AllowedOrigins = append(c.AllowedOrigins, o)
			}
		}
	}
	if *proxies != "" {
		for _, p := range strings.Split(*proxies, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.TrustedProxies = append(c.TrustedProxies, p)
			}
		}
	}
	return o, o.validate()
}

func (o *options) validate() error {
	c := &o.cfg
	var errs []error
	if c.MaxMessageBytes < 16 || c.MaxMessageBytes > 16<<20 {
		errs = append(errs, fmt.Errorf("--max-message %d: want 16 to %d", c.MaxMessageBytes, 16<<20))
	}
	if c.MaxOutboundBytes < c.MaxMessageBytes {
		errs = append(errs, fmt.Errorf("--max-outbound %d: must be at least --max-message", c.MaxOutboundBytes))
	}
	if c.MaxOutboundBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("--max-outbound %d: at most %d (1 GiB)", c.MaxOutboundBytes, 1<<30))
	}
	if c.MaxConns < 0 || c.MaxConnsPerIP < 0 {
		errs = append(errs, errors.New("--max-conns and --max-conns-per-ip must not be negative"))
	}
	if _, err := transport.ParseTrustedProxies(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("--trusted-proxies: %v", err))
	}
	for name, d := range map[string]time.Duration{
		"handshake-timeout": c.HandshakeTimeout, "hello-timeout": c.HelloTimeout, "ping-interval": c.PingInterval,
		"ping-timeout": c.PingTimeout, "write-timeout": c.WriteTimeout, "shutdown-timeout": c.ShutdownTimeout,
	} {
		if d < 10*time.Millisecond {
			errs = append(errs, fmt.Errorf("--%s %v: must be at least 10ms", name, d))
		}
	}
	if c.HandshakeRate < 0 && c.HandshakeRate != -1 || c.HandshakeBurst < 1 {
		errs = append(errs, errors.New("--handshake-rate must not be negative and --handshake-burst must be positive"))
	}
	if c.AuthSecret != "" && len(c.AuthSecret) < 32 {
		errs = append(errs, fmt.Errorf("--auth-secret is %d bytes: HS256 needs at least 32", len(c.AuthSecret)))
	}
	if c.RequireAuth && c.AuthSecret == "" {
		errs = append(errs, errors.New("--anonymous=false needs --auth-secret"))
	}
	if c.Redis != "" && c.ClusterSecret == "" {
		errs = append(errs, errors.New("--redis needs --cluster-secret"))
	}
	if c.Redis != "" && !strings.HasPrefix(c.Redis, "redis://") {
		errs = append(errs, fmt.Errorf("--redis %q: want redis://host:port/db", c.Redis))
	}
	if c.LeaseTTL < 500*time.Millisecond {
		errs = append(errs, errors.New("--lease-ttl must be at least 500ms"))
	}
	if c.ResumeWindow < 0 {
		errs = append(errs, errors.New("--resume-window must not be negative"))
	}
	if !(c.RateLimit > 0) || c.RateBurst < 1 { // NaN too
		errs = append(errs, errors.New("--rate-limit and --rate-burst must be positive"))
	}
	switch o.logFormat {
	case "auto", "console", "json":
	default:
		errs = append(errs, fmt.Errorf("--log-format %q: want auto, console or json", o.logFormat))
	}
	switch o.logLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel))
	}
	return errors.Join(errs...)
}
