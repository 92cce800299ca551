// Package otlp pushes kstat's metrics with the OpenTelemetry SDK over OTLP
// (HTTP/protobuf or gRPC). It has no metric model of its own: the families
// come from the same prometheus.Gatherer that /metrics serves, turned into
// OpenTelemetry data by the Prometheus bridge, so both transports carry the
// same names, labels and cardinality budget.
//
// A push that fails is counted in the otlp/ source (and so in /metrics and
// the next successful push), logged with back-off, and retried at growing
// intervals; it never blocks collection, which does not wait for pushes.
// Files: otlp.go (configuration, Pusher), exporter.go (the counting,
// backing-off exporter and its source), delta.go (delta temporality).
package otlp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	promb "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	"google.golang.org/grpc/credentials"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kstat/kstat/statsfs"
)

// Protocols are the values Config.Protocol takes.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Temporalities are the values Config.Temporality takes.
const (
	Cumulative = "cumulative"
	Delta      = "delta"
)

// Config configures a Pusher.
type Config struct {
	// Endpoint is the receiver's URL: http:// (plain) or https:// (TLS).
	// For HTTP it is the full URL of the metrics resource, e.g.
	// http://prometheus:9090/api/v1/otlp/v1/metrics; a URL without a path
	// gets the OTLP default /v1/metrics. For gRPC, host and port count.
	Endpoint string
	// Protocol is ProtocolHTTP (default) or ProtocolGRPC.
	Protocol string
	// Interval is the time between pushes (default 15s).
	Interval time.Duration
	// Timeout bounds one push (default 10s); pushes never overlap.
	Timeout time.Duration
	// Headers are sent with every push (e.g. an authorization token).
	Headers map[string]string
	// TLS for https endpoints: a CA bundle to trust instead of the
	// system's, a client certificate and key, or no verification at all.
	CAFile, CertFile, KeyFile string
	InsecureSkipVerify        bool
	// Temporality of counters and histograms: Cumulative (default) or
	// Delta (each push carries the change since the last successful one).
	Temporality string
	// Attributes are extra resource attributes; they override the
	// defaults (service.name=kstat, host.name, service.instance.id, and
	// OTEL_RESOURCE_ATTRIBUTES from the environment).
	Attributes map[string]string
	// Version is the service.version resource attribute, when set.
	Version string
}

// MaxBackoff is the longest wait between push attempts after failures.
const MaxBackoff = 5 * time.Minute

// Pusher pushes a Gatherer's metrics periodically until Shutdown.
type Pusher struct {
	provider *sdkmetric.MeterProvider
	exp      *exporter
	src      *statsfs.Source
}

// New checks cfg and builds a Pusher of g's families; it starts pushing
// at once (the first push one Interval later). The pusher's own counters
// are in Source, which the caller adds to the tree g reads.
func New(ctx context.Context, cfg Config, g prometheus.Gatherer, log *slog.Logger) (*Pusher, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	inner, err := newExporter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		inner.Shutdown(ctx) //nolint:errcheck // already failing
		return nil, err
	}
	var producer sdkmetric.Producer = promb.NewMetricProducer(promb.WithGatherer(g))
	var commit func()
	if cfg.Temporality == Delta {
		d := newDeltaProducer(producer)
		producer, commit = d, d.commit
	}
	exp := newCountingExporter(inner, cfg.Interval, log, commit)
	reader := sdkmetric.NewPeriodicReader(exp,
		sdkmetric.WithInterval(cfg.Interval),
		sdkmetric.WithTimeout(cfg.Timeout),
		sdkmetric.WithProducer(producer))
	p := &Pusher{
		provider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res)),
		exp:      exp,
		src:      statsfs.NewSource("otlp"),
	}
	if err := p.src.AddValues(sourceTable, exp, 0); err != nil {
		p.provider.Shutdown(ctx) //nolint:errcheck // already failing
		return nil, err
	}
	return p, nil
}

// Source is the otlp/ source: pushes, failures, attempts skipped while
// backing off, and the time of the last successful push.
func (p *Pusher) Source() *statsfs.Source { return p.src }

// Shutdown pushes once more (within ctx) and stops.
func (p *Pusher) Shutdown(ctx context.Context) error {
	p.exp.final.Store(true)
	return p.provider.Shutdown(ctx)
}

func (c *Config) defaults() error {
	if c.Endpoint == "" {
		return errors.New("otlp: no endpoint")
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("otlp: endpoint %q is not an http:// or https:// URL (e.g. http://127.0.0.1:4318/v1/metrics)", c.Endpoint)
	}
	switch c.Protocol {
	case "":
		c.Protocol = ProtocolHTTP
	case ProtocolHTTP, ProtocolGRPC:
	default:
		return fmt.Errorf("otlp: protocol %q: want %s or %s", c.Protocol, ProtocolHTTP, ProtocolGRPC)
	}
	switch c.Temporality {
	case "":
		c.Temporality = Cumulative
	case Cumulative, Delta:
	default:
		return fmt.Errorf("otlp: temporality %q: want %s or %s", c.Temporality, Cumulative, Delta)
	}
	if c.Interval == 0 {
		c.Interval = 15 * time.Second
	}
	if c.Interval < 0 {
		return fmt.Errorf("otlp: interval %v is negative", c.Interval)
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if u.Scheme == "http" && (c.CAFile != "" || c.CertFile != "" || c.InsecureSkipVerify) {
		return fmt.Errorf("otlp: TLS settings given for the plain http endpoint %q: use https://", c.Endpoint)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("otlp: a client certificate needs both its certificate and its key file")
	}
	return nil
}

// tlsConfig is the TLS client configuration of an https endpoint.
func (c *Config) tlsConfig() (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // the user asked
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("otlp: reading the CA file: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("otlp: %s holds no PEM certificate", c.CAFile)
		}
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("otlp: loading the client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// newExporter builds the SDK's OTLP exporter. The SDK's own retries are
// off: the counting exporter retries at the next interval, with back-off,
// so a push never holds the reader longer than Timeout.
func newExporter(ctx context.Context, c Config) (sdkmetric.Exporter, error) {
	secure := strings.HasPrefix(c.Endpoint, "https://")
	var tlsCfg *tls.Config
	if secure {
		var err error
		if tlsCfg, err = c.tlsConfig(); err != nil {
			return nil, err
		}
	}
	if c.Protocol == ProtocolGRPC {
		opts := []otlpmetricgrpc.Option{
			otlpmetricgrpc.WithEndpointURL(c.Endpoint),
			otlpmetricgrpc.WithTimeout(c.Timeout),
			otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: false}),
		}
		if len(c.Headers) > 0 {
			opts = append(opts, otlpmetricgrpc.WithHeaders(c.Headers))
		}
		if secure {
			opts = append(opts, otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		return otlpmetricgrpc.New(ctx, opts...)
	}
	opts := []otlpmetrichttp.Option{
		otlpmetrichttp.WithEndpointURL(c.Endpoint),
		otlpmetrichttp.WithTimeout(c.Timeout),
		otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}),
	}
	if len(c.Headers) > 0 {
		opts = append(opts, otlpmetrichttp.WithHeaders(c.Headers))
	}
	if secure {
		opts = append(opts, otlpmetrichttp.WithTLSClientConfig(tlsCfg))
	}
	return otlpmetrichttp.New(ctx, opts...)
}

// newResource is service.name=kstat, host.name and service.instance.id
// (the host name: one kstat per host), then OTEL_RESOURCE_ATTRIBUTES,
// then cfg.Attributes, each overriding the ones before.
func newResource(ctx context.Context, c Config) (*resource.Resource, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("otlp: host name for the resource: %w", err)
	}
	attrs := []attribute.KeyValue{
		attribute.String("service.name", "kstat"),
		attribute.String("host.name", host),
		attribute.String("service.instance.id", host),
	}
	if c.Version != "" {
		attrs = append(attrs, attribute.String("service.version", c.Version))
	}
	var extra []attribute.KeyValue
	for k, v := range c.Attributes {
		extra = append(extra, attribute.String(k, v))
	}
	return resource.New(ctx,
		resource.WithAttributes(attrs...),
		resource.WithFromEnv(),
		resource.WithAttributes(extra...))
}
