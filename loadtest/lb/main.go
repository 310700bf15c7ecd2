// Command lb is a small round-robin load balancer for trying a gameserver
// cluster on one machine (scripts/cluster.sh starts one in front of three
// nodes). It sends each HTTP request (WebSocket upgrades and the fallback's
// event streams included) to the next backend whose /readyz answers 200,
// checking every backend every --check-interval, so a draining node stops
// getting new connections as soon as its /readyz fails. Like most proxies
// it appends the client's address to X-Forwarded-For, which nodes started
// with --trusted-proxies 127.0.0.1 use for their per-IP limits. It listens
// on a loopback address only and forwards to loopback backends only.
//
//	lb --addr 127.0.0.1:8080 --backends 127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// config is the command line.
type config struct {
	addr     string
	backends []string // host:port
	interval time.Duration
	timeout  time.Duration
}

func parseArgs(args []string, out io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("lb", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen address (loopback only)")
	backends := fs.String("backends", "", "comma-separated host:port of the backends (loopback only)")
	fs.DurationVar(&c.interval, "check-interval", 250*time.Millisecond, "how often each backend's /readyz is checked")
	fs.DurationVar(&c.timeout, "check-timeout", time.Second, "how long a health check may take")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := checkLoopback(c.addr); err != nil {
		return nil, fmt.Errorf("--addr: %w", err)
	}
	for _, b := range strings.Split(*backends, ",") {
		if b = strings.TrimSpace(b); b == "" {
			continue
		}
		if err := checkLoopback(b); err != nil {
			return nil, fmt.Errorf("--backends: %w", err)
		}
		c.backends = append(c.backends, b)
	}
	if len(c.backends) == 0 {
		return nil, errors.New("--backends: give at least one host:port")
	}
	if c.interval < 10*time.Millisecond || c.timeout < 10*time.Millisecond {
		return nil, errors.New("--check-interval and --check-timeout must be at least 10ms")
	}
	return c, nil
}

// checkLoopback accepts host:port on a loopback address.
func checkLoopback(hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || port == "" {
		return fmt.Errorf("%q: want host:port", hostport)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return fmt.Errorf("%q: only loopback addresses (127.0.0.0/8, ::1, localhost)", hostport)
	}
	return nil
}

// balancer is the proxy: round robin over the healthy backends.
type balancer struct {
	backends []*backend
	next     atomic.Uint64
	log      *log.Logger
}

type backend struct {
	addr    string
	proxy   *httputil.ReverseProxy
	healthy atomic.Bool
}

func newBalancer(addrs []string, logger *log.Logger) *balancer {
	lb := &balancer{log: logger}
	for _, a := range addrs {
		target := &url.URL{Scheme: "http", Host: a}
		p := httputil.NewSingleHostReverseProxy(target)
		p.FlushInterval = -1 // event streams flush at once
		p.Transport = &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        0,
			MaxIdleConnsPerHost: 1024, // the fallback's POSTs reuse connections
			IdleConnTimeout:     90 * time.Second,
		}
		p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			if !errors.Is(err, context.Canceled) {
				logger.Printf("backend %s: %v", a, err)
			}
			w.WriteHeader(http.StatusBadGateway)
		}
		b := &backend{addr: a, proxy: p}
		lb.backends = append(lb.backends, b)
	}
	return lb
}

func (lb *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := uint64(len(lb.backends))
	start := lb.next.Add(1)
	for i := range n {
		if b := lb.backends[(start+i)%n]; b.healthy.Load() {
			b.proxy.ServeHTTP(w, r)
			return
		}
	}
	http.Error(w, "no healthy backend", http.StatusBadGateway)
}

// check polls every backend's /readyz until ctx ends, logging changes.
func (lb *balancer) check(ctx context.Context, interval, timeout time.Duration) {
	client := &http.Client{Timeout: timeout}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, b := range lb.backends {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok := false
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.addr+"/readyz", nil)
				if resp, err := client.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
					resp.Body.Close()
					ok = resp.StatusCode == http.StatusOK
				}
				if b.healthy.Swap(ok) != ok && ctx.Err() == nil {
					state := "out of rotation (/readyz failed)"
					if ok {
						state = "in rotation"
					}
					lb.log.Printf("backend %s %s", b.addr, state)
				}
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func run(args []string, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "lb: %v\n", err)
		return 2
	}
	logger := log.New(stderr, "lb: ", log.LstdFlags|log.Lmicroseconds)
	lb := newBalancer(cfg.backends, logger)
	l, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		fmt.Fprintf(stderr, "lb: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		lb.check(ctx, cfg.interval, cfg.timeout)
	}()
	srv := &http.Server{Handler: lb, ReadHeaderTimeout: 10 * time.Second, ErrorLog: logger}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	logger.Printf("listening on %s, backends %s", l.Addr(), strings.Join(cfg.backends, ", "))
	select {
	case <-ctx.Done():
	case err := <-served:
		logger.Printf("serve: %v", err)
		return 1
	}
	// Hijacked connections (WebSockets) are not waited for: closing the
	// listener and the idle connections is enough for a local tool.
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-checked
	return 0
}
