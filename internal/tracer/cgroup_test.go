package tracer

import (
	"testing"

	"github.com/kstat/kstat/internal/testutil"
)

// Two helpers started in two cgroups the test creates: each cgroup counts
// exactly its helper's forks, execs and exits (what the helpers were told
// to do), and each helper's entry carries its cgroup's id (the directory's
// inode number, read by the test with stat).
func TestCgroupAttribution(t *testing.T) {
	tr := openTracer(t, Options{})
	a, b := testutil.NewCgroup(t), testutil.NewCgroup(t)
	ha := startHelperIn(t, a.Path, "forkexec", "KSTAT_EXECS=2", "KSTAT_FORKS=3")
	hb := startHelperIn(t, b.Path, "forkexec", "KSTAT_FORKS=7")
	ha.Do("go")
	hb.Do("go")
	for _, w := range []struct {
		h            *helper
		cg           *testutil.Cgroup
		forks, execs uint64
	}{{ha, a, 3, 3}, {hb, b, 7, 1}} {
		if p := mustProc(t, tr, w.h.Pid); p.Cgroup != w.cg.ID {
			t.Errorf("pid %d: cgroup %d, want %d (%s)", w.h.Pid, p.Cgroup, w.cg.ID, w.cg.Path)
		}
		cgs, err := tr.Cgroups()
		if err != nil {
			t.Fatal(err)
		}
		// The helper's own fork was made by the test, in the test's
		// cgroup; its execs (the start and the re-execs) and its
		// children's exits are in its own.
		got := cgs[w.cg.ID]
		if got.Forks != w.forks || got.Execs != w.execs || got.Exits != w.forks {
			t.Errorf("cgroup %s: %+v, want %d forks, %d execs, %d exits", w.cg.Path, got, w.forks, w.execs, w.forks)
		}
	}
	if c, err := tr.Counters(); err != nil || c.CgroupsDropped != 0 {
		t.Errorf("cgroups dropped: %+v %v", c, err)
	}
}
