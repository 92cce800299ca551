package main

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/kstat/kstat/internal/export"
	"github.com/kstat/kstat/internal/server"
)

// httpOptions are the flags of the HTTP feature of "kstat serve".
type httpOptions struct {
	listen       string   // address of /metrics and /api/v1; "" serves no HTTP
	maxPids      int      // pid budget of /metrics
	webConfig    string   // exporter-toolkit web config file: TLS, basic auth
	writeUsers   []string // basic-auth users that may write
	allowedHosts []string // more names a write's Host may carry
	socket       string   // the control socket; "" for none
	socketGroup  string   // group whose members may use the socket
}

// defaultSocket is where the daemon serves its control socket and where
// the CLI looks for it.
const defaultSocket = "/run/kstat.sock"

var httpOpts httpOptions

func init() {
	features = append(features, feature{
		name: "http",
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&httpOpts.listen, "listen", "127.0.0.1:9090",
				"address of the HTTP server: Prometheus /metrics, the JSON API under /api/v1/ and /healthz (empty: no HTTP server)")
			fs.IntVar(&httpOpts.maxPids, "metrics-max-pids", export.DefaultMaxPids,
				"how many pids keep their series in /metrics, the most active first (by the sum of their counters); the others are dropped and counted in kstat_exporter_pids_dropped (0: no per-pid series, -1: no limit)")
			fs.StringVar(&httpOpts.webConfig, "web.config.file", "",
				"exporter-toolkit web config file (https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md) for --listen: TLS and bcrypt basic-auth users; without it HTTP is plain and read-only")
			fs.StringSliceVar(&httpOpts.writeUsers, "web.write-users", nil,
				"basic-auth users of --web.config.file that may change settings and clear counters over HTTPS (comma-separated); the others may only read")
			fs.StringSliceVar(&httpOpts.allowedHosts, "web.allowed-hosts", nil,
				"more host names a write's Host and Origin headers may carry, besides localhost, this host's name and its addresses (writes naming other hosts are refused, against DNS rebinding)")
			fs.StringVar(&httpOpts.socket, "control-socket", defaultSocket,
				"path of the control socket, mode 0600, serving the same API as --listen to root (and --control-socket.group), who may write; the CLI uses it when no mount is there (empty: none)")
			fs.StringVar(&httpOpts.socketGroup, "control-socket.group", "",
				"group (name or gid) whose members may also use the control socket, checked with SO_PEERCRED; the socket is then mode 0660 and owned by the group")
		},
		start: func(ctx context.Context, d *daemon) error { return startHTTP(ctx, d, httpOpts) },
	})
}

// metricsGatherer is the one metric model of the daemon's tree, with the
// --metrics-max-pids budget: /metrics serves it and OTLP pushes it.
func (d *daemon) metricsGatherer() prometheus.Gatherer {
	d.gatherOnce.Do(func() {
		d.gatherer = export.NewGatherer(export.New(d.root, export.Options{
			Collectors: d.collectors,
			MaxPids:    httpOpts.maxPids,
			Version:    version,
			Commit:     commit(),
		}))
	})
	return d.gatherer
}

// startHTTP serves the daemon's tree, knobs and feature handlers (d.mux)
// over HTTP and on the control socket until the daemon stops. It listens
// in the daemon's second phase; an address or a socket it cannot listen
// on stops the daemon.
func startHTTP(ctx context.Context, d *daemon, opts httpOptions) error {
	if opts.listen == "" {
		d.log.Info("HTTP server disabled (--listen is empty)")
		d.Off("http", `--listen is empty`)
	}
	if opts.socket == "" {
		d.log.Info("control socket disabled (--control-socket is empty)")
	}
	if opts.listen == "" && opts.socket == "" {
		return nil
	}
	srv := server.New(server.Config{
		Addr:     opts.listen,
		Root:     d.root,
		Knobs:    d.knobs,
		Gatherer: d.metricsGatherer(),
		Mux:      d.mux,
		Log:      d.log,
		Health:   d.states,

		WebConfigFile: opts.webConfig,
		WriteUsers:    opts.writeUsers,
		AllowedHosts:  opts.allowedHosts,
		Socket:        opts.socket,
		SocketGroup:   opts.socketGroup,
	})
	d.Listen("http", func() error {
		if err := srv.Listen(); err != nil {
			return err
		}
		if a := srv.Addr(); a != nil {
			access := "read-only (writes need --web.config.file and --web.write-users)"
			scheme := "http://"
			if opts.webConfig != "" {
				scheme = "https://"
			}
			if len(opts.writeUsers) > 0 {
				access = "writes by " + strings.Join(opts.writeUsers, ",") + " over HTTPS"
			}
			d.log.Info("HTTP server listening", "addr", a.String(), "access", access)
			base := scheme + a.String()
			d.Announce("metrics", base+"/metrics")
			d.Announce("api", base+"/api/v1/")
			if dashboardOpts.enabled {
				d.Announce("dashboard", base+"/")
			}
		}
		if opts.socket != "" {
			d.log.Info("control socket listening", "path", opts.socket)
			d.Announce("control_socket", opts.socket)
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
