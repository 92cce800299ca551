package collector

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
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
		{"proc/uptime", Uptime{Up: 627.53, Idle: 1022.07, Have: 3}, false},
		{"edited/uptime-huge", Uptime{Up: 123456789012.99, Idle: 1500, Have: 3}, false},
		// The uptime is kept, the idle time absent.
		{"edited/uptime-truncated", Uptime{Up: 498.41, Have: 1}, true},
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
	if want := (Loadavg{1.04, 0.84, 0.39, 7}); err != nil || got != want {
		t.Errorf("proc/loadavg: got %+v, %v; want %+v", got, err, want)
	}
	// What can be read is kept, the rest absent, the line counted.
	var sk *Skipped
	if l, err := ParseLoadavg(telemetryFixture(t, "edited", "loadavg-truncated")); !errors.As(err, &sk) || l != (Loadavg{0.75, 0.3, 0, 3}) {
		t.Errorf("truncated loadavg parsed as %+v, %v", l, err)
	}
	if l, err := ParseLoadavg([]byte("1 x 3 1/2 3")); !errors.Is(err, ErrMalformed) || l != (Loadavg{1, 0, 3, 5}) {
		t.Errorf("bad loadavg parsed as %+v, %v", l, err)
	}
}

func TestParseStat(t *testing.T) {
	got, err := ParseStat(telemetryFixture(t, "proc", "stat"))
	want := Stat{ContextSwitches: 741118, Forks: 12428, Interrupts: 450566, Softirqs: 156671, ProcsRunning: 2, Have: 63}
	if err != nil || got != want {
		t.Errorf("proc/stat: got %+v, %v; want %+v", got, err, want)
	}
	got, err = ParseStat(telemetryFixture(t, "edited", "stat-huge"))
	want = Stat{ContextSwitches: 18446744073709551615, Forks: 18446744073709551000,
		Interrupts: 18446744073709551615, Softirqs: 9223372036854775808, ProcsRunning: 4096, ProcsBlocked: 4095, Have: 63}
	if err != nil || got != want {
		t.Errorf("stat-huge: got %+v, %v; want %+v", got, err, want)
	}
	// Lines the file lacks are absent, not an error.
	if s, err := ParseStat(telemetryFixture(t, "edited", "stat-truncated")); err != nil || s != (Stat{Interrupts: 260382, ContextSwitches: 460767, Have: 1 | 4}) {
		t.Errorf("stat-truncated: got %+v, %v; want ctxt and intr only", s, err)
	}
	// A bad line is skipped and counted; the others are kept.
	for _, bad := range []string{
		"ctxt 18446744073709551616\nprocesses 1\nintr 1\nsoftirq 1\nprocs_running 1\nprocs_blocked 1\n",
		"ctxt -1\nprocesses 1\nintr 1\nsoftirq 1\nprocs_running 1\nprocs_blocked 1\n",
	} {
		var sk *Skipped
		if s, err := ParseStat([]byte(bad)); !errors.Is(err, ErrMalformed) || !errors.As(err, &sk) || sk.Lines != 1 || s.Have != 62 || s.Forks != 1 {
			t.Errorf("ParseStat(%q) = %+v, %v; want ctxt skipped", bad, s, err)
		}
	}
	if s, err := ParseStat([]byte("ctxt 1\nctxt 2\nprocesses 1\n")); !errors.Is(err, ErrMalformed) || s.ContextSwitches != 1 || s.Have != 3 {
		t.Errorf("a repeated line: %+v, %v; want the first kept", s, err)
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
	// Bad lines beside good ones: skipped (no name, repeated) or kept
	// without a count (no counts, overflow); the good lines stay.
	got, err = ParseInterrupts([]byte("CPU0 CPU1\n 1: 5 6 dev\nno colon\n 2: x\n 1: 7 7\n 3: 18446744073709551615 1\n a b: 1\nLOC: 9 9 timer\n"))
	var sk *Skipped
	want = []Line{
		{Name: "1", PerCPU: []uint64{5, 6}, Total: 11, Desc: "dev"},
		{Name: "2", Bad: true},
		{Name: "3", Bad: true},
		{Name: "LOC", PerCPU: []uint64{9, 9}, Total: 18, Desc: "timer"},
	}
	if !errors.As(err, &sk) || sk.Lines != 5 || !reflect.DeepEqual(got.Lines, want) {
		t.Errorf("bad lines: got %+v, %v", got.Lines, err)
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
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
		if u.Up < 0 || u.Idle < 0 || (u.Have&1 == 0 && u.Up != 0) || (u.Have&2 == 0 && u.Idle != 0) {
			t.Fatalf("negative uptime %+v", u)
		}
	})
}

func FuzzParseLoadavg(f *testing.F) {
	f.Add([]byte("1.04 0.84 0.39 2/93 12428\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLoadavg(b)
		if (err == nil) != (l.Have == 7) || (err != nil && !errors.Is(err, ErrMalformed)) {
			t.Fatalf("%+v with error %v", l, err)
		}
		if l.Load1 < 0 || l.Load5 < 0 || l.Load15 < 0 {
			t.Fatalf("negative load %+v", l)
		}
	})
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("ctxt 1\nprocesses 2\nintr 3 0 1\nsoftirq 4 1\nprocs_running 5\nprocs_blocked 6\n"))
	f.Add([]byte("ctxt\nprocesses  2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStat(b)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatal(err)
		}
		for i, v := range []uint64{s.ContextSwitches, s.Forks, s.Interrupts, s.Softirqs, s.ProcsRunning, s.ProcsBlocked} {
			if s.Have&(1<<i) == 0 && v != 0 {
				t.Fatalf("field %d absent but %d", i, v)
			}
		}
	})
}

func fuzzCPUTable(t *testing.T, tab CPUTable, err error) {
	var sk *Skipped
	if err != nil && !errors.As(err, &sk) {
		if len(tab.Lines) != 0 || !errors.Is(err, ErrMalformed) {
			t.Fatalf("failed with lines: %+v, %v", tab, err)
		}
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
		if l.Bad && (l.PerCPU != nil || l.Total != 0 || l.Desc != "") {
			t.Fatalf("a bad line with counts %+v", l)
		}
		if (!l.Bad && len(l.PerCPU) == 0) || len(l.PerCPU) > tab.CPUs || sum != l.Total || l.Name == "" || seen[l.Name] {
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
		// A parser reused after another file reads the same, and each
		// line's description is what descIs recognises.
		var p tableParser
		_ = p.parseInterrupts([]byte("CPU0 CPU1 CPU2\n 1: 1 2 3 a b\n 24: 1 0 IO-APIC 5-edge\nERR: 0\nx: 1\n"))
		err2 := p.parseInterrupts(b)
		if again := p.table(); fmt.Sprint(err) != fmt.Sprint(err2) || !reflect.DeepEqual(again, tab) {
			t.Fatalf("a reused parser read %+v, %v; a new one %+v, %v", again, err2, tab, err)
		}
		for i, l := range p.lines {
			if !descIs(l.rest, tab.Lines[i].Desc) || (tab.Lines[i].Desc != "" && descIs(l.rest, tab.Lines[i].Desc+" ")) {
				t.Fatalf("line %s: descIs(%q) does not match %q alone", l.name, l.rest, tab.Lines[i].Desc)
			}
		}
	})
}

// TestDescIs: descIs recognises exactly appendDesc's text.
func TestDescIs(t *testing.T) {
	for _, c := range []struct {
		rest, desc string
		want       bool
	}{
		{"", "", true},
		{"  \t ", "", true},
		{" a  b\tc ", "a b c", true},
		{" a  b", "a b c", false},
		{" a b c", "a b", false},
		{"a b", "a b ", false},
		{"a b", "ab", false},
		{"ab", "a b", false},
		{"a", "", false},
		{"", "a", false},
	} {
		if got := descIs([]byte(c.rest), c.desc); got != c.want {
			t.Errorf("descIs(%q, %q) = %v, want %v", c.rest, c.desc, got, c.want)
		}
		if got := string(appendDesc(nil, []byte(c.rest))) == c.desc; got != c.want {
			t.Errorf("appendDesc(%q) == %q is %v, want %v", c.rest, c.desc, got, c.want)
		}
	}
}

// TestLinesReadWithoutGarbage: once the lines are known, a read of
// /proc/interrupts or /proc/softirqs (parse and store) allocates nothing.
func TestLinesReadWithoutGarbage(t *testing.T) {
	for _, file := range []string{"interrupts", "softirqs"} {
		parse := (*tableParser).parseInterrupts
		if file == "softirqs" {
			parse = (*tableParser).parseSoftirqs
		}
		l := &Lines{parent: statsfs.NewSource("irq"), label: "irq", table: irqTable, desc: file == "interrupts", lines: map[string]*lineSource{}}
		l.Refresher = NewRefresher(file, func() error { return nil })
		text := telemetryFixture(t, "proc", file)
		var p tableParser
		if err := parse(&p, text); err != nil {
			t.Fatal(err)
		}
		l.update(&p)
		if n := testing.AllocsPerRun(20, func() {
			_ = parse(&p, text)
			l.update(&p)
		}); n != 0 {
			t.Errorf("%s: %v allocations per read", file, n)
		}
		if len(l.lines) < 10 {
			t.Errorf("%s: only %d lines", file, len(l.lines))
		}
	}
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
