package collector

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: NameInterrupts, Default: true,
		Help: "interrupts per line with their descriptions from /proc/interrupts into irq/"},
		func(cfg Config) (Collector, error) { return newInterrupts(cfg.Paths, Child(cfg.Root, DirIRQ)) })
}

// CPUTable is /proc/interrupts or /proc/softirqs: a header of CPU columns,
// then one line per interrupt source.
type CPUTable struct {
	CPUs  int // columns in the header
	Lines []Line
}

// Line is one row of a CPUTable.
type Line struct {
	Name   string   // "36", "LOC", "NET_RX": the text before the colon
	PerCPU []uint64 // one count per CPU column; fewer when the kernel prints fewer (ERR, MIS)
	Total  uint64   // sum of PerCPU
	Desc   string   // the rest of the line, blanks collapsed: "IO-APIC 5-edge ACPI:Ged"
	// Bad is set when the name was read but the counts were not: the
	// line's count is absent (PerCPU is nil and Total 0).
	Bad bool
}

// ParseInterrupts reads the text of /proc/interrupts, skipping or
// keeping as Bad the lines it cannot read (see parseCPUTable).
func ParseInterrupts(b []byte) (CPUTable, error) {
	t, err := parseCPUTable(b)
	if err != nil {
		err = fmt.Errorf("interrupts: %w", err)
	}
	return t, err
}

// parseCPUTable reads the shared format of /proc/interrupts and
// /proc/softirqs. A line takes at most one count per header column; what
// follows the counts is its description. A file without a header of CPU
// columns is an error. A line without a name, or whose name repeats, is
// skipped; a line with no counts or whose total overflows is kept as Bad;
// both are counted in the *Skipped it returns, and the other lines kept.
func parseCPUTable(b []byte) (CPUTable, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	var t CPUTable
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return t, err
		}
		return t, fmt.Errorf("%w: empty file", ErrMalformed)
	}
	for _, f := range strings.Fields(sc.Text()) {
		if !strings.HasPrefix(f, "CPU") {
			return CPUTable{}, fmt.Errorf("%w: header: %q is not a CPU column", ErrMalformed, f)
		}
		t.CPUs++
	}
	if t.CPUs == 0 {
		return CPUTable{}, fmt.Errorf("%w: header has no CPU columns", ErrMalformed)
	}
	seen := map[string]bool{}
	var sk *Skipped
	for n := 2; sc.Scan(); n++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		name, rest, ok := strings.Cut(text, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t/\x00") || name == "." || name == ".." || len(name) > statsfs.MaxNameLen {
			skip(&sk, fmt.Errorf("%w: line %d: no name before a colon", ErrMalformed, n))
			continue
		}
		if seen[name] {
			skip(&sk, fmt.Errorf("%w: line %d: %s appears twice", ErrMalformed, n, name))
			continue
		}
		seen[name] = true
		l := Line{Name: name}
		f := strings.Fields(rest)
		for len(f) > 0 && len(l.PerCPU) < t.CPUs {
			v, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				break
			}
			if l.Total+v < l.Total {
				skip(&sk, fmt.Errorf("%w: line %d: %s: total overflows 64 bits", ErrMalformed, n, name))
				l.Bad = true
				break
			}
			l.PerCPU = append(l.PerCPU, v)
			l.Total += v
			f = f[1:]
		}
		if !l.Bad && len(l.PerCPU) == 0 {
			skip(&sk, fmt.Errorf("%w: line %d: %s has no counts", ErrMalformed, n, name))
			l.Bad = true
		}
		if l.Bad {
			l.PerCPU, l.Total = nil, 0
		} else {
			l.Desc = strings.Join(f, " ")
		}
		t.Lines = append(t.Lines, l)
	}
	if err := sc.Err(); err != nil {
		return CPUTable{}, err
	}
	return t, partial(sk)
}

// lineTable is the /proc values of one line: its count since boot and its
// description.
func lineTable(file, what string) *statsfs.Table {
	return statsfs.NewTable(
		statsfs.Value{Name: LineCount, Type: statsfs.U64, ReadOnly: true, Aggr: statsfs.Sum,
			Help: what + " since boot, summed over CPUs (/proc/" + file + ")."},
	)
}

var (
	irqTable     = lineTable("interrupts", "Interrupts on this line")
	softirqTable = lineTable("softirqs", "Softirqs of this vector handled")
	eventTable   = statsfs.NewTable(statsfs.Value{
		Name: LineBPFEntries, Type: statsfs.U64, ReadOnly: true, Aggr: statsfs.Sum,
		Help: "Handler entries counted by eBPF since kstat attached its program.",
	})
)

// Lines is a collector of a CPUTable file: one instance source per line
// under its parent, added as lines appear and removed when they go, with
// the /proc count and, once AddEventCounts is called, the eBPF count side
// by side.
type Lines struct {
	*Refresher
	parent *statsfs.Source
	label  string
	table  *statsfs.Table
	desc   bool

	mu     sync.Mutex
	lines  map[string]*lineSource
	events *eventFeed
	covers func(line string) bool // which lines events counts
}

type lineSource struct {
	src    *statsfs.Source
	counts *statsfs.Counters
	desc   atomicString
	event  *statsfs.Counters
}

// atomicString is a string readers may load while the collector stores.
type atomicString struct {
	mu sync.Mutex
	s  string
}

func (a *atomicString) Load() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.s
}

func (a *atomicString) Store(s string) {
	a.mu.Lock()
	a.s = s
	a.mu.Unlock()
}

// eventFeed is an eBPF count per line name, refreshed at most once per
// MaxAge.
type eventFeed struct {
	*Refresher
	last map[string]uint64
}

// newInterrupts adds the "interrupts" collector under parent (normally
// irq/): a source irq/<line>/ per line of p.Proc/interrupts, labelled
// irq=<line>, with its count and description, and a count sum in parent.
// It reads the file once now; a failed read is in Status.
func newInterrupts(p Paths, parent *statsfs.Source) (*Lines, error) {
	return newLines(NameInterrupts, filepath.Join(p.Proc, "interrupts"), "irq", irqTable, true, ParseInterrupts, parent)
}

func newLines(name, path, label string, table *statsfs.Table, desc bool,
	parse func([]byte) (CPUTable, error), parent *statsfs.Source) (*Lines, error) {
	l := &Lines{parent: parent, label: label, table: table, desc: desc, lines: map[string]*lineSource{}}
	var buf []byte // reused by each read
	l.Refresher = NewRefresher(name, func() error {
		var err error
		if buf, err = ReadFile(path, buf); err != nil {
			return err
		}
		t, err := parse(buf)
		if sk := (*Skipped)(nil); err == nil || errors.As(err, &sk) {
			l.update(t)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
	// The aggregates refresh through their lines' records.
	if err := parent.AddValues(table, nil, 0); err != nil {
		return nil, err
	}
	_ = l.Refresh() // the lines are there before anyone lists the directory; a failure is in Status
	return l, nil
}

// update stores a parse: new lines get a source, gone ones are removed.
func (l *Lines) update(t CPUTable) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := make(map[string]bool, len(t.Lines))
	for _, line := range t.Lines {
		now[line.Name] = true
		ls := l.lines[line.Name]
		if ls == nil {
			ls = l.addLine(line.Name)
		}
		if line.Bad {
			ls.counts.SetAbsent(0)
		} else {
			ls.counts.Store(0, line.Total)
		}
		ls.desc.Store(line.Desc)
	}
	for name, ls := range l.lines {
		if !now[name] {
			l.parent.RemoveSubordinate(ls.src)
			ls.src.Revoke()
			delete(l.lines, name)
		}
	}
}

// addLine makes the source of a new line; l.mu is held.
func (l *Lines) addLine(name string) *lineSource {
	ls := &lineSource{src: statsfs.NewInstance(l.label, name), counts: statsfs.NewCounters(l.table)}
	_ = ls.src.AddValues(l.table, l.Refresher.Record(ls.counts), 0) // a new source has no values yet
	if l.desc {
		// An info value: it reads 1 and shows the line's description.
		irqInfo := statsfs.NewTable(statsfs.Value{
			Name: LineDescription, Type: statsfs.U64, Flag: statsfs.Floating, Info: true,
			Help: "The line's chip, hardware IRQ and device names from /proc/interrupts.",
			Show: func(statsfs.Reading) string { return ls.desc.Load() + "\n" },
		})
		_ = ls.src.AddValues(irqInfo, statsfs.RecordFunc(func(int) uint64 { return 1 }), 0)
	}
	if l.events != nil && l.covers(name) {
		l.addEvent(ls)
	}
	l.lines[name] = ls
	l.parent.AddSubordinate(ls.src)
	return ls
}

// addEvent adds the eBPF count to a line; l.mu is held.
func (l *Lines) addEvent(ls *lineSource) {
	ls.event = statsfs.NewCounters(eventTable)
	ls.event.Store(0, l.events.last[ls.src.Name()])
	_ = ls.src.AddValues(eventTable, l.events.Record(ls.event), 0)
}

// AddEventCounts puts an eBPF count beside the /proc count of every line
// covers accepts (now and as lines appear), as the value bpf_entries, with
// a sum in the parent. read returns the counts by line name; it runs at
// most once per MaxAge, as a collector called name (its Refresher is
// returned for the registry). It may be called once.
func (l *Lines) AddEventCounts(name string, covers func(line string) bool, read func() (map[string]uint64, error)) (*Refresher, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.events != nil {
		return nil, fmt.Errorf("%s: %w: event counts", l.Name(), statsfs.ErrExist)
	}
	f := &eventFeed{}
	f.Refresher = NewRefresher(name, func() error {
		counts, err := read()
		if err != nil {
			return err
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		f.last = counts
		for line, ls := range l.lines {
			if ls.event != nil {
				ls.event.Store(0, counts[line])
			}
		}
		return nil
	})
	l.events, l.covers = f, covers
	if err := l.parent.AddValues(eventTable, nil, 0); err != nil {
		return nil, err
	}
	for name, ls := range l.lines {
		if covers(name) {
			l.addEvent(ls)
		}
	}
	return f.Refresher, nil
}
