package export

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/statsfs"
)

// procCollector is a Collector of the default /proc collectors and a
// function that makes every one of them read afresh at its next refresh.
func procCollector(b *testing.B) (*Collector, func()) {
	root := statsfs.NewSource("kstat")
	reg := &collector.Registry{}
	if err := reg.Build(collector.Config{Paths: collector.Paths{Proc: "/proc", Sys: "/sys"}, Root: root},
		collector.Only("meminfo", "netdev", "sockstat", "stat", "loadavg", "uptime", "interrupts", "softirqs")); err != nil {
		b.Fatal(err)
	}
	expire := func() {
		for _, col := range reg.All() {
			if r, ok := col.(interface{ Expire() }); ok {
				r.Expire()
			}
		}
	}
	return New(root, Options{Collectors: reg, MaxPids: DefaultMaxPids}), expire
}

// BenchmarkScrapeHandler is one whole /metrics request of the default
// /proc collectors (every collector read afresh), with the Go and process
// collectors, through the handler the server serves, less the network.
func BenchmarkScrapeHandler(b *testing.B) {
	c, expire := procCollector(b)
	h := promhttp.HandlerForTransactional(NewGatherer(c).Transactional(), promhttp.HandlerOpts{})
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		expire()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

// BenchmarkScrapeProc is one /metrics scrape of the default /proc
// collectors, every collector read afresh, written as text: what a
// Prometheus scrape costs the daemon, less HTTP.
func BenchmarkScrapeProc(b *testing.B) {
	c, expire := procCollector(b)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		expire()
		mfs, done := c.gatherReused()
		buf.Reset()
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
				b.Fatal(err)
			}
		}
		done()
	}
}
