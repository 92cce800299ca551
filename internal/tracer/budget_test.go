package tracer

import (
	"context"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
)

// The budget's steps on made-up costs: over budget raises a level per
// window, past MaxLevel it detaches; three windows under a quarter of the
// budget lower a level.
func TestBudgetSteps(t *testing.T) {
	var levels []int
	b := budgetState{Budget: Budget{Share: 0.01, Window: time.Second}, vals: statsfs.NewCounters(budgetTable)}
	b.stepped = func(l int) { levels = append(levels, l) }
	now := time.Unix(1000, 0)
	var run time.Duration
	// cost is the share the next window measures.
	window := func(cost float64) bool {
		now = now.Add(time.Second)
		run += time.Duration(cost * float64(time.Second) * float64(numCPU()))
		return b.check(now, run)
	}
	b.check(now, run) // starts the first window
	for i := range MaxLevel {
		if window(0.02) {
			t.Fatalf("detached at level %d", i)
		}
	}
	if b.level != MaxLevel {
		t.Fatalf("level %d after %d windows over budget", b.level, MaxLevel)
	}
	window(0.001)
	window(0.001)
	if b.level != MaxLevel {
		t.Errorf("stepped back after two quiet windows: level %d", b.level)
	}
	window(0.001)
	if b.level != MaxLevel-1 {
		t.Errorf("level %d after three quiet windows, want %d", b.level, MaxLevel-1)
	}
	window(0.005) // within budget: stays
	window(0.02)
	if !window(0.02) || b.level != LevelDetached {
		t.Errorf("not detached over budget at the highest level: level %d", b.level)
	}
	want := []int{1, 2, 3, 4, 5, 4, 5}
	if len(levels) != len(want) {
		t.Fatalf("levels %v, want %v", levels, want)
	}
	for i := range want {
		if levels[i] != want[i] {
			t.Fatalf("levels %v, want %v", levels, want)
		}
	}
	if got := b.vals.Load(0); got != LevelDetached {
		t.Errorf("budget_level value %d", got)
	}
}

// A tiny budget under an allocation storm: the service raises the
// sampling level by level (visible in tracer/budget_level and
// sample_every_effective) and finally detaches, after which the programs
// cost nothing: under any budget. Attached again under the storm, the
// level rises; with the storm stopped and a large budget it steps back,
// level by level, to 0.
func TestBudgetUnderStorm(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint)
	s, _ := newTestService(t)
	src := s.Source()
	s.SetBudget(Budget{Share: 1e-6, Window: 300 * time.Millisecond})
	if err := s.SetEnabled(true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx, 50*time.Millisecond)
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopStorm := func() { stopOnce.Do(func() { close(stop) }) }
	defer stopStorm()
	go storm(stop)
	seen := map[uint64]bool{}      // budget_level values
	effective := map[uint64]bool{} // sample_every_effective values
	deadline := time.Now().Add(30 * time.Second)
	for s.Enabled() && time.Now().Before(deadline) {
		if l := readValue(t, src, "budget_level"); l <= MaxLevel {
			seen[l] = true
		}
		effective[readValue(t, src, "sample_every_effective")] = true
		time.Sleep(20 * time.Millisecond)
	}
	if s.Enabled() {
		t.Fatalf("still attached after 30 s over budget; levels seen %v", seen)
	}
	if l := readValue(t, src, "budget_level"); l != LevelDetached {
		t.Errorf("budget_level %d after detaching, want %d", l, LevelDetached)
	}
	t.Logf("levels seen %v, sample_every_effective %v", seen, effective)
	if len(seen) < 3 {
		t.Errorf("only levels %v seen on the way to detaching", seen)
	}
	// Each level samples 4x fewer: 1, 4, 16, ... up to 4^MaxLevel.
	for e := range effective {
		if e == 0 || e > 1<<(2*MaxLevel) || e&(e-1) != 0 || (e&0x55555555) == 0 {
			t.Errorf("sample_every_effective %d is not 4^level", e)
		}
	}
	if len(effective) < 3 {
		t.Errorf("sampling did not rise: %v", effective)
	}
	// Attaching again starts at the configured sampling.
	if err := s.SetEnabled(true); err != nil {
		t.Fatal(err)
	}
	if l := readValue(t, src, "budget_level"); l != 0 {
		t.Errorf("budget_level %d after enabling again", l)
	}
	e0 := readValue(t, src, "sample_every_effective") // the configured sampling

	// Stepping back: still under the storm, the level rises again; then
	// the storm stops and the budget grows to a whole machine, so every
	// window is under a quarter of it, and the level falls one step per
	// three windows, back to 0 and the configured sampling.
	peak := uint64(0)
	for deadline := time.Now().Add(10 * time.Second); peak < 2 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		peak = max(peak, readValue(t, src, "budget_level"))
	}
	if peak < 2 || peak > MaxLevel {
		t.Fatalf("budget_level %d after enabling again under the storm, want 2 to %d", peak, MaxLevel)
	}
	stopStorm()
	s.SetBudget(Budget{Share: 1, Window: 300 * time.Millisecond})
	prev, falls := uint64(LevelDetached), 0
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		l := readValue(t, src, "budget_level")
		if l > prev {
			t.Errorf("budget_level rose from %d to %d with the storm stopped and a whole machine's budget", prev, l)
		}
		if l < prev && prev != LevelDetached {
			falls++
		}
		if prev = l; l == 0 {
			break
		}
	}
	if prev != 0 || !s.Enabled() {
		t.Fatalf("budget_level %d (enabled %v) 15 s after the storm stopped, want 0", prev, s.Enabled())
	}
	if falls < 1 {
		t.Errorf("budget_level went to 0 without a visible step")
	}
	if e := readValue(t, src, "sample_every_effective"); e != e0 {
		t.Errorf("sample_every_effective %d back at level 0, want %d as configured", e, e0)
	}
	t.Logf("stepped back from level %d to 0 in %d visible steps", peak, falls)
}

// storm allocates kernel memory (pipes) until stop closes.
func storm(stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		var p [2]int
		if syscall.Pipe2(p[:], syscall.O_CLOEXEC) == nil {
			syscall.Close(p[0])
			syscall.Close(p[1])
		}
	}
}

// The own-cost values in tracer/programs/<tracepoint>/ are the kernel's
// program info, checked against bpftool (an independent reader of the
// same info): each bpftool figure lies between the tree's reading before
// and after it, and for the programs that did not run in between (exec
// and fork, while nothing execs) the three are equal.
func TestOwnCostMatchesBpftool(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint)
	testutil.RequireCommand(t, "bpftool")
	s, _ := newTestService(t)
	if err := s.SetEnabled(true); err != nil {
		t.Fatal(err)
	}
	h := startHelper(t, "forkexec", "KSTAT_EXECS=2", "KSTAT_FORKS=3")
	h.Do("go")
	progs := s.tr.Programs()
	read := func(name string) (runs uint64, secs float64, misses uint64) {
		src := s.Source().Find("programs/" + name)
		if src == nil {
			t.Fatalf("no tracer/programs/%s", name)
		}
		r, err := src.GetByName("run_seconds")
		if err != nil || r.Absent {
			t.Fatalf("run_seconds of %s: %v (absent %v)", name, err, r.Absent)
		}
		return readValue(t, src, "runs"), r.Float64(), readValue(t, src, "recursion_misses")
	}
	exact := 0
	for name, p := range progs {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		if err := s.read(); err != nil {
			t.Fatal(err)
		}
		r0, s0, m0 := read(name)
		bt := testutil.Bpftool(t, id)
		if err := s.read(); err != nil {
			t.Fatal(err)
		}
		r1, s1, m1 := read(name)
		bs := float64(bt.RunTimeNs) / 1e9
		if bt.RunCnt < r0 || bt.RunCnt > r1 || bs < s0-1e-9 || bs > s1+1e-9 || bt.RecursionMisses < m0 || bt.RecursionMisses > m1 {
			t.Errorf("%s: bpftool runs %d, %.9fs, misses %d; tree before %d, %.9fs, %d; after %d, %.9fs, %d",
				name, bt.RunCnt, bs, bt.RecursionMisses, r0, s0, m0, r1, s1, m1)
		}
		if r0 == r1 {
			exact++
			if bt.RunCnt != r0 || bt.RunTimeNs != uint64(s0*1e9+0.5) {
				t.Errorf("%s: bpftool %d runs %d ns, tree %d runs %.0f ns", name, bt.RunCnt, bt.RunTimeNs, r0, s0*1e9)
			}
		}
		if name == "sched_process_exec" && r1 < 3 {
			t.Errorf("sched_process_exec ran %d times after 3 execs", r1)
		}
	}
	if exact == 0 {
		t.Error("no program was quiet between the readings: nothing compared exactly")
	}
	if os.Getenv("KSTAT_DEBUG") != "" {
		t.Logf("%d programs compared exactly", exact)
	}
}
