package export

import (
	"bytes"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/statsfs"
)

// BenchmarkScrapeProc is one /metrics scrape of the default /proc
// collectors, every collector read afresh, written as text: what a
// Prometheus scrape costs the daemon, less HTTP.
func BenchmarkScrapeProc(b *testing.B) {
	root := statsfs.NewSource("kstat")
	reg := &collector.Registry{}
	if err := reg.Build(collector.Config{Paths: collector.Paths{Proc: "/proc", Sys: "/sys"}, Root: root},
		collector.Only("meminfo", "netdev", "sockstat", "stat", "loadavg", "uptime", "interrupts", "softirqs")); err != nil {
		b.Fatal(err)
	}
	c := New(root, Options{Collectors: reg, MaxPids: DefaultMaxPids})
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		for _, col := range reg.All() {
			if r, ok := col.(interface{ Expire() }); ok {
				r.Expire()
			}
		}
		mfs, err := c.Gather()
		if err != nil {
			b.Fatal(err)
		}
		buf.Reset()
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
				b.Fatal(err)
			}
		}
	}
}
