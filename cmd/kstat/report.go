package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/bufstat"
	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/statsfs"
)

// reportNow is the report's clock; golden tests fix it.
var reportNow = time.Now

// reportCollectors are the registered collectors the bufstat report
// reads.
var reportCollectors = []string{collector.NameSockstat, collector.NameNetdev, collector.NameMeminfo, collector.NameSlabinfo}

// attachBufstat builds the report's collectors for paths from the
// registry, attaching their values under root (net/, net/dev/, block/,
// mm/, memory/) and adding them to reg.
func attachBufstat(root *statsfs.Source, reg *collector.Registry, paths collector.Paths) error {
	return reg.Build(collector.Config{Paths: paths, Root: root}, collector.Only(reportCollectors...))
}

type reportOptions struct {
	json  bool
	watch time.Duration
}

func init() {
	subcommands = append(subcommands, newReportCommand)
}

func newReportCommand() *cobra.Command {
	var opts reportOptions
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Print the kernel buffer statistics report (what /dev/bufstat showed)",
		Long: `report prints kernel buffer use, section by section: network (socket
buffers from /proc/net/sockstat and sockstat6, per-device packets, bytes,
errors and drops from /proc/net/dev, queue lengths from /sys/class/net),
block (buffers, page cache, dirty and writeback pages from /proc/meminfo),
memory management (slab and page tables, and the largest slab caches from
/proc/slabinfo, which only root can read) and the overall totals.

It needs no daemon and no privilege: it reads the kernel files itself
(under --proc and --sys). A section whose file is missing, unreadable or
malformed says which file and why, and the others print; the exit status
is non-zero only when no section could be read. "kstat serve" shows the same
report in the file bufstat at its mount point.`,
		Example: `  kstat report
  kstat report --json
  kstat report --watch 1s          # like watch -n 1 cat /dev/bufstat`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.watch < 0 || (cmd.Flags().Changed("watch") && opts.watch < 10*time.Millisecond) {
				return fmt.Errorf("--watch %v: give an interval of at least 10ms", opts.watch)
			}
			ctx := cmd.Context()
			return runReport(ctx, cmd.OutOrStdout(), collector.Paths{Proc: global.procRoot, Sys: global.sysRoot}, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the report as one JSON object (one per line with --watch)")
	cmd.Flags().DurationVar(&opts.watch, "watch", 0, "print the report again every `DURATION` (such as 1s) until Ctrl-C; on a terminal it redraws in place")
	return cmd
}

// errAllFailed is returned when no section of the report could be read.
var errAllFailed = errors.New("no section of the report could be read")

func runReport(ctx context.Context, w io.Writer, paths collector.Paths, opts reportOptions) error {
	root := statsfs.NewSource("kstat")
	reg := &collector.Registry{}
	if err := attachBufstat(root, reg, paths); err != nil {
		return err
	}
	if opts.watch == 0 {
		rep := bufstat.Build(root, reg, reportNow())
		if err := writeReport(w, rep, opts.json, true); err != nil {
			return err
		}
		if rep.Failed() {
			return errAllFailed
		}
		return nil
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	tty := isTerminal(w)
	tick := time.NewTicker(opts.watch)
	defer tick.Stop()
	for first := true; ; first = false {
		switch {
		case tty:
			// Home the cursor and clear the screen: redraw in place.
			if _, err := io.WriteString(w, "\x1b[H\x1b[2J"); err != nil {
				return err
			}
		case !first && !opts.json:
			if _, err := io.WriteString(w, "----------------------------------------\n"); err != nil {
				return err
			}
		}
		if err := writeReport(w, bufstat.Build(root, reg, reportNow()), opts.json, false); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// writeReport prints rep as text, or as JSON (indented when indent).
func writeReport(w io.Writer, rep *bufstat.Report, asJSON, indent bool) error {
	var b []byte
	switch {
	case asJSON && indent:
		b = rep.JSON()
	case asJSON:
		b = rep.JSONLine()
	default:
		b = []byte(rep.Text())
	}
	_, err := w.Write(b)
	return err
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
