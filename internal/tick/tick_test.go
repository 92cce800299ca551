package tick

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kstat/kstat/statsfs"
)

// TestJobsShareTicks runs two jobs of 100ms, started 40ms apart: after
// the first tick they run together, on the same pass, and the pass holds
// both jobs' subtrees (each read once: a record counts its loads).
func TestJobsShareTicks(t *testing.T) {
	tab := statsfs.NewTable(statsfs.Value{Name: "n", Type: statsfs.U64})
	root := statsfs.NewSource("root")
	var loads [2]int
	var mu sync.Mutex
	for i, name := range []string{"a", "b"} {
		s := statsfs.NewSource("%s", name)
		_ = s.AddValues(tab, statsfs.RecordFunc(func(int) uint64 {
			mu.Lock()
			defer mu.Unlock()
			loads[i]++
			return uint64(i)
		}), 0)
		root.AddSubordinate(s)
	}
	c := New(root)
	type run struct {
		job  string
		now  time.Time
		pass *statsfs.Pass
		a, b bool
	}
	runs := make(chan run, 100)
	job := func(name string) func(time.Time, *statsfs.Pass) {
		return func(now time.Time, p *statsfs.Pass) {
			runs <- run{name, now, p, p.Has(root.Subordinate("a")), p.Has(root.Subordinate("b"))}
		}
	}
	ja := c.Job([]string{"a"}, job("a"))
	jb := c.Job([]string{"b", "missing"}, job("b"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	ja.Start(100*time.Millisecond, 0)
	time.Sleep(40 * time.Millisecond)
	jb.Start(100*time.Millisecond, 100*time.Millisecond)
	time.Sleep(650 * time.Millisecond)
	ja.Stop()
	jb.Stop()
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-done
	close(runs)
	var all []run
	for r := range runs {
		all = append(all, r)
	}
	// b's first run is pulled in to a's second tick; from then on every
	// tick runs both on one pass with both subtrees.
	ticks := map[time.Time][]run{}
	for _, r := range all[1:] {
		ticks[r.now] = append(ticks[r.now], r)
	}
	if len(ticks) < 4 {
		t.Fatalf("%d ticks after the first in 650ms at 100ms: %v", len(ticks), all)
	}
	for now, rs := range ticks {
		if len(rs) != 2 || rs[0].pass != rs[1].pass || !rs[0].a || !rs[0].b {
			t.Errorf("tick at %v: %d jobs %+v, want a and b on one pass of both", now.Format("05.000"), len(rs), rs)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if loads[0] != len(ticks)+1 || loads[1] != len(ticks) {
		t.Errorf("values read %v times over %d shared ticks: want once per tick", loads, len(ticks))
	}
}

// TestStop: a stopped job does not run; a restarted one runs again.
func TestStop(t *testing.T) {
	c := New(statsfs.NewSource("root"))
	var mu sync.Mutex
	n := 0
	j := c.Job(nil, func(time.Time, *statsfs.Pass) { mu.Lock(); n++; mu.Unlock() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	count := func() int { mu.Lock(); defer mu.Unlock(); return n }
	j.Start(20*time.Millisecond, 0)
	time.Sleep(100 * time.Millisecond)
	j.Stop()
	time.Sleep(30 * time.Millisecond)
	stopped := count()
	if stopped < 2 {
		t.Fatalf("%d runs in 100ms at 20ms", stopped)
	}
	time.Sleep(100 * time.Millisecond)
	if got := count(); got != stopped {
		t.Fatalf("%d runs after Stop (%d before)", got, stopped)
	}
	j.Start(20*time.Millisecond, 0)
	time.Sleep(100 * time.Millisecond)
	if count() <= stopped {
		t.Error("no run after a new Start")
	}
}
