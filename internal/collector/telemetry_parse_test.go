package collector

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/kstat/kstat/internal/testutil"
)

func telemetryFixture(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(testutil.Fixture(t, append([]string{"telemetry"}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseUptime(t *testing.T) {
	for _, tc := range []struct {
		file string
		want Uptime
		err  bool
	}{
		{"proc/uptime", Uptime{Up: 627.53, Idle: 1022.07}, false},
		{"edited/uptime-huge", Uptime{Up: 123456789012.99, Idle: 1500}, false},
		{"edited/uptime-truncated", Uptime{}, true},
	} {
		got, err := ParseUptime(telemetryFixture(t, strings.Split(tc.file, "/")...))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v, error %v", tc.file, got, err, tc.want, tc.err)
		}
	}
	for _, bad := range []string{"", "x 1", "1 -2", "NaN 1", "1e400 1"} {
		if u, err := ParseUptime([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseUptime(%q) = %+v, want an error", bad, u)
		}
	}
}

func TestParseLoadavg(t *testing.T) {
	got, err := ParseLoadavg(telemetryFixture(t, "proc", "loadavg"))
	if want := (Loadavg{1.04, 0.84, 0.39}); err != nil || got != want {
		t.Errorf("proc/loadavg: got %+v, %v; want %+v", got, err, want)
	}
	if l, err := ParseLoadavg(telemetryFixture(t, "edited", "loadavg-truncated")); err == nil {
		t.Errorf("truncated loadavg parsed as %+v", l)
	}
	if l, err := ParseLoadavg([]byte("1 x 3 1/2 3")); err == nil {
		t.Errorf("bad loadavg parsed as %+v", l)
	}
}

func TestParseStat(t *testing.T) {
	got, err := ParseStat(telemetryFixture(t, "proc", "stat"))
	want := Stat{ContextSwitches: 741118, Forks: 12428, Interrupts: 450566, Softirqs: 156671, ProcsRunning: 2}
	if err != nil || got != want {
		t.Errorf("proc/stat: got %+v, %v; want %+v", got, err, want)
	}
	got, err = ParseStat(telemetryFixture(t, "edited", "stat-huge"))
	want = Stat{ContextSwitches: 18446744073709551615, Forks: 18446744073709551000,
		Interrupts: 18446744073709551615, Softirqs: 9223372036854775808, ProcsRunning: 4096, ProcsBlocked: 4095}
	if err != nil || got != want {
		t.Errorf("stat-huge: got %+v, %v; want %+v", got, err, want)
	}
	if s, err := ParseStat(telemetryFixture(t, "edited", "stat-truncated")); err == nil || !strings.Contains(err.Error(), "processes") {
		t.Errorf("stat-truncated: got %+v, %v; want an error naming the missing line", s, err)
	}
	for _, bad := range []string{
		"ctxt 18446744073709551616\nprocesses 1\nintr 1\nsoftirq 1\nprocs_running 1\nprocs_blocked 1\n",
		"ctxt 1\nctxt 2\nprocesses 1\nintr 1\nsoftirq 1\nprocs_running 1\nprocs_blocked 1\n",
		"ctxt -1\nprocesses 1\nintr 1\nsoftirq 1\nprocs_running 1\nprocs_blocked 1\n",
	} {
		if s, err := ParseStat([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseStat(%q) = %+v, want an error", bad, s)
		}
	}
}

func TestParseInterruptsReal(t *testing.T) {
	got, err := ParseInterrupts(telemetryFixture(t, "proc", "interrupts"))
	if err != nil {
		t.Fatal(err)
	}
	if got.CPUs != 2 || len(got.Lines) != 35 {
		t.Fatalf("got %d CPUs, %d lines; want 2, 35", got.CPUs, len(got.Lines))
	}
	first := Line{Name: "24", PerCPU: []uint64{1, 0}, Total: 1, Desc: "IO-APIC 5-edge ACPI:Ged"}
	if !reflect.DeepEqual(got.Lines[0], first) {
		t.Errorf("first line %+v, want %+v", got.Lines[0], first)
	}
	byName := map[string]Line{}
	for _, l := range got.Lines {
		byName[l.Name] = l
	}
	if l := byName["LOC"]; l.Total != 114791+113253 || l.Desc != "Local timer interrupts" {
		t.Errorf("LOC = %+v", l)
	}
	if l := byName["ERR"]; len(l.PerCPU) != 1 || l.Total != 0 || l.Desc != "" {
		t.Errorf("ERR = %+v, want one column", l)
	}
	if l := byName["28"]; l.Desc != "PCI-MSIX-0000:00:01.0 0-edge virtio0-config" {
		t.Errorf("28 desc %q", l.Desc)
	}
}

func TestParseInterruptsEdited(t *testing.T) {
	got, err := ParseInterrupts(telemetryFixture(t, "edited", "interrupts-64cpu"))
	if err != nil {
		t.Fatal(err)
	}
	if got.CPUs != 64 || len(got.Lines) != 5 {
		t.Fatalf("64cpu: %d CPUs, %d lines", got.CPUs, len(got.Lines))
	}
	// Line 120 holds 120+i on CPU i: 64*120 + 63*64/2.
	if l := got.Lines[2]; l.Name != "120" || len(l.PerCPU) != 64 || l.Total != 64*120+2016 || l.Desc != "PCI-MSI 524288-edge nvme0q0" {
		t.Errorf("64cpu line 120: %s %d cols total %d desc %q", l.Name, len(l.PerCPU), l.Total, l.Desc)
	}
	if l := got.Lines[4]; l.Name != "ERR" || l.Total != 7 {
		t.Errorf("64cpu ERR: %+v", l)
	}

	got, err = ParseInterrupts(telemetryFixture(t, "edited", "interrupts-missing-columns"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Line{
		{Name: "1", PerCPU: []uint64{10, 20}, Total: 30, Desc: "IO-APIC 1-edge i8042"},
		{Name: "8", PerCPU: []uint64{1, 2, 3, 4}, Total: 10, Desc: "IO-APIC 8-edge rtc0"},
		{Name: "LOC", PerCPU: []uint64{100, 200, 300, 400}, Total: 1000, Desc: "Local timer interrupts"},
		{Name: "ERR", PerCPU: []uint64{0}, Total: 0},
		{Name: "MIS", PerCPU: []uint64{5}, Total: 5},
	}
	if got.CPUs != 4 || !reflect.DeepEqual(got.Lines, want) {
		t.Errorf("missing columns: got %+v", got)
	}

	got, err = ParseInterrupts(telemetryFixture(t, "edited", "interrupts-truncated"))
	if err != nil || len(got.Lines) != 3 || got.Lines[2].Total != 1 || got.Lines[2].Desc != "" {
		t.Errorf("truncated: got %+v, %v", got, err)
	}

	got, err = ParseInterrupts(telemetryFixture(t, "edited", "interrupts-huge"))
	if err != nil || got.Lines[0].Total != 18446744073709551615 || got.Lines[1].Total != 18446744073709551614 {
		t.Errorf("huge: got %+v, %v", got, err)
	}
	if _, err := ParseInterrupts(telemetryFixture(t, "edited", "interrupts-overflow")); err == nil || !strings.Contains(err.Error(), "overflow") {
		t.Errorf("overflow: error %v, want one about the overflow", err)
	}
	for _, bad := range []string{"", "  24: 1 2\n", "CPU0\n24 1\n", "CPU0\n24: x\n", "CPU0\n24: 1\n24: 2\n", "CPU0 x\n"} {
		if got, err := ParseInterrupts([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseInterrupts(%q) = %+v, want an error", bad, got)
		}
	}
}

func TestParseSoftirqs(t *testing.T) {
	got, err := ParseSoftirqs(telemetryFixture(t, "proc", "softirqs"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range got.Lines {
		names = append(names, l.Name)
	}
	if want := "HI TIMER NET_TX NET_RX BLOCK IRQ_POLL TASKLET SCHED HRTIMER RCU"; strings.Join(names, " ") != want {
		t.Errorf("vectors %v, want %s", names, want)
	}
	if l := got.Lines[1]; l.Total != 8898+10570 {
		t.Errorf("TIMER = %+v", l)
	}
	got, err = ParseSoftirqs(telemetryFixture(t, "edited", "softirqs-64cpu"))
	if err != nil || got.CPUs != 64 || len(got.Lines) != 10 || got.Lines[9].Total != 64*9000+2016 {
		t.Errorf("64cpu: %+v, %v", got, err)
	}
	if _, err := ParseSoftirqs([]byte("CPU0\nHI: 1 extra\n")); err == nil {
		t.Error("softirqs with text after the counts parsed")
	}
}

func FuzzParseUptime(f *testing.F) {
	f.Add([]byte("627.53 1022.07\n"))
	f.Add([]byte("1e3 x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseUptime(b)
		if err == nil && (u.Up < 0 || u.Idle < 0) {
			t.Fatalf("negative uptime %+v", u)
		}
	})
}

func FuzzParseLoadavg(f *testing.F) {
	f.Add([]byte("1.04 0.84 0.39 2/93 12428\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLoadavg(b)
		if err == nil && (l.Load1 < 0 || l.Load5 < 0 || l.Load15 < 0) {
			t.Fatalf("negative load %+v", l)
		}
	})
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("ctxt 1\nprocesses 2\nintr 3 0 1\nsoftirq 4 1\nprocs_running 5\nprocs_blocked 6\n"))
	f.Add([]byte("ctxt\nprocesses  2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseStat(b) // must not panic or hang
	})
}

func fuzzCPUTable(t *testing.T, tab CPUTable, err error) {
	if err != nil {
		return
	}
	if tab.CPUs < 1 {
		t.Fatalf("no CPUs but no error: %+v", tab)
	}
	seen := map[string]bool{}
	for _, l := range tab.Lines {
		var sum uint64
		for _, v := range l.PerCPU {
			sum += v
		}
		if len(l.PerCPU) == 0 || len(l.PerCPU) > tab.CPUs || sum != l.Total || l.Name == "" || seen[l.Name] {
			t.Fatalf("bad line %+v of %d CPUs", l, tab.CPUs)
		}
		seen[l.Name] = true
	}
}

func FuzzParseInterrupts(f *testing.F) {
	f.Add([]byte("      CPU0   CPU1\n 24: 1 0 IO-APIC 5-edge ACPI:Ged\nERR: 0\n"))
	f.Add([]byte("CPU0\nLOC: 18446744073709551615 Local timer\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := ParseInterrupts(b)
		fuzzCPUTable(t, tab, err)
	})
}

func FuzzParseSoftirqs(f *testing.F) {
	f.Add([]byte("      CPU0   CPU1\n   HI: 1 0\nTIMER: 5 6\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := ParseSoftirqs(b)
		fuzzCPUTable(t, tab, err)
		for _, l := range tab.Lines {
			if l.Desc != "" {
				t.Fatalf("softirq line with a description: %+v", l)
			}
		}
	})
}
