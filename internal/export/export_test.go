package export

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/statsfs"
)

var (
	memTable = statsfs.NewTable(
		statsfs.Value{Name: "total", Help: "Usable RAM.", Type: statsfs.U64, Unit: "bytes", Flag: statsfs.Floating},
		statsfs.Value{Name: "MemFree", Help: "Free RAM.", Type: statsfs.U64, Unit: "bytes", Flag: statsfs.Floating},
	)
	devTable = statsfs.NewTable(
		statsfs.Value{Name: "rx_bytes", Help: "Bytes received.", Type: statsfs.U64, Unit: "bytes", Aggr: statsfs.Sum},
		statsfs.Value{Name: "rx_packets", Help: "Packets received.", Type: statsfs.U64, Unit: "packets", Aggr: statsfs.Max},
		statsfs.Value{Name: "up", Help: "Device is up.", Type: statsfs.Bool, Flag: statsfs.Floating, Aggr: statsfs.CountZero},
	)
	pidTable = statsfs.NewTable(
		statsfs.Value{Name: "kmalloc_calls", Help: "kmalloc calls.", Type: statsfs.U64, Unit: "calls", Aggr: statsfs.Sum},
		statsfs.Value{Name: "temp", Help: "A signed gauge.", Type: statsfs.S32, Flag: statsfs.Floating},
	)
)

// tree builds kstat/{memory, net/dev/{eth0,lo}, tracer/{pids...}} with
// known numbers.
func tree(t testing.TB, pids ...uint64) (*statsfs.Source, map[string]*statsfs.Counters) {
	t.Helper()
	root := statsfs.NewSource("kstat")
	recs := map[string]*statsfs.Counters{}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mem := statsfs.NewSource("memory")
	m := statsfs.NewCounters(memTable)
	m.Store(0, 8<<30)
	m.Store(1, 1<<30)
	must(mem.AddValues(memTable, m, 0))
	root.AddSubordinate(mem)
	recs["memory"] = m

	net := statsfs.NewSource("net")
	dev := statsfs.NewSource("dev")
	must(dev.AddValues(devTable, nil, 0))
	for i, name := range []string{"eth0", "lo"} {
		s := statsfs.NewInstance("device", name)
		c := statsfs.NewCounters(devTable)
		c.Store(0, uint64(1000*(i+1)))
		c.Store(1, uint64(10*(i+1)))
		c.Store(2, uint64(i))
		must(s.AddValues(devTable, c, 0))
		dev.AddSubordinate(s)
		recs[name] = c
	}
	net.AddSubordinate(dev)
	root.AddSubordinate(net)

	tr := statsfs.NewSource("tracer")
	must(tr.AddValues(pidTable, nil, 0))
	for _, p := range pids {
		s := statsfs.NewInstance("pid", fmt.Sprint(p))
		c := statsfs.NewCounters(pidTable)
		c.Store(0, p*100)
		neg := int64(-3)
		c.Store(1, uint64(neg))
		must(s.AddValues(pidTable, c, 0))
		tr.AddSubordinate(s)
		recs[fmt.Sprint(p)] = c
	}
	root.AddSubordinate(tr)
	return root, recs
}

func TestMapping(t *testing.T) {
	root, _ := tree(t, 7)
	c := New(root, Options{MaxPids: DefaultMaxPids})
	want := `
# HELP kstat_memory_total_bytes Usable RAM.
# TYPE kstat_memory_total_bytes gauge
kstat_memory_total_bytes 8.589934592e+09
# HELP kstat_memory_mem_free_bytes Free RAM.
# TYPE kstat_memory_mem_free_bytes gauge
kstat_memory_mem_free_bytes 1.073741824e+09
# HELP kstat_net_dev_rx_bytes_total Bytes received.
# TYPE kstat_net_dev_rx_bytes_total counter
kstat_net_dev_rx_bytes_total{device="eth0"} 1000
kstat_net_dev_rx_bytes_total{device="lo"} 2000
# HELP kstat_net_dev_rx_packets_total Packets received.
# TYPE kstat_net_dev_rx_packets_total counter
kstat_net_dev_rx_packets_total{device="eth0"} 10
kstat_net_dev_rx_packets_total{device="lo"} 20
# HELP kstat_net_dev_up Device is up.
# TYPE kstat_net_dev_up gauge
kstat_net_dev_up{device="eth0"} 0
kstat_net_dev_up{device="lo"} 1
# HELP kstat_tracer_kmalloc_calls_total kmalloc calls.
# TYPE kstat_tracer_kmalloc_calls_total counter
kstat_tracer_kmalloc_calls_total{pid="7"} 700
# HELP kstat_tracer_all_kmalloc_calls_total kmalloc calls, summed over every pid (those over the budget too).
# TYPE kstat_tracer_all_kmalloc_calls_total counter
kstat_tracer_all_kmalloc_calls_total 700
# HELP kstat_tracer_temp A signed gauge.
# TYPE kstat_tracer_temp gauge
kstat_tracer_temp{pid="7"} -3
# HELP kstat_exporter_pids_dropped Pids whose series this scrape left out to keep within the pid budget (--metrics-max-pids).
# TYPE kstat_exporter_pids_dropped gauge
kstat_exporter_pids_dropped 0
`
	names := []string{
		"kstat_memory_total_bytes", "kstat_memory_mem_free_bytes",
		"kstat_net_dev_rx_bytes_total", "kstat_net_dev_rx_packets_total", "kstat_net_dev_up",
		"kstat_net_dev_sum_rx_bytes_total", "kstat_net_dev_max_rx_packets", "kstat_net_dev_count_zero_up",
		"kstat_net_dev_all_rx_bytes_total", "kstat_tracer_all_kmalloc_calls_total",
		"kstat_tracer_kmalloc_calls_total", "kstat_tracer_temp", "kstat_exporter_pids_dropped",
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	// Every family is there, nothing else of the tree.
	if n := testutil.CollectAndCount(c); n != 11+1+2+1 {
		t.Errorf("collected %d metrics, want 15 (11 tree series, build info, 2 drop counts, pids dropped)", n)
	}
	lint(t, c)
}

// lint fails on any promlint problem.
func lint(t *testing.T, c prometheus.Collector) {
	t.Helper()
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestBuildInfoAndCollectorStatus(t *testing.T) {
	reg := &collector.Registry{}
	good := collector.NewRefresher("meminfo", func() error { time.Sleep(time.Millisecond); return nil })
	bad := collector.NewRefresher("netdev", func() error { return errors.New("no /proc/net/dev") })
	_ = good.Refresh()
	_ = bad.Refresh()
	reg.Add(good)
	reg.Add(bad)
	c := New(statsfs.NewSource("kstat"), Options{Collectors: reg, Version: "1.2.3", Commit: "abc"})
	want := fmt.Sprintf(`
# HELP kstat_build_info kstat's version, commit and Go version; the value is always 1.
# TYPE kstat_build_info gauge
kstat_build_info{commit="abc",goversion=%q,version="1.2.3"} 1
# HELP kstat_scrape_collector_success Whether the collector's last read succeeded (1) or failed or timed out (0).
# TYPE kstat_scrape_collector_success gauge
kstat_scrape_collector_success{collector="meminfo"} 1
kstat_scrape_collector_success{collector="netdev"} 0
`, runtime.Version())
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kstat_build_info", "kstat_scrape_collector_success"); err != nil {
		t.Fatal(err)
	}
	mfs := gather(t, c)
	d := mfs["kstat_scrape_collector_duration_seconds"]
	if d == nil || len(d.Metric) != 2 {
		t.Fatalf("duration family = %v", d)
	}
	for _, m := range d.Metric {
		if m.Label[0].GetValue() == "meminfo" && m.Gauge.GetValue() < 0.001 {
			t.Errorf("meminfo read took >= 1ms, duration says %v", m.Gauge.GetValue())
		}
	}
	lint(t, c)
}

func gather(t testing.TB, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func TestPidBudget(t *testing.T) {
	// Activity is kmalloc_calls = pid*100, so the budget keeps the
	// highest pids.
	root, recs := tree(t, 5, 300, 40, 2000, 1)
	c := New(root, Options{MaxPids: 3})
	mfs := gather(t, c)
	if got := pidsOf(mfs["kstat_tracer_kmalloc_calls_total"]); got != "40,300,2000" {
		t.Errorf("kept pids %s, want 300,40,2000", got)
	}
	if got := pidsOf(mfs["kstat_tracer_temp"]); got != "40,300,2000" {
		t.Errorf("temp kept pids %s, want the same pids as the counter", got)
	}
	if v := mfs["kstat_exporter_pids_dropped"].Metric[0].Gauge.GetValue(); v != 2 {
		t.Errorf("pids dropped = %v, want 2", v)
	}
	// Pid 1 becomes the busiest: it replaces the least active one.
	recs["1"].Add(0, 1e6)
	mfs = gather(t, c)
	if got := pidsOf(mfs["kstat_tracer_kmalloc_calls_total"]); got != "1,300,2000" {
		t.Errorf("kept pids %s after pid 1 got busy, want 1,300,2000", got)
	}
	// No pids at all.
	mfs = gather(t, New(root, Options{}))
	if mf := mfs["kstat_tracer_kmalloc_calls_total"]; mf != nil {
		t.Errorf("MaxPids 0 exported %v", mf)
	}
	if v := mfs["kstat_exporter_pids_dropped"].Metric[0].Gauge.GetValue(); v != 5 {
		t.Errorf("MaxPids 0: pids dropped = %v, want 5", v)
	}
	// No limit.
	mfs = gather(t, New(root, Options{MaxPids: -1}))
	if got := pidsOf(mfs["kstat_tracer_kmalloc_calls_total"]); got != "1,5,40,300,2000" {
		t.Errorf("unlimited: pids %s", got)
	}
}

// pidsOf lists the pid labels of a family in numeric order.
func pidsOf(mf *dto.MetricFamily) string {
	if mf == nil {
		return ""
	}
	var ps []int
	for _, m := range mf.Metric {
		for _, l := range m.Label {
			if l.GetName() == "pid" {
				p, _ := strconv.Atoi(l.GetValue())
				ps = append(ps, p)
			}
		}
	}
	slices.Sort(ps)
	return strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ps)), ","), "[]")
}
