package export

import (
	"bytes"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/statsfs"
)

func text(t *testing.T, mfs []*dto.MetricFamily) string {
	t.Helper()
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestGatherMatchesRegistry: Collector.Gather, which builds the families
// itself, gives exactly what a prometheus.Registry makes of Collect, on
// trees with labels, aggregates, padding, duplicates and the pid budget.
func TestGatherMatchesRegistry(t *testing.T) {
	root, recs := tree(t, 5, 300, 40, 2000, 1)
	fam := statsfs.NewSource("fam")
	root.AddSubordinate(fam)
	add(t, fam, statsfs.NewInstance("device", "eth0"), oneTable, 1)
	add(t, fam, statsfs.NewInstance("cpu", "0"), oneTable, 2)
	add(t, root, statsfs.NewSource("io.q"), oneTable, 1)
	add(t, root, statsfs.NewSource("io_q"), oneTable, 2)
	add(t, root, statsfs.NewSource("io-q"), totalGauge, 3)
	reg := &collector.Registry{}
	st := collector.NewRefresherMaxAge("meminfo", time.Hour, func() error { return nil }) // one read: both scrapes see its duration
	_ = st.Refresh()
	reg.Add(st)

	viaCollect := New(root, Options{MaxPids: 3, Collectors: reg})
	direct := New(root, Options{MaxPids: 3, Collectors: reg})
	pr := prometheus.NewPedanticRegistry()
	pr.MustRegister(viaCollect)
	for round := range 3 {
		want, err := pr.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got, err := direct.Gather()
		if err != nil {
			t.Fatal(err)
		}
		w, g := text(t, want), text(t, got)
		if w != g {
			t.Fatalf("round %d: Gather differs from the registry's\n--- registry\n%s\n--- Gather\n%s", round, w, g)
		}
		recs["1"].Add(0, 1e6) // pid 1 enters the budget
		recs["eth0"].Add(0, 7)
	}
	// Gather through NewGatherer adds the Go and process families.
	mfs, err := NewGatherer(direct).Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for i, mf := range mfs {
		if i > 0 && mfs[i-1].GetName() >= mf.GetName() {
			t.Errorf("families out of order: %s then %s", mfs[i-1].GetName(), mf.GetName())
		}
		names[mf.GetName()] = true
	}
	for _, n := range []string{"go_goroutines", "process_cpu_seconds_total", "kstat_net_dev_rx_bytes_total", "kstat_build_info"} {
		if !names[n] {
			t.Errorf("NewGatherer has no %s", n)
		}
	}
}
