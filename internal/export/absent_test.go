package export

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kstat/kstat/statsfs"
)

// TestAbsentNoSeries: a value its record lacks has no series (not 0), nor
// has an aggregate over it (exported over pids, which the budget may
// leave out); the values beside it keep theirs, and the
// series comes back when the value does.
func TestAbsentNoSeries(t *testing.T) {
	sumTable := statsfs.NewTable(statsfs.Value{Name: "x", Help: "X.", Type: statsfs.U64, Unit: "bytes", Aggr: statsfs.Sum})
	root := statsfs.NewSource("kstat")
	dev := statsfs.NewSource("dev")
	root.AddSubordinate(dev)
	if err := dev.AddValues(sumTable, nil, 0); err != nil {
		t.Fatal(err)
	}
	add(t, dev, statsfs.NewInstance("pid", "10"), sumTable, 5)
	lo := statsfs.NewInstance("pid", "20")
	cells := statsfs.NewCounters(sumTable)
	cells.SetAbsent(0)
	if err := lo.AddValues(sumTable, cells, 0); err != nil {
		t.Fatal(err)
	}
	dev.AddSubordinate(lo)
	c := New(root, Options{MaxPids: -1})
	want := `
# HELP kstat_dev_x_bytes_total X.
# TYPE kstat_dev_x_bytes_total counter
kstat_dev_x_bytes_total{pid="10"} 5
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kstat_dev_x_bytes_total", "kstat_dev_all_x_bytes_total"); err != nil {
		t.Fatal(err)
	}
	lint(t, c)
	cells.Store(0, 2)
	if n := testutil.CollectAndCount(c, "kstat_dev_all_x_bytes_total"); n != 1 {
		t.Errorf("the sum has %d series once every value is there, want 1", n)
	}
	want = `
# HELP kstat_dev_x_bytes_total X.
# TYPE kstat_dev_x_bytes_total counter
kstat_dev_x_bytes_total{pid="10"} 5
kstat_dev_x_bytes_total{pid="20"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kstat_dev_x_bytes_total"); err != nil {
		t.Fatal(err)
	}
}
