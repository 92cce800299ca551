package otlp

import (
	"bytes"
	"context"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// receiver is a real OTLP/HTTP metrics endpoint on loopback that keeps
// every request it accepted; fail makes it answer 503.
type receiver struct {
	mu      sync.Mutex
	reqs    []*colmetricpb.ExportMetricsServiceRequest
	headers []http.Header
	fail    atomic.Bool
	tries   atomic.Int64
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.tries.Add(1)
	if req.URL.Path != "/v1/metrics" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if r.fail.Load() {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(req.Body)
	m := new(colmetricpb.ExportMetricsServiceRequest)
	if err := proto.Unmarshal(body, m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.record(m, req.Header)
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&colmetricpb.ExportMetricsServiceResponse{})
	w.Write(out)
}

func (r *receiver) record(m *colmetricpb.ExportMetricsServiceRequest, h http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, m)
	r.headers = append(r.headers, h)
}

func (r *receiver) requests() []*colmetricpb.ExportMetricsServiceRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*colmetricpb.ExportMetricsServiceRequest(nil), r.reqs...)
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testRegistry holds a labelled counter and a gauge, as export's families.
func testRegistry() (*prometheus.Registry, *prometheus.CounterVec, prometheus.Gauge) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kstat_test_packets_total", Help: "packets"}, []string{"device"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "kstat_test_memory_bytes", Help: "memory"})
	reg.MustRegister(c, g)
	return reg, c, g
}

// find returns the metric of that name in a request, or nil.
func find(req *colmetricpb.ExportMetricsServiceRequest, name string) *metricpb.Metric {
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name == name {
					return m
				}
			}
		}
	}
	return nil
}

func resourceAttrs(req *colmetricpb.ExportMetricsServiceRequest) map[string]string {
	out := map[string]string{}
	for _, kv := range req.ResourceMetrics[0].Resource.Attributes {
		out[kv.Key] = kv.Value.GetStringValue()
	}
	return out
}

func newTestPusher(t *testing.T, cfg Config, g prometheus.Gatherer, log *bytes.Buffer) *Pusher {
	t.Helper()
	var w io.Writer = io.Discard
	if log != nil {
		w = &lockedWriter{w: log}
	}
	p, err := New(context.Background(), cfg, g, slog.New(slog.NewTextHandler(w, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Shutdown(ctx) //nolint:errcheck // the receiver may be gone
	})
	return p
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func value(t *testing.T, p *Pusher, name string) float64 {
	t.Helper()
	r, err := p.Source().GetByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return r.Float64()
}

func TestPushHTTP(t *testing.T) {
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	reg, c, g := testRegistry()
	c.WithLabelValues("lo").Add(7)
	g.Set(4096)
	p := newTestPusher(t, Config{
		Endpoint: srv.URL + "/v1/metrics", Interval: 50 * time.Millisecond,
		Headers:    map[string]string{"X-Token": "secret"},
		Attributes: map[string]string{"deployment.environment": "test", "service.instance.id": "node-a"},
		Version:    "1.2.3",
	}, reg, nil)
	waitFor(t, "a push", func() bool { return len(rcv.requests()) > 0 })
	req := rcv.requests()[0]
	host, _ := os.Hostname()
	attrs := resourceAttrs(req)
	for k, want := range map[string]string{"service.name": "kstat", "host.name": host, "service.instance.id": "node-a",
		"deployment.environment": "test", "service.version": "1.2.3"} {
		if attrs[k] != want {
			t.Errorf("resource attribute %s = %q, want %q (all: %v)", k, attrs[k], want, attrs)
		}
	}
	rcv.mu.Lock()
	h := rcv.headers[0].Get("X-Token")
	rcv.mu.Unlock()
	if h != "secret" {
		t.Errorf("header X-Token = %q", h)
	}
	cm := find(req, "kstat_test_packets_total")
	if cm == nil || cm.GetSum() == nil || !cm.GetSum().IsMonotonic ||
		cm.GetSum().AggregationTemporality != metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
		t.Fatalf("counter not a cumulative monotonic sum: %v", cm)
	}
	dp := cm.GetSum().DataPoints[0]
	if dp.GetAsDouble() != 7 || len(dp.Attributes) != 1 || dp.Attributes[0].Key != "device" || dp.Attributes[0].Value.GetStringValue() != "lo" {
		t.Errorf("counter point = %v", dp)
	}
	gm := find(req, "kstat_test_memory_bytes")
	if gm == nil || gm.GetGauge().DataPoints[0].GetAsDouble() != 4096 {
		t.Errorf("gauge = %v", gm)
	}
	waitFor(t, "the push counter", func() bool { return value(t, p, "pushes") >= 1 })
	if f := value(t, p, "push_failures"); f != 0 {
		t.Errorf("push_failures = %v", f)
	}
}

func TestPushFailuresBackOff(t *testing.T) {
	rcv := &receiver{}
	rcv.fail.Store(true)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	reg, _, _ := testRegistry()
	var log bytes.Buffer
	interval := 20 * time.Millisecond
	p := newTestPusher(t, Config{Endpoint: srv.URL + "/v1/metrics", Interval: interval}, reg, &log)
	// Collection is never blocked: gathering goes on whatever the pushes do.
	waitFor(t, "5 failures", func() bool { return value(t, p, "push_failures") >= 5 })
	failures, skipped := value(t, p, "push_failures"), value(t, p, "pushes_skipped")
	if skipped < failures {
		t.Errorf("after %v failures only %v attempts were skipped: no back-off", failures, skipped)
	}
	if b := value(t, p, "backoff"); b < 4*interval.Seconds() {
		t.Errorf("backoff = %vs after %v failures", b, failures)
	}
	// The receiver saw exactly the attempts counted as failures.
	if tries := rcv.tries.Load(); float64(tries) < failures || float64(tries) > failures+1 {
		t.Errorf("receiver saw %d attempts, kstat counted %v failures", tries, failures)
	}
	// Logged with back-off: the 1st, 2nd, 4th failure..., not every one.
	warns := strings.Count(log.String(), "OTLP push failed")
	if warns < 3 || float64(warns) >= failures {
		t.Errorf("%d warnings for %v failures:\n%s", warns, failures, log.String())
	}
	rcv.fail.Store(false)
	waitFor(t, "a push after recovery", func() bool { return value(t, p, "pushes") >= 1 })
	if b := value(t, p, "backoff"); b != 0 {
		t.Errorf("backoff = %v after a success", b)
	}
}

// sumPoints returns a request's value of the counter's series "lo".
func sumPoint(t *testing.T, req *colmetricpb.ExportMetricsServiceRequest) (float64, bool) {
	m := find(req, "kstat_test_packets_total")
	if m == nil {
		return 0, false
	}
	if m.GetSum().AggregationTemporality != metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA {
		t.Fatalf("temporality %v, want delta", m.GetSum().AggregationTemporality)
	}
	return m.GetSum().DataPoints[0].GetAsDouble(), true
}

func TestDeltaTemporality(t *testing.T) {
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	reg, c, _ := testRegistry()
	lo := c.WithLabelValues("lo")
	lo.Add(10)
	newTestPusher(t, Config{Endpoint: srv.URL + "/v1/metrics", Interval: 30 * time.Millisecond, Temporality: Delta}, reg, nil)
	waitFor(t, "a push", func() bool { return len(rcv.requests()) >= 1 })
	// Pushes fail for a while: the counts of that time arrive later.
	rcv.fail.Store(true)
	lo.Add(5)
	waitFor(t, "failed attempts", func() bool { return rcv.tries.Load() >= int64(len(rcv.requests()))+2 })
	lo.Add(3)
	rcv.fail.Store(false)
	waitFor(t, "pushes after recovery", func() bool {
		var total float64
		for _, r := range rcv.requests() {
			v, _ := sumPoint(t, r)
			total += v
		}
		if total > 18 {
			t.Fatalf("deltas add up to %v, more than the counter's 18", total)
		}
		return total == 18
	})
	// Every push carried a delta: their sum is the counter, never more.
	time.Sleep(100 * time.Millisecond)
	var total float64
	for _, r := range rcv.requests() {
		v, _ := sumPoint(t, r)
		total += v
	}
	if total != 18 {
		t.Errorf("deltas add up to %v, the counter is 18", total)
	}
}

// grpcReceiver is a real OTLP/gRPC metrics service on loopback.
type grpcReceiver struct {
	colmetricpb.UnimplementedMetricsServiceServer
	r *receiver
}

func (g *grpcReceiver) Export(_ context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	g.r.record(req, nil)
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

func TestPushGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &receiver{}
	s := grpc.NewServer()
	colmetricpb.RegisterMetricsServiceServer(s, &grpcReceiver{r: rcv})
	go s.Serve(lis)
	defer s.Stop()
	reg, c, _ := testRegistry()
	c.WithLabelValues("eth0").Add(3)
	newTestPusher(t, Config{Endpoint: "http://" + lis.Addr().String(), Protocol: ProtocolGRPC, Interval: 50 * time.Millisecond}, reg, nil)
	waitFor(t, "a gRPC push", func() bool { return len(rcv.requests()) > 0 })
	m := find(rcv.requests()[0], "kstat_test_packets_total")
	if m == nil || m.GetSum().DataPoints[0].GetAsDouble() != 3 {
		t.Errorf("counter over gRPC = %v", m)
	}
}

func TestPushTLS(t *testing.T) {
	rcv := &receiver{}
	srv := httptest.NewTLSServer(rcv)
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	reg, _, _ := testRegistry()
	// Not trusted with the system's CAs: every push fails.
	bad := newTestPusher(t, Config{Endpoint: srv.URL + "/v1/metrics", Interval: 30 * time.Millisecond}, reg, nil)
	waitFor(t, "a TLS failure", func() bool { return value(t, bad, "push_failures") >= 1 })
	if rcv.tries.Load() != 0 {
		t.Errorf("an untrusted server got %d requests", rcv.tries.Load())
	}
	good := newTestPusher(t, Config{Endpoint: srv.URL + "/v1/metrics", Interval: 30 * time.Millisecond, CAFile: ca}, reg, nil)
	waitFor(t, "a TLS push", func() bool { return value(t, good, "pushes") >= 1 })
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{},
		{Endpoint: "collector:4318"},
		{Endpoint: "ftp://x/"},
		{Endpoint: "http://x/", Protocol: "udp"},
		{Endpoint: "http://x/", Temporality: "both"},
		{Endpoint: "http://x/", Interval: -time.Second},
		{Endpoint: "http://x/", CAFile: "/ca.pem"},
		{Endpoint: "https://x/", CertFile: "/c.pem"},
		{Endpoint: "https://x/", CAFile: "/nonexistent/ca.pem"},
	} {
		if _, err := New(context.Background(), c, prometheus.NewRegistry(), slog.Default()); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
