package main

import (
	"context"
	"time"

	"github.com/spf13/pflag"

	"github.com/kstat/kstat/internal/otlp"
)

// otlpOptions are the flags of the OTLP push feature of "kstat serve".
type otlpOptions struct {
	cfg otlp.Config
}

var otlpOpts otlpOptions

func init() {
	features = append(features, feature{
		name: "otlp",
		flags: func(fs *pflag.FlagSet) {
			c := &otlpOpts.cfg
			fs.StringVar(&c.Endpoint, "otlp.endpoint", "",
				"push the metrics of /metrics over OTLP to this URL (empty: no push); http:// is plain, https:// uses TLS. For http/protobuf the full URL, e.g. http://collector:4318/v1/metrics or Prometheus's http://prometheus:9090/api/v1/otlp/v1/metrics; for grpc e.g. http://collector:4317")
			fs.StringVar(&c.Protocol, "otlp.protocol", otlp.ProtocolHTTP, "OTLP transport: http/protobuf or grpc")
			fs.DurationVar(&c.Interval, "otlp.interval", 15*time.Second, "time between OTLP pushes")
			fs.DurationVar(&c.Timeout, "otlp.timeout", 10*time.Second, "time limit of one OTLP push")
			fs.StringToStringVar(&c.Headers, "otlp.headers", nil, "headers sent with every OTLP push, e.g. authorization=Bearer\\ TOKEN (key=value, comma-separated)")
			fs.StringVar(&c.Temporality, "otlp.temporality", otlp.Cumulative,
				"temporality of pushed counters and histograms: cumulative (what Prometheus stores) or delta (the change since the last successful push)")
			fs.StringToStringVar(&c.Attributes, "otlp.resource-attributes", nil,
				"extra OTLP resource attributes (key=value, comma-separated); they override service.name=kstat, host.name, service.instance.id (default: the host name) and OTEL_RESOURCE_ATTRIBUTES")
			fs.StringVar(&c.CAFile, "otlp.tls.ca-file", "", "PEM CA bundle to verify an https OTLP endpoint with (default: the system's)")
			fs.StringVar(&c.CertFile, "otlp.tls.cert-file", "", "PEM client certificate for an https OTLP endpoint (with --otlp.tls.key-file)")
			fs.StringVar(&c.KeyFile, "otlp.tls.key-file", "", "PEM key of --otlp.tls.cert-file")
			fs.BoolVar(&c.InsecureSkipVerify, "otlp.tls.insecure-skip-verify", false, "do not verify the https OTLP endpoint's certificate (tests only)")
		},
		start: func(ctx context.Context, d *daemon) error { return startOTLP(ctx, d, otlpOpts) },
	})
}

// startOTLP pushes the daemon's metric model (the one /metrics serves,
// with its pid budget) over OTLP every --otlp.interval, and adds otlp/
// with the push counters. At shutdown it pushes once more.
func startOTLP(ctx context.Context, d *daemon, opts otlpOptions) error {
	if opts.cfg.Endpoint == "" {
		d.Off("otlp", "--otlp.endpoint is empty")
		return nil
	}
	cfg := opts.cfg
	cfg.Version = version
	p, err := otlp.New(ctx, cfg, d.metricsGatherer(), d.log.With("feature", "otlp"))
	if err != nil {
		return err
	}
	d.root.AddSubordinate(p.Source())
	d.log.Info("OTLP push started", "endpoint", cfg.Endpoint, "protocol", cfg.Protocol,
		"interval", cfg.Interval.String(), "temporality", cfg.Temporality)
	d.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
		defer cancel()
		if err := p.Shutdown(sctx); err != nil {
			d.log.Warn("OTLP: last push at shutdown", "err", err)
		}
	})
	return nil
}
