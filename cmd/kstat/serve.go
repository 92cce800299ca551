package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"kernel.org/pub/linux/libs/security/libcap/cap"

	"github.com/kstat/kstat/internal/caps"
	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/internal/netout"
	"github.com/kstat/kstat/internal/tracer"
	"github.com/kstat/kstat/statsfs"
	"github.com/kstat/kstat/statsfs/fusefs"
)

// feature is one part of the daemon (bufstat, KSTAT, tracer, telemetry,
// HTTP, ...). Each feature's serve_*.go file registers one in init.
//
// The daemon starts in two phases. In the first, every feature's start
// adds its sources, collectors and knobs to the tree and starts its work
// with d.Go; a feature that serves (HTTP, the control socket) only
// prepares and registers a listener with d.Listen. In the second, the
// daemon mounts the tree and starts the listeners in order; then
// /healthz turns ready. So the first read of any view sees every source.
type feature struct {
	name string
	// flags adds the feature's flags to "kstat serve"; may be nil.
	flags func(fs *pflag.FlagSet)
	// start is the feature's first phase. An error means something the
	// user configured cannot work (a flag's value, --kstat-start, a
	// file): the daemon stops and exits non-zero with it. What the
	// kernel lacks is not an error: the feature reports it with
	// d.Degrade and returns nil, and the others keep running.
	start func(ctx context.Context, d *daemon) error
}

var features []feature

// listener is a part of the daemon's second phase: it opens its socket
// and starts serving (with d.Go) or returns why it cannot.
type listener struct {
	name  string
	start func() error
}

// daemon is the state "kstat serve" shares with its features.
type daemon struct {
	root       *statsfs.Source
	knobs      *knob.Registry
	collectors *collector.Registry  // every collector, for views and per-collector duration and success metrics
	selection  *collector.Selection // which collectors the --collector.NAME flags enable
	paths      collector.Paths      // --proc and --sys
	mux        *http.ServeMux       // features add API handlers; the HTTP feature serves it
	log        *slog.Logger
	level      *slog.LevelVar   // debug/nodebug switch it
	fuse       *fusefs.Requests // requests the statistics mount served (serve_self publishes them)
	states     *featureStates   // each feature's state: feature/<name>/ and /healthz
	listeners  []listener       // the second phase, in the order added
	announce   []any            // key-value pairs the ready log line shows
	wg         sync.WaitGroup

	gatherOnce sync.Once
	gatherer   prometheus.Gatherer // see metricsGatherer

	// The tracer's and KSTAT's services, set in the first phase when
	// they load, for the per-cgroup view (serve_cgroup.go).
	tracerSvc *tracer.Service
	netoutSvc *netout.Service

	samplers *samplers // the periodic readers' shared clock (serve_telemetry.go)
}

// Listen adds a listener to the daemon's second phase: start runs after
// every feature's first phase and the mount; an error stops the daemon.
func (d *daemon) Listen(name string, start func() error) {
	d.listeners = append(d.listeners, listener{name: name, start: start})
}

// Announce adds a key and value (such as the dashboard's URL) to the log
// line that says the daemon is ready.
func (d *daemon) Announce(key string, value any) {
	d.announce = append(d.announce, key, value)
}

// Degrade records that feature (or a part of one, such as "irqcount")
// cannot work on this kernel or with the daemon's privileges, logs why
// once, and lets the daemon go on: feature/<name>/up reads 0.
func (d *daemon) Degrade(feature string, err error) {
	d.states.set(feature, err)
	d.log.Warn("feature unavailable; the others keep running", "feature", feature, "err", err)
}

// Up records that feature (or a part of one) works.
func (d *daemon) Up(feature string) { d.states.set(feature, nil) }

// Off records that the user's configuration turned feature off, and why
// (such as "--listen is empty").
func (d *daemon) Off(feature, why string) { d.states.off(feature, why) }

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
	mount      string
	debug      bool
	capsKeep   string               // --capabilities.keep
	collectors *collector.Selection // --collector.NAME and the others
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

Start-up is fail-closed: what you asked for (--listen, --mount, --log-json,
--kstat-start, --tracer, ...) either starts or the daemon exits non-zero
with one line saying why. What the kernel lacks (netfilter links, tp_btf)
degrades: the feature's feature/<name>/up reads 0, the log says why, and
the others keep running. /healthz answers 503 until start-up is done.
After start-up the daemon drops every capability but --capabilities.keep.

Needs the capabilities of --capabilities.keep plus CAP_SYS_ADMIN (the
mount), CAP_BPF and CAP_PERFMON (loading programs) and CAP_NET_ADMIN (the
netfilter link): root, or a user given them as ambient capabilities (see
docs/SECURITY.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.mount, "mount", "/run/kstat", "where to mount the statistics filesystem (empty: do not mount)")
	fl.BoolVar(&opts.debug, "debug", false, "log at debug level from the start (the bufstat file switches it later)")
	opts.collectors = collector.AddFlags(fl, bpfCollectors...)
	fl.StringVar(&opts.capsKeep, "capabilities.keep", "default",
		"capabilities kept after start-up, comma-separated (such as cap_bpf,cap_perfmon): \"default\" keeps what knob writes and the unmount at exit need ("+caps.Default.String()+", and cap_dac_read_search for /proc/slabinfo when not root and --collector.slabinfo is on), \"none\" drops all; every other capability is dropped and no_new_privs is set")
	for _, f := range features {
		if f.flags != nil {
			f.flags(fl)
		}
	}
	return cmd
}

func runServe(parent context.Context, opts serveOptions) error {
	keep, err := caps.Parse(opts.capsKeep, caps.DefaultFor(os.Geteuid(), opts.collectors.Enabled("slabinfo")))
	if err != nil {
		return fmt.Errorf("--capabilities.keep: %w", err)
	}
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
	d.knobs.SetLog(d.log)
	d.states = newFeatureStates(d.root)
	// fail stops what the first phase started and returns err.
	fail := func(err error) error {
		stop()
		d.wg.Wait()
		return err
	}

	// Phase 1: the collectors the flags select, then every feature adds
	// its sources, collectors and knobs.
	if err := buildCollectors(d, opts.collectors); err != nil {
		return fail(err)
	}
	for _, f := range features {
		if err := f.start(ctx, d); err != nil {
			return fail(fmt.Errorf("%s: %w", f.name, err))
		}
		d.states.setDefault(f.name)
	}

	// Phase 2: the mount, then the listeners (the control socket, HTTP).
	var srv *fusefs.Server
	if opts.mount != "" {
		srv, err = fusefs.Mount(opts.mount, d.root, fusefs.Options{Log: d.log, Requests: d.fuse})
		if err != nil {
			return fail(fmt.Errorf("mounting the statistics filesystem at %s: %w", opts.mount, err))
		}
		d.log.Info("statistics filesystem mounted", "mount", opts.mount)
	}
	// unmount detaches the mount, on failure and at the end.
	unmount := func() error {
		if srv == nil {
			return nil
		}
		err := srv.Unmount()
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	}
	for _, l := range d.listeners {
		if err := l.start(); err != nil {
			if uerr := unmount(); uerr != nil {
				d.log.Warn("unmounting", "err", uerr)
			}
			return fail(fmt.Errorf("%s: %w", l.name, err))
		}
	}
	// Least privilege: what is left to do needs at most keep.
	kept, err := caps.Drop(keep)
	if err != nil {
		if uerr := unmount(); uerr != nil {
			d.log.Warn("unmounting", "err", uerr)
		}
		return fail(err)
	}
	d.states.ready.Store(true)
	d.log.Info("kstat serve ready", d.readyAttrs(opts, kept)...)

	<-ctx.Done()
	d.states.ready.Store(false)
	d.log.Info("shutting down", "cause", context.Cause(ctx))
	err = unmount()
	if err != nil && !kept.Has(cap.SYS_ADMIN) {
		// Chosen with --capabilities.keep: the next start detaches it.
		d.log.Warn("the statistics filesystem stays mounted (dead) until the next start detaches it: unmounting needs cap_sys_admin, which --capabilities.keep dropped",
			"mount", opts.mount, "err", err)
		err = nil
	}
	d.wg.Wait()
	return err
}

// readyAttrs are the key-value pairs of the ready log line: the mount,
// what the listeners announced, the features on and off, and the
// capabilities kept.
func (d *daemon) readyAttrs(opts serveOptions, kept caps.Set) []any {
	mount := opts.mount
	if mount == "" {
		mount = "none"
	}
	attrs := []any{"mount", mount}
	attrs = append(attrs, d.announce...)
	on, off := d.states.names()
	return append(attrs, "features_on", strings.Join(on, ","), "features_off", strings.Join(off, ","),
		"capabilities", kept.String(), "no_new_privs", true)
}
