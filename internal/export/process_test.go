package export

import (
	"math"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// TestProcessCollectorMatchesClientGolang: the process collector /metrics
// uses gives the families of client_golang's (procfs-based) process
// collector: the same names, help texts and types, and the same values
// (the ones that move between two reads within a margin).
func TestProcessCollectorMatchesClientGolang(t *testing.T) {
	theirs := prometheus.NewPedanticRegistry()
	theirs.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mine := prometheus.NewPedanticRegistry()
	mine.MustRegister(newProcessCollector("/proc"))
	// Some network traffic of the process's namespace between the
	// reads is allowed for; an open file is not.
	f, err := os.Open("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want, err := theirs.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got, err := mine.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range got {
		byName[mf.GetName()] = mf
	}
	if len(got) != len(want) || len(want) != 9 {
		t.Errorf("%d families, client_golang %d (want 9)", len(got), len(want))
	}
	for _, w := range want {
		g := byName[w.GetName()]
		if g == nil {
			t.Errorf("no %s", w.GetName())
			continue
		}
		if g.GetHelp() != w.GetHelp() || g.GetType() != w.GetType() || len(g.Metric) != 1 || len(g.Metric[0].Label) != 0 {
			t.Errorf("%s: help %q type %v, client_golang's %q %v", w.GetName(), g.GetHelp(), g.GetType(), w.GetHelp(), w.GetType())
			continue
		}
		value := func(mf *dto.MetricFamily) float64 {
			if m := mf.Metric[0]; m.Counter != nil {
				return m.Counter.GetValue()
			}
			return mf.Metric[0].Gauge.GetValue()
		}
		gv, wv := value(g), value(w)
		var margin float64
		switch w.GetName() {
		case "process_cpu_seconds_total":
			margin = 0.5 // the process runs between the reads
		case "process_virtual_memory_bytes", "process_resident_memory_bytes":
			margin = 0.1 * wv // the runtime may map or touch memory
		case "process_network_receive_bytes_total", "process_network_transmit_bytes_total":
			margin = 0.01*wv + 1e6 // the namespace's traffic, not the process's
		case "process_start_time_seconds":
			margin = 0.011 // client_golang adds the same numbers
		}
		if math.Abs(gv-wv) > margin {
			t.Errorf("%s = %v, client_golang read %v", w.GetName(), gv, wv)
		}
	}
}

// BenchmarkProcessCollector compares the process collectors, each
// gathered through a registry of its own.
func BenchmarkProcessCollector(b *testing.B) {
	for _, c := range []struct {
		name string
		c    prometheus.Collector
	}{
		{"kstat", newProcessCollector("/proc")},
		{"client_golang", collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})},
	} {
		b.Run(c.name, func(b *testing.B) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(c.c)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := reg.Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
