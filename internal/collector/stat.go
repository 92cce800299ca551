package collector

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: "stat", Default: true,
		Help: "context switches, forks, interrupts and run queue from /proc/stat into system/"},
		func(cfg Config) (Collector, error) { return newStat(cfg.Paths, Child(cfg.Root, "system")) })
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
}

// ParseStat reads the text of /proc/stat. Each of the six lines kstat uses
// must be present once with a decimal first field; other lines are
// ignored.
func ParseStat(b []byte) (Stat, error) {
	var s Stat
	want := map[string]*uint64{
		"ctxt":          &s.ContextSwitches,
		"processes":     &s.Forks,
		"intr":          &s.Interrupts,
		"softirq":       &s.Softirqs,
		"procs_running": &s.ProcsRunning,
		"procs_blocked": &s.ProcsBlocked,
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		key, rest, _ := strings.Cut(sc.Text(), " ")
		dst, ok := want[key]
		if !ok {
			continue
		}
		if seen[key] {
			return Stat{}, fmt.Errorf("%w: stat: %s appears twice", ErrMalformed, key)
		}
		seen[key] = true
		first, _, _ := strings.Cut(strings.TrimLeft(rest, " "), " ")
		v, err := strconv.ParseUint(first, 10, 64)
		if err != nil {
			return Stat{}, fmt.Errorf("%w: stat: %s: %q is not a count", ErrMalformed, key, first)
		}
		*dst = v
	}
	if err := sc.Err(); err != nil {
		return Stat{}, fmt.Errorf("%w: stat: %w", ErrMalformed, err)
	}
	for _, key := range []string{"ctxt", "processes", "intr", "softirq", "procs_running", "procs_blocked"} {
		if !seen[key] {
			return Stat{}, fmt.Errorf("%w: stat: no %s line", ErrMalformed, key)
		}
	}
	return s, nil
}

var statTable = statsfs.NewTable(
	statsfs.Value{Name: "context_switches", Type: statsfs.U64, ReadOnly: true,
		Help: "Context switches since boot (/proc/stat ctxt)."},
	statsfs.Value{Name: "forks", Type: statsfs.U64, ReadOnly: true,
		Help: "Processes and threads created since boot (/proc/stat processes)."},
	statsfs.Value{Name: "interrupts_total", Type: statsfs.U64, ReadOnly: true,
		Help: "Interrupts serviced since boot (/proc/stat intr)."},
	statsfs.Value{Name: "softirqs_total", Type: statsfs.U64, ReadOnly: true,
		Help: "Softirqs handled since boot (/proc/stat softirq)."},
	statsfs.Value{Name: "procs_running", Type: statsfs.U64, Flag: statsfs.Floating,
		Help: "Tasks running or runnable now (/proc/stat procs_running)."},
	statsfs.Value{Name: "procs_blocked", Type: statsfs.U64, Flag: statsfs.Floating,
		Help: "Tasks blocked on I/O now (/proc/stat procs_blocked)."},
)

// newStat adds the "stat" collector's values to src (normally system/),
// read from p.Proc/stat at most once per MaxAge.
func newStat(p Paths, src *statsfs.Source) (*Refresher, error) {
	c := statsfs.NewCounters(statTable)
	path := filepath.Join(p.Proc, "stat")
	var buf []byte // reused by each read
	r := NewRefresher("stat", func() error {
		var err error
		if buf, err = ReadFile(path, buf); err != nil {
			return err
		}
		s, err := ParseStat(buf)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for i, v := range []uint64{s.ContextSwitches, s.Forks, s.Interrupts, s.Softirqs, s.ProcsRunning, s.ProcsBlocked} {
			c.Store(i, v)
		}
		return nil
	})
	return r, src.AddValues(statTable, r.Record(c), 0)
}
