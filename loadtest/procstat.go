package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// clockTicks is the unit of the CPU times in /proc/PID/stat (USER_HZ,
// 100 on every Linux architecture's user ABI).
const clockTicks = 100

// readRSS returns a process's resident set size in bytes ("self" for this
// process).
func readRSS(pid string) (int64, error) { return statusKiB(pid, "VmRSS:") }

// readHWM returns a process's peak resident set size in bytes.
func readHWM(pid string) (int64, error) { return statusKiB(pid, "VmHWM:") }

func statusKiB(pid, field string) (int64, error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			fs := strings.Fields(rest)
			if len(fs) == 0 {
				break
			}
			kib, err := strconv.ParseInt(fs[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return kib << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%s/status: no %s", pid, field)
}

// procCPU returns a process's user+system CPU time from /proc/PID/stat.
func procCPU(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/" + pid + "/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc/" + pid + "/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc/" + pid + "/stat")
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// selfCPU returns this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverSampler watches the server processes named by --server-pid (one,
// or a cluster's nodes, whose figures add up): a baseline before the first
// connection, then CPU and RSS over the measured window.
type serverSampler struct {
	pids []string

	BaseRSS int64

	mu       sync.Mutex
	inWindow bool
	peakRSS  int64
	lastRSS  int64
	cpu0     time.Duration
	t0       time.Time
	CPUPct   float64
	EndRSS   int64
	PeakRSS  int64
	gone     bool

	stop chan struct{}
	done chan struct{}
}

// newServerSampler takes the baseline and starts sampling RSS every
// 100 ms until close.
func newServerSampler(pids []int) (*serverSampler, error) {
	s := &serverSampler{stop: make(chan struct{}), done: make(chan struct{})}
	for _, pid := range pids {
		s.pids = append(s.pids, strconv.Itoa(pid))
		if _, err := readRSS(strconv.Itoa(pid)); err != nil {
			return nil, fmt.Errorf("--server-pid %d: cannot read its memory (has it exited?): %w", pid, err)
		}
		if _, err := procCPU(strconv.Itoa(pid)); err != nil {
			return nil, fmt.Errorf("--server-pid %d: %w", pid, err)
		}
	}
	rss, err := s.rss()
	if err != nil {
		return nil, err
	}
	s.BaseRSS = rss
	go s.loop()
	return s, nil
}

// rss is the processes' resident set sizes added up.
func (s *serverSampler) rss() (int64, error) { return sumOver(s.pids, readRSS) }

// cpu is the processes' CPU times added up.
func (s *serverSampler) cpu() (time.Duration, error) { return sumOver(s.pids, procCPU) }

// sumOver adds read(pid) up over pids; any error ends it.
func sumOver[T int64 | time.Duration](pids []string, read func(pid string) (T, error)) (T, error) {
	var total T
	for _, pid := range pids {
		v, err := read(pid)
		if err != nil {
			return 0, err
		}
		total += v
	}
	return total, nil
}

func (s *serverSampler) loop() {
	defer close(s.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sample()
		}
	}
}

func (s *serverSampler) sample() {
	rss, err := s.rss()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.gone = true
		return
	}
	s.lastRSS = rss
	if s.inWindow && rss > s.peakRSS {
		s.peakRSS = rss
	}
}

// windowStart marks the start of the measured window.
func (s *serverSampler) windowStart() {
	cpu, err := s.cpu()
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.gone = true
	}
	s.inWindow, s.cpu0, s.t0, s.peakRSS = true, cpu, time.Now(), s.lastRSS
}

// windowEnd marks its end and computes the window's figures.
func (s *serverSampler) windowEnd() {
	cpu, err := s.cpu()
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.gone = true
	}
	if !s.inWindow {
		return
	}
	s.inWindow = false
	if el := time.Since(s.t0).Seconds(); el > 0 && !s.gone {
		s.CPUPct = (cpu - s.cpu0).Seconds() / el * 100
	}
	s.EndRSS, s.PeakRSS = s.lastRSS, s.peakRSS
}

// Gone reports whether a server process disappeared during the run.
func (s *serverSampler) Gone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gone
}

func (s *serverSampler) close() {
	close(s.stop)
	<-s.done
}

// serverMetrics are the figures scraped from a server's /metrics.
type serverMetrics struct {
	Goroutines float64
	HeapInuse  float64
	OK         bool
}

// scrapeMetrics reads go_goroutines and go_memstats_heap_inuse_bytes
// from every target's /metrics and adds them up. OK is false when no
// target answered.
func scrapeMetrics(targets []target) serverMetrics {
	var m serverMetrics
	client := &http.Client{Timeout: 3 * time.Second}
	for _, t := range targets {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.httpURL+"/metrics", nil)
		if err != nil {
			cancel()
			continue
		}
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			continue
		}
		if resp.StatusCode == http.StatusOK {
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				for name, dst := range map[string]*float64{"go_goroutines": &m.Goroutines, "go_memstats_heap_inuse_bytes": &m.HeapInuse} {
					if rest, ok := strings.CutPrefix(line, name+" "); ok {
						if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
							*dst += v
							m.OK = true
						}
					}
				}
			}
		}
		resp.Body.Close()
		cancel()
	}
	return m
}
