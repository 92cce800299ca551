package collector

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: NameStat, Default: true,
		Help: "context switches, forks, interrupts and run queue from /proc/stat into system/"},
		func(cfg Config) (Collector, error) { return newStat(cfg.Paths, Child(cfg.Root, DirSystem)) })
}

// Stat is what kstat keeps of /proc/stat: system-wide counters since boot
// and the current numbers of running and blocked tasks.
type Stat struct {
	ContextSwitches uint64 // ctxt
	Forks           uint64 // processes
	Interrupts      uint64 // intr, first column: every interrupt serviced
	Softirqs        uint64 // softirq, first column
	ProcsRunning    uint64 // procs_running
	ProcsBlocked    uint64 // procs_blocked
	// Have has bit i set when the i-th field above was read; the others
	// are absent.
	Have uint8
}

// statKeys are the /proc/stat lines of Stat's fields, in field order.
var statKeys = [...]string{"ctxt", "processes", "intr", "softirq", "procs_running", "procs_blocked"}

// ParseStat reads the text of /proc/stat; lines it does not use are
// ignored. A used line whose first field is not a decimal count, or that
// repeats an earlier one, is skipped and counted in the *Skipped it
// returns; a used line the file lacks is left out of Have. The other
// fields are kept.
func ParseStat(b []byte) (Stat, error) {
	var s Stat
	dsts := [...]*uint64{&s.ContextSwitches, &s.Forks, &s.Interrupts, &s.Softirqs, &s.ProcsRunning, &s.ProcsBlocked}
	var sk *Skipped
	seen := uint8(0)
	for lineNo := 1; len(b) > 0; lineNo++ {
		var line []byte
		line, b = NextLine(b)
		key, rest := NextField(line)
		i := slices.Index(statKeys[:], string(key))
		if i < 0 || len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if seen&(1<<i) != 0 {
			skip(&sk, fmt.Errorf("%w: stat: line %d: %s appears twice", ErrMalformed, lineNo, key))
			continue
		}
		seen |= 1 << i
		first, _ := NextField(rest)
		v, ok := ParseUint(first)
		if !ok {
			skip(&sk, fmt.Errorf("%w: stat: line %d: %s: %q is not a count", ErrMalformed, lineNo, key, first))
			continue
		}
		*dsts[i] = v
		s.Have |= 1 << i
	}
	return s, partial(sk)
}

var statTable = statsfs.NewTable(
	statsfs.Value{Name: SystemContextSwitches, Type: statsfs.U64, ReadOnly: true,
		Help: "Context switches since boot (/proc/stat ctxt)."},
	statsfs.Value{Name: SystemForks, Type: statsfs.U64, ReadOnly: true,
		Help: "Processes and threads created since boot (/proc/stat processes)."},
	statsfs.Value{Name: SystemInterrupts, Type: statsfs.U64, ReadOnly: true,
		Help: "Interrupts serviced since boot (/proc/stat intr)."},
	statsfs.Value{Name: SystemSoftirqs, Type: statsfs.U64, ReadOnly: true,
		Help: "Softirqs handled since boot (/proc/stat softirq)."},
	statsfs.Value{Name: SystemProcsRunning, Type: statsfs.U64, Flag: statsfs.Floating,
		Help: "Tasks running or runnable now (/proc/stat procs_running)."},
	statsfs.Value{Name: SystemProcsBlocked, Type: statsfs.U64, Flag: statsfs.Floating,
		Help: "Tasks blocked on I/O now (/proc/stat procs_blocked)."},
)

// newStat adds the "stat" collector's values to src (normally system/),
// read from p.Proc/stat at most once per MaxAge.
func newStat(p Paths, src *statsfs.Source) (*Refresher, error) {
	c := statsfs.NewCounters(statTable)
	path := filepath.Join(p.Proc, "stat")
	var buf []byte // reused by each read
	r := NewRefresher(NameStat, func() error {
		var err error
		if buf, err = ReadFile(path, buf); err != nil {
			return err
		}
		s, err := ParseStat(buf)
		for i, v := range []uint64{s.ContextSwitches, s.Forks, s.Interrupts, s.Softirqs, s.ProcsRunning, s.ProcsBlocked} {
			if s.Have&(1<<i) != 0 {
				c.Store(i, v)
			} else {
				c.SetAbsent(i)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
	return r, src.AddValues(statTable, r.Record(c), 0)
}
