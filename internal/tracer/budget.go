package tracer

import (
	"log/slog"
	"runtime"
	"time"

	"github.com/kstat/kstat/internal/bpf"
	"github.com/kstat/kstat/statsfs"
)

// Budget bounds the tracer's own CPU cost, as the kernel measures its
// programs (BPF run-time statistics). Over Share in a window, the
// tracer raises its allocation sampling one level (sample_every × 4 per
// level, stacks off from level 1); past MaxLevel it detaches. Under a
// quarter of Share it steps one level back.
type Budget struct {
	// Share is the most CPU the programs may use: their run time over
	// a window divided by the window times the number of CPUs (0.01 is
	// 1% of the machine). 0 means no budget.
	Share float64
	// Window is how long the cost is measured before a step. 0 means
	// 10 s.
	Window time.Duration
	// Log receives a line per step; nil discards them.
	Log *slog.Logger
}

// MaxLevel is the highest sampling level: sample_every × 4^MaxLevel.
// Level MaxLevel+1 (LevelDetached) means the budget detached the tracer.
const (
	MaxLevel      = 5
	LevelDetached = MaxLevel + 1
)

// budgetTable holds the budget's state, in tracer/.
var budgetTable = statsfs.NewTable(
	statsfs.Value{Name: "budget_level", Help: "sampling level the CPU budget (--tracer-budget) has raised the tracer to: 0 as configured, each level samples 4x fewer allocations (stacks off), " +
		"6: detached for being over budget (write 1 to tracer/enable to attach again)", Type: statsfs.U64, Aggr: statsfs.Max, Flag: statsfs.Floating},
	statsfs.Value{Name: "budget_cost_share", Help: "the tracer programs' CPU use over the last budget window: run time / (window x CPUs)",
		Type: statsfs.F64, Aggr: statsfs.Max, Flag: statsfs.Floating},
	statsfs.Value{Name: "sample_every_effective", Help: "the allocation sampling in effect: tracer/sample_every x 4^budget_level",
		Type: statsfs.U64, Aggr: statsfs.Max, Flag: statsfs.Floating},
)

// budgetState is the Service's budget bookkeeping, guarded by its mutex.
type budgetState struct {
	Budget
	level   int
	start   time.Time     // of the current window
	run0    time.Duration // programs' run time at start
	under   int           // windows in a row under a quarter of the budget
	vals    *statsfs.Counters
	stepped func(level int) // applies a level (s.mu held)
}

// effective is the sampling at the level.
func effective(sample uint32, level int) uint32 {
	n := uint64(max(sample, 1))
	for range min(level, MaxLevel) {
		n *= 4
	}
	return uint32(min(n, 1<<24))
}

// totalRun is the programs' run time summed.
func totalRun(stats []bpf.ProgramStats) time.Duration {
	var d time.Duration
	for _, s := range stats {
		d += s.RunTime
	}
	return d
}

// check measures the window that ends now and steps when it is over or
// well under budget. It returns true when the tracer must detach.
func (b *budgetState) check(now time.Time, run time.Duration) (detach bool) {
	if b.Share <= 0 {
		return false
	}
	if b.start.IsZero() {
		b.start, b.run0 = now, run
		return false
	}
	wall := now.Sub(b.start)
	if wall < b.window() {
		return false
	}
	cost := float64(run-b.run0) / (float64(wall) * float64(numCPU()))
	b.start, b.run0 = now, run
	b.vals.StoreFloat(1, cost)
	switch {
	case cost > b.Share:
		b.under = 0
		if b.level >= MaxLevel {
			b.level = LevelDetached
			b.log("tracer: over its CPU budget at the highest sampling level: detached (write 1 to tracer/enable to attach again)",
				"cost_share", cost, "budget", b.Share)
			b.vals.Store(0, uint64(b.level))
			return true
		}
		b.level++
		b.log("tracer: over its CPU budget: sampling raised", "level", b.level, "cost_share", cost, "budget", b.Share)
		b.stepped(b.level)
	case cost < b.Share/4 && b.level > 0:
		// Three quiet windows before stepping back, so that a level
		// that only just fits does not flap.
		if b.under++; b.under >= 3 {
			b.under = 0
			b.level--
			b.log("tracer: well under its CPU budget: sampling lowered", "level", b.level, "cost_share", cost, "budget", b.Share)
			b.stepped(b.level)
		}
	default:
		b.under = 0
	}
	b.vals.Store(0, uint64(b.level))
	return false
}

func (b *budgetState) window() time.Duration {
	if b.Window <= 0 {
		return 10 * time.Second
	}
	return b.Window
}

func (b *budgetState) log(msg string, args ...any) {
	if b.Log != nil {
		b.Log.Info(msg, args...)
	}
}

// numCPU is the number of CPUs the cost is shared over.
func numCPU() int { return runtime.NumCPU() }
