package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kstat/kstat/internal/client"
	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/internal/irqcount"
	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/internal/server"
	"github.com/kstat/kstat/internal/telemetry"
	"github.com/kstat/kstat/statsfs"
)

// telemetryCmdOptions are the flags of "kstat telemetry".
type telemetryCmdOptions struct {
	mount    string
	socket   string
	count    int
	interval string
}

func init() {
	subcommands = append(subcommands, newTelemetryCommand)
}

func newTelemetryCommand() *cobra.Command {
	var opts telemetryCmdOptions
	cmd := &cobra.Command{
		Use:   "telemetry",
		Short: "Print telemetry snapshots: uptime, memory, interrupts, context switches, load",
		Long: `telemetry prints the telemetry ring of a running daemon: the file
telemetry/snapshots of its mount (--mount; or its control socket --socket
when nothing is mounted), the last --telemetry-ring
snapshots, oldest first, one block each. A snapshot has uptime, memory
totals, context switches, forks, running and blocked tasks, load, and the
interrupt and softirq counts per line with their per-second rates and, when
the eBPF counters run, the handler entries they counted.

When no daemon serves --mount, it takes --count snapshots of its own,
--interval apart, from --proc, and prints each as it is taken (the eBPF
counts need root; without them the /proc counts are shown).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTelemetry(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.mount, "mount", defaultMount, "where a running daemon mounts its statistics")
	fl.StringVar(&opts.socket, "socket", defaultSocket, "a running daemon's control socket, used when nothing is mounted at --mount")
	fl.IntVar(&opts.count, "count", 3, "snapshots to take when no daemon runs")
	fl.StringVar(&opts.interval, "interval", "1s", "time between own snapshots, like 1s or 250ms or whole seconds (100ms to 24h)")
	return cmd
}

func runTelemetry(ctx context.Context, stdout, stderr io.Writer, opts telemetryCmdOptions) error {
	interval, err := knob.ParseDuration(opts.interval)
	if err != nil || interval < telemetry.MinInterval || interval > telemetry.MaxInterval {
		return fmt.Errorf("--interval %q: want a duration from %v to %v", opts.interval, telemetry.MinInterval, telemetry.MaxInterval)
	}
	if opts.count < 1 {
		return fmt.Errorf("--count %d: want at least 1", opts.count)
	}
	done := waitNotice(stderr, "kstat telemetry: asking the daemon at %s or %s ...", opts.mount, opts.socket)
	c, err := client.Open(opts.mount, opts.socket)
	var ring server.Entry
	if err == nil {
		ring, err = c.Get(telemetry.Dir + "/" + telemetry.ControlSnapshots)
	}
	done()
	if err == nil {
		_, err = io.WriteString(stdout, ring.Text)
		return err
	}
	fmt.Fprintf(stderr, "kstat telemetry: no daemon's ring (%v); taking %d snapshots %v apart\n",
		err, opts.count, interval)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := statsfs.NewSource("kstat")
	p := collector.Paths{Proc: global.procRoot, Sys: global.sysRoot}
	reg := &collector.Registry{}
	if err := reg.Build(collector.Config{Paths: p, Root: root}, collector.Only(telemetry.Collectors...)); err != nil {
		return err
	}
	for _, c := range reg.All() {
		if err := c.Refresh(); err != nil {
			fmt.Fprintf(stderr, "kstat telemetry: %v\n", err)
		}
	}
	irqs, softirqs := irqLines(reg)
	if filepath.Clean(p.Proc) != "/proc" {
		fmt.Fprintf(stderr, "kstat telemetry: no eBPF counts: --proc is not /proc\n")
	} else if c, err := irqcount.Load(); err != nil {
		fmt.Fprintf(stderr, "kstat telemetry: no eBPF counts: %v\n", err)
	} else {
		defer c.Close()
		if irqs != nil {
			_, _ = irqs.AddEventCounts("irqcount", numberedIRQ, c.IRQCounts)
		}
		if softirqs != nil {
			_, _ = softirqs.AddEventCounts("softirqcount", func(string) bool { return true }, c.SoftirqCounts)
		}
	}

	s := telemetry.NewSampler(root, telemetry.NewRing(opts.count), interval)
	for i := range opts.count {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(interval):
			}
			fmt.Fprintln(stdout)
		}
		snap := s.Sample()
		if _, err := io.WriteString(stdout, snap.Text()); err != nil {
			return err
		}
	}
	return nil
}
