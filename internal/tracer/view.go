package tracer

import (
	"math"
	"strconv"
	"sync"

	"github.com/kstat/kstat/statsfs"
)

// Slots of procTable, in table order; the per-kind lock values follow.
const (
	vForks = iota
	vThreads
	vExecs
	vThreadExits
	vChildExits
	vKmalloc
	vKfree
	vCacheAlloc
	vCacheFree
	vBytesReq
	vBytesAlloc
	vBytesFreed
	vBytesOut
	vAllocsOut
	vFailed
	vLocks
	vWait
	vMaxWait
	vKinds // lock_<kind>_contentions, _wait_seconds, _max_wait_seconds
)

func count(name, help, unit string) statsfs.Value {
	return statsfs.Value{Name: name, Help: help, Type: statsfs.U64, Unit: unit, Aggr: statsfs.Sum, ReadOnly: true}
}

func gauge(name, help, unit string) statsfs.Value {
	return statsfs.Value{Name: name, Help: help, Type: statsfs.U64, Unit: unit, Aggr: statsfs.Sum, Flag: statsfs.Floating}
}

func seconds(name, help string) statsfs.Value {
	return statsfs.Value{Name: name, Help: help, Type: statsfs.F64, Unit: "seconds", Aggr: statsfs.Sum, ReadOnly: true}
}

// longest is a maximum wait: a gauge, the maximum over a subtree.
func longest(name, help string) statsfs.Value {
	return statsfs.Value{Name: name, Help: help, Type: statsfs.F64, Unit: "seconds", Aggr: statsfs.Max, Flag: statsfs.Floating}
}

// procTable is the per-process table; added without a record to tracer/
// it sums (or maxes) over every traced process.
var procTable = func() *statsfs.Table {
	vs := []statsfs.Value{
		count(ValueForks, "processes created by the thread group (sched_process_fork)", ""),
		count("threads", "threads created by the thread group", ""),
		count(ValueExecs, "execve calls that succeeded in the thread group (sched_process_exec)", ""),
		count("thread_exits", "threads of the group that exited while the group lived on", ""),
		count("child_exits", "child processes that exited", ""),
		count(ValueKmallocCalls, "kmalloc calls (kmem:kmalloc)", ""),
		count("kfree_calls", "kfree calls (kmem:kfree)", ""),
		count("cache_alloc_calls", "kmem_cache_alloc calls (kmem:kmem_cache_alloc)", ""),
		count("cache_free_calls", "kmem_cache_free calls (kmem:kmem_cache_free)", ""),
		count("requested_bytes", "bytes requested from kmalloc and kmem_cache_alloc", "bytes"),
		count(ValueAllocatedBytes, "bytes handed out by kmalloc and kmem_cache_alloc (with slab rounding)", "bytes"),
		count(ValueFreedBytes, "estimate: bytes of the group's allocations freed again, by anyone (tracked allocations x tracer/sample_every)", "bytes"),
		gauge(ValueOutstandingBytes, "estimate: bytes of the group's allocations not freed yet (tracked allocations x tracer/sample_every; exact at 1)", "bytes"),
		gauge("allocs_outstanding", "estimate: allocations of the group not freed yet (tracked x tracer/sample_every; exact at 1)", ""),
		count("failed_allocs", "allocations that returned NULL", ""),
		count(ValueLockContentions, "contended lock acquisitions (lock:contention_begin/end), all kinds", ""),
		seconds(ValueLockWaitSeconds, "time spent waiting for contended locks, all kinds"),
		longest("lock_max_wait_seconds", "longest wait for one contended lock"),
	}
	for _, k := range LockKinds {
		vs = append(vs,
			count("lock_"+k+"_contentions", "contended "+k+" acquisitions", ""),
			seconds("lock_"+k+"_wait_seconds", "time spent waiting for contended locks of kind "+k),
			longest("lock_"+k+"_max_wait_seconds", "longest wait for one contended lock of kind "+k),
		)
	}
	return statsfs.NewTable(vs...)
}()

// infoTable is what a process is, in this order.
var infoTable = statsfs.NewTable(
	statsfs.Value{Name: "ppid", Help: "the parent's process id when the tracer first saw the group", Type: statsfs.U32, Flag: statsfs.Floating, Info: true},
	statsfs.Value{Name: "cgroup", Help: "the group's cgroup v2 id (the cgroup directory's inode number) when the tracer first saw it or at its last exec", Type: statsfs.U64, Flag: statsfs.Floating, Info: true},
)

// globalTable holds what the tracer could not see, so that false leaks
// and missing counts are explainable. update fills it in this order.
var globalTable = statsfs.NewTable(
	gauge("procs_tracked", "processes in the tracer's map now", ""),
	gauge("allocs_tracked", "sampled outstanding allocations in the tracer's map now (a counter kept by the programs)", ""),
	count("procs_created", "per-process entries made", ""),
	count("procs_removed", "per-process entries removed at the group's exit", ""),
	count("procs_evicted", "entries removed because the process was gone (its exit not seen)", ""),
	count("procs_dropped", "events lost because the process map was full (--tracer-max-procs)", ""),
	count("allocs_dropped", "sampled allocations not tracked because the allocation map was full (--tracer-max-allocs); their frees count as missed", ""),
	count("allocs_dropped_bytes", "bytes of the allocations not tracked", "bytes"),
	count("missed_frees", "frees of sampled addresses the tracer never saw allocated (made before it started, or dropped)", ""),
	count("stale_allocs", "sampled addresses handed out again without a traced free (freed on a path without a per-object tracepoint); the old entry was uncharged", ""),
	count("stack_errors", "allocation stacks not captured (stack map full or hash clash)", ""),
	count("lock_unmatched", "contention ends without a recorded begin", ""),
	count("lock_dropped", "contention begins not recorded because the wait map was full", ""),
	count("exits", "thread groups that exited", ""),
	count("cgroups_dropped", "process events not counted per cgroup because the cgroup map was full", ""),
)

// pidSource is one process's directory.
type pidSource struct {
	src  *statsfs.Source
	rec  *statsfs.Counters
	info *statsfs.Counters
	mu   sync.Mutex
	comm string
}

func (p *pidSource) getComm() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.comm + "\n"
}

// view keeps tracer/<pid>/ sources in step with the process map.
type view struct {
	root   *statsfs.Source
	global *statsfs.Counters
	wrap   func(*statsfs.Counters) statsfs.Record // refresh on read

	mu   sync.Mutex
	pids map[uint32]*pidSource
}

func newView(root *statsfs.Source, wrap func(*statsfs.Counters) statsfs.Record) (*view, error) {
	v := &view{root: root, global: statsfs.NewCounters(globalTable), wrap: wrap, pids: map[uint32]*pidSource{}}
	if err := root.AddValues(procTable, nil, 0); err != nil {
		return nil, err
	}
	if err := root.AddValues(globalTable, wrap(v.global), 0); err != nil {
		return nil, err
	}
	return v, nil
}

// update makes one source per process in procs, fills it, and removes the
// sources of processes no longer there.
func (v *view) update(procs []Proc, c Counters) {
	v.mu.Lock()
	defer v.mu.Unlock()
	seen := make(map[uint32]bool, len(procs))
	for i := range procs {
		p := &procs[i]
		seen[p.Pid] = true
		ps := v.pids[p.Pid]
		if ps == nil {
			ps = &pidSource{
				src:  statsfs.NewInstance("pid", strconv.FormatUint(uint64(p.Pid), 10)),
				rec:  statsfs.NewCounters(procTable),
				info: statsfs.NewCounters(infoTable),
			}
			_ = ps.src.AddValues(procTable, v.wrap(ps.rec), 0)
			_ = ps.src.AddValues(infoTable, v.wrap(ps.info), 0)
			_ = ps.src.AddControl(&statsfs.Control{Name: ControlComm, Help: "the process's command name", Read: ps.getComm})
			v.pids[p.Pid] = ps
			v.root.AddSubordinate(ps.src)
		}
		fill(ps.rec, p)
		ps.info.Store(0, uint64(p.Ppid))
		ps.info.Store(1, p.Cgroup)
		ps.mu.Lock()
		ps.comm = p.Comm
		ps.mu.Unlock()
	}
	for pid, ps := range v.pids {
		if !seen[pid] {
			v.root.RemoveSubordinate(ps.src)
			ps.src.Revoke()
			delete(v.pids, pid)
		}
	}
	g := v.global
	for i, x := range []uint64{
		uint64(len(procs)), c.AllocsTracked, c.ProcsCreated, c.ProcsRemoved, c.ProcsEvicted, c.ProcsDropped,
		c.AllocsDropped, c.AllocsDroppedBytes, c.MissedFrees, c.StaleAllocs, c.StackErrors,
		c.LockUnmatched, c.LockDropped, c.Exits, c.CgroupsDropped,
	} {
		g.Store(i, x)
	}
}

func fill(r *statsfs.Counters, p *Proc) {
	for i, x := range []uint64{
		p.Forks, p.Threads, p.Execs, p.ThreadExits, p.ChildExits,
		p.Kmalloc, p.Kfree, p.CacheAlloc, p.CacheFree,
		p.BytesReq, p.BytesAlloc, p.BytesFreed, p.BytesOut, p.AllocsOut, p.Failed,
		p.Contentions(),
	} {
		r.Store(i, x)
	}
	r.StoreFloat(vWait, float64(p.WaitNs())/1e9)
	r.StoreFloat(vMaxWait, float64(p.MaxWaitNs())/1e9)
	for k := range LockKinds {
		r.Store(vKinds+3*k, p.LockCount[k])
		r.StoreFloat(vKinds+3*k+1, float64(p.LockWaitNs[k])/1e9)
		r.StoreFloat(vKinds+3*k+2, float64(p.LockMaxNs[k])/1e9)
	}
}

// procs rebuilds the processes from the tree's values: the report and the
// per-cgroup views read the tree, not the BPF maps.
func (v *view) procs() []Proc {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]Proc, 0, len(v.pids))
	secs := func(r *statsfs.Counters, i int) uint64 { return uint64(math.Float64frombits(r.Load(i))*1e9 + 0.5) }
	for pid, ps := range v.pids {
		r := ps.rec
		p := Proc{
			Pid: pid, Ppid: uint32(ps.info.Load(0)), Cgroup: ps.info.Load(1),
			Forks: r.Load(vForks), Threads: r.Load(vThreads), Execs: r.Load(vExecs),
			ThreadExits: r.Load(vThreadExits), ChildExits: r.Load(vChildExits),
			Kmalloc: r.Load(vKmalloc), Kfree: r.Load(vKfree), CacheAlloc: r.Load(vCacheAlloc), CacheFree: r.Load(vCacheFree),
			BytesReq: r.Load(vBytesReq), BytesAlloc: r.Load(vBytesAlloc), BytesFreed: r.Load(vBytesFreed),
			BytesOut: r.Load(vBytesOut), AllocsOut: r.Load(vAllocsOut), Failed: r.Load(vFailed),
		}
		for k := range LockKinds {
			p.LockCount[k] = r.Load(vKinds + 3*k)
			p.LockWaitNs[k] = secs(r, vKinds+3*k+1)
			p.LockMaxNs[k] = secs(r, vKinds+3*k+2)
		}
		ps.mu.Lock()
		p.Comm = ps.comm
		ps.mu.Unlock()
		out = append(out, p)
	}
	return out
}
