package export

import (
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kstat/kstat/statsfs"
)

// TestModels: a total beside its instances is not exported (sum() gives
// it), an aggregate over devices neither, an Info value becomes a label
// of the source's _info series, a comm control labels the series of its
// pid, a maximum over nothing (-Inf) has no series, and HELP is one style.
func TestModels(t *testing.T) {
	root := statsfs.NewSource("kstat")
	slab := statsfs.NewSource("slab")
	root.AddSubordinate(slab)
	add(t, slab, statsfs.NewInstance("cache", "dentry"), oneGauge, 3)
	add(t, slab, statsfs.NewInstance("cache", "inode"), oneGauge, 4)
	if err := slab.AddValues(oneGauge, statsfs.RecordFunc(func(int) uint64 { return 7 }), 0); err != nil {
		t.Fatal(err)
	}

	irq := statsfs.NewSource("irq")
	root.AddSubordinate(irq)
	desc := "IO-APIC 5-edge ACPI:Ged"
	info := statsfs.NewTable(statsfs.Value{Name: "description", Help: "the line's devices (write 0 to clear)", Type: statsfs.U64, Flag: statsfs.Floating, Info: true,
		Show: func(statsfs.Reading) string { return desc + "\n" }})
	line := statsfs.NewInstance("irq", "9")
	if err := line.AddValues(info, statsfs.RecordFunc(func(int) uint64 { return 1 }), 0); err != nil {
		t.Fatal(err)
	}
	add(t, irq, line, oneTable, 11)

	maxTable := statsfs.NewTable(statsfs.Value{Name: "wait", Help: "longest wait", Type: statsfs.F64, Unit: "seconds", Flag: statsfs.Floating, Aggr: statsfs.Max})
	tr := statsfs.NewSource("tracer")
	root.AddSubordinate(tr)
	if err := tr.AddValues(maxTable, nil, 0); err != nil {
		t.Fatal(err)
	}
	comm := "sshd"
	p := statsfs.NewInstance("pid", "42")
	if err := p.AddControl(&statsfs.Control{Name: "comm", Read: func() string { return comm + "\n" }}); err != nil {
		t.Fatal(err)
	}
	pc := statsfs.NewCounters(maxTable)
	pc.StoreFloat(0, math.Inf(-1))
	if err := p.AddValues(maxTable, pc, 0); err != nil {
		t.Fatal(err)
	}
	add(t, tr, p, oneTable, 5)

	c := New(root, Options{MaxPids: -1})
	want := `
# HELP kstat_slab_x_bytes X as a gauge.
# TYPE kstat_slab_x_bytes gauge
kstat_slab_x_bytes{cache="dentry"} 3
kstat_slab_x_bytes{cache="inode"} 4
# HELP kstat_irq_info Properties as labels (description: The line's devices); the value is always 1.
# TYPE kstat_irq_info gauge
kstat_irq_info{description="IO-APIC 5-edge ACPI:Ged",irq="9"} 1
# HELP kstat_irq_x_bytes_total X.
# TYPE kstat_irq_x_bytes_total counter
kstat_irq_x_bytes_total{irq="9"} 11
# HELP kstat_tracer_x_bytes_total X.
# TYPE kstat_tracer_x_bytes_total counter
kstat_tracer_x_bytes_total{comm="sshd",pid="42"} 5
`
	names := []string{"kstat_slab_x_bytes", "kstat_irq_info", "kstat_irq_description", "kstat_irq_x_bytes_total",
		"kstat_tracer_x_bytes_total", "kstat_tracer_wait_seconds", "kstat_tracer_all_wait_seconds"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	lint(t, c)

	// A new command name and an observed wait show up at the next scrape.
	comm = "sshd-session"
	pc.StoreFloat(0, 0.25)
	want = `
# HELP kstat_tracer_x_bytes_total X.
# TYPE kstat_tracer_x_bytes_total counter
kstat_tracer_x_bytes_total{comm="sshd-session",pid="42"} 5
# HELP kstat_tracer_wait_seconds Longest wait.
# TYPE kstat_tracer_wait_seconds gauge
kstat_tracer_wait_seconds{comm="sshd-session",pid="42"} 0.25
# HELP kstat_tracer_all_wait_seconds Longest wait, the largest over every pid (those over the budget too).
# TYPE kstat_tracer_all_wait_seconds gauge
kstat_tracer_all_wait_seconds 0.25
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kstat_tracer_x_bytes_total", "kstat_tracer_wait_seconds", "kstat_tracer_all_wait_seconds"); err != nil {
		t.Fatal(err)
	}
}

func TestTidyHelp(t *testing.T) {
	for in, want := range map[string]string{
		"bytes received":                     "Bytes received.",
		"Names looked up (write 0 to clear)": "Names looked up.",
		"nout, published; write 0 to clear":  "Nout, published.",
		"kmalloc calls (kmem:kmalloc)":       "kmalloc calls (kmem:kmalloc).",
		"Already a sentence.":                "Already a sentence.",
	} {
		if got := tidyHelp(in); got != want {
			t.Errorf("tidyHelp(%q) = %q, want %q", in, got, want)
		}
	}
}
