package collector

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
)

func get(t *testing.T, src *statsfs.Source, path, name string) statsfs.Reading {
	t.Helper()
	s := src.Find(path)
	if s == nil {
		t.Fatalf("no source %q", path)
	}
	r, err := s.GetByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// telemetryTree builds system/, irq/ and softirq/ under a new root.
func telemetryTree(t *testing.T, p Paths) (*statsfs.Source, *Lines, *Lines) {
	t.Helper()
	root := statsfs.NewSource("kstat")
	sys, irq, soft := statsfs.NewSource("system"), statsfs.NewSource("irq"), statsfs.NewSource("softirq")
	root.AddSubordinate(sys)
	root.AddSubordinate(irq)
	root.AddSubordinate(soft)
	for _, add := range []func(Paths, *statsfs.Source) (*Refresher, error){newUptime, newStat, newLoadavg} {
		if _, err := add(p, sys); err != nil {
			t.Fatal(err)
		}
	}
	li, err := newInterrupts(p, irq)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := newSoftirqs(p, soft)
	if err != nil {
		t.Fatal(err)
	}
	return root, li, ls
}

func TestTelemetryCollectorsOnFixtures(t *testing.T) {
	root, li, _ := telemetryTree(t, Paths{Proc: testutil.Fixture(t, "telemetry", "proc")})
	for _, c := range []struct {
		path, name string
		want       string
	}{
		{"system", "uptime_seconds", "627.53"},
		{"system", "idle_seconds", "1022.07"},
		{"system", "context_switches", "741118"},
		{"system", "forks", "12428"},
		{"system", "interrupts_total", "450566"},
		{"system", "softirqs_total", "156671"},
		{"system", "procs_running", "2"},
		{"system", "procs_blocked", "0"},
		{"system", "load1", "1.04"},
		{"system", "load15", "0.39"},
		{"irq/26", "count", "14"},
		{"irq/LOC", "count", strconv.Itoa(114791 + 113253)},
		{"softirq/TIMER", "count", strconv.Itoa(8898 + 10570)},
		{"softirq/BLOCK", "count", "49274"},
		{"softirq", "count", "156677"}, // the sum of the vectors
	} {
		if got := get(t, root, c.path, c.name).String(); got != c.want {
			t.Errorf("%s/%s = %s, want %s", c.path, c.name, got, c.want)
		}
	}
	d, err := root.Find("irq/36").LookupName("description")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Value().Text(d.Read()); got != "PCI-MSIX-0000:00:02.0 1-edge virtio1-req.0\n" {
		t.Errorf("irq/36/description shows %q", got)
	}
	if s := root.Find("irq/36"); s.Label() != "irq" {
		t.Errorf("irq/36 label %q, want irq", s.Label())
	}
	if st := li.Status(); st.Err != nil || st.Time.IsZero() {
		t.Errorf("interrupts status %+v", st)
	}
}

// TestLinesAppearAndGo feeds the interrupts collector a file that gains
// and loses lines.
func TestLinesAppearAndGo(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "interrupts"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("  CPU0 CPU1\n 1: 1 2 chip a\nLOC: 3 4 timer\n")
	irq := statsfs.NewSource("irq")
	l, err := newInterrupts(Paths{Proc: dir}, irq)
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]uint64{"1": 7, "99": 9}
	numbered := func(line string) bool { _, err := strconv.Atoi(line); return err == nil }
	if _, err := l.AddEventCounts("irqcount", numbered, func() (map[string]uint64, error) { return events, nil }); err != nil {
		t.Fatal(err)
	}
	names := func() string {
		var n []string
		for _, s := range irq.Subordinates() {
			n = append(n, s.Name())
		}
		return strings.Join(n, " ")
	}
	if got := names(); got != "1 LOC" {
		t.Fatalf("lines %q", got)
	}
	if _, err := irq.Find("LOC").GetByName("bpf_entries"); err == nil {
		t.Error("LOC, which the events do not cover, has bpf_entries")
	}
	desc := func(line string) string {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.lines[line].desc.Load()
	}
	if got := desc("1"); got != "chip a" {
		t.Errorf("1's description %q", got)
	}
	write("  CPU0 CPU1\n 1: 5 2 chip\t  a2 \n 99: 1 1 chip b\n")
	time.Sleep(2 * MaxAge)
	if err := l.Refresh(); err != nil {
		t.Fatal(err)
	}
	if got := names(); got != "1 99" {
		t.Fatalf("after the change, lines %q, want 1 99", got)
	}
	if got, got99 := desc("1"), desc("99"); got != "chip a2" || got99 != "chip b" {
		t.Errorf("descriptions after the change: 1 %q, 99 %q", got, got99)
	}
	if got := get(t, irq, "99", "count").Uint64(); got != 2 {
		t.Errorf("99/count %d", got)
	}
	if got := get(t, irq, "99", "bpf_entries").Uint64(); got != 9 {
		t.Errorf("99/bpf_entries %d, want 9", got)
	}
	if got := get(t, irq, "", "count").Uint64(); got != 9 {
		t.Errorf("irq/count sum %d, want 9", got)
	}
	if got := get(t, irq, "", "bpf_entries").Uint64(); got != 16 {
		t.Errorf("irq/bpf_entries sum %d, want 16", got)
	}
}

// procField reads a /proc/stat line's first number, independently of
// ParseStat.
func procField(t *testing.T, key string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == key {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("/proc/stat has no %s", key)
	return 0
}

// procLine sums a /proc/interrupts or /proc/softirqs line's columns,
// independently of parseCPUTable.
func procLine(t *testing.T, file, name string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	ncpu := len(strings.Fields(lines[0]))
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != name+":" {
			continue
		}
		var sum uint64
		for _, x := range f[1:min(len(f), ncpu+1)] {
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				break
			}
			sum += v
		}
		return sum
	}
	t.Fatalf("/proc/%s has no %s", file, name)
	return 0
}

// TestTelemetryCollectorsLive checks the tree against /proc read before
// and after: each cumulative value lies between the two reads.
func TestTelemetryCollectorsLive(t *testing.T) {
	root, _, _ := telemetryTree(t, Paths{Proc: "/proc"})
	for _, c := range []struct{ path, name, file, key string }{
		{"system", "context_switches", "stat", "ctxt"},
		{"system", "forks", "stat", "processes"},
		{"system", "interrupts_total", "stat", "intr"},
		{"system", "softirqs_total", "stat", "softirq"},
		{"irq/LOC", "count", "interrupts", "LOC"},
		{"softirq/TIMER", "count", "softirqs", "TIMER"},
		{"softirq/RCU", "count", "softirqs", "RCU"},
	} {
		read := func() uint64 {
			if c.file == "stat" {
				return procField(t, c.key)
			}
			return procLine(t, c.file, c.key)
		}
		time.Sleep(2 * MaxAge) // let the last read of the file expire
		before := read()
		got := get(t, root, c.path, c.name).Uint64()
		after := read()
		if got < before || got > after {
			t.Errorf("%s/%s = %d, /proc read %d before and %d after", c.path, c.name, got, before, after)
		}
	}
	time.Sleep(2 * MaxAge)
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	up := get(t, root, "system", "uptime_seconds").Float64()
	b, _ = os.ReadFile("/proc/uptime")
	after, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if up < before || up > after {
		t.Errorf("uptime %v, /proc/uptime %v before and %v after", up, before, after)
	}
	if l := get(t, root, "system", "load1").Float64(); l < 0 {
		t.Errorf("load1 %v", l)
	}
}

func TestCollectorMissingFile(t *testing.T) {
	src := statsfs.NewSource("system")
	r, err := newStat(Paths{Proc: t.TempDir()}, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(); err == nil || !os.IsNotExist(err) {
		t.Errorf("refresh of a missing /proc/stat: %v", err)
	}
	if l, err := newInterrupts(Paths{Proc: t.TempDir()}, statsfs.NewSource("irq")); err != nil || l.Status().Err == nil {
		t.Errorf("newInterrupts on a missing file: err %v, status %+v; want a failed Status", err, l.Status())
	}
}
