package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kstat/kstat/internal/ksym"
	"github.com/kstat/kstat/internal/tracer"
)

// leaksOptions are the flags of "kstat leaks".
type leaksOptions struct {
	pids       []uint
	olderThan  time.Duration
	top        int
	duration   time.Duration
	stackEvery uint32
	maxAllocs  uint32
	json       bool
}

func init() {
	subcommands = append(subcommands, newLeaksCommand)
}

func newLeaksCommand() *cobra.Command {
	var opts leaksOptions
	cmd := &cobra.Command{
		Use:   "leaks",
		Short: "Report outstanding kernel allocations grouped by kernel stack (like bcc memleak)",
		Long: `leaks attaches kstat's tracer for --duration, recording every kmalloc and
kmem_cache_alloc with its kernel stack and forgetting it when it is freed.
Then it prints the allocations still outstanding and older than
--older-than, grouped by the stack that made them, most bytes first, with
frames symbolized from /proc/kallsyms as function+offset.

Only allocations made while leaks runs are seen. The report ends with the
tracer's loss counters: allocations not tracked because the map was full
(raise --max-allocs), frees of addresses allocated before the start, and
stacks not captured, each with its rate, so that you can judge how many
"leaks" are real. Needs root (CAP_BPF, CAP_PERFMON, CAP_SYSLOG for
kallsyms) and a kernel with BTF.`,
		Example: `  kstat leaks --duration 30s
  kstat leaks --pid 1234 --older-than 5s --top 5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.duration <= 0 {
				return fmt.Errorf("--duration %v: give a positive duration", opts.duration)
			}
			if opts.olderThan < 0 || opts.top < 0 {
				return fmt.Errorf("--older-than and --top must not be negative")
			}
			if err := checkPids(opts.pids); err != nil {
				return err
			}
			ctx := cmd.Context()
			return runLeaks(ctx, cmd.OutOrStdout(), opts)
		},
	}
	fl := cmd.Flags()
	fl.UintSliceVar(&opts.pids, "pid", nil, "only allocations of this process id (repeat for more); filtered in the kernel")
	fl.DurationVar(&opts.olderThan, "older-than", 5*time.Second, "only allocations at least this old when the report is made")
	fl.IntVar(&opts.top, "top", 10, "print the stacks with the most bytes, at most this many (0: all)")
	fl.DurationVar(&opts.duration, "duration", 10*time.Second, "how long to trace before reporting (Ctrl-C reports early)")
	fl.Uint32Var(&opts.stackEvery, "stack-every", 1, "capture the stack of one allocation in N (1: all); counts stay exact")
	fl.Uint32Var(&opts.maxAllocs, "max-allocs", 65536, "outstanding allocations the tracer's map holds")
	fl.BoolVar(&opts.json, "json", false, "print the report as JSON")
	return cmd
}

// leaksReport is the --json output.
type leaksReport struct {
	Seconds  float64            `json:"seconds"`
	Stacks   []tracer.LeakStack `json:"stacks"`
	Counters tracer.Counters    `json:"counters"`
}

func runLeaks(ctx context.Context, w io.Writer, opts leaksOptions) error {
	syms, err := ksym.Load(filepath.Join(global.procRoot, "kallsyms"))
	if err != nil {
		return err
	}
	pids := make([]uint32, len(opts.pids))
	for i, p := range opts.pids {
		pids[i] = uint32(p)
	}
	tr, err := tracer.Open(tracer.Options{Pids: pids, SampleEvery: 1, StackEvery: opts.stackEvery, MaxAllocs: opts.maxAllocs, Proc: global.procRoot})
	if err != nil {
		return err
	}
	defer tr.Close()
	fmt.Fprintf(os.Stderr, "kstat leaks: tracing allocations for %v (Ctrl-C reports early)\n", opts.duration)
	start := time.Now()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(opts.duration):
	}
	secs := time.Since(start).Seconds()
	stacks, err := tr.Leaks(syms, tracer.LeakOptions{Pids: pids, OlderThan: opts.olderThan, Top: opts.top})
	if err != nil {
		return err
	}
	c, err := tr.Counters()
	if err != nil {
		return err
	}
	if opts.json {
		b, err := json.MarshalIndent(leaksReport{Seconds: secs, Stacks: stacks, Counters: c}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	if len(stacks) == 0 {
		fmt.Fprintf(w, "no outstanding allocations older than %v\n", opts.olderThan)
	}
	if _, err := io.WriteString(w, tracer.FormatLeaks(stacks)); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "traced %.1fs: %d allocations not tracked (map full, %.1f/s), %d frees of unknown addresses (%.1f/s), %d stacks not captured (%.1f/s)\n",
		secs, c.AllocsDropped, float64(c.AllocsDropped)/secs, c.MissedFrees, float64(c.MissedFrees)/secs, c.StackErrors, float64(c.StackErrors)/secs)
	return err
}
