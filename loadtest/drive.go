package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// serverView is what the driver learned about the server processes.
type serverView struct {
	sampler *serverSampler // nil without --server-pid
	base    serverMetrics  // /metrics before the first connection
	ramped  serverMetrics  // at the end of the ramp
	end     serverMetrics  // at the end of the measured window
}

// drive runs a whole load test, in this process or in worker processes,
// and returns the report. progress, when not nil, receives a live
// progress line every second.
func drive(ctx context.Context, cfg *config, progress io.Writer) (*report, error) {
	sv := &serverView{}
	if len(cfg.ServerPIDs) > 0 {
		s, err := newServerSampler(cfg.ServerPIDs)
		if err != nil {
			return nil, err
		}
		defer s.close()
		sv.sampler = s
	}
	sv.base = scrapeMetrics(cfg.URLs)
	h := hooks{
		ramped: func() { sv.ramped = scrapeMetrics(cfg.URLs) },
		measureStart: func() {
			if sv.sampler != nil {
				sv.sampler.windowStart()
			}
		},
		measureEnd: func() {
			if sv.sampler != nil {
				sv.sampler.windowEnd()
			}
			sv.end = scrapeMetrics(cfg.URLs)
		},
	}
	n := cfg.processes()
	var results []*procResult
	if n == 1 {
		e, err := newEngine(cfg)
		if err != nil {
			return nil, err
		}
		stop := startProgress(progress, e.progress)
		res, err := e.run(ctx, h)
		stop()
		if err != nil {
			return nil, err
		}
		results = []*procResult{res}
	} else {
		var err error
		results, err = runWorkers(ctx, cfg, n, h, progress)
		if len(results) == 0 {
			return nil, err
		}
		rep, rerr := buildReport(cfg, n, results, sv)
		if rerr != nil {
			return nil, rerr
		}
		return rep, err
	}
	return buildReport(cfg, n, results, sv)
}

// startProgress prints snap's state on one line every second until the
// returned function is called. It does nothing when w is nil.
func startProgress(w io.Writer, snap func() progressSnap) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		start := time.Now()
		prev := snap()
		prevAt := start
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case now := <-t.C:
				s := snap()
				dt := now.Sub(prevAt).Seconds()
				fmt.Fprintf(w, "\r\033[K[%4.0fs] %-7s connected %d/%d  joined %d  in %s msg/s  out %s msg/s  p99 %s  errors %d",
					now.Sub(start).Seconds(), s.Phase, s.Connected, s.Bots, s.Joined,
					humanRate(float64(s.MsgsIn-prev.MsgsIn)/dt), humanRate(float64(s.MsgsOut-prev.MsgsOut)/dt),
					humanP99(s), s.Errors)
				prev, prevAt = s, now
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func humanRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func humanP99(s progressSnap) string {
	if s.Samples == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", float64(s.P99us)/1000)
}
