package collector

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/kstat/kstat/statsfs"
)

func TestSelection(t *testing.T) {
	extra := Info{Name: "tracer", Default: true, Help: "eBPF"}
	for _, tc := range []struct {
		args    []string
		on, off []string
	}{
		{nil, []string{"meminfo", "netdev", "interrupts", "tracer", "unknown"}, []string{"slabinfo"}},
		{[]string{"--collector.slabinfo"}, []string{"slabinfo", "meminfo"}, nil},
		{[]string{"--no-collector.meminfo", "--no-collector.tracer"}, []string{"netdev"}, []string{"meminfo", "tracer", "slabinfo"}},
		{[]string{"--collector.disable-defaults", "--collector.netdev"}, []string{"netdev"}, []string{"meminfo", "tracer", "slabinfo", "stat"}},
	} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		sel := AddFlags(fs, extra)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if err := sel.Check(); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		for _, n := range tc.on {
			if !sel.Enabled(n) {
				t.Errorf("%v: %s disabled, want enabled", tc.args, n)
			}
		}
		for _, n := range tc.off {
			if sel.Enabled(n) {
				t.Errorf("%v: %s enabled, want disabled", tc.args, n)
			}
		}
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	sel := AddFlags(fs)
	if err := fs.Parse([]string{"--collector.stat", "--no-collector.stat"}); err != nil {
		t.Fatal(err)
	}
	if err := sel.Check(); err == nil {
		t.Error("--collector.stat with --no-collector.stat: no error")
	}
}

// TestBuildSelected builds the registered collectors on the telemetry
// fixture: a collector left out has no source in the tree and no entry
// in the registry.
func TestBuildSelected(t *testing.T) {
	proc := filepath.Join("..", "..", "testdata", "telemetry", "proc")
	root := statsfs.NewSource("kstat")
	var reg Registry
	if err := reg.Build(Config{Paths: Paths{Proc: proc}, Root: root}, Only("uptime", "interrupts")); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range reg.All() {
		names = append(names, c.Name())
	}
	if !slices.Equal(names, []string{"interrupts", "uptime"}) {
		t.Fatalf("built %v, want [interrupts uptime]", names)
	}
	if root.Find("irq") == nil || root.Find("system") == nil || root.Find("softirq") != nil || root.Find("memory") != nil {
		t.Errorf("tree: irq %v system %v softirq %v memory %v; want only irq and system",
			root.Find("irq") != nil, root.Find("system") != nil, root.Find("softirq") != nil, root.Find("memory") != nil)
	}
	if reg.Get("uptime") == nil || reg.Get("stat") != nil {
		t.Error("Get does not find what was built")
	}
}

// TestRefresherTimeout puts a FIFO without a writer in place of
// /proc/loadavg: opening it blocks. The collector's read is reported
// failed within its timeout, RefreshAll returns with the other collectors
// read, and later calls do not wait again while the read hangs.
func TestRefresherTimeout(t *testing.T) {
	proc := t.TempDir()
	fixture := filepath.Join("..", "..", "testdata", "telemetry", "proc")
	up, err := os.ReadFile(filepath.Join(fixture, "uptime"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "uptime"), up, 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(proc, "loadavg")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Let the hung read return: a writer opens and closes the FIFO.
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
	})
	reg := Registry{Timeout: 200 * time.Millisecond}
	root := statsfs.NewSource("kstat")
	if err := reg.Build(Config{Paths: Paths{Proc: proc}, Root: root}, Only("uptime", "loadavg")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	reg.RefreshAll()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("RefreshAll took %v with a timeout of 200ms", d)
	}
	load, uptime := reg.Get("loadavg").Status(), reg.Get("uptime").Status()
	if !errors.Is(load.Err, ErrTimeout) {
		t.Errorf("loadavg status %+v, want ErrTimeout", load)
	}
	if uptime.Err != nil || uptime.Time.IsZero() {
		t.Errorf("uptime status %+v, want a successful read", uptime)
	}
	// Values of the hung collector answer at once, and are absent.
	start = time.Now()
	for _, v := range root.Find("system").Values() {
		if r := v.Read(); strings.HasPrefix(v.Value().Name, "load") && !r.Absent {
			t.Errorf("%s of the hung collector reads %v, want absent", v.Value().Name, r)
		}
	}
	if err := reg.Get("loadavg").Refresh(); !errors.Is(err, ErrTimeout) {
		t.Errorf("second refresh: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("reads of a hung collector took %v; want no second wait", d)
	}
}
