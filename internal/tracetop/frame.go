// Package tracetop is what "kstat trace" shows of the tracer: per-interval
// rates (or counts since it started) for each process, filtered and sorted
// with the tracer's own columns and sort order, drawn as a terminal top
// (bubbletea), as plain rows for a pipe, or as JSON frames.
package tracetop

import (
	"strconv"
	"strings"
	"time"

	"github.com/kstat/kstat/internal/tracer"
)

// Source is what the view reads: the tracer's process table and its
// global counters.
type Source interface {
	Procs() ([]tracer.Proc, error)
	Counters() (tracer.Counters, error)
}

// Sample is one reading of a Source.
type Sample struct {
	Time     time.Time
	Procs    []tracer.Proc
	Counters tracer.Counters
}

// Read takes a sample of src now.
func Read(src Source) (Sample, error) {
	procs, err := src.Procs()
	if err != nil {
		return Sample{}, err
	}
	c, err := src.Counters()
	if err != nil {
		return Sample{}, err
	}
	return Sample{Time: time.Now(), Procs: procs, Counters: c}, nil
}

// Settings are the choices that shape a Frame.
type Settings struct {
	Sort       string // a tracer column; empty means tracer.DefaultSort
	Cumulative bool   // counts since the tracer started instead of rates
	Filter     string // a pid, or part of a command name; empty shows all
	Comm       string // only this exact command name; empty shows all
}

// Row is one process of a Frame.
type Row struct {
	Total tracer.Proc // counts since the tracer started; gauges now
	Delta tracer.Proc // counts during the interval; gauges now
}

// Frame is one refresh: the processes that pass the filter, sorted.
type Frame struct {
	Time     time.Time
	Seconds  float64 // the interval Delta covers
	Settings Settings
	Rows     []Row
	Procs    int // processes traced, before filtering
	Counters tracer.Counters
}

// Build makes the frame of cur, with rates over the interval since prev
// (a zero prev: since the tracer started at start).
func Build(prev, cur Sample, start time.Time, s Settings) Frame {
	if s.Sort == "" || !tracer.ValidSort(s.Sort) {
		s.Sort = tracer.DefaultSort
	}
	since := prev.Time
	if since.IsZero() {
		since = start
	}
	f := Frame{Time: cur.Time, Seconds: cur.Time.Sub(since).Seconds(), Settings: s, Procs: len(cur.Procs), Counters: cur.Counters}
	before := make(map[uint32]*tracer.Proc, len(prev.Procs))
	for i := range prev.Procs {
		before[prev.Procs[i].Pid] = &prev.Procs[i]
	}
	totals := make(map[uint32]tracer.Proc, len(cur.Procs))
	var keys []tracer.Proc // what the rows sort by
	for _, p := range cur.Procs {
		if !s.match(&p) {
			continue
		}
		totals[p.Pid] = p
		if s.Cumulative {
			keys = append(keys, p)
		} else {
			keys = append(keys, Delta(before[p.Pid], p))
		}
	}
	tracer.SortProcs(keys, s.Sort)
	f.Rows = make([]Row, len(keys))
	for i, k := range keys {
		t := totals[k.Pid]
		d := k
		if s.Cumulative {
			d = Delta(before[k.Pid], t)
		}
		f.Rows[i] = Row{Total: t, Delta: d}
	}
	return f
}

func (s Settings) match(p *tracer.Proc) bool {
	if s.Comm != "" && p.Comm != s.Comm {
		return false
	}
	if s.Filter == "" {
		return true
	}
	if n, err := strconv.ParseUint(s.Filter, 10, 32); err == nil && uint32(n) == p.Pid {
		return true
	}
	return strings.Contains(p.Comm, s.Filter)
}

// Delta is what cur counted since prev (nil: cur's whole count, a process
// new to the view). Gauges (outstanding bytes and allocations, the longest
// lock wait) are cur's. A count smaller than before means the pid was
// reused by a new process, which counts from zero.
func Delta(prev *tracer.Proc, cur tracer.Proc) tracer.Proc {
	if prev == nil {
		return cur
	}
	d := cur
	counts := []struct{ cur, prev, out *uint64 }{
		{&cur.Forks, &prev.Forks, &d.Forks},
		{&cur.Threads, &prev.Threads, &d.Threads},
		{&cur.Execs, &prev.Execs, &d.Execs},
		{&cur.ThreadExits, &prev.ThreadExits, &d.ThreadExits},
		{&cur.ChildExits, &prev.ChildExits, &d.ChildExits},
		{&cur.Kmalloc, &prev.Kmalloc, &d.Kmalloc},
		{&cur.Kfree, &prev.Kfree, &d.Kfree},
		{&cur.CacheAlloc, &prev.CacheAlloc, &d.CacheAlloc},
		{&cur.CacheFree, &prev.CacheFree, &d.CacheFree},
		{&cur.BytesReq, &prev.BytesReq, &d.BytesReq},
		{&cur.BytesAlloc, &prev.BytesAlloc, &d.BytesAlloc},
		{&cur.BytesFreed, &prev.BytesFreed, &d.BytesFreed},
		{&cur.Failed, &prev.Failed, &d.Failed},
	}
	for k := range cur.LockCount {
		counts = append(counts,
			struct{ cur, prev, out *uint64 }{&cur.LockCount[k], &prev.LockCount[k], &d.LockCount[k]},
			struct{ cur, prev, out *uint64 }{&cur.LockWaitNs[k], &prev.LockWaitNs[k], &d.LockWaitNs[k]})
	}
	for _, c := range counts {
		if *c.cur < *c.prev {
			return cur
		}
	}
	for _, c := range counts {
		*c.out = *c.cur - *c.prev
	}
	return d
}
