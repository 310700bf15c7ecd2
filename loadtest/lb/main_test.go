package main

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeNode answers /readyz with 200 or 503 and every other path with its
// name.
type fakeNode struct {
	name  string
	ready atomic.Bool
}

func (n *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/readyz" {
		if !n.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		return
	}
	_, _ = io.WriteString(w, n.name)
}

func TestBalancerSkipsUnreadyBackends(t *testing.T) {
	a, b := &fakeNode{name: "a"}, &fakeNode{name: "b"}
	a.ready.Store(true)
	b.ready.Store(true)
	sa, sb := httptest.NewServer(a), httptest.NewServer(b)
	defer sa.Close()
	defer sb.Close()
	lb := newBalancer([]string{strings.TrimPrefix(sa.URL, "http://"), strings.TrimPrefix(sb.URL, "http://")}, log.New(io.Discard, "", 0))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); lb.check(ctx, 10*time.Millisecond, time.Second) }()
	defer func() { cancel(); <-done }()
	front := httptest.NewServer(lb)
	defer front.Close()

	get := func() string {
		resp, err := http.Get(front.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	waitFor := func(cond func() bool) {
		deadline := time.Now().Add(2 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatal("condition not met in 2s")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(func() bool { return lb.backends[0].healthy.Load() && lb.backends[1].healthy.Load() })
	seen := map[string]int{}
	for range 10 {
		seen[get()]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("round robin: %v", seen)
	}
	// b drains: everything goes to a.
	b.ready.Store(false)
	waitFor(func() bool { return !lb.backends[1].healthy.Load() })
	for range 4 {
		if got := get(); got != "a" {
			t.Fatalf("request went to %q while b was not ready", got)
		}
	}
	a.ready.Store(false)
	waitFor(func() bool { return !lb.backends[0].healthy.Load() })
	resp, err := http.Get(front.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("no backend ready: status %d", resp.StatusCode)
	}
}

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--backends="}, "at least one"},
		{[]string{"--backends=10.0.0.1:80"}, "only loopback"},
		{[]string{"--addr=0.0.0.0:8080", "--backends=127.0.0.1:1"}, "only loopback"},
		{[]string{"--backends=127.0.0.1"}, "host:port"},
		{[]string{"--backends=127.0.0.1:1", "--check-interval=1ms"}, "at least 10ms"},
	} {
		if _, err := parseArgs(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
	}
	c, err := parseArgs([]string{"--addr=localhost:9000", "--backends=127.0.0.1:1, [::1]:2"}, io.Discard)
	if err != nil || len(c.backends) != 2 || c.addr != "localhost:9000" {
		t.Fatalf("config %+v, %v", c, err)
	}
}
