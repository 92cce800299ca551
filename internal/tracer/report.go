package tracer

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
)

// column is one column of the per-process table.
type column struct {
	name   string // sort key and header (upper-cased)
	ascend bool   // sorted smallest first (pid, comm); others largest first
	num    func(*Proc) uint64
	text   func(*Proc) string
}

var columns = []column{
	{name: "pid", ascend: true, num: func(p *Proc) uint64 { return uint64(p.Pid) }},
	{name: "ppid", ascend: true, num: func(p *Proc) uint64 { return uint64(p.Ppid) }},
	{name: "comm", ascend: true, text: func(p *Proc) string { return p.Comm }},
	{name: "forks", num: func(p *Proc) uint64 { return p.Forks }},
	{name: "threads", num: func(p *Proc) uint64 { return p.Threads }},
	{name: "execs", num: func(p *Proc) uint64 { return p.Execs }},
	{name: "exits", num: func(p *Proc) uint64 { return p.ThreadExits + p.ChildExits }},
	{name: "kmalloc", num: func(p *Proc) uint64 { return p.Kmalloc }},
	{name: "kfree", num: func(p *Proc) uint64 { return p.Kfree }},
	{name: "cache_alloc", num: func(p *Proc) uint64 { return p.CacheAlloc }},
	{name: "cache_free", num: func(p *Proc) uint64 { return p.CacheFree }},
	{name: "alloc_bytes", num: func(p *Proc) uint64 { return p.BytesAlloc }},
	{name: "freed_bytes", num: func(p *Proc) uint64 { return p.BytesFreed }},
	{name: "out_bytes", num: func(p *Proc) uint64 { return p.BytesOut }},
	{name: "out_allocs", num: func(p *Proc) uint64 { return p.AllocsOut }},
	{name: "failed", num: func(p *Proc) uint64 { return p.Failed }},
	{name: "locks", num: (*Proc).Contentions},
	{name: "mutex", num: func(p *Proc) uint64 { return p.LockCount[lockMutex] }},
	{name: "rwsem", num: func(p *Proc) uint64 { return p.LockCount[lockRwsemRead] + p.LockCount[lockRwsemWrite] }},
	{name: "spin", num: func(p *Proc) uint64 { return p.LockCount[lockSpinlock] + p.LockCount[lockRwlock] }},
	{name: "sem", num: func(p *Proc) uint64 { return p.LockCount[lockSemaphore] }},
	{name: "wait_us", num: func(p *Proc) uint64 { return p.WaitNs() / 1000 }},
	{name: "max_wait_us", num: func(p *Proc) uint64 { return p.MaxWaitNs() / 1000 }},
}

// SortColumns lists the columns a report can be sorted by.
func SortColumns() []string {
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = c.name
	}
	return names
}

func findColumn(name string) (column, bool) {
	for _, c := range columns {
		if c.name == name {
			return c, true
		}
	}
	return column{}, false
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
		if c.text != nil {
			if x, y := c.text(a), c.text(b); x != y {
				return x < y
			}
		} else if x, y := c.num(a), c.num(b); x != y {
			return (x < y) == c.ascend
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
		fmt.Fprintf(w, "%s\t", strings.ToUpper(c.name))
	}
	fmt.Fprintln(w)
	for i := range procs {
		p := &procs[i]
		for _, c := range columns {
			if c.text != nil {
				fmt.Fprintf(w, "%s\t", c.text(p))
			} else {
				fmt.Fprintf(w, "%d\t", c.num(p))
			}
		}
		fmt.Fprintln(w)
	}
	_ = w.Flush()
	return b.String()
}
