package collector

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
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
// keeping as Bad the lines it cannot read (see tableParser.parse).
func ParseInterrupts(b []byte) (CPUTable, error) {
	var p tableParser
	err := p.parseInterrupts(b)
	return p.table(), err
}

// tableParser reads the shared format of /proc/interrupts and
// /proc/softirqs into storage it reuses from parse to parse, so that a
// collector's reads make no garbage once the lines are known.
type tableParser struct {
	cpus   int
	lines  []rawLine
	counts []uint64 // every line's counts, one after the other
	// seen finds repeated names: a name maps to the parse (gen) that
	// last saw it; names are added once and forgotten when they
	// outnumber a parse's lines.
	seen map[string]*uint64
	gen  uint64
}

// rawLine is one line of a parse; name and rest alias the parsed text.
type rawLine struct {
	name        []byte
	first, ncnt int    // its counts are counts[first:first+ncnt]
	total       uint64 // their sum
	rest        []byte // what follows the counts: the description
	bad         bool   // the name was read, the counts were not
}

// parseInterrupts is parse with its errors naming the file.
func (p *tableParser) parseInterrupts(b []byte) error {
	if err := p.parse(b); err != nil {
		return fmt.Errorf("interrupts: %w", err)
	}
	return nil
}

// parse reads b. A line takes at most one count per header column; what
// follows the counts is its description. A file without a header of CPU
// columns is an error. A line without a name, or whose name repeats, is
// skipped; a line with no counts or whose total overflows is kept as bad;
// both are counted in the *Skipped it returns, and the other lines kept.
func (p *tableParser) parse(b []byte) error {
	if p.seen == nil || len(p.seen) > 2*len(p.lines)+64 {
		p.seen = map[string]*uint64{}
	}
	p.cpus, p.lines, p.counts = 0, p.lines[:0], p.counts[:0]
	p.gen++
	header, b := NextLine(b)
	if len(header) == 0 && len(b) == 0 {
		return fmt.Errorf("%w: empty file", ErrMalformed)
	}
	cpus := 0
	for f, rest := nextBlankField(header); len(f) > 0; f, rest = nextBlankField(rest) {
		if !bytes.HasPrefix(f, []byte("CPU")) {
			return fmt.Errorf("%w: header: %q is not a CPU column", ErrMalformed, f)
		}
		cpus++
	}
	if cpus == 0 {
		return fmt.Errorf("%w: header has no CPU columns", ErrMalformed)
	}
	p.cpus = cpus
	var sk *Skipped
	for n := 2; len(b) > 0; n++ {
		var text []byte
		text, b = NextLine(b)
		if len(trimSpaces(text)) == 0 {
			continue
		}
		colon := bytes.IndexByte(text, ':')
		var name []byte
		if colon >= 0 {
			name = trimSpaces(text[:colon])
		}
		if colon < 0 || !lineName(name) {
			skip(&sk, fmt.Errorf("%w: line %d: no name before a colon", ErrMalformed, n))
			continue
		}
		if g := p.seen[string(name)]; g == nil {
			g = new(uint64)
			*g = p.gen
			p.seen[string(name)] = g
		} else if *g == p.gen {
			skip(&sk, fmt.Errorf("%w: line %d: %s appears twice", ErrMalformed, n, name))
			continue
		} else {
			*g = p.gen
		}
		l := rawLine{name: name, first: len(p.counts)}
		rest := text[colon+1:]
		for l.ncnt < p.cpus {
			f, after := nextBlankField(rest)
			v, ok := ParseUint(f)
			if !ok {
				break
			}
			if l.total+v < l.total {
				skip(&sk, fmt.Errorf("%w: line %d: %s: total overflows 64 bits", ErrMalformed, n, name))
				l.bad = true
				break
			}
			p.counts = append(p.counts, v)
			l.ncnt++
			l.total += v
			rest = after
		}
		if !l.bad && l.ncnt == 0 {
			skip(&sk, fmt.Errorf("%w: line %d: %s has no counts", ErrMalformed, n, name))
			l.bad = true
		}
		if l.bad {
			p.counts = p.counts[:l.first]
			l.ncnt, l.total = 0, 0
		} else {
			l.rest = rest
		}
		p.lines = append(p.lines, l)
	}
	return partial(sk)
}

// lineName reports whether a line's name can name its directory.
func lineName(name []byte) bool {
	return len(name) > 0 && len(name) <= statsfs.MaxNameLen && string(name) != "." && string(name) != ".." &&
		!bytes.ContainsAny(name, " \t/\x00")
}

// table returns the parse as a CPUTable of its own.
func (p *tableParser) table() CPUTable {
	t := CPUTable{CPUs: p.cpus}
	if len(p.lines) == 0 {
		return t
	}
	t.Lines = make([]Line, len(p.lines))
	for i, l := range p.lines {
		t.Lines[i] = Line{Name: string(l.name), Total: l.total, Bad: l.bad}
		if !l.bad {
			t.Lines[i].PerCPU = slices.Clone(p.counts[l.first : l.first+l.ncnt : l.first+l.ncnt])
			t.Lines[i].Desc = string(appendDesc(nil, l.rest))
		}
	}
	return t
}

// appendDesc appends the fields of rest, one blank between them.
func appendDesc(dst, rest []byte) []byte {
	for f, r := nextBlankField(rest); len(f) > 0; f, r = nextBlankField(r) {
		if len(dst) > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, f...)
	}
	return dst
}

// descIs reports whether appendDesc(nil, rest) would be desc, without
// making it.
func descIs(rest []byte, desc string) bool {
	for f, r := nextBlankField(rest); len(f) > 0; f, r = nextBlankField(r) {
		if len(desc) < len(f) || desc[:len(f)] != string(f) {
			return false
		}
		desc = desc[len(f):]
		if len(desc) > 0 {
			if desc[0] != ' ' {
				return false
			}
			desc = desc[1:]
			if len(desc) == 0 {
				return false // a trailing blank appendDesc never writes
			}
		}
	}
	return len(desc) == 0
}

// isBlank reports whether c separates fields: an ASCII space, tab, CR,
// vertical tab or form feed (what strings.Fields splits ASCII text at,
// less the newline that ends the line).
func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

// nextBlankField is NextField splitting at every isBlank byte.
func nextBlankField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	j := i
	for j < len(b) && !isBlank(b[j]) {
		j++
	}
	return b[i:j], b[j:]
}

// trimSpaces drops leading and trailing isBlank bytes.
func trimSpaces(b []byte) []byte {
	for len(b) > 0 && isBlank(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isBlank(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
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
	pass   uint64 // updates so far
	events *eventFeed
	covers func(line string) bool // which lines events counts
}

type lineSource struct {
	src    *statsfs.Source
	counts *statsfs.Counters
	desc   atomicString
	event  *statsfs.Counters
	// descText is desc's text, for update (which holds Lines.mu); pass
	// the last update that saw the line.
	descText string
	pass     uint64
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
	return newLines(NameInterrupts, filepath.Join(p.Proc, "interrupts"), "irq", irqTable, true, (*tableParser).parseInterrupts, parent)
}

func newLines(name, path, label string, table *statsfs.Table, desc bool,
	parse func(*tableParser, []byte) error, parent *statsfs.Source) (*Lines, error) {
	l := &Lines{parent: parent, label: label, table: table, desc: desc, lines: map[string]*lineSource{}}
	var buf []byte // reused by each read, as is the parser
	var p tableParser
	l.Refresher = NewRefresher(name, func() error {
		var err error
		if buf, err = ReadFile(path, buf); err != nil {
			return err
		}
		err = parse(&p, buf)
		if _, ok := skippedOnly(err); err == nil || ok {
			l.update(&p)
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
// A line's description is made anew only when its text changed.
func (l *Lines) update(p *tableParser) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pass++
	for _, line := range p.lines {
		ls := l.lines[string(line.name)]
		if ls == nil {
			ls = l.addLine(string(line.name))
		}
		ls.pass = l.pass
		if line.bad {
			ls.counts.SetAbsent(0)
		} else {
			ls.counts.Store(0, line.total)
		}
		if !descIs(line.rest, ls.descText) {
			ls.descText = string(appendDesc(nil, line.rest))
			ls.desc.Store(ls.descText)
		}
	}
	for name, ls := range l.lines {
		if ls.pass != l.pass {
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
