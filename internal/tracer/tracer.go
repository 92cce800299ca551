// Package tracer loads kstat's per-process kernel tracer (the tp_btf
// programs of internal/bpf/tracer), reads what they count, and turns it
// into statsfs sources, a per-process report and leak reports.
package tracer

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/kstat/kstat/internal/bpf"
	tracerbpf "github.com/kstat/kstat/internal/bpf/tracer"
)

// LockKinds names the lock kinds, in the order of the BPF program's enum
// lock_kind (classified from contention_begin's flags as perf lock does).
var LockKinds = [...]string{"mutex", "rwsem_read", "rwsem_write", "spinlock", "rwlock", "semaphore", "rtmutex", "percpu_rwsem"}

// Indexes into LockKinds.
const (
	lockMutex = iota
	lockRwsemRead
	lockRwsemWrite
	lockSpinlock
	lockRwlock
	lockSemaphore
)

// Global counter slots, in the order of the BPF program's enum counter.
const (
	cProcsCreated = iota
	cProcsRemoved
	cProcsDropped
	cAllocsDropped
	cAllocsDroppedBytes
	cMissedFrees
	cStaleAllocs
	cStackErrors
	cLockUnmatched
	cLockDropped
	cExits
	cAllocsTracked
	cAllocsUntracked
	cCgroupsDropped
	nCounters
)

// DefaultSampleEvery is the daemon's default allocation sampling: 1 in 64
// addresses tracked, where the measured cost is within 2x of empty
// programs on the same hooks (docs/PERFORMANCE.md).
const DefaultSampleEvery = 64

// Options configure a Tracer.
type Options struct {
	// MaxProcs bounds the per-process map; events of further processes
	// are dropped and counted. 0 means 4096.
	MaxProcs uint32
	// MaxAllocs bounds the tracked-allocation map; allocations beyond
	// it are not tracked and are counted. 0 means 65536.
	MaxAllocs uint32
	// MaxCgroups bounds the per-cgroup process-event map. 0 means 1024.
	MaxCgroups uint32
	// SampleEvery tracks the outstanding allocations of one address in N
	// (chosen by a hash of the address) and reports outstanding bytes
	// and counts as N x the tracked ones; 0 or 1 tracks every one.
	// Calls and allocated bytes are exact whatever N is.
	SampleEvery uint32
	// StackEvery captures the kernel stack of one allocation in N (of
	// the tracked ones: at most one in SampleEvery); 0 captures none.
	StackEvery uint32
	// Pids limits tracing to these thread groups; empty traces all.
	Pids []uint32
	// Proc is where procfs is mounted, for pruning entries of processes
	// whose exit was missed. Empty means /proc.
	Proc string
}

// Tracer is the loaded and attached set of programs. Close detaches them.
type Tracer struct {
	objs tracerbpf.TracerObjects
	set  *bpf.Set
	proc string

	mu         sync.Mutex // serialises filter and settings changes
	pids       map[uint32]bool
	every      uint32 // stacks
	sample     uint32
	freeThresh uint64
	evicted    uint64 // entries pruned by user space
}

// programNames are the tracepoints of the programs, by program.
var programNames = map[string]string{
	"sched_process_fork": tracerbpf.TracerProgOnFork,
	"sched_process_exec": tracerbpf.TracerProgOnExec,
	"sched_process_exit": tracerbpf.TracerProgOnExit,
	"kmalloc":            tracerbpf.TracerProgOnKmalloc,
	"kmem_cache_alloc":   tracerbpf.TracerProgOnCacheAlloc,
	"kfree":              tracerbpf.TracerProgOnKfree,
	"kmem_cache_free":    tracerbpf.TracerProgOnCacheFree,
	"contention_begin":   tracerbpf.TracerProgOnContentionBegin,
	"contention_end":     tracerbpf.TracerProgOnContentionEnd,
}

// Open loads the programs with opts' limits and attaches them. It needs
// root (CAP_BPF and CAP_PERFMON) and a kernel with BTF and tp_btf.
func Open(opts Options) (*Tracer, error) {
	bpf.RemoveMemlock()
	spec, err := tracerbpf.LoadTracer()
	if err != nil {
		return nil, fmt.Errorf("tracer: reading BPF object: %w", err)
	}
	if opts.MaxProcs == 0 {
		opts.MaxProcs = 4096
	}
	if opts.MaxAllocs == 0 {
		opts.MaxAllocs = 65536
	}
	if opts.MaxCgroups == 0 {
		opts.MaxCgroups = 1024
	}
	if opts.SampleEvery == 0 {
		opts.SampleEvery = 1
	}
	spec.Maps[tracerbpf.TracerMapProcs].MaxEntries = opts.MaxProcs
	spec.Maps[tracerbpf.TracerMapInfos].MaxEntries = opts.MaxProcs
	spec.Maps[tracerbpf.TracerMapAllocs].MaxEntries = opts.MaxAllocs
	spec.Maps[tracerbpf.TracerMapCgroups].MaxEntries = opts.MaxCgroups
	t := &Tracer{proc: opts.Proc, pids: map[uint32]bool{}, every: opts.StackEvery, sample: opts.SampleEvery}
	if t.proc == "" {
		t.proc = "/proc"
	}
	if err := spec.LoadAndAssign(&t.objs, nil); err != nil {
		return nil, fmt.Errorf("tracer: loading BPF programs (needs root: CAP_BPF, CAP_PERFMON; and a kernel with BTF): %w", err)
	}
	progs := make(map[string]*ebpf.Program, len(programNames))
	for tp, name := range programNames {
		progs[tp] = t.progByName(name)
	}
	t.set = bpf.NewSet(&t.objs, progs)
	for _, pid := range opts.Pids {
		if err := t.objs.Filter.Put(pid, uint8(1)); err != nil {
			t.Close()
			return nil, fmt.Errorf("tracer: pid filter: %w", err)
		}
		t.pids[pid] = true
	}
	if err := t.writeSettings(); err != nil {
		t.Close()
		return nil, err
	}
	for _, tp := range []string{
		"sched_process_fork", "sched_process_exec", "sched_process_exit",
		"kmalloc", "kmem_cache_alloc", "kfree", "kmem_cache_free",
		"contention_begin", "contention_end",
	} {
		if err := t.set.Attach(tp); err != nil {
			t.Close()
			return nil, fmt.Errorf("tracer: attaching tp_btf program on %s (needs kernel tp_btf support and root): %w", tp, err)
		}
	}
	return t, nil
}

func (t *Tracer) progByName(name string) *ebpf.Program {
	p := t.objs.TracerPrograms
	return map[string]*ebpf.Program{
		tracerbpf.TracerProgOnFork: p.OnFork, tracerbpf.TracerProgOnExec: p.OnExec, tracerbpf.TracerProgOnExit: p.OnExit,
		tracerbpf.TracerProgOnKmalloc: p.OnKmalloc, tracerbpf.TracerProgOnCacheAlloc: p.OnCacheAlloc,
		tracerbpf.TracerProgOnKfree: p.OnKfree, tracerbpf.TracerProgOnCacheFree: p.OnCacheFree,
		tracerbpf.TracerProgOnContentionBegin: p.OnContentionBegin, tracerbpf.TracerProgOnContentionEnd: p.OnContentionEnd,
	}[name]
}

// Close detaches the programs and frees the maps.
func (t *Tracer) Close() error {
	if t.set == nil {
		return t.objs.Close()
	}
	return t.set.Close()
}

// Threshold is the largest address hash that the programs sample when one
// address in n is sampled: a hash is at most Threshold(n) with probability
// 1/n (exactly, for n a power of two).
func Threshold(n uint32) uint64 {
	if n <= 1 {
		return math.MaxUint64
	}
	return math.MaxUint64 / uint64(n)
}

// AddrHash is the programs' hash of an allocation's address
// (splitmix64's finalizer), for tests that check the sampling.
func AddrHash(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// writeSettings writes the settings to the programs' global variables. A
// free looks up every address sampled at any level since the load
// (free_thresh only grows), so raising the sampling never strands an
// entry.
func (t *Tracer) writeSettings() error {
	v := t.objs.TracerVariables
	filter := uint32(0)
	if len(t.pids) > 0 {
		filter = 1
	}
	st := Threshold(t.sample)
	t.freeThresh = max(t.freeThresh, st)
	stack := uint64(0)
	if t.every > 0 {
		stack = Threshold(t.every)
	}
	for _, w := range []struct {
		v   *ebpf.Variable
		val any
	}{
		{v.FilterOn, filter}, {v.FreeThresh, t.freeThresh}, {v.SampleWeight, t.sample},
		{v.SampleThresh, st}, {v.StackThresh, stack},
	} {
		if err := w.v.Set(w.val); err != nil {
			return fmt.Errorf("tracer: writing settings: %w", err)
		}
	}
	return nil
}

// SetStackEvery changes the stack sampling: one allocation in n (0: none).
func (t *Tracer) SetStackEvery(n uint32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.every = n
	return t.writeSettings()
}

// SetSampleEvery changes the allocation sampling: one address in n (0 or
// 1: all). Tracked allocations keep the weight they were made with.
func (t *Tracer) SetSampleEvery(n uint32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sample = max(n, 1)
	return t.writeSettings()
}

// SampleEvery is the allocation sampling in effect.
func (t *Tracer) SampleEvery() uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sample
}

// Programs returns the attached programs by tracepoint, for run-time
// statistics.
func (t *Tracer) Programs() map[string]*ebpf.Program { return t.set.Programs() }

// SetPids replaces the pid filter; an empty list traces every process.
func (t *Tracer) SetPids(pids []uint32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	want := map[uint32]bool{}
	for _, p := range pids {
		want[p] = true
	}
	for p := range t.pids {
		if !want[p] {
			if err := t.objs.Filter.Delete(p); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("tracer: pid filter: %w", err)
			}
			delete(t.pids, p)
		}
	}
	for p := range want {
		if !t.pids[p] {
			if err := t.objs.Filter.Put(p, uint8(1)); err != nil {
				return fmt.Errorf("tracer: pid filter (at most %d pids): %w", t.objs.Filter.MaxEntries(), err)
			}
			t.pids[p] = true
		}
	}
	return t.writeSettings()
}

// Proc is one thread group's tally as the kernel counted it. Calls and
// allocated bytes are exact; BytesFreed, BytesOut and AllocsOut are
// estimates: the tracked (sampled) allocations, each weighted by the
// sampling in effect when it was made (exact when SampleEvery is 1).
type Proc struct {
	Pid         uint32                 `json:"pid"`
	Ppid        uint32                 `json:"ppid"`
	Comm        string                 `json:"comm"`
	Cgroup      uint64                 `json:"cgroup"`  // cgroup v2 id when the entry was made or at the last exec
	Forks       uint64                 `json:"forks"`   // processes made
	Threads     uint64                 `json:"threads"` // threads made
	Execs       uint64                 `json:"execs"`
	ThreadExits uint64                 `json:"thread_exits"` // threads that exited while the group lived on
	ChildExits  uint64                 `json:"child_exits"`  // child processes that exited
	Kmalloc     uint64                 `json:"kmalloc"`
	Kfree       uint64                 `json:"kfree"`
	CacheAlloc  uint64                 `json:"cache_alloc"`
	CacheFree   uint64                 `json:"cache_free"`
	BytesReq    uint64                 `json:"bytes_req"`
	BytesAlloc  uint64                 `json:"bytes_alloc"`
	BytesFreed  uint64                 `json:"bytes_freed"` // estimate
	BytesOut    uint64                 `json:"bytes_out"`   // estimate: bytes of its allocations not yet freed
	AllocsOut   uint64                 `json:"allocs_out"`  // estimate
	Failed      uint64                 `json:"failed"`
	LockCount   [len(LockKinds)]uint64 `json:"lock_count"`
	LockWaitNs  [len(LockKinds)]uint64 `json:"lock_wait_ns"`
	LockMaxNs   [len(LockKinds)]uint64 `json:"lock_max_ns"`
}

// sumCPUs combines the per-CPU slots of one entry into a Proc.
func sumCPUs(pid uint32, per []tracerbpf.TracerCounts) Proc {
	p := Proc{Pid: pid}
	var outB, outN, goneB, goneN uint64 // wrap-around sums: a CPU's slot may go "negative"
	for i := range per {
		c := &per[i]
		p.Forks += c.Forks
		p.Threads += c.Threads
		p.Execs += c.Execs
		p.ThreadExits += c.ThreadExits
		p.ChildExits += c.ChildExits
		p.Kmalloc += c.Kmalloc
		p.CacheAlloc += c.CacheAlloc
		p.Kfree += c.Kfree
		p.CacheFree += c.CacheFree
		p.BytesReq += c.KmReq + c.CaReq
		p.BytesAlloc += c.KmAlloc + c.CaAlloc
		p.Failed += c.KmFailed + c.CaFailed
		p.BytesFreed += c.KfBytes + c.CfBytes
		outB += c.KmOutBytes + c.CaOutBytes
		outN += c.KmOutAllocs + c.CaOutAllocs
		goneB += c.KmStaleBytes + c.CaStaleBytes + c.KfBytes + c.CfBytes
		goneN += c.KmStaleAllocs + c.CaStaleAllocs + c.KfAllocs + c.CfAllocs
		for k := range LockKinds {
			p.LockCount[k] += c.LockCount[k]
			p.LockWaitNs[k] += c.LockWaitNs[k]
			p.LockMaxNs[k] = max(p.LockMaxNs[k], c.LockMaxNs[k])
		}
	}
	// A racing read can see a free before its allocation's charge.
	if int64(outB-goneB) > 0 {
		p.BytesOut = outB - goneB
	}
	if int64(outN-goneN) > 0 {
		p.AllocsOut = outN - goneN
	}
	return p
}

// Contentions is the number of contended lock acquisitions of every kind.
func (p *Proc) Contentions() uint64 {
	var n uint64
	for _, c := range p.LockCount {
		n += c
	}
	return n
}

// WaitNs is the total time waited for contended locks.
func (p *Proc) WaitNs() uint64 {
	var n uint64
	for _, c := range p.LockWaitNs {
		n += c
	}
	return n
}

// MaxWaitNs is the longest single wait.
func (p *Proc) MaxWaitNs() uint64 {
	var n uint64
	for _, c := range p.LockMaxNs {
		n = max(n, c)
	}
	return n
}

func cString(b []int8) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

// Procs reads every process entry. Entries of processes that no longer
// exist (their exit happened while nothing was attached, or was missed)
// are removed and counted as evicted.
func (t *Tracer) Procs() ([]Proc, error) {
	infos := map[uint32]tracerbpf.TracerInfo{}
	var (
		key   uint32
		info  tracerbpf.TracerInfo
		per   []tracerbpf.TracerCounts
		out   []Proc
		stale []uint32
	)
	it := t.objs.Infos.Iterate()
	for it.Next(&key, &info) {
		infos[key] = info
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("tracer: reading process info map: %w", err)
	}
	it = t.objs.Procs.Iterate()
	for it.Next(&key, &per) {
		if key != 0 && !t.exists(key) {
			stale = append(stale, key)
			continue
		}
		p := sumCPUs(key, per)
		if in, ok := infos[key]; ok {
			p.Ppid, p.Comm, p.Cgroup = in.Ppid, cString(in.Comm[:]), in.Cgroup
		}
		out = append(out, p)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("tracer: reading process map: %w", err)
	}
	for _, k := range stale {
		// Look again: the pid may have been reused since.
		if t.exists(k) {
			continue
		}
		if err := t.objs.Procs.Delete(k); err == nil {
			_ = t.objs.Infos.Delete(k)
			t.mu.Lock()
			t.evicted++
			t.mu.Unlock()
		}
	}
	return out, nil
}

func (t *Tracer) exists(pid uint32) bool {
	_, err := os.Stat(filepath.Join(t.proc, strconv.FormatUint(uint64(pid), 10)))
	return err == nil
}

// Counters are the tracer's global counters: how much it could not see.
type Counters struct {
	ProcsCreated       uint64 `json:"procs_created"`  // per-process entries made
	ProcsRemoved       uint64 `json:"procs_removed"`  // removed at the group's exit
	ProcsEvicted       uint64 `json:"procs_evicted"`  // removed by user space: the process was gone
	ProcsDropped       uint64 `json:"procs_dropped"`  // events lost because the process map was full
	AllocsDropped      uint64 `json:"allocs_dropped"` // sampled allocations not tracked: the map was full
	AllocsDroppedBytes uint64 `json:"allocs_dropped_bytes"`
	MissedFrees        uint64 `json:"missed_frees"`    // frees of sampled addresses never seen allocated
	StaleAllocs        uint64 `json:"stale_allocs"`    // sampled addresses reused without a traced free
	StackErrors        uint64 `json:"stack_errors"`    // stacks not captured
	LockUnmatched      uint64 `json:"lock_unmatched"`  // contention ends without a begin
	LockDropped        uint64 `json:"lock_dropped"`    // contention begins not kept
	Exits              uint64 `json:"exits"`           // thread groups that exited
	AllocsTracked      uint64 `json:"allocs_tracked"`  // entries in the allocation map now
	CgroupsDropped     uint64 `json:"cgroups_dropped"` // process events not counted per cgroup: map full
}

// Counters sums the per-CPU global counters.
func (t *Tracer) Counters() (Counters, error) {
	var c [nCounters]uint64
	for i := range c {
		var per []uint64
		if err := t.objs.Counters.Lookup(uint32(i), &per); err != nil {
			return Counters{}, fmt.Errorf("tracer: reading counters: %w", err)
		}
		for _, v := range per {
			c[i] += v
		}
	}
	t.mu.Lock()
	evicted := t.evicted
	t.mu.Unlock()
	tracked := c[cAllocsTracked] - c[cAllocsUntracked]
	if int64(tracked) < 0 { // a read between a free's count and its allocation's
		tracked = 0
	}
	return Counters{
		ProcsCreated: c[cProcsCreated], ProcsRemoved: c[cProcsRemoved], ProcsEvicted: evicted,
		ProcsDropped: c[cProcsDropped], AllocsDropped: c[cAllocsDropped],
		AllocsDroppedBytes: c[cAllocsDroppedBytes], MissedFrees: c[cMissedFrees],
		StaleAllocs: c[cStaleAllocs], StackErrors: c[cStackErrors],
		LockUnmatched: c[cLockUnmatched], LockDropped: c[cLockDropped], Exits: c[cExits],
		AllocsTracked: tracked, CgroupsDropped: c[cCgroupsDropped],
	}, nil
}

// CgroupCounts is one cgroup's process events, counted in the kernel by
// the cgroup v2 id of the process that made them (a fork in the parent's
// cgroup). They outlive the processes.
type CgroupCounts struct {
	Forks   uint64 `json:"forks"`
	Threads uint64 `json:"threads"`
	Execs   uint64 `json:"execs"`
	Exits   uint64 `json:"exits"` // thread groups that exited
}

// Cgroups reads the per-cgroup process events, by cgroup v2 id (the
// cgroup directory's inode number).
func (t *Tracer) Cgroups() (map[uint64]CgroupCounts, error) {
	out := map[uint64]CgroupCounts{}
	var (
		key uint64
		val tracerbpf.TracerCgroupCounts
	)
	it := t.objs.Cgroups.Iterate()
	for it.Next(&key, &val) {
		out[key] = CgroupCounts{Forks: val.Forks, Threads: val.Threads, Execs: val.Execs, Exits: val.Exits}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("tracer: reading cgroup map: %w", err)
	}
	return out, nil
}

// Alloc is one tracked (sampled) kernel allocation.
type Alloc struct {
	Addr    uint64
	Size    uint64
	Pid     uint32 // the allocating thread group
	TimeNs  uint64 // CLOCK_MONOTONIC nanoseconds at allocation
	StackID int32  // negative: no stack captured
	Weight  uint32 // the sampling (1 in Weight) when it was made
}

// Allocs reads the tracked-allocation map, in batches. It reads the whole
// map: for leak reports, not for periodic refreshes.
func (t *Tracer) Allocs() ([]Alloc, error) {
	const chunk = 4096
	var (
		cursor ebpf.MapBatchCursor
		keys   = make([]uint64, chunk)
		vals   = make([]tracerbpf.TracerAlloc, chunk)
		out    []Alloc
	)
	for {
		n, err := t.objs.Allocs.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			v := &vals[i]
			out = append(out, Alloc{Addr: keys[i], Size: v.Size, Pid: v.Tgid, TimeNs: v.Ts, StackID: v.StackId, Weight: v.Weight})
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("tracer: reading allocation map: %w", err)
		}
	}
}

// Stack returns the kernel return addresses of a captured stack, innermost
// first.
func (t *Tracer) Stack(id int32) ([]uint64, error) {
	var frames [127]uint64
	if err := t.objs.Stacks.Lookup(uint32(id), &frames); err != nil {
		return nil, fmt.Errorf("tracer: stack %d: %w", id, err)
	}
	n := 0
	for n < len(frames) && frames[n] != 0 {
		n++
	}
	return frames[:n], nil
}
