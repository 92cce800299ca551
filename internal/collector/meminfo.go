package collector

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: NameMeminfo, Default: true,
		Help: "memory, page cache and slab totals from /proc/meminfo into memory/, block/ and mm/"},
		func(cfg Config) (Collector, error) {
			c := newMeminfo(cfg.Paths)
			return c, c.attach(cfg.Root)
		})
}

// The /proc/meminfo fields the meminfo collector uses, in meminfoKeys order.
const (
	meminfoMemTotal = iota
	meminfoMemFree
	meminfoMemAvailable
	meminfoBuffers
	meminfoCached
	meminfoDirty
	meminfoWriteback
	meminfoSlab
	meminfoSReclaimable
	meminfoSUnreclaim
	meminfoPageTables
	meminfoN
)

var meminfoKeys = [meminfoN]string{
	"MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "Dirty",
	"Writeback", "Slab", "SReclaimable", "SUnreclaim", "PageTables",
}

// meminfoIndex returns key's position in meminfoKeys, or -1. It does not
// allocate: the compiler compares string(key) without a copy.
func meminfoIndex(key []byte) int {
	switch string(key) {
	case "MemTotal":
		return meminfoMemTotal
	case "MemFree":
		return meminfoMemFree
	case "MemAvailable":
		return meminfoMemAvailable
	case "Buffers":
		return meminfoBuffers
	case "Cached":
		return meminfoCached
	case "Dirty":
		return meminfoDirty
	case "Writeback":
		return meminfoWriteback
	case "Slab":
		return meminfoSlab
	case "SReclaimable":
		return meminfoSReclaimable
	case "SUnreclaim":
		return meminfoSUnreclaim
	case "PageTables":
		return meminfoPageTables
	}
	return -1
}

// meminfoBytes holds the used fields of /proc/meminfo in bytes, and which
// of them the file had (bit i for field i).
type meminfoBytes struct {
	v     [meminfoN]uint64
	found uint32
}

// parseMeminfo parses /proc/meminfo text into out without allocating when
// every line reads. A line must read "Key: number [kB]"; a line that does
// not, or a used field not in kB or past 64 bits once in bytes, is skipped
// (and counted in the *Skipped it returns) while the other lines are kept.
// A used field the file lacks is not an error: out.found tells.
func parseMeminfo(data []byte, out *meminfoBytes) error {
	*out = meminfoBytes{}
	var sk *Skipped
	for lineNo := 1; len(data) > 0; lineNo++ {
		var line []byte
		line, data = NextLine(data)
		if len(line) == 0 {
			continue
		}
		colon := -1
		for i, c := range line {
			if c == ':' {
				colon = i
				break
			}
		}
		if colon <= 0 {
			skip(&sk, fmt.Errorf("%w: line %d %q: no \"key:\"", ErrMalformed, lineNo, line))
			continue
		}
		i := meminfoIndex(line[:colon])
		if i < 0 {
			continue // a field kstat does not use
		}
		num, rest := NextField(line[colon+1:])
		unit, rest := NextField(rest)
		extra, _ := NextField(rest)
		kb, ok := ParseUint(num)
		switch {
		case !ok:
			skip(&sk, fmt.Errorf("%w: line %d %q: %s is not a number of kB", ErrMalformed, lineNo, line, meminfoKeys[i]))
		case string(unit) != "kB" || len(extra) != 0:
			skip(&sk, fmt.Errorf("%w: line %d %q: %s is not in kB", ErrMalformed, lineNo, line, meminfoKeys[i]))
		case kb > math.MaxUint64/1024:
			skip(&sk, fmt.Errorf("%w: line %d: %s %d kB does not fit in 64 bits as bytes", ErrMalformed, lineNo, meminfoKeys[i], kb))
		default:
			out.v[i] = kb * 1024
			out.found |= 1 << i
		}
	}
	return partial(sk)
}

// meminfoCol is one value of a meminfo table: a byte gauge backed by
// meminfo field field.
type meminfoCol struct {
	name, help string
	field      int
}

// meminfoTable is a statsfs table of meminfo fields, the directory it goes
// in, and per value the field that backs it.
type meminfoTable struct {
	dir    string
	table  *statsfs.Table
	fields []int
}

func newMeminfoTable(dir string, cols ...meminfoCol) meminfoTable {
	t := meminfoTable{dir: dir}
	var vs []statsfs.Value
	for _, c := range cols {
		vs = append(vs, statsfs.Value{Name: c.name, Help: c.help, Type: statsfs.U64, Unit: "bytes", Flag: statsfs.Floating})
		t.fields = append(t.fields, c.field)
	}
	t.table = statsfs.NewTable(vs...)
	return t
}

// The tables the meminfo collector attaches: block/ (page cache and
// buffers), mm/ (slab and page tables) and memory/ (totals).
var (
	meminfoBlock = newMeminfoTable(DirBlock,
		meminfoCol{BlockBuffers, "Block device buffers (Buffers in /proc/meminfo)", meminfoBuffers},
		meminfoCol{BlockCached, "Page cache of files (Cached in /proc/meminfo)", meminfoCached},
		meminfoCol{BlockDirty, "Page cache waiting to be written back (Dirty in /proc/meminfo)", meminfoDirty},
		meminfoCol{BlockWriteback, "Page cache being written back now (Writeback in /proc/meminfo)", meminfoWriteback},
	)
	meminfoMM = newMeminfoTable(DirMM,
		meminfoCol{MMSlab, "Memory of the slab allocator (Slab in /proc/meminfo)", meminfoSlab},
		meminfoCol{MMSlabReclaimable, "Slab memory the kernel can reclaim (SReclaimable in /proc/meminfo)", meminfoSReclaimable},
		meminfoCol{MMSlabUnreclaimable, "Slab memory the kernel cannot reclaim (SUnreclaim in /proc/meminfo)", meminfoSUnreclaim},
		meminfoCol{MMPageTables, "Memory of page tables (PageTables in /proc/meminfo)", meminfoPageTables},
	)
	meminfoMemory = newMeminfoTable(DirMemory,
		meminfoCol{MemoryTotal, "Usable RAM (MemTotal in /proc/meminfo)", meminfoMemTotal},
		meminfoCol{MemoryFree, "Unused RAM (MemFree in /proc/meminfo)", meminfoMemFree},
		meminfoCol{MemoryAvailable, "RAM available to new work without swapping (MemAvailable in /proc/meminfo)", meminfoMemAvailable},
	)
)

// Meminfo is the "meminfo" collector: /proc/meminfo read once per pass into
// block/, mm/ and memory/.
type Meminfo struct {
	*Refresher
	path   string
	buf    []byte
	parsed meminfoBytes
	tables [3]meminfoTable
	cells  [3]*statsfs.Counters
}

// newMeminfo returns the collector for p.Proc/meminfo.
func newMeminfo(p Paths) *Meminfo {
	m := &Meminfo{
		path:   filepath.Join(p.Proc, "meminfo"),
		tables: [3]meminfoTable{meminfoBlock, meminfoMM, meminfoMemory},
	}
	for i, t := range m.tables {
		m.cells[i] = statsfs.NewCounters(t.table)
	}
	m.Refresher = NewRefresher(NameMeminfo, m.read)
	return m
}

// attach adds block/, mm/ and memory/ values under parent (creating those
// directories if no other collector has).
func (m *Meminfo) attach(parent *statsfs.Source) error {
	for i, t := range m.tables {
		if err := Child(parent, t.dir).AddValues(t.table, m.Record(m.cells[i]), 0); err != nil {
			return err
		}
	}
	return nil
}

// read reads and parses the file. A field the file lacks (MemAvailable
// before Linux 3.14) or whose line was skipped is absent; the others
// update.
func (m *Meminfo) read() error {
	var err error
	m.buf, err = ReadFile(m.path, m.buf)
	if err != nil {
		return err
	}
	err = parseMeminfo(m.buf, &m.parsed)
	for i, t := range m.tables {
		for j, field := range t.fields {
			if m.parsed.found&(1<<field) != 0 {
				m.cells[i].Store(j, m.parsed.v[field])
			} else {
				m.cells[i].SetAbsent(j)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", m.path, err)
	}
	return nil
}
