// Package tracer loads kstat's per-process kernel tracer (the tp_btf
// programs of internal/bpf/tracer), reads what they count, and turns it
// into statsfs sources, a per-process report and leak reports.
package tracer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

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
	nCounters
)

// Options configure a Tracer.
type Options struct {
	// MaxProcs bounds the per-process map; events of further processes
	// are dropped and counted. 0 means 4096.
	MaxProcs uint32
	// MaxAllocs bounds the outstanding-allocation map; allocations beyond
	// it are not tracked and are counted. 0 means 65536.
	MaxAllocs uint32
	// StackEvery captures the kernel stack of one allocation in N
	// (counts and bytes stay exact); 0 captures none.
	StackEvery uint32
	// Pids limits tracing to these thread groups; empty traces all.
	Pids []uint32
	// Proc is where procfs is mounted, for pruning entries of processes
	// whose exit was missed. Empty means /proc.
	Proc string
}

// Tracer is the loaded and attached set of programs. Close detaches them.
type Tracer struct {
	objs  tracerbpf.TracerObjects
	links []link.Link
	proc  string

	mu      sync.Mutex // serialises filter and settings changes
	pids    map[uint32]bool
	every   uint32
	evicted uint64 // entries pruned by user space
}

// Open loads the programs with opts' limits and attaches them. It needs
// root (CAP_BPF and CAP_PERFMON) and a kernel with BTF and tp_btf.
func Open(opts Options) (*Tracer, error) {
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
	spec.Maps["procs"].MaxEntries = opts.MaxProcs
	spec.Maps["allocs"].MaxEntries = opts.MaxAllocs
	t := &Tracer{proc: opts.Proc, pids: map[uint32]bool{}, every: opts.StackEvery}
	if t.proc == "" {
		t.proc = "/proc"
	}
	if err := spec.LoadAndAssign(&t.objs, nil); err != nil {
		return nil, fmt.Errorf("tracer: loading BPF programs (needs root: CAP_BPF, CAP_PERFMON; and a kernel with BTF): %w", err)
	}
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
	progs := []*ebpf.Program{
		t.objs.OnFork, t.objs.OnExec, t.objs.OnExit,
		t.objs.OnKmalloc, t.objs.OnCacheAlloc, t.objs.OnKfree, t.objs.OnCacheFree,
		t.objs.OnContentionBegin, t.objs.OnContentionEnd,
	}
	for _, p := range progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			info, _ := p.Info()
			name := ""
			if info != nil {
				name = info.Name
			}
			t.Close()
			return nil, fmt.Errorf("tracer: attaching tp_btf program %s (needs kernel tp_btf support and root): %w", name, err)
		}
		t.links = append(t.links, l)
	}
	return t, nil
}

// Close detaches the programs and frees the maps.
func (t *Tracer) Close() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	t.links = nil
	errs = append(errs, t.objs.Close())
	return errors.Join(errs...)
}

func (t *Tracer) writeSettings() error {
	s := tracerbpf.TracerSettings{StackEvery: t.every}
	if len(t.pids) > 0 {
		s.FilterOn = 1
	}
	if err := t.objs.Settings.Put(uint32(0), s); err != nil {
		return fmt.Errorf("tracer: writing settings: %w", err)
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

// Programs returns the attached programs by name, for run-time statistics.
func (t *Tracer) Programs() map[string]*ebpf.Program {
	return map[string]*ebpf.Program{
		"sched_process_fork": t.objs.OnFork,
		"sched_process_exec": t.objs.OnExec,
		"sched_process_exit": t.objs.OnExit,
		"kmalloc":            t.objs.OnKmalloc,
		"kmem_cache_alloc":   t.objs.OnCacheAlloc,
		"kfree":              t.objs.OnKfree,
		"kmem_cache_free":    t.objs.OnCacheFree,
		"contention_begin":   t.objs.OnContentionBegin,
		"contention_end":     t.objs.OnContentionEnd,
	}
}

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

// Proc is one thread group's tally as the kernel counted it.
type Proc struct {
	Pid         uint32                 `json:"pid"`
	Ppid        uint32                 `json:"ppid"`
	Comm        string                 `json:"comm"`
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
	BytesFreed  uint64                 `json:"bytes_freed"`
	BytesOut    uint64                 `json:"bytes_out"` // bytes of its allocations not yet freed
	AllocsOut   uint64                 `json:"allocs_out"`
	Failed      uint64                 `json:"failed"`
	LockCount   [len(LockKinds)]uint64 `json:"lock_count"`
	LockWaitNs  [len(LockKinds)]uint64 `json:"lock_wait_ns"`
	LockMaxNs   [len(LockKinds)]uint64 `json:"lock_max_ns"`
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
	var (
		key   uint32
		val   tracerbpf.TracerProc
		out   []Proc
		stale []uint32
	)
	it := t.objs.Procs.Iterate()
	for it.Next(&key, &val) {
		if key != 0 && !t.exists(key) {
			stale = append(stale, key)
			continue
		}
		out = append(out, Proc{
			Pid: key, Ppid: val.Ppid, Comm: cString(val.Comm[:]),
			Forks: val.Forks, Threads: val.Threads, Execs: val.Execs,
			ThreadExits: val.ThreadExits, ChildExits: val.ChildExits,
			Kmalloc: val.Kmalloc, Kfree: val.Kfree, CacheAlloc: val.CacheAlloc, CacheFree: val.CacheFree,
			BytesReq: val.BytesReq, BytesAlloc: val.BytesAlloc, BytesFreed: val.BytesFreed,
			BytesOut: val.BytesOut, AllocsOut: val.AllocsOut, Failed: val.Failed,
			LockCount: val.LockCount, LockWaitNs: val.LockWaitNs, LockMaxNs: val.LockMaxNs,
		})
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
	AllocsDropped      uint64 `json:"allocs_dropped"` // allocations not tracked: the map was full
	AllocsDroppedBytes uint64 `json:"allocs_dropped_bytes"`
	MissedFrees        uint64 `json:"missed_frees"`   // frees of addresses never seen allocated
	StaleAllocs        uint64 `json:"stale_allocs"`   // addresses reused without a traced free
	StackErrors        uint64 `json:"stack_errors"`   // stacks not captured
	LockUnmatched      uint64 `json:"lock_unmatched"` // contention ends without a begin
	LockDropped        uint64 `json:"lock_dropped"`   // contention begins not kept
	Exits              uint64 `json:"exits"`          // thread groups that exited
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
	return Counters{
		ProcsCreated: c[cProcsCreated], ProcsRemoved: c[cProcsRemoved], ProcsEvicted: evicted,
		ProcsDropped: c[cProcsDropped], AllocsDropped: c[cAllocsDropped],
		AllocsDroppedBytes: c[cAllocsDroppedBytes], MissedFrees: c[cMissedFrees],
		StaleAllocs: c[cStaleAllocs], StackErrors: c[cStackErrors],
		LockUnmatched: c[cLockUnmatched], LockDropped: c[cLockDropped], Exits: c[cExits],
	}, nil
}

// Alloc is one outstanding kernel allocation.
type Alloc struct {
	Addr    uint64
	Size    uint64
	Pid     uint32 // the allocating thread group
	TimeNs  uint64 // CLOCK_MONOTONIC nanoseconds at allocation
	StackID int32  // negative: no stack captured
}

// Allocs reads the outstanding-allocation map, in batches.
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
			out = append(out, Alloc{Addr: keys[i], Size: v.Size, Pid: v.Tgid, TimeNs: v.Ts, StackID: v.StackId})
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
