package collector

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: NameSlabinfo, Default: false,
		Help: "per-cache slab use from /proc/slabinfo (root only, slow to read) into mm/slabinfo/"},
		func(cfg Config) (Collector, error) {
			c := newSlabinfo(cfg.Paths)
			return c, c.attach(cfg.Root)
		})
}

// SlabinfoMaxAge is how long one read of /proc/slabinfo serves: the kernel
// takes milliseconds to generate it (it walks every cache), too slow for
// the 50 ms cache of the other files.
const SlabinfoMaxAge = 2 * time.Second

// SlabinfoTop is how many caches, the largest by total bytes, reports
// list; every cache has a source.
const SlabinfoTop = 10

const slabinfoNote = " (/proc/slabinfo, refreshed at most every 2 s: it is slow to read)"

// SlabinfoTable is the table of mm/slabinfo/: all caches together.
var SlabinfoTable = statsfs.NewTable(
	statsfs.Value{Name: SlabCaches, Help: "Slab caches listed" + slabinfoNote, Type: statsfs.U64, Unit: "caches", Flag: statsfs.Floating},
	statsfs.Value{Name: SlabActiveObjects, Help: "Objects in use, all caches" + slabinfoNote, Type: statsfs.U64, Unit: "objects", Flag: statsfs.Floating},
	statsfs.Value{Name: SlabTotalBytes, Help: "Memory of the slabs of all caches" + slabinfoNote, Type: statsfs.U64, Unit: "bytes", Flag: statsfs.Floating},
)

// SlabCacheTable is the table of mm/slabinfo/<cache>/, one per cache.
var SlabCacheTable = statsfs.NewTable(
	statsfs.Value{Name: SlabActiveObjects, Help: "Objects of the cache in use" + slabinfoNote, Type: statsfs.U64, Unit: "objects", Flag: statsfs.Floating},
	statsfs.Value{Name: SlabObjects, Help: "Objects the cache's slabs hold, used or not" + slabinfoNote, Type: statsfs.U64, Unit: "objects", Flag: statsfs.Floating},
	statsfs.Value{Name: SlabObjectSize, Help: "Size of one object of the cache" + slabinfoNote, Type: statsfs.U64, Unit: "bytes", Flag: statsfs.Floating},
	statsfs.Value{Name: SlabTotalBytes, Help: "Memory of the cache's slabs: slabs times pages per slab times the page size" + slabinfoNote, Type: statsfs.U64, Unit: "bytes", Flag: statsfs.Floating},
)

// slabCache is one cache's numbers, all checked non-negative.
type slabCache struct {
	name                          string
	active, objects, size, totalB uint64
}

// parseSlabinfo reads /proc/slabinfo text (version 2.x), sorted largest
// first (by total bytes, then name). A cache line that cannot be read (too
// few fields, a count that is not an unsigned 64-bit number, a size past 64
// bits, a repeated or bad name) is skipped and counted in the *Skipped it
// returns; the other caches are kept. Another format version is an error.
func parseSlabinfo(data []byte, pageSize uint64) ([]slabCache, error) {
	var out []slabCache
	var sk *Skipped
	seen := map[string]bool{}
	for lineNo := 1; len(data) > 0; lineNo++ {
		var line []byte
		line, data = NextLine(data)
		text := string(line)
		if v, ok := strings.CutPrefix(text, "slabinfo - version: "); ok {
			if !strings.HasPrefix(v, "2.") {
				return nil, fmt.Errorf("%w: version %q, want 2.x", ErrMalformed, v)
			}
			continue
		}
		f := strings.Fields(text)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		c, err := slabinfoLine(f, pageSize)
		if err == nil && seen[c.name] {
			err = fmt.Errorf("%s appears twice", c.name)
		}
		if err != nil {
			skip(&sk, fmt.Errorf("%w: line %d: %w", ErrMalformed, lineNo, err))
			continue
		}
		seen[c.name] = true
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b slabCache) int {
		if c := cmp.Compare(b.totalB, a.totalB); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	return out, partial(sk)
}

// slabinfoLine reads the fields of one cache line: name, active objects,
// objects, object size, objects per slab, pages per slab, ": tunables"
// and three numbers, ": slabdata", active slabs, slabs, shared.
func slabinfoLine(f []string, pageSize uint64) (slabCache, error) {
	if len(f) != 16 || f[6] != ":" || f[7] != "tunables" || f[11] != ":" || f[12] != "slabdata" {
		return slabCache{}, fmt.Errorf("%d fields, not the 16 of a version 2 cache line", len(f))
	}
	if !validName([]byte(f[0])) {
		return slabCache{}, fmt.Errorf("bad cache name %q", f[0])
	}
	var n [16]uint64
	for _, i := range []int{1, 2, 3, 5, 14} {
		v, ok := ParseUint([]byte(f[i]))
		if !ok {
			return slabCache{}, fmt.Errorf("%s: %q is not an unsigned 64-bit number", f[0], f[i])
		}
		n[i] = v
	}
	hi, pages := bits.Mul64(n[14], n[5])
	hi2, total := bits.Mul64(pages, pageSize)
	if hi != 0 || hi2 != 0 {
		return slabCache{}, fmt.Errorf("%s: %d slabs of %d pages do not fit in 64 bits as bytes", f[0], n[14], n[5])
	}
	return slabCache{name: f[0], active: n[1], objects: n[2], size: n[3], totalB: total}, nil
}

// slabDev is a top cache's source and cells.
type slabDev struct {
	src   *statsfs.Source
	cells *statsfs.Counters
	pass  uint64
}

// Slabinfo is the "slabinfo" collector: p.Proc/slabinfo into mm/slabinfo/ (totals) and
// mm/slabinfo/<cache>/ for every cache. The file is
// readable by root only; mm/slabinfo/ stays hidden until a read succeeds.
type Slabinfo struct {
	*Refresher
	proc     string
	pageSize uint64
	dir      *statsfs.Source
	total    *statsfs.Counters
	caches   map[string]*slabDev
	pass     uint64
	buf      []byte
}

// newSlabinfo returns the collector for p.
func newSlabinfo(p Paths) *Slabinfo {
	s := &Slabinfo{
		proc:     p.Proc,
		pageSize: uint64(os.Getpagesize()),
		dir:      statsfs.NewSource(slabinfoDir),
		total:    statsfs.NewCounters(SlabinfoTable),
		caches:   map[string]*slabDev{},
	}
	s.dir.SetHidden(true)
	s.Refresher = NewRefresherMaxAge(NameSlabinfo, SlabinfoMaxAge, s.read)
	return s
}

// attach adds mm/slabinfo/ under parent and makes a first read.
func (s *Slabinfo) attach(parent *statsfs.Source) error {
	if err := s.dir.AddValues(SlabinfoTable, s.Record(s.total), 0); err != nil {
		return err
	}
	Child(parent, DirMM).AddSubordinate(s.dir)
	_ = s.Refresh()
	return nil
}

// read parses the file. The totals over all caches are absent when a line
// was skipped: they would be a sum of some of the caches.
func (s *Slabinfo) read() error {
	path := filepath.Join(s.proc, "slabinfo")
	var err error
	if s.buf, err = ReadFile(path, s.buf); err != nil {
		return err
	}
	caches, err := parseSlabinfo(s.buf, s.pageSize)
	var sk *Skipped
	if err != nil && !errors.As(err, &sk) {
		return fmt.Errorf("%s: %w", path, err)
	}
	var active, total uint64
	for _, c := range caches {
		active += c.active
		total += c.totalB
	}
	for i, v := range [...]uint64{uint64(len(caches)), active, total} {
		if sk != nil {
			s.total.SetAbsent(i)
		} else {
			s.total.Store(i, v)
		}
	}
	s.pass++
	for _, c := range caches {
		d := s.caches[c.name]
		if d == nil {
			d = &slabDev{src: statsfs.NewInstance("cache", c.name), cells: statsfs.NewCounters(SlabCacheTable)}
			_ = d.src.AddValues(SlabCacheTable, s.Record(d.cells), 0) // new table and record: cannot fail
			s.dir.AddSubordinate(d.src)
			s.caches[c.name] = d
		}
		d.pass = s.pass
		for i, v := range [...]uint64{c.active, c.objects, c.size, c.totalB} {
			d.cells.Store(i, v)
		}
	}
	for name, d := range s.caches {
		if d.pass != s.pass {
			s.dir.RemoveSubordinate(d.src)
			d.src.Revoke()
			delete(s.caches, name)
		}
	}
	s.dir.SetHidden(false)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
