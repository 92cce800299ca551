package irqcount

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
)

// procCounts reads /proc/interrupts or /proc/softirqs with its own simple
// parse: per line name, the sum of the CPU columns, and the rest of the
// line.
func procCounts(t *testing.T, file string) (map[string]uint64, map[string]string) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	ncpu := len(strings.Fields(lines[0]))
	counts, rest := map[string]uint64{}, map[string]string{}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[0], ":")
		var sum uint64
		i := 1
		for ; i < len(f) && i <= ncpu; i++ {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				break
			}
			sum += v
		}
		counts[name], rest[name] = sum, strings.Join(f[i:], " ")
	}
	return counts, rest
}

// settle is longer than the gap between the kernel counting an event in
// /proc and the tracepoint firing for it: two adjacent statements, but a
// virtual CPU can be descheduled by its host between them.
const settle = 100 * time.Millisecond

// TestCountsBracketedByProc compares the eBPF counts with the kernel's own
// counters over nested windows: P0, settle, E0, P1, disk I/O, P2, settle,
// E1, P3 (P a read of /proc, E of the maps). /proc/interrupts counts an
// interrupt in the flow handler just before its handler runs, and
// /proc/softirqs counts a vector just before softirq_entry fires, so for a
// line with one handler every event is in both counts, the eBPF one a
// moment later. Hence the inner /proc delta (P1..P2) cannot exceed the eBPF
// delta, and the eBPF delta cannot exceed the outer /proc delta (P0..P3),
// for every line at once, whatever else the machine does.
func TestCountsBracketedByProc(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint) // tp_btf is a BTF raw tracepoint; the Tracing probe loads an fentry program, which lockdown refuses
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	p0irq, desc := procCounts(t, "interrupts")
	p0soft, _ := procCounts(t, "softirqs")
	time.Sleep(settle)
	e0irq, err := c.IRQCounts()
	if err != nil {
		t.Fatal(err)
	}
	e0soft, err := c.SoftirqCounts()
	if err != nil {
		t.Fatal(err)
	}
	p1irq, _ := procCounts(t, "interrupts")
	p1soft, _ := procCounts(t, "softirqs")

	testutil.DiskIO(t)

	p2irq, _ := procCounts(t, "interrupts")
	p2soft, _ := procCounts(t, "softirqs")
	time.Sleep(settle)
	e1irq, err := c.IRQCounts()
	if err != nil {
		t.Fatal(err)
	}
	e1soft, err := c.SoftirqCounts()
	if err != nil {
		t.Fatal(err)
	}
	p3irq, _ := procCounts(t, "interrupts")
	p3soft, _ := procCounts(t, "softirqs")

	var moved uint64
	for name := range p0irq {
		if _, err := strconv.Atoi(name); err != nil || strings.Contains(desc[name], ",") {
			continue // LOC, NMI, ... have no IRQ number; a shared line runs several handlers
		}
		inner, outer, got := p2irq[name]-p1irq[name], p3irq[name]-p0irq[name], e1irq[name]-e0irq[name]
		if got < inner || got > outer {
			t.Errorf("IRQ %s (%s): eBPF counted %d handler entries, /proc/interrupts moved %d inside and %d around the window",
				name, desc[name], got, inner, outer)
			logMisses(t, c)
		}
		moved += inner
		t.Logf("IRQ %-4s %-40s proc inner %4d  ebpf %4d  proc outer %4d", name, desc[name], inner, got, outer)
	}
	if moved == 0 {
		t.Error("no numbered IRQ line moved during disk I/O: the comparison proved nothing")
	}
	for _, name := range SoftirqNames {
		inner, outer, got := p2soft[name]-p1soft[name], p3soft[name]-p0soft[name], e1soft[name]-e0soft[name]
		if got < inner || got > outer {
			t.Errorf("softirq %s: eBPF counted %d, /proc/softirqs moved %d inside and %d around the window", name, got, inner, outer)
			logMisses(t, c)
		}
		t.Logf("softirq %-8s proc inner %5d  ebpf %5d  proc outer %5d", name, inner, got, outer)
	}
	if e1soft["BLOCK"] == e0soft["BLOCK"] {
		t.Error("no BLOCK softirq counted during disk I/O")
	}
	if d, err := c.Dropped(); err != nil || d != 0 {
		t.Errorf("dropped %d, %v", d, err)
	}
}

// logMisses logs the programs' recursion misses, which would explain an
// eBPF count below the kernel's.
func logMisses(t *testing.T, c *Counter) {
	for name, p := range c.Programs() {
		if st, err := p.Stats(); err == nil {
			t.Logf("%s: %d recursion misses", name, st.RecursionMisses)
		}
	}
}

// TestCloseDetaches checks that Close leaves nothing in the kernel.
func TestCloseDetaches(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint) // tp_btf is a BTF raw tracepoint; the Tracing probe loads an fentry program, which lockdown refuses
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var ids []ebpf.ProgramID
	for _, p := range c.Programs() {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		ids = append(ids, id)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// With its links and fds closed the kernel frees each program (after
	// an RCU grace period): its ID no longer opens.
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		for {
			p, err := ebpf.NewProgramFromID(id)
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			if err == nil {
				p.Close()
			}
			if time.Now().After(deadline) {
				t.Fatalf("program %d still loaded after Close: %v", id, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// BenchmarkHandlerCost logs the programs' average run time per event from
// kernel.bpf_stats_enabled while disk I/O runs; it asserts nothing.
func BenchmarkHandlerCost(b *testing.B) {
	testutil.RequireBPF(b, ebpf.RawTracepoint) // tp_btf is a BTF raw tracepoint; the Tracing probe loads an fentry program, which lockdown refuses
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Skipf("kernel does not support BPF run-time statistics: %v", err)
	}
	defer stats.Close()
	c, err := Load()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	f, err := os.Create(filepath.Join(b.TempDir(), "io"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for i := 0; b.Loop(); i++ {
		if _, err := f.WriteAt(buf, int64(i%256)*4096); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	for name, p := range c.Programs() {
		st, err := p.Stats()
		if err != nil {
			b.Fatal(err)
		}
		if st.RunCount > 0 {
			b.Logf("%s: %d runs, %v in all, %.0f ns per event, %d recursion misses",
				name, st.RunCount, st.Runtime, float64(st.Runtime.Nanoseconds())/float64(st.RunCount), st.RecursionMisses)
		}
	}
}

// The own-cost values in irqcount/programs/<program>/ are the kernel's
// program info with run-time statistics held on while attached, checked
// against bpftool (an independent reader of the same info): each bpftool
// figure lies between the tree's reading before and after it. Interrupts
// and softirqs run all the time, so the figures are bracketed, not equal.
func TestOwnCostMatchesBpftool(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint)
	testutil.RequireCommand(t, "bpftool")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root := statsfs.NewSource("irqcount")
	r, err := c.AddValues(root)
	if err != nil {
		t.Fatal(err)
	}
	testutil.DiskIO(t)
	read := func(name string) (runs uint64, secs float64, misses uint64) {
		t.Helper()
		r.Expire()
		if err := r.Refresh(); err != nil {
			t.Fatal(err)
		}
		src := root.Find("programs/" + name)
		if src == nil {
			t.Fatalf("no irqcount/programs/%s", name)
		}
		get := func(v string) statsfs.Reading {
			x, err := src.GetByName(v)
			if err != nil || x.Absent {
				t.Fatalf("%s of %s: %v (absent %v)", v, name, err, x.Absent)
			}
			return x
		}
		return get("runs").Uint64(), get("run_seconds").Float64(), get("recursion_misses").Uint64()
	}
	for name, p := range c.Programs() {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		r0, s0, m0 := read(name)
		bt := testutil.Bpftool(t, id)
		r1, s1, m1 := read(name)
		bs := float64(bt.RunTimeNs) / 1e9
		if bt.RunCnt < r0 || bt.RunCnt > r1 || bs < s0-1e-9 || bs > s1+1e-9 || bt.RecursionMisses < m0 || bt.RecursionMisses > m1 {
			t.Errorf("%s: bpftool runs %d, %.9fs, misses %d; tree before %d, %.9fs, %d; after %d, %.9fs, %d",
				name, bt.RunCnt, bs, bt.RecursionMisses, r0, s0, m0, r1, s1, m1)
		}
		if r0 == 0 || s0 <= 0 {
			t.Errorf("%s: %d runs, %.9fs after disk I/O: run-time statistics not on", name, r0, s0)
		}
	}
	// The totals in irqcount/programs/ sum the two programs.
	if sum, err := root.Find("programs").GetByName("runs"); err != nil || sum.Absent || sum.Uint64() == 0 {
		t.Errorf("irqcount/programs/runs: %+v, %v", sum, err)
	}
}

// TestBatchAndKeyByKeyAgree reads the maps with batch lookups, then key by
// key (the fallback for kernels without BPF_MAP_LOOKUP_BATCH), then with
// batches again: this kernel (6.18) supports them, both ways see the same
// keys, and every count only grows from one read to the next.
func TestBatchAndKeyByKeyAgree(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint)
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testutil.DiskIO(t)
	read := func(noBatch bool) (map[uint32]uint64, [len(SoftirqNames)]uint64) {
		t.Helper()
		c.read.Lock()
		c.noBatch = noBatch
		c.read.Unlock()
		irqs, err := c.IRQs()
		if err != nil {
			t.Fatal(err)
		}
		soft, err := c.Softirqs()
		if err != nil {
			t.Fatal(err)
		}
		c.read.Lock()
		defer c.read.Unlock()
		if !noBatch && c.noBatch {
			t.Fatal("the kernel refused BPF_MAP_LOOKUP_BATCH; Linux 5.7+ supports it for these maps")
		}
		return irqs, soft
	}
	i1, s1 := read(false)
	i2, s2 := read(true)
	i3, s3 := read(false)
	if len(i1) == 0 {
		t.Fatal("no IRQ counted")
	}
	for k, v1 := range i1 {
		v2, ok2 := i2[k]
		v3, ok3 := i3[k]
		if !ok2 || !ok3 || v1 > v2 || v2 > v3 {
			t.Errorf("IRQ %d: batch %d, key by key %d (%v), batch %d (%v)", k, v1, v2, ok2, v3, ok3)
		}
	}
	for k := range i2 {
		if _, ok := i3[k]; !ok {
			t.Errorf("IRQ %d read key by key but not by batch", k)
		}
	}
	var total uint64
	for i := range s1 {
		total += s3[i]
		if s1[i] > s2[i] || s2[i] > s3[i] {
			t.Errorf("softirq %s: batch %d, key by key %d, batch %d", SoftirqNames[i], s1[i], s2[i], s3[i])
		}
	}
	if total == 0 {
		t.Error("no softirq counted")
	}
}

// BenchmarkRead is one read of both maps as the irqcount and softirqcount
// collectors do it, with batch lookups and key by key (the fallback).
//
//	go test -run '^$' -bench Read -benchmem ./internal/irqcount/
func BenchmarkRead(b *testing.B) {
	testutil.RequireBPF(b, ebpf.RawTracepoint)
	c, err := Load()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, way := range []struct {
		name    string
		noBatch bool
	}{{"batch", false}, {"keybykey", true}} {
		b.Run(way.name, func(b *testing.B) {
			for b.Loop() {
				c.read.Lock()
				c.noBatch = way.noBatch
				c.read.Unlock()
				if _, err := c.IRQCounts(); err != nil {
					b.Fatal(err)
				}
				if _, err := c.SoftirqCounts(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
