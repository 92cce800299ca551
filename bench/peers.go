package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/kstat/kstat/internal/bpf"
	emptybpf "github.com/kstat/kstat/internal/bpf/empty"
	"github.com/kstat/kstat/internal/tracer"
)

// peerConfig is one thing attached (or nothing) while the loops run.
type peerConfig struct {
	name   string
	attach func() (detach func() error, err error)
}

// bpftraceCounts counts allocation and free calls and bytes per pid, as
// the tracer's exact per-process counts do.
const bpftraceCounts = `
tracepoint:kmem:kmalloc, tracepoint:kmem:kmem_cache_alloc { @allocs[pid] = count(); @bytes[pid] = sum(args->bytes_alloc); }
tracepoint:kmem:kfree, tracepoint:kmem:kmem_cache_free { @frees[pid] = count(); }
END { clear(@allocs); clear(@bytes); clear(@frees); }
`

// bpftraceAddrs adds what memleak-style tracking needs: every allocation
// in a map by address, deleted at its free, with outstanding bytes per pid.
const bpftraceAddrs = `
tracepoint:kmem:kmalloc, tracepoint:kmem:kmem_cache_alloc {
	@allocs[pid] = count(); @bytes[pid] = sum(args->bytes_alloc);
	@size[args->ptr] = args->bytes_alloc; @owner[args->ptr] = pid; @out[pid] = sum(args->bytes_alloc);
}
tracepoint:kmem:kfree, tracepoint:kmem:kmem_cache_free {
	@frees[pid] = count();
	if (@size[args->ptr]) { @out[@owner[args->ptr]] = sum(-@size[args->ptr]); delete(@size[args->ptr]); delete(@owner[args->ptr]); }
}
END { clear(@allocs); clear(@bytes); clear(@frees); clear(@size); clear(@owner); clear(@out); }
`

// startBpftrace runs a bpftrace program and returns once its probes are
// attached.
func startBpftrace(prog string) (func() error, error) {
	cmd := exec.Command("bpftrace", "-e", prog)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(out)
	ready := make(chan error, 1)
	go func() {
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Attaching") {
				ready <- nil
				for sc.Scan() { // drain
				}
				return
			}
		}
		ready <- errors.New("bpftrace ended before attaching")
	}()
	select {
	case err = <-ready:
	case <-time.After(60 * time.Second):
		err = errors.New("bpftrace did not attach within 60s")
	}
	stop := func() error {
		// bpftrace v0.17 sometimes misses a SIGINT: repeat it, and
		// kill it if it is still there after 20 s.
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		for range 10 {
			_ = cmd.Process.Signal(syscall.SIGINT)
			select {
			case err := <-done:
				return err
			case <-time.After(2 * time.Second):
			}
		}
		_ = cmd.Process.Kill()
		return errors.Join(errors.New("bpftrace did not stop on SIGINT: killed"), <-done)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	time.Sleep(200 * time.Millisecond)
	return stop, nil
}

// progCost accumulates the kernel's run-time statistics of a
// configuration's kmem programs over its rounds.
type progCost struct {
	mu   sync.Mutex
	run  map[string]time.Duration
	runs map[string]uint64
}

func (c *progCost) add(name string, progs []*ebpf.Program) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range progs {
		if st, err := p.Stats(); err == nil {
			c.run[name] += st.Runtime
			c.runs[name] += st.RunCount
		}
	}
}

// perRun is the mean run time per program run of a configuration.
func (c *progCost) perRun(name string) (time.Duration, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runs[name] == 0 {
		return 0, 0
	}
	return c.run[name] / time.Duration(c.runs[name]), c.runs[name]
}

// kmemPrograms are the tracer's programs on the floor's four hooks.
func kmemPrograms(tr *tracer.Tracer) []*ebpf.Program {
	ps := tr.Programs()
	return []*ebpf.Program{ps["kmalloc"], ps["kmem_cache_alloc"], ps["kfree"], ps["kmem_cache_free"]}
}

// attachEmpty attaches the four empty kmem programs: the floor.
func (h *harness) attachEmpty(cost *progCost, name string) (func() error, error) {
	var objs emptybpf.EmptyObjects
	if err := emptybpf.LoadEmptyObjects(&objs, nil); err != nil {
		return nil, err
	}
	var links []link.Link
	progs := []*ebpf.Program{objs.EmptyKmalloc, objs.EmptyCacheAlloc, objs.EmptyKfree, objs.EmptyCacheFree}
	closeAll := func() error {
		for _, l := range links {
			l.Close()
		}
		cost.add(name, progs)
		return objs.Close()
	}
	for _, p := range progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			closeAll()
			return nil, err
		}
		links = append(links, l)
	}
	return closeAll, nil
}

// attachTracer loads kstat's tracer with the given sampling; at detach it
// notes what the tracer could not see over the loops (stale addresses,
// missed frees, recursion misses, allocations still tracked).
func (h *harness) attachTracer(cost *progCost, name string, sample, stacks uint32) func() (func() error, error) {
	return func() (func() error, error) {
		tr, err := tracer.Open(tracer.Options{SampleEvery: sample, StackEvery: stacks})
		if err != nil {
			return nil, err
		}
		return func() error {
			c, err := tr.Counters()
			st, err2 := bpf.Stats(tr.Programs())
			if err == nil && err2 == nil {
				var misses, runs uint64
				for _, p := range st {
					misses += p.RecursionMisses
					runs += p.Runs
				}
				cost.add(name, kmemPrograms(tr))
				h.notef("kstat tracer (sample_every %d) over one round of the loops: stale_allocs %d, missed_frees %d, allocs_tracked at the end %d, allocs_dropped %d, procs_dropped %d, recursion_misses %d",
					sample, c.StaleAllocs, c.MissedFrees, c.AllocsTracked, c.AllocsDropped, c.ProcsDropped, misses)
			}
			return tr.Close()
		}, nil
	}
}

// pipeLoop makes, writes, reads and closes n pipes.
func pipeLoop(n int) (time.Duration, error) {
	buf := make([]byte, 64)
	start := time.Now()
	for range n {
		var p [2]int
		if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
			return 0, fmt.Errorf("pipe2: %w", err)
		}
		if _, err := syscall.Write(p[1], buf); err != nil {
			return 0, err
		}
		if _, err := syscall.Read(p[0], buf); err != nil {
			return 0, err
		}
		syscall.Close(p[0])
		syscall.Close(p[1])
	}
	return time.Since(start), nil
}

// forkLoop forks, execs /bin/true and reaps n times.
func forkLoop(n int) (time.Duration, error) {
	start := time.Now()
	for range n {
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{Env: []string{}})
		if err != nil {
			return 0, fmt.Errorf("fork/exec /bin/true: %w", err)
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// cpuTime runs loop on one locked thread and returns the CPU time (user
// and system) it took: its own thread's, and its waited children's. On a
// machine others load, CPU time is far steadier than wall time, which
// also counts the time spent waiting for a CPU.
func cpuTime(loop func() (time.Duration, error)) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var t0, t1, c0, c1 syscall.Rusage
	_ = syscall.Getrusage(rusageThread, &t0)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &c0)
	if _, err := loop(); err != nil {
		return 0, err
	}
	_ = syscall.Getrusage(rusageThread, &t1)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &c1)
	tv := func(r *syscall.Rusage) time.Duration {
		return time.Duration(r.Utime.Nano() + r.Stime.Nano())
	}
	return tv(&t1) - tv(&t0) + tv(&c1) - tv(&c0), nil
}

// rusageThread is RUSAGE_THREAD (Linux), missing from package syscall.
const rusageThread = 1

// tracerPeers times the socket, pipe and fork/exec loops with nothing
// attached, with empty programs on the tracer's four kmem hooks (the
// floor), with kstat's tracer at its daemon defaults and exact, and with
// bpftrace counting per pid without and with a map of addresses. Each
// loop's CPU time (its thread's and its children's) is measured; rounds
// are interleaved; medians are reported.
func (h *harness) tracerPeers() error {
	const sec = "3b"
	// The kernel measures the programs' run time while this is held.
	statsOff, err := bpf.EnableStats()
	if err != nil {
		return err
	}
	defer statsOff()
	cost := &progCost{run: map[string]time.Duration{}, runs: map[string]uint64{}}
	floorName := "4 empty tp_btf programs (floor)"
	defName := fmt.Sprintf("kstat tracer, defaults (sample_every %d, stack_every 16)", tracer.DefaultSampleEvery)
	exactName := "kstat tracer, exact (sample_every 1, stack_every 16)"
	configs := []peerConfig{
		{"nothing attached", func() (func() error, error) { return func() error { return nil }, nil }},
		{floorName, func() (func() error, error) { return h.attachEmpty(cost, floorName) }},
		{defName, h.attachTracer(cost, defName, tracer.DefaultSampleEvery, 16)},
		{exactName, h.attachTracer(cost, exactName, 1, 16)},
	}
	if _, err := exec.LookPath("bpftrace"); err == nil {
		configs = append(configs,
			peerConfig{"bpftrace, per-pid counts", func() (func() error, error) { return startBpftrace(bpftraceCounts) }},
			peerConfig{"bpftrace, per-pid counts + address map", func() (func() error, error) { return startBpftrace(bpftraceAddrs) }})
	} else {
		h.notef("bpftrace not installed (apt-get install bpftrace): its rows are missing")
	}
	loops := []struct {
		name string
		run  func() (time.Duration, error)
	}{
		{fmt.Sprintf("socket loop (%d × socket+close)", h.cfg.peerOps), func() (time.Duration, error) { return socketLoop(h.cfg.peerOps) }},
		{fmt.Sprintf("pipe loop (%d × pipe2+write+read+close)", h.cfg.peerOps), func() (time.Duration, error) { return pipeLoop(h.cfg.peerOps) }},
		{fmt.Sprintf("fork loop (%d × fork+exec /bin/true+wait)", h.cfg.execs), func() (time.Duration, error) { return forkLoop(h.cfg.execs) }},
	}
	times := make([][][]time.Duration, len(configs))
	for i := range times {
		times[i] = make([][]time.Duration, len(loops))
	}
	for _, l := range loops { // warm up
		if _, err := cpuTime(l.run); err != nil {
			return err
		}
	}
	for r := range h.cfg.peerRounds {
		order := make([]int, len(configs))
		for i := range order {
			order[i] = (i + r) % len(configs) // rotate, so no config always follows another
		}
		for _, ci := range order {
			c := configs[ci]
			detach, err := c.attach()
			if err != nil {
				h.notef("%s: %v", c.name, err)
				continue
			}
			for li, l := range loops {
				d, err := cpuTime(l.run)
				if err != nil {
					detach()
					return err
				}
				times[ci][li] = append(times[ci][li], d)
			}
			if err := detach(); err != nil {
				h.logf("%s: detaching: %v", c.name, err)
			}
		}
		h.logf("peers round %d of %d done", r+1, h.cfg.peerRounds)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| configuration |")
	for _, l := range loops {
		fmt.Fprintf(&b, " %s |", l.name)
	}
	b.WriteString("\n|---|")
	for range loops {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	base := make([]time.Duration, len(loops))
	for li := range loops {
		base[li] = median(times[0][li])
	}
	added := func(ci, li int) float64 {
		return float64(median(times[ci][li])-base[li]) / float64(base[li]) * 100
	}
	for ci, c := range configs {
		fmt.Fprintf(&b, "| %s |", c.name)
		for li := range loops {
			if len(times[ci][li]) == 0 {
				b.WriteString(" – |")
				continue
			}
			m := median(times[ci][li])
			if ci == 0 {
				fmt.Fprintf(&b, " %.3f s |", m.Seconds())
			} else {
				fmt.Fprintf(&b, " %.3f s (%+.0f%%) |", m.Seconds(), added(ci, li))
			}
		}
		b.WriteString("\n")
	}
	h.detail(fmt.Sprintf("tracer and peers: CPU time of each loop, medians of %d interleaved rounds (added time against nothing attached)", h.cfg.peerRounds), b.String())
	if len(times[1][0]) > 0 && len(times[2][0]) > 0 {
		for li, l := range loops[:2] {
			floor, kstat := added(1, li), added(2, li)
			r := kstat / floor
			h.measured(sec, fmt.Sprintf("%s: kstat tracer's added time ÷ the floor's (%+.0f%% / %+.0f%%)", l.name, kstat, floor),
				fmt.Sprintf("%.2f×", r), "≤ 2×", r <= 2)
		}
		r := float64(median(times[2][2])) / float64(base[2])
		h.measured(sec, "fork loop with the kstat tracer ÷ nothing attached", fmt.Sprintf("%.2f×", r), "≤ 1.2×", r <= 1.2)
	}
	var pr strings.Builder
	pr.WriteString("| configuration | mean run time per kmem event | events |\n|---|---|---|\n")
	for _, n := range []string{floorName, defName, exactName} {
		d, runs := cost.perRun(n)
		fmt.Fprintf(&pr, "| %s | %d ns | %d |\n", n, d.Nanoseconds(), runs)
	}
	h.detail("the same loops: the kmem programs' own run time per event (kernel BPF statistics, BPF_ENABLE_STATS)", pr.String())
	var order []string
	for ci, c := range configs {
		var parts []string
		for li := range loops {
			ts := append([]time.Duration(nil), times[ci][li]...)
			sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
			parts = append(parts, fmt.Sprint(ts))
		}
		order = append(order, c.name+": "+strings.Join(parts, " "))
	}
	h.notef("peer loop CPU times, sorted per loop: %s", strings.Join(order, "; "))
	return nil
}
