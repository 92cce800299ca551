package export

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kstat/kstat/statsfs"
)

// realisticTree is about the daemon's tree on a small server: 60 memory
// values, 8 network devices of 16 values with aggregates, 40 IRQ lines of
// 2 values, and 200 traced pids of 8 values (of which the budget keeps 50).
func realisticTree(b *testing.B) *statsfs.Source {
	root := statsfs.NewSource("kstat")
	mk := func(n int, flag statsfs.Flag, aggr statsfs.Aggr) *statsfs.Table {
		vs := make([]statsfs.Value, n)
		for i := range vs {
			vs[i] = statsfs.Value{Name: fmt.Sprintf("v%d", i), Help: "A value.", Type: statsfs.U64, Unit: "bytes", Flag: flag, Aggr: aggr}
		}
		return statsfs.NewTable(vs...)
	}
	group := func(parent *statsfs.Source, name string, t *statsfs.Table, label string, n int, agg bool) {
		s := statsfs.NewSource("%s", name)
		if agg {
			if err := s.AddValues(t, nil, 0); err != nil {
				b.Fatal(err)
			}
		}
		for i := range n {
			var in *statsfs.Source
			if label == "" {
				in = s
			} else {
				in = statsfs.NewInstance(label, fmt.Sprint(1000+i))
				s.AddSubordinate(in)
			}
			c := statsfs.NewCounters(t)
			for j := range t.Len() {
				c.Store(j, uint64(i*j))
			}
			if err := in.AddValues(t, c, 0); err != nil {
				b.Fatal(err)
			}
		}
		parent.AddSubordinate(s)
	}
	group(root, "memory", mk(60, statsfs.Floating, statsfs.None), "", 1, false)
	group(root, "net", mk(16, statsfs.Cumulative, statsfs.Sum), "device", 8, true)
	group(root, "interrupts", mk(2, statsfs.Cumulative, statsfs.Sum), "irq", 40, true)
	group(root, "tracer", mk(8, statsfs.Cumulative, statsfs.Sum), "pid", 200, false)
	return root
}

// BenchmarkCollect is one scrape's Collect alone.
func BenchmarkCollect(b *testing.B) {
	c := New(realisticTree(b), Options{MaxPids: DefaultMaxPids})
	ch := make(chan prometheus.Metric, 4096)
	b.ReportAllocs()
	for b.Loop() {
		c.Collect(ch)
		for len(ch) > 0 {
			<-ch
		}
	}
}

// BenchmarkGather is a scrape through the registry, as /metrics does it,
// without the Go and process collectors.
func BenchmarkGather(b *testing.B) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(New(realisticTree(b), Options{MaxPids: DefaultMaxPids}))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDirectGather is a scrape through Collector.Gather, as OTLP
// does it, without the Go and process collectors.
func BenchmarkDirectGather(b *testing.B) {
	c := New(realisticTree(b), Options{MaxPids: DefaultMaxPids})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReusedGather is a scrape into the Collector's reused buffers,
// as /metrics does it, without the Go and process collectors.
func BenchmarkReusedGather(b *testing.B) {
	c := New(realisticTree(b), Options{MaxPids: DefaultMaxPids})
	b.ReportAllocs()
	for b.Loop() {
		_, done := c.gatherReused()
		done()
	}
}
