package tracetop

import (
	"time"

	"github.com/kstat/kstat/internal/tracer"
)

// JSONFrame is one line of "kstat trace --json".
type JSONFrame struct {
	Time            time.Time       `json:"time"`
	IntervalSeconds float64         `json:"interval_seconds"` // what per_second covers
	Sort            string          `json:"sort"`
	Procs           []JSONProc      `json:"procs"`
	Counters        tracer.Counters `json:"counters"`
}

// JSONProc is one process: counts since the tracer started, gauges now,
// and the counts' rates over the last interval.
type JSONProc struct {
	Pid  uint32 `json:"pid"`
	Ppid uint32 `json:"ppid"`
	Comm string `json:"comm"`
	// Cgroup is the process's cgroup v2 id as the tracer saw it.
	Cgroup uint64 `json:"cgroup"`
	Counts[uint64]
	OutstandingBytes  uint64 `json:"outstanding_bytes"`
	OutstandingAllocs uint64 `json:"outstanding_allocs"`
	// LockMaxWaitNs is the longest single wait by lock kind.
	LockMaxWaitNs map[string]uint64 `json:"lock_max_wait_ns"`
	PerSecond     *Counts[float64]  `json:"per_second,omitempty"`
}

// Counts are a process's counters, named as in the daemon's tracer/<pid>/
// directory; Locks is keyed by lock kind (tracer.LockKinds).
type Counts[T uint64 | float64] struct {
	Forks           T                   `json:"forks"`
	Threads         T                   `json:"threads"`
	Execs           T                   `json:"execs"`
	ThreadExits     T                   `json:"thread_exits"`
	ChildExits      T                   `json:"child_exits"`
	KmallocCalls    T                   `json:"kmalloc_calls"`
	KfreeCalls      T                   `json:"kfree_calls"`
	CacheAllocCalls T                   `json:"cache_alloc_calls"`
	CacheFreeCalls  T                   `json:"cache_free_calls"`
	RequestedBytes  T                   `json:"requested_bytes"`
	AllocatedBytes  T                   `json:"allocated_bytes"`
	FreedBytes      T                   `json:"freed_bytes"`
	FailedAllocs    T                   `json:"failed_allocs"`
	Locks           map[string]Locks[T] `json:"locks"`
}

// Locks are the contentions of one lock kind and the time waited.
type Locks[T uint64 | float64] struct {
	Contentions T `json:"contentions"`
	WaitNs      T `json:"wait_ns"`
}

func counts[T uint64 | float64](p *tracer.Proc, scale func(uint64) T) Counts[T] {
	c := Counts[T]{
		Forks: scale(p.Forks), Threads: scale(p.Threads), Execs: scale(p.Execs),
		ThreadExits: scale(p.ThreadExits), ChildExits: scale(p.ChildExits),
		KmallocCalls: scale(p.Kmalloc), KfreeCalls: scale(p.Kfree),
		CacheAllocCalls: scale(p.CacheAlloc), CacheFreeCalls: scale(p.CacheFree),
		RequestedBytes: scale(p.BytesReq), AllocatedBytes: scale(p.BytesAlloc),
		FreedBytes: scale(p.BytesFreed), FailedAllocs: scale(p.Failed),
		Locks: make(map[string]Locks[T], len(tracer.LockKinds)),
	}
	for k, name := range tracer.LockKinds {
		c.Locks[name] = Locks[T]{Contentions: scale(p.LockCount[k]), WaitNs: scale(p.LockWaitNs[k])}
	}
	return c
}

// JSON is the frame as "kstat trace --json" prints it, at most limit
// processes (0: all). The first frame's rates cover the time since the
// tracer started.
func (f *Frame) JSON(limit int) JSONFrame {
	rows := f.Rows
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	out := JSONFrame{Time: f.Time, IntervalSeconds: f.Seconds, Sort: f.Settings.Sort, Procs: make([]JSONProc, len(rows)), Counters: f.Counters}
	for i := range rows {
		t, d := &rows[i].Total, &rows[i].Delta
		p := JSONProc{
			Pid: t.Pid, Ppid: t.Ppid, Comm: t.Comm, Cgroup: t.Cgroup,
			Counts:           counts(t, func(v uint64) uint64 { return v }),
			OutstandingBytes: t.BytesOut, OutstandingAllocs: t.AllocsOut,
			LockMaxWaitNs: make(map[string]uint64, len(tracer.LockKinds)),
		}
		for k, name := range tracer.LockKinds {
			p.LockMaxWaitNs[name] = t.LockMaxNs[k]
		}
		if f.Seconds > 0 {
			r := counts(d, func(v uint64) float64 { return float64(v) / f.Seconds })
			p.PerSecond = &r
		}
		out.Procs[i] = p
	}
	return out
}
