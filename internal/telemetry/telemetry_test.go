package telemetry

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
)

// liveTree is the telemetry sources on /proc, with memory/ from the
// meminfo collector.
func liveTree(t *testing.T) *statsfs.Source {
	t.Helper()
	root := statsfs.NewSource("kstat")
	p := collector.Paths{Proc: "/proc", Sys: "/sys"}
	if err := new(collector.Registry).Build(collector.Config{Paths: p, Root: root}, collector.Only(Collectors...)); err != nil {
		t.Fatal(err)
	}
	return root
}

// memTotal reads MemTotal from /proc/meminfo, in bytes.
func memTotal(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}

func startSampler(t *testing.T, root *statsfs.Source, n int, d time.Duration) *Sampler {
	t.Helper()
	s := NewSampler(root, NewRing(n), d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func lastSeq(s *Sampler) uint64 {
	snaps := s.Ring().Snapshots()
	if len(snaps) == 0 {
		return 0
	}
	return snaps[len(snaps)-1].Seq
}

func waitSeq(t *testing.T, s *Sampler, seq uint64, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for lastSeq(s) < seq {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot %d within %v (last %d)", seq, limit, lastSeq(s))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRingOrder(t *testing.T) {
	r := NewRing(3)
	for i := uint64(1); i <= 5; i++ {
		r.Add(Snapshot{Seq: i})
		var got []uint64
		for _, s := range r.Snapshots() {
			got = append(got, s.Seq)
		}
		want := []uint64{}
		for j := max(1, int(i)-2); j <= int(i); j++ {
			want = append(want, uint64(j))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after %d adds: %v, want %v", i, got, want)
		}
	}
}

// TestSamplerRing runs the sampler at 100ms on the live tree: the ring
// holds exactly N snapshots, in order, numbered one by one, and every rate
// is the delta of the snapshots' own values over their own interval.
func TestSamplerRing(t *testing.T) {
	const n = 5
	s := startSampler(t, liveTree(t), n, 100*time.Millisecond)
	if err := s.IntervalKnob().Set("100ms"); err != nil {
		t.Fatal(err)
	}
	waitSeq(t, s, n+3, 10*time.Second)
	snaps := s.Ring().Snapshots()
	if len(snaps) != n {
		t.Fatalf("ring holds %d snapshots, want %d", len(snaps), n)
	}
	total := memTotal(t)
	for i, cur := range snaps {
		if cur.Memory == nil || cur.Memory.Total != total {
			t.Errorf("snapshot %d memory %+v, /proc/meminfo MemTotal %d", cur.Seq, cur.Memory, total)
		}
		if len(cur.Missing) > 0 || len(cur.IRQs) == 0 || len(cur.SoftirqVectors) != 10 {
			t.Errorf("snapshot %d: missing %v, %d IRQ lines, %d vectors", cur.Seq, cur.Missing, len(cur.IRQs), len(cur.SoftirqVectors))
		}
		if i == 0 {
			continue
		}
		prev := snaps[i-1]
		if cur.Seq != prev.Seq+1 || !cur.Time.After(prev.Time) {
			t.Fatalf("snapshot %d (%v) follows %d (%v)", cur.Seq, cur.Time, prev.Seq, prev.Time)
		}
		dt := cur.Time.Sub(prev.Time).Seconds()
		if cur.Interval != dt || dt < 0.1 {
			t.Errorf("snapshot %d interval %v, times %v apart", cur.Seq, cur.Interval, dt)
		}
		r := cur.Rates
		for _, c := range []struct {
			name     string
			got      float64
			cur, old uint64
		}{
			{"context_switches", r.ContextSwitches, cur.ContextSwitches, prev.ContextSwitches},
			{"forks", r.Forks, cur.Forks, prev.Forks},
			{"interrupts", r.Interrupts, cur.Interrupts, prev.Interrupts},
			{"softirqs", r.Softirqs, cur.Softirqs, prev.Softirqs},
		} {
			if c.cur < c.old {
				t.Errorf("%s went back from %d to %d", c.name, c.old, c.cur)
			}
			if want := float64(c.cur-c.old) / dt; c.got != want {
				t.Errorf("snapshot %d %s rate %v, want (%d-%d)/%v = %v", cur.Seq, c.name, c.got, c.cur, c.old, dt, want)
			}
		}
		old := map[string]uint64{}
		for _, l := range prev.IRQs {
			old[l.Name] = l.Count
		}
		for _, l := range cur.IRQs {
			if o, ok := old[l.Name]; ok && (l.Rate == nil || *l.Rate != float64(l.Count-o)/dt) {
				t.Errorf("snapshot %d irq %s rate %v, counts %d then %d", cur.Seq, l.Name, l.Rate, o, l.Count)
			}
		}
	}
	if r := snaps[n-1].Rates; r.ContextSwitches <= 0 || r.Interrupts <= 0 {
		t.Errorf("a live machine switched no context or took no interrupt: %+v", r)
	}
	text := s.Ring().Text()
	if got := strings.Count(text, "snapshot "); got != n {
		t.Errorf("ring text has %d blocks, want %d:\n%s", got, n, text)
	}
	if !strings.Contains(text, fmt.Sprintf("snapshot %d at", snaps[0].Seq)) || strings.Index(text, fmt.Sprintf("snapshot %d at", snaps[0].Seq)) > strings.Index(text, fmt.Sprintf("snapshot %d at", snaps[n-1].Seq)) {
		t.Errorf("ring text not oldest first:\n%s", text)
	}
}

// TestEnableStops checks that enable=0 stops sampling and 1 resumes it.
func TestEnableStops(t *testing.T) {
	s := startSampler(t, liveTree(t), 10, 100*time.Millisecond)
	waitSeq(t, s, 2, 5*time.Second)
	enable := s.EnableKnob()
	if err := enable.Set("0"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // a snapshot being taken at the switch may land
	stopped := lastSeq(s)
	time.Sleep(600 * time.Millisecond)
	if got := lastSeq(s); got != stopped {
		t.Fatalf("snapshots went on from %d to %d with enable=0", stopped, got)
	}
	if enable.Get() != "0" {
		t.Errorf("enable reads %q", enable.Get())
	}
	if err := enable.Set("1"); err != nil {
		t.Fatal(err)
	}
	waitSeq(t, s, stopped+2, 5*time.Second)
}

// TestIntervalAtOnce starts with an hour's interval; setting 100ms brings a
// snapshot long before the hour is over.
func TestIntervalAtOnce(t *testing.T) {
	s := startSampler(t, liveTree(t), 10, time.Hour)
	time.Sleep(200 * time.Millisecond)
	if lastSeq(s) != 0 {
		t.Fatal("a snapshot before the first hour")
	}
	k := s.IntervalKnob()
	if err := k.Set("100ms"); err != nil {
		t.Fatal(err)
	}
	waitSeq(t, s, 3, 5*time.Second)
	if err := k.Set("3600"); err != nil {
		t.Fatal(err)
	}
	if k.Get() != "1h0m0s" {
		t.Errorf("log_interval reads %q after 3600", k.Get())
	}
	time.Sleep(150 * time.Millisecond)
	seq := lastSeq(s)
	time.Sleep(400 * time.Millisecond)
	if got := lastSeq(s); got != seq {
		t.Errorf("snapshots %d..%d at a 1h interval", seq, got)
	}
}

func TestKnobBadInputs(t *testing.T) {
	s := NewSampler(statsfs.NewSource("kstat"), NewRing(1), 5*time.Second)
	interval, enable := s.IntervalKnob(), s.EnableKnob()
	for _, bad := range []string{"", "abc", "50ms", "99ms", "25h", "86401", "-1", "1.5", "0", "5 s"} {
		if err := interval.Set(bad); !errors.Is(err, statsfs.ErrInvalid) {
			t.Errorf("log_interval %q: error %v, want ErrInvalid", bad, err)
		}
	}
	if got := interval.Get(); got != "5s" {
		t.Errorf("log_interval %q after bad inputs, want the old 5s", got)
	}
	for _, good := range []string{"100ms", "24h", "86400", "7", " 250ms\n"} {
		if err := interval.Set(good); err != nil {
			t.Errorf("log_interval %q: %v", good, err)
		}
	}
	for _, bad := range []string{"", "2", "yes", "-1", "01"} {
		if err := enable.Set(bad); !errors.Is(err, statsfs.ErrInvalid) {
			t.Errorf("enable %q: error %v, want ErrInvalid", bad, err)
		}
	}
	if !s.Enabled() {
		t.Error("bad inputs changed enable")
	}
}

func TestSnapshotWithoutMemory(t *testing.T) {
	root := statsfs.NewSource("kstat")
	cfg := collector.Config{Paths: collector.Paths{Proc: testutil.Fixture(t, "telemetry", "proc")}, Root: root}
	if err := new(collector.Registry).Build(cfg, collector.Only("uptime", "stat", "loadavg", "interrupts", "softirqs")); err != nil {
		t.Fatal(err)
	}
	snap := Take(root, 1, time.Now(), nil)
	if snap.Memory != nil || fmt.Sprint(snap.Missing) != "[memory]" {
		t.Errorf("memory %+v, missing %v; want nil and [memory]", snap.Memory, snap.Missing)
	}
	if text := snap.Text(); !strings.Contains(text, "memory            unavailable") {
		t.Errorf("text does not say memory is missing:\n%s", text)
	}
	// The fixture's values come through the tree.
	if snap.ContextSwitches != 741118 || snap.Forks != 12428 || snap.Load != [3]float64{1.04, 0.84, 0.39} || snap.UptimeSeconds != 627.53 {
		t.Errorf("fixture snapshot %+v", snap)
	}
	var irq36 *Line
	for i := range snap.IRQs {
		if snap.IRQs[i].Name == "36" {
			irq36 = &snap.IRQs[i]
		}
	}
	if irq36 == nil || irq36.Desc != "PCI-MSIX-0000:00:02.0 1-edge virtio1-req.0" || irq36.BPF != nil {
		t.Errorf("irq 36: %+v", irq36)
	}
}

// readLines parses every line of a JSON log file.
func readLines(t *testing.T, path string) []Snapshot {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Snapshot
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s Snapshot
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		out = append(out, s)
	}
	return out
}

func TestJSONLogRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "telemetry.json")
	line, _ := json.Marshal(Snapshot{Seq: 1000})
	const keep = 3
	l, err := OpenJSONLog(LogOptions{Path: path, MaxSize: int64(3*len(line) + 10), Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 39; i++ {
		if err := l.Write(Snapshot{Seq: 1000 + i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(path + "*")
	if len(names) != keep+1 {
		t.Fatalf("files %v, want the log and %d rotated", names, keep)
	}
	// Newest last: FILE.3, FILE.2, FILE.1, FILE hold consecutive seqs.
	var seqs []uint64
	for _, p := range []string{path + ".3", path + ".2", path + ".1", path} {
		lines := readLines(t, p)
		if len(lines) != 3 {
			t.Errorf("%s holds %d lines, want 3", p, len(lines))
		}
		for _, s := range lines {
			seqs = append(seqs, s.Seq)
		}
	}
	for i := range seqs {
		if seqs[i] != 1039-uint64(len(seqs))+1+uint64(i) {
			t.Fatalf("seqs across the files %v, want consecutive up to 1039", seqs)
		}
	}
}

func TestJSONLogRemoveWithoutKeep(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	l, err := OpenJSONLog(LogOptions{Path: path, MaxSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := l.Write(Snapshot{Seq: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if names, _ := filepath.Glob(path + "*"); len(names) != 1 || len(readLines(t, path)) != 1 {
		t.Errorf("files %v with keep 0", names)
	}
}

func TestJSONLogOpenError(t *testing.T) {
	_, err := OpenJSONLog(LogOptions{Path: filepath.Join(t.TempDir(), "no", "such", "dir", "log")})
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "opening the JSON log") {
		t.Errorf("error %v", err)
	}
	if _, err := OpenJSONLog(LogOptions{Path: t.TempDir()}); err == nil {
		t.Error("a directory opened as the log")
	}
}

// TestJSONLogConcurrent writes from several goroutines to one file, like
// two daemons would: every line is whole.
func TestJSONLogConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var wg sync.WaitGroup
	for g := range 4 {
		l, err := OpenJSONLog(LogOptions{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer l.Close()
			for i := range 200 {
				s := Snapshot{Seq: uint64(g*1000 + i), IRQs: make([]Line, 50)}
				if err := l.Write(s); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(readLines(t, path)); n != 800 {
		t.Errorf("%d lines, want 800", n)
	}
}

func TestRatesSkipResets(t *testing.T) {
	t0 := time.Now()
	prev := &Snapshot{Time: t0, ContextSwitches: 100, IRQs: []Line{{Name: "1", Count: 50}}}
	cur := Snapshot{Time: t0.Add(2 * time.Second), ContextSwitches: 300, IRQs: []Line{{Name: "1", Count: 10}, {Name: "2", Count: 5}}}
	cur.rates(prev)
	if cur.Interval != 2 || cur.Rates.ContextSwitches != 100 || math.Signbit(cur.Rates.Forks) {
		t.Errorf("rates %+v interval %v", cur.Rates, cur.Interval)
	}
	if cur.IRQs[0].Rate != nil || cur.IRQs[1].Rate != nil {
		t.Errorf("rates for a line that went back or is new: %v %v", cur.IRQs[0].Rate, cur.IRQs[1].Rate)
	}
}
