package export

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kstat/kstat/statsfs"
)

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"MemTotal":       "mem_total",
		"Active(anon)":   "active_anon",
		"rx-bytes":       "rx_bytes",
		"__x__":          "x",
		"eth0.100":       "eth0_100",
		"SReclaimable":   "sreclaimable",
		"nr_dirty":       "nr_dirty",
		"TCPv6 Sockets!": "tcpv6_sockets",
		"...":            "",
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"pid": "pid", "0cpu": "_0cpu", "": "instance_name", "__name__": "name", "IRQ-line": "irq_line"} {
		if got := labelName(in); got != want {
			t.Errorf("labelName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		v         statsfs.Value
		aggregate bool
		want      string
	}{
		{statsfs.Value{Name: "rx_bytes", Unit: "bytes"}, false, "kstat_x_rx_bytes_total"},
		{statsfs.Value{Name: "rx", Unit: "bytes"}, false, "kstat_x_rx_bytes_total"},
		{statsfs.Value{Name: "wait", Unit: "seconds", Flag: statsfs.Floating}, false, "kstat_x_wait_seconds"},
		{statsfs.Value{Name: "events_total"}, false, "kstat_x_events_total"},
		{statsfs.Value{Name: "rx", Unit: "bytes", Aggr: statsfs.Sum}, true, "kstat_x_all_rx_bytes_total"},
		{statsfs.Value{Name: "rx", Unit: "bytes", Aggr: statsfs.Avg}, true, "kstat_x_all_rx_bytes"},
		{statsfs.Value{Name: "rx", Unit: "bytes", Aggr: statsfs.Min, Flag: statsfs.Floating}, true, "kstat_x_all_rx_bytes"},
	} {
		got := metricName("kstat_x", &tc.v, tc.aggregate, isCounter(&tc.v, tc.aggregate))
		if got != tc.want {
			t.Errorf("%+v aggregate=%v: %s, want %s", tc.v, tc.aggregate, got, tc.want)
		}
	}
}

var oneTable = statsfs.NewTable(statsfs.Value{Name: "x", Help: "X.", Type: statsfs.U64, Unit: "bytes"})
var (
	oneGauge = statsfs.NewTable(statsfs.Value{Name: "x", Help: "X as a gauge.", Type: statsfs.U64, Unit: "bytes", Flag: statsfs.Floating})
	// totalGauge is a gauge whose name looks like oneTable's counter.
	totalGauge = statsfs.NewTable(statsfs.Value{Name: "x_bytes_total", Help: "A gauge.", Type: statsfs.U64, Flag: statsfs.Floating})
)

func add(t *testing.T, parent *statsfs.Source, s *statsfs.Source, table *statsfs.Table, v uint64) *statsfs.Source {
	t.Helper()
	c := statsfs.NewCounters(table)
	c.Store(0, v)
	if err := s.AddValues(table, c, 0); err != nil {
		t.Fatal(err)
	}
	parent.AddSubordinate(s)
	return s
}

// TestCollisions: names that sanitize alike are one family; a repeated
// series and a series of the other metric type are dropped and counted,
// and the scrape stays valid.
func TestCollisions(t *testing.T) {
	root := statsfs.NewSource("kstat")
	add(t, root, statsfs.NewSource("io.q"), oneTable, 1)
	add(t, root, statsfs.NewSource("io_q"), oneTable, 2)   // duplicate of a.b
	add(t, root, statsfs.NewSource("io-q"), totalGauge, 3) // gauge in a counter family
	add(t, root, statsfs.NewSource("IO_Q"), oneGauge, 5)   // its own gauge family
	// A value named like one of the exporter's own metrics.
	add(t, root, statsfs.NewSource("build"), statsfs.NewTable(statsfs.Value{Name: "info", Help: "Not the build.", Type: statsfs.U64, Flag: statsfs.Floating}), 9)
	add(t, root, statsfs.NewSource("io_q_"), oneTable, 4) // duplicate again
	c := New(root, Options{})
	want := `
# HELP kstat_io_q_x_bytes_total X.
# TYPE kstat_io_q_x_bytes_total counter
kstat_io_q_x_bytes_total 1
# HELP kstat_io_q_x_bytes X as a gauge.
# TYPE kstat_io_q_x_bytes gauge
kstat_io_q_x_bytes 5
# HELP kstat_exporter_series_dropped Series this scrape left out: duplicate (same name and labels as an earlier one) or conflict (same name as a family of the other metric type, or as one of kstat's own metrics).
# TYPE kstat_exporter_series_dropped gauge
kstat_exporter_series_dropped{reason="conflict"} 2
kstat_exporter_series_dropped{reason="duplicate"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kstat_io_q_x_bytes_total", "kstat_io_q_x_bytes", "kstat_exporter_series_dropped"); err != nil {
		t.Fatal(err)
	}
	lint(t, c)
}

// TestLabelConsistency: a family whose sources carry different instance
// keys gets one label set, with empty values where a source has no such
// key; nested instances of one key get numbered label names.
func TestLabelConsistency(t *testing.T) {
	root := statsfs.NewSource("kstat")
	fam := statsfs.NewSource("fam")
	root.AddSubordinate(fam)
	add(t, fam, statsfs.NewInstance("device", "eth0"), oneTable, 1)
	add(t, fam, statsfs.NewInstance("cpu", "0"), oneTable, 2)
	outer := statsfs.NewInstance("pid", "10")
	fam.AddSubordinate(outer)
	add(t, outer, statsfs.NewInstance("pid", "11"), oneTable, 3)
	c := New(root, Options{MaxPids: DefaultMaxPids})
	want := `
# HELP kstat_fam_x_bytes_total X.
# TYPE kstat_fam_x_bytes_total counter
kstat_fam_x_bytes_total{cpu="",device="eth0",pid="",pid_2=""} 1
kstat_fam_x_bytes_total{cpu="0",device="",pid="",pid_2=""} 2
kstat_fam_x_bytes_total{cpu="",device="",pid="10",pid_2="11"} 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kstat_fam_x_bytes_total"); err != nil {
		t.Fatal(err)
	}
	lint(t, c)
}

// TestTreeChanges: hidden sources and values are left out, revoked values
// read 0, and sources added or removed between scrapes show up or go.
func TestTreeChanges(t *testing.T) {
	root := statsfs.NewSource("kstat")
	dev := statsfs.NewSource("dev")
	root.AddSubordinate(dev)
	eth := add(t, dev, statsfs.NewInstance("device", "eth0"), oneTable, 5)
	lo := add(t, dev, statsfs.NewInstance("device", "lo"), oneTable, 6)
	hiddenVals := statsfs.NewCounters(oneGauge)
	if err := lo.AddValues(oneGauge, hiddenVals, statsfs.HiddenGroup); err != nil {
		t.Fatal(err)
	}
	c := New(root, Options{})
	check := func(want string) {
		t.Helper()
		head := "# HELP kstat_dev_x_bytes_total X.\n# TYPE kstat_dev_x_bytes_total counter\n"
		if want == "" {
			head = ""
		}
		if err := testutil.CollectAndCompare(c, strings.NewReader(head+want), "kstat_dev_x_bytes_total", "kstat_dev_x_bytes"); err != nil {
			t.Fatal(err)
		}
	}
	check("kstat_dev_x_bytes_total{device=\"eth0\"} 5\nkstat_dev_x_bytes_total{device=\"lo\"} 6\n")
	eth.SetHidden(true)
	check("kstat_dev_x_bytes_total{device=\"lo\"} 6\n")
	eth.SetHidden(false)
	lo.Revoke()
	check("kstat_dev_x_bytes_total{device=\"eth0\"} 5\nkstat_dev_x_bytes_total{device=\"lo\"} 0\n")
	dev.RemoveSubordinate(lo)
	add(t, dev, statsfs.NewInstance("device", "wlan0"), oneTable, 7)
	check("kstat_dev_x_bytes_total{device=\"eth0\"} 5\nkstat_dev_x_bytes_total{device=\"wlan0\"} 7\n")
	dev.SetHidden(true)
	check("")
}

// TestCacheForgets: pids that come and go do not grow the caches without
// bound.
func TestCacheForgets(t *testing.T) {
	root := statsfs.NewSource("kstat")
	tr := statsfs.NewSource("tracer")
	root.AddSubordinate(tr)
	c := New(root, Options{MaxPids: -1})
	var live []*statsfs.Source
	for round := range 50 {
		for _, s := range live {
			tr.RemoveSubordinate(s)
		}
		live = live[:0]
		for i := range 20 {
			live = append(live, add(t, tr, statsfs.NewInstance("pid", fmt.Sprint(round*100+i)), oneTable, 1))
		}
		if n := testutil.CollectAndCount(c, "kstat_tracer_x_bytes_total"); n != 20 {
			t.Fatalf("round %d: %d series, want 20", round, n)
		}
	}
	if n := len(c.sources); n > 22+22/4+16 {
		t.Errorf("%d cached sources for 22 live ones", n)
	}
}

// TestSlashNames: a source name holding a slash does not confuse the
// walk's parents: the name prefix follows the real tree.
func TestSlashNames(t *testing.T) {
	root := statsfs.NewSource("kstat")
	ab := statsfs.NewSource("a/b")
	root.AddSubordinate(ab)
	add(t, ab, statsfs.NewSource("c"), oneTable, 1)
	a := statsfs.NewSource("a")
	root.AddSubordinate(a)
	inst := statsfs.NewInstance("dev", "b")
	a.AddSubordinate(inst)
	add(t, inst, statsfs.NewSource("c"), oneTable, 2) // path a/b/c too
	add(t, root, statsfs.NewSource("d"), oneTable, 3)
	want := `
# HELP kstat_a_b_c_x_bytes_total X.
# TYPE kstat_a_b_c_x_bytes_total counter
kstat_a_b_c_x_bytes_total 1
# HELP kstat_a_c_x_bytes_total X.
# TYPE kstat_a_c_x_bytes_total counter
kstat_a_c_x_bytes_total{dev="b"} 2
# HELP kstat_d_x_bytes_total X.
# TYPE kstat_d_x_bytes_total counter
kstat_d_x_bytes_total 3
`
	c := New(root, Options{})
	for range 2 { // the second scrape runs on the caches
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kstat_a_b_c_x_bytes_total", "kstat_a_c_x_bytes_total", "kstat_d_x_bytes_total"); err != nil {
			t.Fatal(err)
		}
	}
}
