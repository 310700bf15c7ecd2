package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tokenEnv carries --token to worker processes, so that it does not show
// in their command lines.
const tokenEnv = "GAMESERVER_LOADTEST_TOKEN"

// redisEnv carries --redis to worker processes (a Redis URL may hold a
// password).
const redisEnv = "GAMESERVER_LOADTEST_REDIS"

// workerMsg is one line a worker writes on its stdout.
type workerMsg struct {
	Type     string        `json:"type"` // progress, ramped, measure_end, result, fatal
	Progress *progressSnap `json:"progress,omitempty"`
	Result   *procResult   `json:"result,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// measureCommand is the line the parent writes on a worker's stdin to
// start the measured window.
const measureCommand = "measure"

// runWorker is the body of a worker process: it runs its share of the
// bots and reports to the parent on stdout. The parent's end (stdin
// closed) ends the run.
func runWorker(ctx context.Context, cfg *config, stdin io.Reader, stdout io.Writer) int {
	if cfg.Token == "" {
		cfg.Token = os.Getenv(tokenEnv)
	}
	if cfg.Redis == "" {
		cfg.Redis = os.Getenv(redisEnv)
	}
	var mu sync.Mutex
	enc := json.NewEncoder(stdout)
	emit := func(m workerMsg) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(m)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	measure := make(chan struct{})
	go func() {
		// Bounded by the parent: it writes one line, and stdin ends when
		// the parent does.
		sc := bufio.NewScanner(stdin)
		started := false
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == measureCommand && !started {
				started = true
				close(measure)
			}
		}
		cancel()
	}()
	e, err := newEngine(cfg)
	if err != nil {
		emit(workerMsg{Type: "fatal", Error: err.Error()})
		return 1
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s := e.progress()
				emit(workerMsg{Type: "progress", Progress: &s})
			}
		}
	}()
	res, err := e.run(ctx, hooks{
		ramped: func() { emit(workerMsg{Type: "ramped"}) },
		waitMeasure: func(ctx context.Context) {
			t := time.NewTimer(2 * time.Minute)
			defer t.Stop()
			select {
			case <-measure:
			case <-ctx.Done():
			case <-t.C:
			}
		},
		measureEnd: func() { emit(workerMsg{Type: "measure_end"}) },
	})
	close(done)
	wg.Wait()
	if err != nil {
		emit(workerMsg{Type: "fatal", Error: err.Error()})
		return 1
	}
	emit(workerMsg{Type: "result", Result: res})
	return 0
}

// workerProc is the parent's view of one worker.
type workerProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	last   progressSnap
	ramped bool
	exited bool
	result *procResult
	err    error
}

type workerEvent struct {
	i   int
	msg workerMsg
	eof bool
	err error
}

// runWorkers re-executes this program as n worker processes, each running
// a share of the bots, drives their milestones together and returns their
// results.
func runWorkers(ctx context.Context, cfg *config, n int, h hooks, progress io.Writer) ([]*procResult, error) {
	h.fill()
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("workers: %w", err)
	}
	ws := make([]*workerProc, n)
	offset := 0
	// Under --forward a room's bots stay in one process: shares are whole
	// rooms (the last one may be partial).
	unit := 1
	if cfg.Forward {
		unit = cfg.RoomSize
	}
	units := ceilDiv(cfg.Bots, unit)
	for i := range ws {
		share := units / n
		if i < units%n {
			share++
		}
		share = min(share*unit, cfg.Bots-offset)
		cmd := exec.Command(exe, cfg.workerArgs(share, offset, cfg.Ramp/float64(n))...)
		offset += share
		// A worker gets SIGTERM when the parent dies; it then closes its
		// connections and exits.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		cmd.Stderr = os.Stderr
		cmd.Env = append(os.Environ(), tokenEnv+"="+cfg.Token, redisEnv+"="+cfg.Redis)
		w := &workerProc{cmd: cmd}
		if w.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, fmt.Errorf("workers: %w", err)
		}
		if w.stdout, err = cmd.StdoutPipe(); err != nil {
			return nil, fmt.Errorf("workers: %w", err)
		}
		ws[i] = w
	}

	// The death signal follows the thread that started the child, so the
	// workers are started and waited for on one locked thread.
	events := make(chan workerEvent, 64)
	started := make(chan error, 1)
	readersDone := make(chan struct{})
	waited := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(waited)
		var startErr error
		count := 0
		for _, w := range ws {
			if err := w.cmd.Start(); err != nil {
				startErr = fmt.Errorf("workers: start: %w", err)
				break
			}
			count++
		}
		started <- startErr
		if startErr != nil {
			for _, w := range ws[:count] {
				_ = w.cmd.Process.Kill()
			}
		}
		<-readersDone
		for _, w := range ws[:count] {
			_ = w.cmd.Wait()
		}
	}()
	if err := <-started; err != nil {
		close(readersDone)
		<-waited
		return nil, err
	}
	var rwg sync.WaitGroup
	for i, w := range ws {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			r := bufio.NewReaderSize(w.stdout, 64<<10)
			for {
				line, err := r.ReadBytes('\n')
				if len(line) > 0 {
					var m workerMsg
					if jerr := json.Unmarshal(line, &m); jerr != nil {
						events <- workerEvent{i: i, err: fmt.Errorf("worker %d: bad report line: %v", i, jerr)}
					} else {
						events <- workerEvent{i: i, msg: m}
					}
				}
				if err != nil {
					events <- workerEvent{i: i, eof: true}
					return
				}
			}
		}()
	}
	go func() { rwg.Wait(); close(readersDone) }()

	var mu sync.Mutex
	stopProgress := startProgress(progress, func() progressSnap {
		mu.Lock()
		defer mu.Unlock()
		var s progressSnap
		for _, w := range ws {
			s.Phase = w.last.Phase
			s.Bots += w.last.Bots
			s.Connected += w.last.Connected
			s.Joined += w.last.Joined
			s.MsgsIn += w.last.MsgsIn
			s.MsgsOut += w.last.MsgsOut
			s.Errors += w.last.Errors
			s.P99us = max(s.P99us, w.last.P99us)
			s.Samples += w.last.Samples
		}
		if s.Phase == "" {
			s.Phase = "start"
		}
		return s
	})
	defer stopProgress()

	// Every worker ends on its own after ramp, window and close; past this
	// bound it is killed.
	bound := time.Duration(float64(cfg.Bots)/cfg.Ramp*float64(time.Second)) + 3*cfg.ConnectTimeout + cfg.Duration + 2*time.Minute + 30*time.Second
	hard := time.NewTimer(bound)
	defer hard.Stop()
	ctxDone := ctx.Done()
	measuring, measureEnded := false, false
	alive := n
	for alive > 0 {
		select {
		case <-ctxDone:
			ctxDone = nil
			for _, w := range ws {
				_ = w.cmd.Process.Signal(syscall.SIGTERM)
			}
		case <-hard.C:
			for _, w := range ws {
				_ = w.cmd.Process.Kill()
			}
		case ev := <-events:
			w := ws[ev.i]
			switch {
			case ev.err != nil:
				w.err = ev.err
			case ev.eof:
				w.exited = true
				_ = w.stdin.Close()
				alive--
			default:
				switch ev.msg.Type {
				case "progress":
					if ev.msg.Progress != nil {
						mu.Lock()
						w.last = *ev.msg.Progress
						mu.Unlock()
					}
				case "ramped":
					w.ramped = true
				case "measure_end":
					if measuring && !measureEnded {
						measureEnded = true
						h.measureEnd()
					}
				case "result":
					w.result = ev.msg.Result
				case "fatal":
					w.err = fmt.Errorf("worker %d: %s", ev.i, ev.msg.Error)
				}
			}
		}
		if !measuring && allRamped(ws) {
			measuring = true
			h.ramped()
			h.measureStart()
			for _, w := range ws {
				if !w.exited {
					_, _ = io.WriteString(w.stdin, measureCommand+"\n")
				}
			}
		}
	}
	if measuring && !measureEnded {
		h.measureEnd()
	}
	<-waited
	var results []*procResult
	var errs []error
	for i, w := range ws {
		switch {
		case w.err != nil:
			errs = append(errs, w.err)
		case w.result == nil:
			errs = append(errs, fmt.Errorf("worker %d ended without a report (%v)", i, w.cmd.ProcessState))
		default:
			results = append(results, w.result)
		}
	}
	if len(results) == 0 {
		return nil, errors.Join(errs...)
	}
	if len(errs) > 0 {
		return results, errors.Join(errs...)
	}
	return results, nil
}

// allRamped reports whether every worker still running finished its ramp.
func allRamped(ws []*workerProc) bool {
	any := false
	for _, w := range ws {
		if !w.exited && !w.ramped {
			return false
		}
		any = any || w.ramped
	}
	return any
}
