package tracer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kstat/kstat/internal/bpf"
	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/statsfs"
)

var errDisabled = errors.New("not attached: the tracer is disabled (write 1 to tracer/enable)")

// MaxPids is how many pids the filter holds.
const MaxPids = 1024

// Service is the tracer as the daemon runs it: the tracer/ source with a
// directory per process, the report, and the knobs enable, pids and sort.
// The programs are attached only while enabled.
type Service struct {
	opts    Options
	src     *statsfs.Source
	view    *view
	refresh *collector.Refresher

	mu     sync.Mutex
	tr     *Tracer
	pids   []uint32 // the filter, ascending; empty traces all
	sortBy string
	base   Counters   // counters of earlier enabled periods
	fns    *Functions // named-function counters, nil when not attached
	fnErr  error      // why they are not
	every  uint32     // stack sampling
	sample uint32     // allocation sampling asked for (tracer/sample_every)

	progs    *bpf.ProgView // the programs' cost and losses
	timed    bool          // run-time statistics on (EnableStats)
	statsOff func()        // releases them
	budget   budgetState
}

// NewService returns a disabled tracer service whose source is src
// (normally "tracer"). opts.Pids is the initial filter.
func NewService(src *statsfs.Source, opts Options) (*Service, error) {
	s := &Service{opts: opts, src: src, sortBy: DefaultSort, every: opts.StackEvery,
		sample: max(opts.SampleEvery, 1), fnErr: errDisabled}
	s.refresh = collector.NewRefresher("tracer", s.read)
	v, err := newView(src, func(c *statsfs.Counters) statsfs.Record { return s.refresh.Record(c) })
	if err != nil {
		return nil, err
	}
	s.view = v
	if s.progs, err = bpf.NewProgView(src, s.refresh.Record); err != nil {
		return nil, err
	}
	s.budget.vals = statsfs.NewCounters(budgetTable)
	s.budget.vals.Store(2, uint64(s.sample))
	s.budget.vals.SetAbsent(1)
	s.budget.stepped = s.applyLevel
	if err := src.AddValues(budgetTable, s.refresh.Record(s.budget.vals), 0); err != nil {
		return nil, err
	}
	if err := s.setPids(opts.Pids); err != nil {
		return nil, err
	}
	for _, c := range []*statsfs.Control{
		{Name: "report", Help: "the per-process table, sorted by the sort knob", Read: s.Report},
		{Name: "functions_status", Help: "whether named kernel functions (mutex_lock, kfree, ...) are counted with fentry or kprobes", Read: s.FunctionsStatus},
	} {
		if err := src.AddControl(c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Collector is the service's read status, for scrape metrics.
func (s *Service) Collector() collector.Collector { return s.refresh }

// Source is the tracer/ source.
func (s *Service) Source() *statsfs.Source { return s.src }

// read loads the maps into the tree; a disabled service empties it.
func (s *Service) read() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tr == nil {
		s.view.update(nil, s.base)
		return nil
	}
	procs, err := s.tr.Procs()
	if err != nil {
		return err
	}
	c, err := s.tr.Counters()
	if err != nil {
		return err
	}
	s.view.update(procs, addCounters(s.base, c))
	st, err := bpf.Stats(s.tr.Programs())
	if err != nil {
		return err
	}
	s.progs.Update(st, s.timed)
	return nil
}

// SetBudget sets the CPU budget (see Budget); it applies from the next
// window.
func (s *Service) SetBudget(b Budget) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.budget.Budget = b
	s.budget.start = time.Time{}
}

// BudgetLevel is the sampling level the budget has set (LevelDetached
// when it detached the tracer).
func (s *Service) BudgetLevel() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.budget.level
}

// applyLevel sets the sampling for a budget level; s.mu is held.
func (s *Service) applyLevel(level int) {
	s.budget.vals.Store(2, uint64(effective(s.sample, level)))
	if s.tr == nil {
		return
	}
	every := s.every
	if level > 0 {
		every = 0
	}
	if err := s.tr.SetSampleEvery(effective(s.sample, level)); err == nil {
		_ = s.tr.SetStackEvery(every)
	}
}

// checkBudget measures the programs' cost over the budget window and steps
// the sampling, or detaches.
func (s *Service) checkBudget() {
	s.mu.Lock()
	if s.tr == nil || s.budget.Share <= 0 || !s.timed {
		s.mu.Unlock()
		return
	}
	st, err := bpf.Stats(s.tr.Programs())
	if err != nil {
		s.mu.Unlock()
		return
	}
	detach := s.budget.check(time.Now(), totalRun(st))
	s.mu.Unlock()
	if detach {
		_ = s.setEnabled(false, true)
	}
}

func addCounters(a, b Counters) Counters {
	return Counters{
		ProcsCreated: a.ProcsCreated + b.ProcsCreated, ProcsRemoved: a.ProcsRemoved + b.ProcsRemoved,
		ProcsEvicted: a.ProcsEvicted + b.ProcsEvicted, ProcsDropped: a.ProcsDropped + b.ProcsDropped,
		AllocsDropped: a.AllocsDropped + b.AllocsDropped, AllocsDroppedBytes: a.AllocsDroppedBytes + b.AllocsDroppedBytes,
		MissedFrees: a.MissedFrees + b.MissedFrees, StaleAllocs: a.StaleAllocs + b.StaleAllocs,
		StackErrors: a.StackErrors + b.StackErrors, LockUnmatched: a.LockUnmatched + b.LockUnmatched,
		LockDropped: a.LockDropped + b.LockDropped, Exits: a.Exits + b.Exits,
		AllocsTracked: b.AllocsTracked, CgroupsDropped: a.CgroupsDropped + b.CgroupsDropped,
	}
}

// Refresh reads the maps now (at most once per collector.MaxAge).
func (s *Service) Refresh() error { return s.refresh.Refresh() }

// Run refreshes every interval until ctx ends, so that sources of exited
// processes go away even when nobody reads.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.Refresh() // the error is in Collector().Status()
			s.checkBudget()
		}
	}
}

// Enabled reports whether the programs are attached.
func (s *Service) Enabled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tr != nil
}

// SetEnabled attaches (loading fresh maps) or detaches the programs.
// Attaching starts at the configured sampling (budget level 0).
func (s *Service) SetEnabled(on bool) error { return s.setEnabled(on, false) }

// setEnabled attaches or detaches; byBudget keeps the budget's level.
func (s *Service) setEnabled(on, byBudget bool) error {
	s.mu.Lock()
	if on == (s.tr != nil) {
		s.mu.Unlock()
		return nil
	}
	if on {
		opts := s.opts
		opts.Pids = s.pids
		opts.StackEvery = s.every
		opts.SampleEvery = s.sample
		tr, err := Open(opts)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		s.tr = tr
		s.budget.level, s.budget.start, s.budget.under = 0, time.Time{}, 0
		s.budget.vals.Store(0, 0)
		s.budget.vals.Store(2, uint64(s.sample))
		// The kernel measures the programs' run time only while
		// someone holds BPF_ENABLE_STATS.
		if off, err := bpf.EnableStats(); err == nil {
			s.statsOff, s.timed = off, true
		} else {
			s.timed = false
			if s.budget.Log != nil {
				s.budget.Log.Warn("tracer: no run-time statistics of its programs (run_seconds and runs absent, no CPU budget)", "err", err)
			}
		}
		// The named-function counters cost on every lock and
		// allocation too: attached only while enabled.
		s.fns, s.fnErr = AttachFunctions()
	} else {
		if s.fns != nil {
			_ = s.fns.Close()
		}
		s.fns, s.fnErr = nil, errDisabled
		if c, err := s.tr.Counters(); err == nil {
			s.base = addCounters(s.base, c)
		}
		if st, err := bpf.Stats(s.tr.Programs()); err == nil {
			s.progs.Update(st, s.timed)
		}
		s.progs.Unloaded()
		if s.statsOff != nil {
			s.statsOff()
			s.statsOff = nil
		}
		if !byBudget {
			s.budget.level = 0
			s.budget.vals.Store(0, 0)
		}
		s.budget.vals.SetAbsent(1)
		err := s.tr.Close()
		s.tr = nil
		if err != nil {
			s.mu.Unlock()
			return err
		}
	}
	s.mu.Unlock()
	// Read at once, past the refresher's cache.
	return s.read()
}

// Close detaches the programs and the function counters.
func (s *Service) Close() error { return s.SetEnabled(false) }

// Pids returns the filter, ascending.
func (s *Service) Pids() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint32(nil), s.pids...)
}

func (s *Service) setPids(pids []uint32) error {
	set := map[uint32]bool{}
	for _, p := range pids {
		set[p] = true
	}
	if len(set) > MaxPids {
		return fmt.Errorf("%w: at most %d pids", statsfs.ErrInvalid, MaxPids)
	}
	next := make([]uint32, 0, len(set))
	for p := range set {
		next = append(next, p)
	}
	sort.Slice(next, func(i, j int) bool { return next[i] < next[j] })
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tr != nil {
		if err := s.tr.SetPids(next); err != nil {
			return err
		}
	}
	s.pids = next
	return nil
}

// EditPids applies a pids control write: "PID" or "+PID" adds, "-PID" removes,
// "clear" empties the filter (trace all). Several edits may be given
// separated by spaces or commas; all are checked before any applies.
func (s *Service) EditPids(text string) error {
	fields := strings.FieldsFunc(text, func(r rune) bool { return r == ' ' || r == ',' || r == '\n' || r == '\t' })
	if len(fields) == 0 {
		return fmt.Errorf("%w: pids: write PID or +PID, -PID or clear", statsfs.ErrInvalid)
	}
	set := map[uint32]bool{}
	for _, p := range s.Pids() {
		set[p] = true
	}
	for _, f := range fields {
		if f == "clear" {
			set = map[uint32]bool{}
			continue
		}
		op, num := byte('+'), f
		if f[0] == '+' || f[0] == '-' {
			op, num = f[0], f[1:]
		}
		n, err := strconv.ParseUint(num, 10, 32)
		if err != nil || n == 0 || n > 1<<22 {
			return fmt.Errorf("%w: pids: %q is not PID, +PID, -PID or clear (a process id is 1 to 4194304)", statsfs.ErrInvalid, f)
		}
		if op == '+' {
			set[uint32(n)] = true
		} else {
			delete(set, uint32(n))
		}
	}
	next := make([]uint32, 0, len(set))
	for p := range set {
		next = append(next, p)
	}
	return s.setPids(next)
}

// SortBy is the report's sort column.
func (s *Service) SortBy() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortBy
}

// SetSortBy changes the report's sort column.
func (s *Service) SetSortBy(col string) error {
	if !ValidSort(col) {
		return fmt.Errorf("%w: sort: %q is not one of %s", statsfs.ErrInvalid, col, strings.Join(SortColumns(), ", "))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sortBy = col
	return nil
}

// Report is the per-process table, fresh, sorted by the sort knob.
func (s *Service) Report() string {
	err := s.Refresh()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tr == nil {
		return "tracer disabled: write 1 to tracer/enable\n"
	}
	if err != nil {
		return fmt.Sprintf("tracer: %v\n", err)
	}
	return FormatTable(s.view.procs(), s.sortBy, 0)
}

// FunctionsStatus is the text of tracer/functions_status: the method and
// the calls counted per function, or why there are none.
func (s *Service) FunctionsStatus() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fns == nil {
		return s.fnErr.Error() + "\n"
	}
	counts, err := s.fns.Counts()
	if err != nil {
		return fmt.Sprintf("attached (%s), reading counts: %v\n", s.fns.Method, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "attached (%s)\n", s.fns.Method)
	for _, name := range s.fns.names {
		fmt.Fprintf(&b, "%s %d\n", name, counts[name])
	}
	return b.String()
}

// StackEvery is the stack sampling: one allocation stack in N (0: none).
func (s *Service) StackEvery() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(s.every)
}

// SetStackEvery changes the stack sampling, at once when enabled.
func (s *Service) SetStackEvery(n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tr != nil && s.budget.level == 0 { // the budget's levels keep stacks off
		if err := s.tr.SetStackEvery(uint32(n)); err != nil {
			return err
		}
	}
	s.every = uint32(n)
	return nil
}

// SampleEvery is the allocation sampling asked for: one address in N
// tracked for outstanding bytes (1: all, exact).
func (s *Service) SampleEvery() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(s.sample)
}

// SetSampleEvery changes the allocation sampling, at once when enabled.
func (s *Service) SetSampleEvery(n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sample = uint32(n)
	s.applyLevel(s.budget.level)
	return nil
}

// Cgroups reads the per-cgroup process events (see Tracer.Cgroups); nil
// when the tracer is disabled.
func (s *Service) Cgroups() (map[uint64]CgroupCounts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tr == nil {
		return nil, nil
	}
	return s.tr.Cgroups()
}

// Procs returns the processes as the tree holds them after the last
// refresh (Refresh first for fresh ones), each with its cgroup v2 id.
func (s *Service) Procs() []Proc { return s.view.procs() }

// Knobs returns the service's knobs: enable, pids, sample_every,
// stack_every and sort.
func (s *Service) Knobs() []*knob.Knob {
	return []*knob.Knob{
		knob.Bool("enable", "1 attaches the tracer's programs (real CPU cost on allocation-heavy loads), 0 detaches them and drops their maps",
			s.Enabled, s.SetEnabled),
		knob.New("pids", "the traced process ids, empty: all; write PID or +PID to add, -PID to remove, or clear",
			func() string {
				ps := s.Pids()
				parts := make([]string, len(ps))
				for i, p := range ps {
					parts[i] = strconv.FormatUint(uint64(p), 10)
				}
				return strings.Join(parts, " ")
			}, s.EditPids),
		knob.Uint("sample_every", "track one allocation address in N (chosen by a hash of the address) for outstanding bytes, reported as N x the tracked ones (an estimate); 1: every one, exact. Calls and allocated bytes are always exact",
			1, 1<<16, s.SampleEvery, s.SetSampleEvery),
		knob.Uint("stack_every", "capture the kernel stack of one allocation in N for leak reports (0: none; at most one in sample_every); counts stay exact",
			0, 1<<20, s.StackEvery, s.SetStackEvery),
		knob.New("sort", "the report's sort column: "+strings.Join(SortColumns(), ", "), s.SortBy, s.SetSortBy),
	}
}
