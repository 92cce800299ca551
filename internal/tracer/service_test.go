package tracer

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
)

func newTestService(t *testing.T) (*Service, map[string]*knob.Knob) {
	t.Helper()
	src := statsfs.NewSource("tracer")
	s, err := NewService(src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	knobs := map[string]*knob.Knob{}
	for _, k := range s.Knobs() {
		knobs[k.Name] = k
	}
	return s, knobs
}

// Bad input to the knobs is refused with ErrInvalid and changes nothing.
func TestServiceBadInput(t *testing.T) {
	s, k := newTestService(t)
	pids := k["pids"]
	for _, in := range []string{"+12", "+13 +14", "-14", "15", "-15"} {
		if err := pids.Set(in); err != nil {
			t.Fatalf("pids %q: %v", in, err)
		}
	}
	if got := pids.Get(); got != "12 13" {
		t.Fatalf("pids = %q, want \"12 13\"", got)
	}
	for _, in := range []string{"", "0", "abc", "+abc", "+0", "-", "+4194305", "+-1", "+12 +x", "clear!"} {
		err := pids.Set(in)
		if !errors.Is(err, statsfs.ErrInvalid) {
			t.Errorf("pids %q: err = %v, want ErrInvalid", in, err)
		}
		if got := pids.Get(); got != "12 13" {
			t.Errorf("after bad %q pids = %q, want \"12 13\" kept", in, got)
		}
	}
	if err := pids.Set("clear"); err != nil || pids.Get() != "" {
		t.Errorf("clear: %v, pids %q", err, pids.Get())
	}
	for name, bad := range map[string]string{"enable": "2", "sort": "bogus", "stack_every": "-1"} {
		old := k[name].Get()
		if err := k[name].Set(bad); !errors.Is(err, statsfs.ErrInvalid) {
			t.Errorf("%s %q: err = %v, want ErrInvalid", name, bad, err)
		}
		if k[name].Get() != old {
			t.Errorf("%s changed to %q by bad input", name, k[name].Get())
		}
	}
	if err := k["sort"].Set("locks"); err != nil || s.SortBy() != "locks" {
		t.Errorf("sort locks: %v (%q)", err, s.SortBy())
	}
	if got := s.Report(); !strings.Contains(got, "disabled") {
		t.Errorf("report of a disabled tracer: %q", got)
	}
	if s.Enabled() {
		t.Error("enabled by default")
	}
	if got := s.FunctionsStatus(); !strings.Contains(got, "disabled") {
		t.Errorf("functions_status of a disabled tracer: %q", got)
	}
}

func readValue(t *testing.T, src *statsfs.Source, name string) uint64 {
	t.Helper()
	r, err := src.GetByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return r.Uint64()
}

// Enabled through its knob, the service shows a traced process in
// tracer/<pid>/ and the report, sums it in tracer/, and drops it when the
// process exits or the tracer is disabled.
func TestServiceTree(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint)
	s, k := newTestService(t)
	h := startHelper(t, "forkexec", "KSTAT_FORKS=5")
	pid := strconv.Itoa(int(h.Pid))
	if err := k["pids"].Set("+" + pid); err != nil {
		t.Fatal(err)
	}
	if err := k["enable"].Set("1"); err != nil {
		t.Fatal(err)
	}
	if st := s.FunctionsStatus(); !strings.HasPrefix(st, "not supported: ") && !strings.HasPrefix(st, "attached (") {
		t.Errorf("functions_status when enabled: %q", st)
	}
	h.Do("go")
	time.Sleep(collector.MaxAge + 10*time.Millisecond)
	if err := s.Refresh(); err != nil { // Run does this every second
		t.Fatal(err)
	}
	src := s.Source().Find(pid)
	if src == nil {
		t.Fatalf("no tracer/%s after its forks", pid)
	}
	if src.Label() != "pid" {
		t.Errorf("label %q, want pid", src.Label())
	}
	if got := readValue(t, src, "forks"); got != 5 {
		t.Errorf("tracer/%s/forks = %d, want 5", pid, got)
	}
	// Only the helper is traced, so the sum is its count.
	if got := readValue(t, s.Source(), "forks"); got != 5 {
		t.Errorf("tracer/forks = %d, want 5", got)
	}
	if got := readValue(t, src, "child_exits"); got != 5 {
		t.Errorf("tracer/%s/child_exits = %d, want 5", pid, got)
	}
	if c := src.Control("comm"); c == nil || c.Read() != "tracer.test\n" {
		t.Errorf("comm control: %v", c)
	}
	rep := s.Report()
	lines := strings.Split(strings.TrimSpace(rep), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "FORKS") || strings.Fields(lines[1])[0] != pid {
		t.Errorf("report:\n%s", rep)
	}

	h.Stop()
	time.Sleep(collector.MaxAge + 10*time.Millisecond)
	if err := s.Refresh(); err != nil {
		t.Fatal(err)
	}
	if s.Source().Find(pid) != nil {
		t.Errorf("tracer/%s still there after the process exited", pid)
	}
	if got := readValue(t, s.Source(), "exits"); got != 1 {
		t.Errorf("tracer/exits = %d, want 1 (the helper)", got)
	}
	if err := k["enable"].Set("0"); err != nil {
		t.Fatal(err)
	}
	for _, sub := range s.Source().Subordinates() {
		if sub.Label() == "pid" {
			t.Errorf("per-process source %s left after disable", sub.Name())
		}
	}
	// Counters of the disabled period stay.
	if got := readValue(t, s.Source(), "exits"); got != 1 {
		t.Errorf("tracer/exits = %d after disable, want 1 kept", got)
	}
}
