package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/spf13/cobra"

	"github.com/kstat/kstat/internal/tracer"
	"github.com/kstat/kstat/internal/tracetop"
)

// traceOptions are the flags of "kstat trace".
type traceOptions struct {
	pids       []uint
	comm       string
	filter     string
	sort       string
	cumulative bool
	duration   time.Duration
	interval   time.Duration
	top        int
	json       bool
	maxProcs   uint32
	maxAllocs  uint32
}

func init() {
	subcommands = append(subcommands, newTraceCommand)
}

func newTraceCommand() *cobra.Command {
	var opts traceOptions
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Show per-process kernel activity live, like top: forks, execs, kmalloc/kfree, lock contention",
		Long: `trace attaches kstat's tracer (tp_btf programs on sched_process_fork/exec/exit,
kmem kmalloc/kfree/kmem_cache_alloc/kmem_cache_free and lock
contention_begin/end) and shows a per-process table, like top. Counts are
per second over the last --interval (--cumulative, or the c key: since
trace started); OUT_BYTES, OUT_ALLOCS and MAX_WAIT_US are levels now.

On a terminal the table fits its width (the g key shows one group of
columns at a time) and takes keys, listed in its footer:

    q quit   h help   > or s / < sort by the next / previous column
    / filter by pid or part of a command name (esc clears)
    p pause   c rates or totals   g column groups   arrows scroll

Piped, it prints every column each interval after a "---" line; --json
prints one JSON object per interval with named fields. With --duration it
stops after that long and prints the last frame once.

The columns, by group (the sort keys of --sort and of the daemon's
tracer/sort knob, which share one order and the default ` + tracer.DefaultSort + `):

` + columnHelp() + `
Everything is counted in the kernel. It needs root (CAP_BPF,
CAP_PERFMON) and a kernel with BTF; it detaches when it stops.`,
		Example: `  kstat trace
  kstat trace --pid 1234 --pid 5678 --sort locks
  kstat trace --comm nginx --duration 10s --json
  kstat trace --cumulative --duration 5s | less`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !tracer.ValidSort(opts.sort) {
				return fmt.Errorf("--sort %q: choose one of %s", opts.sort, strings.Join(tracer.SortColumns(), ", "))
			}
			if opts.interval < 10*time.Millisecond {
				return fmt.Errorf("--interval %v: give at least 10ms", opts.interval)
			}
			if opts.duration < 0 {
				return fmt.Errorf("--duration %v: give a positive duration (0: until q or Ctrl-C)", opts.duration)
			}
			if opts.top < 0 {
				return fmt.Errorf("--top %d: give 0 (all) or more", opts.top)
			}
			if err := checkPids(opts.pids); err != nil {
				return err
			}
			return runTrace(cmd.Context(), cmd.OutOrStdout(), opts)
		},
	}
	fl := cmd.Flags()
	fl.UintSliceVar(&opts.pids, "pid", nil, "trace only this process id (repeat for more); filtered in the kernel")
	fl.StringVar(&opts.comm, "comm", "", "show only processes with this exact command name")
	fl.StringVar(&opts.filter, "filter", "", "show only this pid or the commands containing this text (the / key)")
	fl.StringVar(&opts.sort, "sort", tracer.DefaultSort, "sort `column`: "+strings.Join(tracer.SortColumns(), ", "))
	fl.BoolVar(&opts.cumulative, "cumulative", false, "show counts since trace started instead of rates per second (the c key)")
	fl.DurationVar(&opts.duration, "duration", 0, "stop after this long and print the last frame (0: until q or Ctrl-C)")
	fl.DurationVar(&opts.interval, "interval", time.Second, "refresh every `DURATION`")
	fl.IntVar(&opts.top, "top", 0, "piped or --json: print at most this many processes (0: all)")
	fl.BoolVar(&opts.json, "json", false, "print one JSON object per interval: time, interval, processes with named counts and rates, tracer counters")
	fl.Uint32Var(&opts.maxProcs, "max-procs", 4096, "processes the tracer's map holds")
	fl.Uint32Var(&opts.maxAllocs, "max-allocs", 65536, "outstanding allocations the tracer's map holds")
	_ = cmd.RegisterFlagCompletionFunc("sort", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return tracer.SortColumns(), cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// columnHelp lists the tracer's columns by group for --help.
func columnHelp() string {
	var b strings.Builder
	for _, g := range tracetop.Groups[1:] {
		for _, c := range tracer.Columns() {
			if c.Group == g {
				fmt.Fprintf(&b, "    %-8s %-12s %s\n", g, strings.ToUpper(c.Name), c.Help)
			}
		}
	}
	return b.String()
}

func runTrace(ctx context.Context, w io.Writer, opts traceOptions) error {
	pids := make([]uint32, len(opts.pids))
	for i, p := range opts.pids {
		pids[i] = uint32(p)
	}
	tr, err := tracer.Open(tracer.Options{Pids: pids, MaxProcs: opts.maxProcs, MaxAllocs: opts.maxAllocs, Proc: global.procRoot})
	if err != nil {
		return err
	}
	defer tr.Close()
	start := time.Now()
	settings := tracetop.Settings{Sort: opts.sort, Cumulative: opts.cumulative, Filter: opts.filter, Comm: opts.comm}
	if !opts.json && isTerminal(w) {
		return runTop(ctx, w, tr, start, settings, opts)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var prev tracetop.Sample
	for k := 1; ; k++ {
		// Frames fall on whole intervals from the start; the last one
		// exactly at --duration, or at a signal, and only once.
		next, last := start.Add(time.Duration(k)*opts.interval), false
		if opts.duration > 0 && !next.Before(start.Add(opts.duration)) {
			next, last = start.Add(opts.duration), true
		}
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			last = true
		case <-timer.C:
		}
		timer.Stop()
		cur, err := tracetop.Read(tr)
		if err != nil {
			return err
		}
		f := tracetop.Build(prev, cur, start, settings)
		prev = cur
		if opts.json {
			b, err := json.Marshal(f.JSON(opts.top))
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
				return err
			}
		} else if _, err := io.WriteString(w, f.Plain(0, opts.top)); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
}

// runTop runs the interactive top on the terminal w until q, Ctrl-C or
// --duration; after --duration it leaves the last frame on the screen.
func runTop(ctx context.Context, w io.Writer, tr *tracer.Tracer, start time.Time, s tracetop.Settings, opts traceOptions) error {
	m := tracetop.New(tr, tracetop.Options{Start: start, Interval: opts.interval, Duration: opts.duration, Settings: s})
	end, err := tea.NewProgram(m, tea.WithContext(ctx), tea.WithOutput(w)).Run()
	if err != nil && !errors.Is(err, tea.ErrProgramKilled) {
		return fmt.Errorf("trace: terminal: %w", err)
	}
	top, ok := end.(tracetop.Model)
	if !ok {
		return nil
	}
	if top.Err() != nil {
		return top.Err()
	}
	if top.Ended() {
		// The frame on the screen, left behind as text once.
		f := top.Frame()
		cols, rows := top.Size()
		limit := opts.top
		if limit == 0 {
			limit = max(rows-4, 1)
		}
		_, err := io.WriteString(w, f.Plain(cols, limit))
		return err
	}
	return nil
}

// checkPids rejects --pid values that cannot be process ids.
func checkPids(pids []uint) error {
	for _, p := range pids {
		if p == 0 || p > 1<<22 {
			return fmt.Errorf("--pid %d is not a process id (1 to 4194304)", p)
		}
	}
	return nil
}
