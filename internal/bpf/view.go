package bpf

import (
	"sync"

	"github.com/kstat/kstat/statsfs"
)

// progTable is one program's cost and losses, in ProgView's sources.
var progTable = statsfs.NewTable(
	statsfs.Value{Name: "run_seconds", Help: "time the kernel spent running the program (BPF run-time statistics, on while the program is attached)",
		Type: statsfs.F64, Unit: "seconds", Aggr: statsfs.Sum, ReadOnly: true},
	statsfs.Value{Name: "runs", Help: "times the kernel ran the program (BPF run-time statistics)",
		Type: statsfs.U64, Aggr: statsfs.Sum, ReadOnly: true},
	statsfs.Value{Name: "recursion_misses", Help: "events the kernel skipped because a BPF program was already running on the CPU (lost events: the program's counts miss them)",
		Type: statsfs.U64, Aggr: statsfs.Sum, ReadOnly: true},
)

// Slots of progTable.
const (
	vRunSeconds = iota
	vRuns
	vMisses
)

// ProgView keeps a "programs" source with one instance per program
// (label "program") holding its run time, runs and recursion misses, from
// the kernel's program info. Figures of programs unloaded since (a feature
// switched off and on) are kept, so the values only grow.
type ProgView struct {
	src  *statsfs.Source
	wrap func(*statsfs.Counters) statsfs.PartialRecord

	mu    sync.Mutex
	progs map[string]*statsfs.Counters
	base  map[string]ProgramStats // totals of earlier loads
	last  map[string]ProgramStats // the current load's last reading
}

// NewProgView adds parent/programs/ (with the sums over every program) and
// returns its view. wrap wraps each program's record (a collector's
// Refresher.Record, so that reading refreshes).
func NewProgView(parent *statsfs.Source, wrap func(*statsfs.Counters) statsfs.PartialRecord) (*ProgView, error) {
	v := &ProgView{src: statsfs.NewSource("programs"), wrap: wrap,
		progs: map[string]*statsfs.Counters{}, base: map[string]ProgramStats{}, last: map[string]ProgramStats{}}
	if err := v.src.AddValues(progTable, nil, 0); err != nil {
		return nil, err
	}
	parent.AddSubordinate(v.src)
	return v, nil
}

// Update stores a reading of the loaded programs' statistics. timed says
// whether run-time statistics were on: when not, run time and runs are
// absent (the kernel did not measure them), never 0.
func (v *ProgView) Update(stats []ProgramStats, timed bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, st := range stats {
		c := v.progs[st.Name]
		if c == nil {
			c = statsfs.NewCounters(progTable)
			src := statsfs.NewInstance("program", st.Name)
			_ = src.AddValues(progTable, v.wrap(c), 0)
			v.src.AddSubordinate(src)
			v.progs[st.Name] = c
		}
		v.last[st.Name] = st
		b := v.base[st.Name]
		if timed {
			c.StoreFloat(vRunSeconds, (b.RunTime + st.RunTime).Seconds())
			c.Store(vRuns, b.Runs+st.Runs)
		} else {
			c.SetAbsent(vRunSeconds)
			c.SetAbsent(vRuns)
		}
		c.Store(vMisses, b.RecursionMisses+st.RecursionMisses)
	}
}

// Unloaded records that the programs were unloaded: their last readings
// become the base the next load's figures add to.
func (v *ProgView) Unloaded() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for name, st := range v.last {
		b := v.base[name]
		b.RunTime += st.RunTime
		b.Runs += st.Runs
		b.RecursionMisses += st.RecursionMisses
		v.base[name] = b
	}
	v.last = map[string]ProgramStats{}
}
