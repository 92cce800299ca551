package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/statsfs"
	"github.com/kstat/kstat/statsfs/fusefs"
)

// feature is one part of the daemon (bufstat, KSTAT, tracer, telemetry,
// HTTP, ...). Each feature's serve_*.go file registers one in init.
type feature struct {
	name string
	// flags adds the feature's flags to "kstat serve"; may be nil.
	flags func(fs *pflag.FlagSet)
	// start adds the feature's sources and knobs to the daemon's tree and
	// starts its work with d.Go. An error is logged and the other
	// features keep running.
	start func(ctx context.Context, d *daemon) error
}

var features []feature

// daemon is the state "kstat serve" shares with its features.
type daemon struct {
	root       *statsfs.Source
	knobs      *knob.Registry
	collectors *collector.Registry // for per-collector duration and success metrics
	paths      collector.Paths     // --proc and --sys
	mux        *http.ServeMux      // features add API handlers; the HTTP feature serves it
	log        *slog.Logger
	level      *slog.LevelVar   // debug/nodebug switch it
	fuse       *fusefs.Requests // requests the statistics mount served (serve_self publishes them)
	wg         sync.WaitGroup
}

// Go runs fn in a goroutine the daemon waits for before it exits, so a
// feature can detach its BPF programs on the way out.
func (d *daemon) Go(fn func()) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		fn()
	}()
}

// serveOptions are the flags of "kstat serve" that are not a feature's.
type serveOptions struct {
	mount string
	debug bool
}

func init() {
	subcommands = append(subcommands, newServeCommand)
}

func newServeCommand() *cobra.Command {
	var opts serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: collect statistics, mount them, serve metrics",
		Long: `serve builds kstat's statistics tree and mounts it with FUSE at --mount: one
directory per source, one file per value, fresh on every read. Cumulative
values (mode 0644) are cleared by writing 0; control files such as
kstat/start or telemetry/log_interval take new settings. It runs until
SIGINT or SIGTERM, then unmounts and detaches every BPF program. A mount
left by a daemon that was killed is detached and reused.

Needs root for the mount and the BPF programs; a feature that cannot start
says what it lacks and the others keep running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.mount, "mount", "/run/kstat", "where to mount the statistics filesystem (empty: do not mount)")
	fl.BoolVar(&opts.debug, "debug", false, "log at debug level from the start (the bufstat file switches it later)")
	for _, f := range features {
		if f.flags != nil {
			f.flags(fl)
		}
	}
	return cmd
}

func runServe(parent context.Context, opts serveOptions) error {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()

	d := &daemon{
		root:       statsfs.NewSource("kstat"),
		knobs:      &knob.Registry{},
		collectors: &collector.Registry{},
		paths:      collector.Paths{Proc: global.procRoot, Sys: global.sysRoot},
		level:      new(slog.LevelVar),
		mux:        http.NewServeMux(),
		fuse:       new(fusefs.Requests),
	}
	if opts.debug {
		d.level.Set(slog.LevelDebug)
	}
	d.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: d.level}))

	for _, f := range features {
		if err := f.start(ctx, d); err != nil {
			d.log.Error("feature not started; the others keep running", "feature", f.name, "err", err)
		}
	}

	var srv *fusefs.Server
	if opts.mount != "" {
		var err error
		srv, err = fusefs.Mount(opts.mount, d.root, fusefs.Options{Log: d.log, Requests: d.fuse})
		if err != nil {
			stop()
			d.wg.Wait()
			return fmt.Errorf("mounting the statistics filesystem at %s: %w", opts.mount, err)
		}
		d.log.Info("statistics filesystem mounted", "mount", opts.mount)
	}

	<-ctx.Done()
	d.log.Info("shutting down", "cause", context.Cause(ctx))
	var err error
	if srv != nil {
		err = srv.Unmount()
	}
	d.wg.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
