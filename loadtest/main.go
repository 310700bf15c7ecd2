// Command loadtest drives bots that speak the gameserver protocol against
// servers on this machine and reports latency and cost: input-to-state and
// tick-to-client latency, connect times, traffic, errors, and (with
// --server-pid) the server's CPU and memory per connection.
//
// It is for loopback and one's own servers only: it refuses any server
// URL whose host is not a loopback address and any source address outside
// 127.0.0.0/8. See README.md for the scenarios, flags and report fields.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"golang.org/x/term"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the whole command: it returns the exit status (0 done, 1 failed,
// 2 bad command line).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	finished := make(chan struct{})
	defer close(finished)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		// The first signal ends the run early, with a report; the second
		// exits at once.
		select {
		case <-sigs:
		case <-finished:
			return
		}
		cancel()
		select {
		case <-sigs:
			os.Exit(130)
		case <-finished:
		}
	}()
	if cfg.Worker {
		return runWorker(ctx, cfg, stdin, stdout)
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			fmt.Fprintf(stderr, "loadtest: --cpuprofile: %v\n", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "loadtest: --cpuprofile: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	var progress io.Writer
	if isTerminal(stdout) && isTerminal(stderr) {
		progress = stderr
	}
	rep, err := drive(ctx, cfg, progress)
	if err != nil && rep == nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
	}
	if cfg.JSON {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadtest: %v\n", err)
		return 1
	}
	if rep.Connected == 0 && rep.Counters["connects"] == 0 {
		fmt.Fprintln(stderr, "loadtest: no bot connected")
		return 1
	}
	return 0
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
