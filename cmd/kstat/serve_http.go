package main

import (
	"context"
	"time"

	"github.com/spf13/pflag"

	"github.com/kstat/kstat/internal/export"
	"github.com/kstat/kstat/internal/server"
)

// httpOptions are the flags of the HTTP feature of "kstat serve".
type httpOptions struct {
	listen  string // address of /metrics and /api/v1; "" serves no HTTP
	maxPids int    // pid budget of /metrics
}

var httpOpts httpOptions

func init() {
	features = append(features, feature{
		name: "http",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&httpOpts.listen, "listen", "127.0.0.1:9090",
				"address of the HTTP server: Prometheus /metrics, the JSON API under /api/v1/ and /healthz (empty: no HTTP server)")
			fs.IntVar(&httpOpts.maxPids, "metrics-max-pids", export.DefaultMaxPids,
				"how many pids keep their series in /metrics, the most active first (by the sum of their counters); the others are dropped and counted in kstat_exporter_pids_dropped (0: no per-pid series, -1: no limit)")
		},
		start: func(ctx context.Context, d *daemon) error { return startHTTP(ctx, d, httpOpts) },
	})
}

// startHTTP serves the daemon's tree, knobs and feature handlers (d.mux)
// over HTTP until the daemon stops. It listens in the daemon's second
// phase; an address it cannot listen on stops the daemon.
func startHTTP(ctx context.Context, d *daemon, opts httpOptions) error {
	if opts.listen == "" {
		d.log.Info("HTTP server disabled (--listen is empty)")
		d.Off("http", `--listen is empty`)
		return nil
	}
	c := export.New(d.root, export.Options{
		Collectors: d.collectors,
		MaxPids:    opts.maxPids,
		Version:    version,
		Commit:     commit(),
	})
	srv := server.New(server.Config{
		Addr:     opts.listen,
		Root:     d.root,
		Knobs:    d.knobs,
		Gatherer: export.NewGatherer(c),
		Mux:      d.mux,
		Log:      d.log,
		Health:   d.states,
	})
	d.Listen("http", func() error {
		if err := srv.Listen(); err != nil {
			return err
		}
		d.log.Info("HTTP server listening", "addr", srv.Addr().String())
		base := "http://" + srv.Addr().String()
		d.Announce("metrics", base+"/metrics")
		d.Announce("api", base+"/api/v1/")
		if dashboardOpts.enabled {
			d.Announce("dashboard", base+"/")
		}
		d.Go(func() {
			if err := srv.Serve(); err != nil {
				d.log.Error("HTTP server stopped", "err", err)
			}
		})
		d.Go(func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				d.log.Warn("HTTP shutdown", "err", err)
			}
		})
		return nil
	})
	return nil
}
