package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/kstat/kstat/internal/history"
	"github.com/kstat/kstat/web"
)

// dashboardOptions are the flags of the dashboard feature of "kstat serve".
type dashboardOptions struct {
	enabled bool          // serve the page at / of the HTTP server
	window  time.Duration // history kept for the charts
	step    time.Duration // time between history samples
}

var dashboardOpts dashboardOptions

func init() {
	features = append(features, feature{
		name: "dashboard",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&dashboardOpts.enabled, "dashboard", true,
				"serve the live dashboard page at / of the HTTP server (--listen): charts of memory, network devices, KSTAT, context switches, interrupts and the tracer's top processes, the bufstat report, slab and IRQ tables, and the knobs")
			fs.DurationVar(&dashboardOpts.window, "dashboard-history", history.DefaultWindow,
				"how much history the dashboard's charts keep and show (10s to 24h); GET /api/v1/history serves it")
			fs.DurationVar(&dashboardOpts.step, "dashboard-step", history.DefaultStep,
				"time between the dashboard's history samples and updates (100ms to 1m)")
		},
		start: func(ctx context.Context, d *daemon) error { return startDashboard(ctx, d, dashboardOpts) },
	})
}

// startDashboard starts the history the charts show and adds the page,
// its files, GET /api/v1/history and its event stream to the daemon's HTTP
// mux; the HTTP feature serves them next to the rest of /api/v1/.
func startDashboard(ctx context.Context, d *daemon, opts dashboardOptions) error {
	if !opts.enabled {
		d.log.Info("dashboard disabled (--dashboard=false)")
		return nil
	}
	if opts.step < 100*time.Millisecond || opts.step > time.Minute {
		return fmt.Errorf("--dashboard-step %v: want 100ms to 1m", opts.step)
	}
	if opts.window < 10*time.Second || opts.window > 24*time.Hour || opts.window < opts.step {
		return fmt.Errorf("--dashboard-history %v: want 10s to 24h, and at least --dashboard-step", opts.window)
	}
	rec := history.New(d.root, history.Options{Step: opts.step, Window: opts.window})
	h := web.Handler(web.Config{
		Version: version,
		Root:    d.root,
		Knobs:   d.knobs,
		History: rec,
		Log:     d.log,
		Done:    ctx.Done(),
	})
	for _, p := range []string{"GET /{$}", "GET " + web.Prefix, "GET " + web.HistoryAPI, "GET " + web.EventsAPI} {
		d.mux.Handle(p, h)
	}
	sp := d.sampling(ctx)
	rec.Join(sp.clock)
	sp.afterStop(rec.Close)
	return nil
}
