package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kstat/kstat/internal/tracer"
)

// traceOptions are the flags of "kstat trace".
type traceOptions struct {
	pids      []uint
	comm      string
	sort      string
	duration  time.Duration
	interval  time.Duration
	top       int
	json      bool
	maxProcs  uint32
	maxAllocs uint32
}

func init() {
	subcommands = append(subcommands, newTraceCommand)
}

func newTraceCommand() *cobra.Command {
	var opts traceOptions
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Show per-process kernel activity live: forks, execs, kmalloc/kfree, lock contention",
		Long: `trace attaches kstat's tracer (tp_btf programs on sched_process_fork/exec/exit,
kmem kmalloc/kfree/kmem_cache_alloc/kmem_cache_free and lock
contention_begin/end) and shows a per-process table, like top: on a
terminal it redraws in place every --interval, when piped it prints the
table each interval after a "---" line with the time. Everything is counted
in the kernel; the columns are:

  FORKS THREADS EXECS EXITS        process management (EXITS: threads and children)
  KMALLOC KFREE CACHE_ALLOC/FREE   allocator calls made by the process
  ALLOC_BYTES FREED_BYTES          bytes it allocated, and how many were freed again
  OUT_BYTES OUT_ALLOCS             its allocations not freed yet
  LOCKS WAIT_US MAX_US             contended lock acquisitions and time waited

Counting starts when trace starts. It needs root (CAP_BPF, CAP_PERFMON) and
a kernel with BTF; it stops after --duration or at Ctrl-C and detaches.`,
		Example: `  kstat trace
  kstat trace --pid 1234 --pid 5678 --sort locks
  kstat trace --comm nginx --duration 10s --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !tracer.ValidSort(opts.sort) {
				return fmt.Errorf("--sort %q: choose one of %s", opts.sort, strings.Join(tracer.SortColumns(), ", "))
			}
			if opts.interval < 10*time.Millisecond {
				return fmt.Errorf("--interval %v: give at least 10ms", opts.interval)
			}
			if opts.duration < 0 {
				return fmt.Errorf("--duration %v: give a positive duration (0: until Ctrl-C)", opts.duration)
			}
			if err := checkPids(opts.pids); err != nil {
				return err
			}
			ctx := cmd.Context()
			return runTrace(ctx, cmd.OutOrStdout(), opts)
		},
	}
	fl := cmd.Flags()
	fl.UintSliceVar(&opts.pids, "pid", nil, "trace only this process id (repeat for more); filtered in the kernel")
	fl.StringVar(&opts.comm, "comm", "", "show only processes with this command name")
	fl.StringVar(&opts.sort, "sort", "kmalloc", "sort column: "+strings.Join(tracer.SortColumns(), ", "))
	fl.DurationVar(&opts.duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	fl.DurationVar(&opts.interval, "interval", time.Second, "refresh every `DURATION`")
	fl.IntVar(&opts.top, "top", 0, "show at most this many processes (0: all; on a terminal, a screenful)")
	fl.BoolVar(&opts.json, "json", false, "print one JSON object per interval: time, processes, counters")
	fl.Uint32Var(&opts.maxProcs, "max-procs", 4096, "processes the tracer's map holds")
	fl.Uint32Var(&opts.maxAllocs, "max-allocs", 65536, "outstanding allocations the tracer's map holds")
	return cmd
}

// traceFrame is one interval of --json output.
type traceFrame struct {
	Time     time.Time       `json:"time"`
	Procs    []tracer.Proc   `json:"procs"`
	Counters tracer.Counters `json:"counters"`
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

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opts.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.duration)
		defer cancel()
	}
	tty := !opts.json && isTerminal(w)
	top := opts.top
	if tty && top == 0 {
		top = 40
	}
	tick := time.NewTicker(opts.interval)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true // print the last interval, then stop
		case <-tick.C:
		}
		procs, err := tr.Procs()
		if err != nil {
			return err
		}
		if opts.comm != "" {
			kept := procs[:0]
			for _, p := range procs {
				if p.Comm == opts.comm {
					kept = append(kept, p)
				}
			}
			procs = kept
		}
		c, err := tr.Counters()
		if err != nil {
			return err
		}
		now := time.Now()
		if opts.json {
			tracer.SortProcs(procs, opts.sort)
			if top > 0 && len(procs) > top {
				procs = procs[:top]
			}
			b, err := json.Marshal(traceFrame{Time: now, Procs: procs, Counters: c})
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
				return err
			}
			continue
		}
		var b strings.Builder
		if tty {
			b.WriteString("\x1b[H\x1b[2J") // home and clear: redraw in place
		} else {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "%s  %d processes  dropped: %d events, %d allocations  missed frees: %d\n",
			now.Format(time.TimeOnly), len(procs), c.ProcsDropped, c.AllocsDropped, c.MissedFrees)
		b.WriteString(tracer.FormatTable(procs, opts.sort, top))
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
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
