package main

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/kstat/kstat/web"
)

// dashboardOptions are the flags of the dashboard feature of "kstat serve".
type dashboardOptions struct {
	enabled bool // serve the page at / of the HTTP server
}

var dashboardOpts dashboardOptions

func init() {
	features = append(features, feature{
		name: "dashboard",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&dashboardOpts.enabled, "dashboard", true,
				"serve the live dashboard page at / of the HTTP server (--listen): memory, activity, network devices and the KSTAT, tracer and telemetry knobs, refreshed every second")
		},
		start: func(_ context.Context, d *daemon) error { return startDashboard(d, dashboardOpts) },
	})
}

// startDashboard adds the dashboard's page and its files to the daemon's
// HTTP mux; the HTTP feature serves them next to /api/v1/.
func startDashboard(d *daemon, opts dashboardOptions) error {
	if !opts.enabled {
		d.log.Info("dashboard disabled (--dashboard=false)")
		return nil
	}
	h := web.Handler(version)
	d.mux.Handle("GET /{$}", h)
	d.mux.Handle("GET "+web.Prefix, h)
	return nil
}
