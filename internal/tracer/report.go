package tracer

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// DefaultSort is the sort column of the daemon's tracer/report (the
// tracer/sort knob) and of kstat trace: one default for both.
const DefaultSort = "kmalloc"

// Column groups of the per-process table.
const (
	GroupProcess = "process"
	GroupMemory  = "memory"
	GroupLocks   = "locks"
)

// Column is one column of the per-process table. Every view of the table
// (the daemon's report, kstat trace) sorts with the same columns.
type Column struct {
	Name   string // sort key and header (upper-cased)
	Group  string // GroupProcess, GroupMemory or GroupLocks
	Help   string // what it shows
	Ascend bool   // sorted smallest first (pid, ppid, comm); others largest first
	Gauge  bool   // a level now (or a maximum), not a count that only grows
	Num    func(*Proc) uint64
	Text   func(*Proc) string // set for text columns instead of Num
}

var columns = []Column{
	{Name: "pid", Group: GroupProcess, Ascend: true, Gauge: true, Help: "process (thread group) id", Num: func(p *Proc) uint64 { return uint64(p.Pid) }},
	{Name: "ppid", Group: GroupProcess, Ascend: true, Gauge: true, Help: "parent's process id", Num: func(p *Proc) uint64 { return uint64(p.Ppid) }},
	{Name: "comm", Group: GroupProcess, Ascend: true, Gauge: true, Help: "command name", Text: func(p *Proc) string { return p.Comm }},
	{Name: "forks", Group: GroupProcess, Help: "processes created", Num: func(p *Proc) uint64 { return p.Forks }},
	{Name: "threads", Group: GroupProcess, Help: "threads created", Num: func(p *Proc) uint64 { return p.Threads }},
	{Name: "execs", Group: GroupProcess, Help: "successful execve calls", Num: func(p *Proc) uint64 { return p.Execs }},
	{Name: "exits", Group: GroupProcess, Help: "threads and child processes that exited", Num: func(p *Proc) uint64 { return p.ThreadExits + p.ChildExits }},
	{Name: "kmalloc", Group: GroupMemory, Help: "kmalloc calls", Num: func(p *Proc) uint64 { return p.Kmalloc }},
	{Name: "kfree", Group: GroupMemory, Help: "kfree calls", Num: func(p *Proc) uint64 { return p.Kfree }},
	{Name: "cache_alloc", Group: GroupMemory, Help: "kmem_cache_alloc calls", Num: func(p *Proc) uint64 { return p.CacheAlloc }},
	{Name: "cache_free", Group: GroupMemory, Help: "kmem_cache_free calls", Num: func(p *Proc) uint64 { return p.CacheFree }},
	{Name: "alloc_bytes", Group: GroupMemory, Help: "bytes allocated (with slab rounding)", Num: func(p *Proc) uint64 { return p.BytesAlloc }},
	{Name: "freed_bytes", Group: GroupMemory, Help: "bytes of its allocations freed again (estimate: tracked x sample_every)", Num: func(p *Proc) uint64 { return p.BytesFreed }},
	{Name: "out_bytes", Group: GroupMemory, Gauge: true, Help: "bytes of its allocations not freed yet (estimate: tracked x sample_every)", Num: func(p *Proc) uint64 { return p.BytesOut }},
	{Name: "out_allocs", Group: GroupMemory, Gauge: true, Help: "allocations not freed yet (estimate: tracked x sample_every)", Num: func(p *Proc) uint64 { return p.AllocsOut }},
	{Name: "failed", Group: GroupMemory, Help: "allocations that failed", Num: func(p *Proc) uint64 { return p.Failed }},
	{Name: "locks", Group: GroupLocks, Help: "contended lock acquisitions, all kinds", Num: (*Proc).Contentions},
	{Name: "mutex", Group: GroupLocks, Help: "contended mutexes", Num: func(p *Proc) uint64 { return p.LockCount[lockMutex] }},
	{Name: "rwsem", Group: GroupLocks, Help: "contended rw semaphores", Num: func(p *Proc) uint64 { return p.LockCount[lockRwsemRead] + p.LockCount[lockRwsemWrite] }},
	{Name: "spin", Group: GroupLocks, Help: "contended spinlocks and rwlocks", Num: func(p *Proc) uint64 { return p.LockCount[lockSpinlock] + p.LockCount[lockRwlock] }},
	{Name: "sem", Group: GroupLocks, Help: "contended semaphores", Num: func(p *Proc) uint64 { return p.LockCount[lockSemaphore] }},
	{Name: "wait_us", Group: GroupLocks, Help: "microseconds waited for contended locks", Num: func(p *Proc) uint64 { return p.WaitNs() / 1000 }},
	{Name: "max_wait_us", Group: GroupLocks, Gauge: true, Help: "longest single wait, microseconds", Num: func(p *Proc) uint64 { return p.MaxWaitNs() / 1000 }},
}

// Columns returns the per-process table's columns, in table order.
func Columns() []Column { return slices.Clone(columns) }

// SortColumns lists the columns a report can be sorted by.
func SortColumns() []string {
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = c.Name
	}
	return names
}

func findColumn(name string) (Column, bool) {
	for _, c := range columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// ValidSort reports whether name is a column of the report.
func ValidSort(name string) bool {
	_, ok := findColumn(name)
	return ok
}

// SortProcs orders procs by the named column (pid, ppid and comm
// ascending, counts descending), pid breaking ties. An unknown column
// sorts by pid.
func SortProcs(procs []Proc, by string) {
	c, ok := findColumn(by)
	if !ok {
		c = columns[0]
	}
	sort.SliceStable(procs, func(i, j int) bool {
		a, b := &procs[i], &procs[j]
		if c.Text != nil {
			if x, y := c.Text(a), c.Text(b); x != y {
				return x < y
			}
		} else if x, y := c.Num(a), c.Num(b); x != y {
			return (x < y) == c.Ascend
		}
		return a.Pid < b.Pid
	})
}

// FormatTable prints procs as the tracer's per-process table, sorted by
// the named column, at most limit rows (0: all).
func FormatTable(procs []Proc, by string, limit int) string {
	procs = append([]Proc(nil), procs...)
	SortProcs(procs, by)
	if limit > 0 && len(procs) > limit {
		procs = procs[:limit]
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 1, 8, 1, ' ', tabwriter.AlignRight)
	for _, c := range columns {
		fmt.Fprintf(w, "%s\t", strings.ToUpper(c.Name))
	}
	fmt.Fprintln(w)
	for i := range procs {
		p := &procs[i]
		for _, c := range columns {
			if c.Text != nil {
				fmt.Fprintf(w, "%s\t", c.Text(p))
			} else {
				fmt.Fprintf(w, "%d\t", c.Num(p))
			}
		}
		fmt.Fprintln(w)
	}
	_ = w.Flush()
	return b.String()
}
