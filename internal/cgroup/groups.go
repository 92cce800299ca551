package cgroup

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kstat/kstat/statsfs"
)

// Groups keeps per-cgroup sums of per-process values as sources below a
// parent: one instance per group, labelled cgroup="<path>" and named by
// the path with "/" written ":" (a directory name holds no slash), at most
// Max groups, the most active first (by the sum of their cumulative
// values); how many more there were is the parent's groups_dropped value.
type Groups struct {
	parent *statsfs.Source
	values []statsfs.Value
	table  *statsfs.Table
	max    int

	mu      sync.Mutex
	groups  map[string]*group
	dropped atomic.Uint64
}

type group struct {
	src *statsfs.Source
	rec *statsfs.Counters
}

var groupsTable = statsfs.NewTable(statsfs.Value{
	Name: "groups_dropped", Help: "cgroups with activity beyond the budget, not shown (the most active are)", Type: statsfs.U64, Flag: statsfs.Floating,
})

// NewGroups adds the per-group values below parent, keeping at most max
// groups (a negative max: no limit).
func NewGroups(parent *statsfs.Source, values []statsfs.Value, max int) (*Groups, error) {
	vs := make([]statsfs.Value, len(values))
	for i, v := range values {
		v.Aggr = statsfs.None
		v.ReadOnly = true
		vs[i] = v
	}
	g := &Groups{parent: parent, values: vs, table: statsfs.NewTable(vs...), max: max, groups: map[string]*group{}}
	err := parent.AddValues(groupsTable, statsfs.RecordFunc(func(int) uint64 { return g.dropped.Load() }), 0)
	return g, err
}

// DirName is the directory name of group path p.
func DirName(p string) string {
	if p == "/" {
		return "-"
	}
	return strings.ReplaceAll(p, "/", ":")
}

// Sums are per-group values, by group path, in NewGroups' value order.
type Sums map[string][]float64

// Add adds v to value i of group p (of n values).
func (s Sums) Add(n int, p string, i int, v float64) {
	sum := s[p]
	if sum == nil {
		sum = make([]float64, n)
		s[p] = sum
	}
	sum[i] += v
}

// activity ranks a group: the sum of its cumulative values.
func (g *Groups) activity(sum []float64) float64 {
	var a float64
	for i, v := range sum {
		if g.values[i].Flag&statsfs.Floating == 0 {
			a += v
		}
	}
	return a
}

// Update shows sums: the most active Max groups get (or keep) a source
// with these values, the others' sources go, and are counted as dropped.
func (g *Groups) Update(sums Sums) {
	g.mu.Lock()
	defer g.mu.Unlock()
	paths := make([]string, 0, len(sums))
	for p := range sums {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, func(a, b string) int {
		if r := cmp.Compare(g.activity(sums[b]), g.activity(sums[a])); r != 0 {
			return r
		}
		return strings.Compare(a, b)
	})
	keep := paths
	if g.max >= 0 && len(paths) > g.max {
		keep = paths[:g.max]
	}
	g.dropped.Store(uint64(len(paths) - len(keep)))
	shown := make(map[string]bool, len(keep))
	for _, p := range keep {
		shown[p] = true
		gr := g.groups[p]
		if gr == nil {
			gr = &group{src: statsfs.NewLabeledInstance("cgroup", DirName(p), p), rec: statsfs.NewCounters(g.table)}
			_ = gr.src.AddValues(g.table, gr.rec, 0) // a new source: cannot fail
			g.groups[p] = gr
			g.parent.AddSubordinate(gr.src)
		}
		for i, v := range sums[p] {
			if g.values[i].Type == statsfs.F64 {
				gr.rec.StoreFloat(i, v)
			} else {
				gr.rec.Store(i, uint64(v))
			}
		}
	}
	for p, gr := range g.groups {
		if !shown[p] {
			g.parent.RemoveSubordinate(gr.src)
			delete(g.groups, p)
		}
	}
}
