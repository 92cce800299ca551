package tracer

import (
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/ksym"
	"github.com/kstat/kstat/internal/testutil"
)

func openTracer(t *testing.T, opts Options) *Tracer {
	t.Helper()
	testutil.RequireBPF(t, ebpf.RawTracepoint) // tp_btf; the Tracing probe needs fentry
	tr, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func procOf(t *testing.T, tr *Tracer, pid uint32) (Proc, bool) {
	t.Helper()
	procs, err := tr.Procs()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.Pid == pid {
			return p, true
		}
	}
	return Proc{}, false
}

func mustProc(t *testing.T, tr *Tracer, pid uint32) Proc {
	t.Helper()
	p, ok := procOf(t, tr, pid)
	if !ok {
		t.Fatalf("no tracer entry for pid %d", pid)
	}
	return p
}

// A helper execs itself 3 times, forks 5 children and ends 4 threads: its
// entry counts exactly that (plus the exec that started it).
func TestForkExecExit(t *testing.T) {
	tr := openTracer(t, Options{})
	const execs, forks, threads = 3, 5, 4
	h := startHelper(t, "forkexec", "KSTAT_EXECS=3", "KSTAT_FORKS=5", "KSTAT_THREADS=4")
	before := mustProc(t, tr, h.Pid)
	h.Do("go")
	p := mustProc(t, tr, h.Pid)
	if p.Execs != execs+1 {
		t.Errorf("execs = %d, want %d (the start and %d re-execs)", p.Execs, execs+1, execs)
	}
	if p.Forks != forks {
		t.Errorf("forks = %d, want %d", p.Forks, forks)
	}
	if p.ChildExits != forks {
		t.Errorf("child_exits = %d, want %d", p.ChildExits, forks)
	}
	// A locked goroutine that ends on the main thread wedges it instead
	// of ending it, so one of the threads may stay.
	if got := p.ThreadExits - before.ThreadExits; got < threads-1 || got > threads {
		t.Errorf("thread_exits grew by %d, want %d (or %d)", got, threads, threads-1)
	}
	// Exact against the kernel's own count of the group's threads.
	live := threadCount(t, h.Pid)
	if p = mustProc(t, tr, h.Pid); 1+p.Threads-p.ThreadExits != live {
		t.Errorf("1 + threads %d - thread_exits %d != %d threads in /proc/%d/status", p.Threads, p.ThreadExits, live, h.Pid)
	}
	if p.Ppid != uint32(os.Getpid()) {
		t.Errorf("ppid = %d, want the test's pid %d", p.Ppid, os.Getpid())
	}
	if p.Comm != "tracer.test" {
		t.Errorf("comm = %q, want tracer.test", p.Comm)
	}
	self := mustProc(t, tr, uint32(os.Getpid()))
	c0, _ := tr.Counters()
	h.Stop()
	// The group's exit removes its entry and counts for the parent.
	if _, ok := procOf(t, tr, h.Pid); ok {
		t.Errorf("entry of exited pid %d still there", h.Pid)
	}
	if got := mustProc(t, tr, uint32(os.Getpid())).ChildExits - self.ChildExits; got != 1 {
		t.Errorf("test's child_exits grew by %d, want 1", got)
	}
	c1, _ := tr.Counters()
	if c1.ProcsRemoved <= c0.ProcsRemoved || c1.Exits <= c0.Exits {
		t.Errorf("exit not counted: before %+v after %+v", c0, c1)
	}
}

// threadCount reads Threads: from /proc/PID/status.
func threadCount(t *testing.T, pid uint32) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads: line")
	return 0
}

// stable reads the tracer's kmalloc count and the independent one while
// the helper is idle, until two rounds agree.
func stableCounts(t *testing.T, tr *Tracer, tp *tpCounter, pid uint32) (uint64, uint64) {
	t.Helper()
	for range 20 {
		p, _ := procOf(t, tr, pid)
		n := tp.Count(t)
		if q, _ := procOf(t, tr, pid); q.Kmalloc == p.Kmalloc && tp.Count(t) == n {
			a := p.Kmalloc
			return a, n
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("helper never idle")
	return 0, 0
}

// A helper holding 64 pipes: its outstanding allocations grow, fall back
// after close, the leak report names the pipe creation path, and its
// kmalloc count matches a classic-tracepoint count of the same event.
func TestPipesOutstanding(t *testing.T) {
	const pipes = 64
	h := startHelper(t, "pipes", "KSTAT_PIPES="+strconv.Itoa(pipes))
	tr := openTracer(t, Options{Pids: []uint32{h.Pid}, StackEvery: 1})
	tp := newTPCounter(t, "kmem", "kmalloc", h.Pid)
	base, _ := procOf(t, tr, h.Pid) // no entry until its first event
	k0, n0 := stableCounts(t, tr, tp, h.Pid)

	h.Do("open")
	open := mustProc(t, tr, h.Pid)
	k1, n1 := stableCounts(t, tr, tp, h.Pid)
	if k1-k0 != n1-n0 {
		t.Errorf("kmalloc calls: tracer counted %d, the kmem:kmalloc tracepoint fired %d times for pid %d", k1-k0, n1-n0, h.Pid)
	}
	if k1-k0 < pipes {
		t.Errorf("only %d kmalloc calls for %d pipes", k1-k0, pipes)
	}
	// Each pipe holds at least its pipe_inode_info and 16 pipe_buffers
	// (40 bytes each), plus two files and an inode.
	grewAllocs := int64(open.AllocsOut) - int64(base.AllocsOut)
	grewBytes := int64(open.BytesOut) - int64(base.BytesOut)
	if grewAllocs < 3*pipes || grewBytes < pipes*16*40 {
		t.Fatalf("outstanding grew by %d allocations, %d bytes for %d pipes", grewAllocs, grewBytes, pipes)
	}

	syms, err := ksym.Load("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	leaks, err := tr.Leaks(syms, LeakOptions{Pids: []uint32{h.Pid}})
	if err != nil {
		t.Fatal(err)
	}
	var pipeStacks, pipeCount uint64
	for _, l := range leaks {
		if len(l.Pids) != 1 || l.Pids[0] != h.Pid {
			t.Errorf("leak stack of pids %v, want only %d", l.Pids, h.Pid)
		}
		joined := strings.Join(l.Frames, " ")
		if strings.Contains(joined, "create_pipe_files") || strings.Contains(joined, "alloc_pipe_info") {
			pipeStacks++
			pipeCount += l.Count
		}
	}
	if pipeStacks == 0 || pipeCount < pipes {
		t.Fatalf("no leak stack through the pipe creation path with %d allocations:\n%s", pipes, FormatLeaks(leaks))
	}
	t.Logf("%d stacks through the pipe path, %d allocations; top:\n%s", pipeStacks, pipeCount, FormatLeaks(leaks[:1]))

	h.Do("close")
	// Pipe inodes and files go through RCU: wait for the frees.
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := mustProc(t, tr, h.Pid)
		left := int64(p.AllocsOut) - int64(base.AllocsOut)
		if left*10 < grewAllocs && p.BytesFreed > open.BytesFreed+uint64(grewBytes)*9/10 {
			t.Logf("open: +%d allocations, +%d bytes; after close: %+d allocations", grewAllocs, grewBytes, left)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after close %d of %d allocations still outstanding (%d bytes freed of %d)",
				left, grewAllocs, p.BytesFreed-open.BytesFreed, grewBytes)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Eight threads writing to one pipe contend for its mutex: the tracer
// sees contentions for the helper, never more than contention_begin fired.
func TestLockContention(t *testing.T) {
	// On a loaded machine the threads may not contend in one run: try a
	// few helpers until the independent counter saw contention.
	for try := 1; ; try++ {
		h := startHelper(t, "contend", "KSTAT_THREADS=8", "KSTAT_MS=700")
		tp := newTPCounter(t, "lock", "contention_begin", h.Pid)
		tr := openTracer(t, Options{Pids: []uint32{h.Pid}})
		h.Do("go")
		p := mustProc(t, tr, h.Pid)
		begins := tp.Count(t)
		t.Logf("try %d: contentions %v (kinds %v), wait %dns, max %dns; contention_begin fired %d times",
			try, p.LockCount, LockKinds, p.WaitNs(), p.MaxWaitNs(), begins)
		if p.Contentions() > begins {
			t.Errorf("tracer counted %d contentions, more than the %d contention_begin events", p.Contentions(), begins)
		}
		if begins == 0 && try < 5 {
			continue
		}
		if p.LockCount[0] == 0 {
			t.Errorf("no mutex contention seen for pid %d", h.Pid)
		}
		if p.WaitNs() == 0 || p.MaxWaitNs() > p.WaitNs() {
			t.Errorf("wait %d, max %d", p.WaitNs(), p.MaxWaitNs())
		}
		return
	}
}

// setLastPid makes the next fork get pid (when nobody else forks first).
func setLastPid(t *testing.T, pid uint32) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(int(pid)-1)), 0); err != nil {
		t.Fatalf("setting ns_last_pid (needs root privileges): %v", err)
	}
}

// A reused pid starts clean: the first process's counts are gone with it,
// and frees of its memory at exit charge nobody.
func TestPidReuse(t *testing.T) {
	tr := openTracer(t, Options{})
	a := startHelper(t, "forkexec", "KSTAT_EXECS=2", "KSTAT_FORKS=3")
	a.Do("go")
	if p := mustProc(t, tr, a.Pid); p.Forks != 3 || p.Execs != 3 {
		t.Fatalf("first process: %+v", p)
	}
	pid := a.Pid
	a.Stop()
	var b *helper
	for range 50 {
		setLastPid(t, pid)
		h := startHelper(t, "forkexec")
		if h.Pid == pid {
			b = h
			break
		}
		h.Stop()
	}
	if b == nil {
		t.Skipf("pid %d was taken by someone else every time; cannot test reuse on this busy kernel", pid)
	}
	p := mustProc(t, tr, pid)
	if p.Forks != 0 || p.Execs != 1 || p.ChildExits != 0 {
		t.Errorf("reused pid %d starts with %+v, want no forks and 1 exec", pid, p)
	}
}

// Tiny maps: events beyond them are dropped and counted, nothing breaks.
func TestMapFull(t *testing.T) {
	tr := openTracer(t, Options{MaxProcs: 4, MaxAllocs: 16})
	// Six processes alive at once, each allocating, for four slots.
	var hs []*helper
	for range 6 {
		hs = append(hs, startHelper(t, "pipes", "KSTAT_PIPES=4"))
	}
	for _, h := range hs {
		h.Do("open")
	}
	c, err := tr.Counters()
	if err != nil {
		t.Fatal(err)
	}
	procs, err := tr.Procs()
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := tr.Allocs()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("counters with 4 procs / 16 allocs: %+v", c)
	if len(procs) > 4 || len(allocs) > 16 {
		t.Errorf("maps over their limits: %d procs, %d allocs", len(procs), len(allocs))
	}
	if c.ProcsDropped == 0 || c.AllocsDropped == 0 || c.AllocsDroppedBytes == 0 {
		t.Errorf("full maps dropped nothing: %+v", c)
	}
}

// The optional function counters: fentry or kprobes where the kernel has
// them, a "not supported:" reason where not (this machine: lockdown).
func TestFunctions(t *testing.T) {
	testutil.RequireRoot(t)
	f, err := AttachFunctions()
	if err != nil {
		if !strings.HasPrefix(err.Error(), "not supported: ") || !strings.Contains(err.Error(), "mutex_lock") {
			t.Fatalf("error %q does not say what is not supported", err)
		}
		t.Logf("%v", err)
		return
	}
	defer f.Close()
	h := startHelper(t, "pipes", "KSTAT_PIPES=8")
	h.Do("open")
	h.Do("close")
	counts, err := f.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if counts["kfree"] == 0 || counts["mutex_lock"] == 0 {
		t.Errorf("counted %v (%s)", counts, f.Method)
	}
}

// TestProgramCost logs each program's average run time per event, from
// kernel.bpf_stats_enabled, over a mixed workload (pipes, lock contention,
// forks), with every allocation stack captured, one in 16, and none. It
// asserts nothing about speed.
func TestProgramCost(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint) // tp_btf; the Tracing probe needs fentry
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Fatalf("enabling kernel.bpf_stats_enabled: %v", err)
	}
	defer stats.Close()
	for _, every := range []uint32{1, 16, 0} {
		tr, err := Open(Options{StackEvery: every})
		if err != nil {
			t.Fatal(err)
		}
		h := startHelper(t, "pipes", "KSTAT_PIPES=256")
		c := startHelper(t, "contend", "KSTAT_THREADS=8", "KSTAT_MS=300")
		f := startHelper(t, "forkexec", "KSTAT_FORKS=20")
		for range 5 {
			h.Do("open")
			h.Do("close")
		}
		c.Do("go")
		f.Do("go")
		names := make([]string, 0, 9)
		progs := tr.Programs()
		for name := range progs {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			s, err := progs[name].Stats()
			if err != nil {
				t.Fatal(err)
			}
			per := 0.0
			if s.RunCount > 0 {
				per = float64(s.Runtime.Nanoseconds()) / float64(s.RunCount)
			}
			t.Logf("stack 1/%-2d %-20s %9d runs %6.0f ns/event", every, name, s.RunCount, per)
		}
		tr.Close()
		h.Stop()
		c.Stop()
		f.Stop()
	}
}

// Entries of processes that are gone (here: a procfs without them) are
// removed by user space and counted as evicted.
func TestEvictGone(t *testing.T) {
	tr := openTracer(t, Options{Proc: t.TempDir()})
	h := startHelper(t, "forkexec", "KSTAT_FORKS=1")
	h.Do("go")
	procs, err := tr.Procs()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.Pid != 0 {
			t.Errorf("pid %d kept though absent from the given procfs", p.Pid)
		}
	}
	c, err := tr.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.ProcsEvicted == 0 {
		t.Errorf("nothing evicted: %+v", c)
	}
}

// Stack sampling: with stack_every 0 no allocation has a stack, with 1
// every tracked one does (or counts a stack error); counts stay exact.
func TestStackSampling(t *testing.T) {
	h := startHelper(t, "pipes", "KSTAT_PIPES=16")
	tr := openTracer(t, Options{Pids: []uint32{h.Pid}})
	h.Do("open")
	allocs, err := tr.Allocs()
	if err != nil {
		t.Fatal(err)
	}
	if len(allocs) == 0 {
		t.Fatal("no allocations tracked")
	}
	for _, a := range allocs {
		if a.StackID >= 0 {
			t.Fatalf("stack %d captured with sampling off", a.StackID)
		}
	}
	h.Do("close")
	if err := tr.SetStackEvery(1); err != nil {
		t.Fatal(err)
	}
	c0, _ := tr.Counters()
	h.Do("open")
	allocs, err = tr.Allocs()
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := tr.Counters()
	with := 0
	for _, a := range allocs {
		if a.StackID >= 0 {
			with++
		}
	}
	if with == 0 || uint64(with)+(c1.StackErrors-c0.StackErrors) < 3*16 {
		t.Errorf("%d of %d allocations with a stack (%d stack errors) for 16 pipes", with, len(allocs), c1.StackErrors-c0.StackErrors)
	}
}
