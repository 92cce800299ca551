package collector

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/procfs"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: "slabinfo", Default: false,
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

// SlabinfoTop is how many caches, the largest by total bytes, get a source.
const SlabinfoTop = 10

const slabinfoNote = " (/proc/slabinfo, refreshed at most every 2 s: it is slow to read)"

// SlabinfoTable is the table of mm/slabinfo/: all caches together.
var SlabinfoTable = statsfs.NewTable(
	statsfs.Value{Name: "caches", Help: "Slab caches listed" + slabinfoNote, Type: statsfs.U64, Unit: "caches", Flag: statsfs.Floating},
	statsfs.Value{Name: "active_objects", Help: "Objects in use, all caches" + slabinfoNote, Type: statsfs.U64, Unit: "objects", Flag: statsfs.Floating},
	statsfs.Value{Name: "total_bytes", Help: "Memory of the slabs of all caches" + slabinfoNote, Type: statsfs.U64, Unit: "bytes", Flag: statsfs.Floating},
)

// SlabCacheTable is the table of mm/slabinfo/<cache>/, one of the
// SlabinfoTop largest caches.
var SlabCacheTable = statsfs.NewTable(
	statsfs.Value{Name: "active_objects", Help: "Objects of the cache in use" + slabinfoNote, Type: statsfs.U64, Unit: "objects", Flag: statsfs.Floating},
	statsfs.Value{Name: "objects", Help: "Objects the cache's slabs hold, used or not" + slabinfoNote, Type: statsfs.U64, Unit: "objects", Flag: statsfs.Floating},
	statsfs.Value{Name: "object_size", Help: "Size of one object of the cache" + slabinfoNote, Type: statsfs.U64, Unit: "bytes", Flag: statsfs.Floating},
	statsfs.Value{Name: "total_bytes", Help: "Memory of the cache's slabs: slabs times pages per slab times the page size" + slabinfoNote, Type: statsfs.U64, Unit: "bytes", Flag: statsfs.Floating},
)

// slabCache is one cache's numbers, all checked non-negative.
type slabCache struct {
	name                          string
	active, objects, size, totalB uint64
}

// slabinfoCaches checks and converts procfs's caches, sorted largest first
// (by total bytes, then name).
func slabinfoCaches(info procfs.SlabInfo, pageSize uint64) ([]slabCache, error) {
	out := make([]slabCache, 0, len(info.Slabs))
	for _, s := range info.Slabs {
		if s.ObjActive < 0 || s.ObjNum < 0 || s.ObjSize < 0 || s.SlabNum < 0 || s.PagesPerSlab < 0 {
			return nil, fmt.Errorf("%w: cache %q has a negative count", ErrMalformed, s.Name)
		}
		out = append(out, slabCache{
			name:    s.Name,
			active:  uint64(s.ObjActive),
			objects: uint64(s.ObjNum),
			size:    uint64(s.ObjSize),
			totalB:  uint64(s.SlabNum) * uint64(s.PagesPerSlab) * pageSize,
		})
	}
	slices.SortFunc(out, func(a, b slabCache) int {
		if c := cmp.Compare(b.totalB, a.totalB); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	return out, nil
}

// slabDev is a top cache's source and cells.
type slabDev struct {
	src   *statsfs.Source
	cells *statsfs.Counters
	pass  uint64
}

// Slabinfo is the "slabinfo" collector: p.Proc/slabinfo, parsed with
// github.com/prometheus/procfs, into mm/slabinfo/ (totals) and
// mm/slabinfo/<cache>/ for the SlabinfoTop largest caches. The file is
// readable by root only; mm/slabinfo/ stays hidden until a read succeeds.
type Slabinfo struct {
	*Refresher
	proc     string
	pageSize uint64
	dir      *statsfs.Source
	total    *statsfs.Counters
	caches   map[string]*slabDev
	pass     uint64
}

// newSlabinfo returns the collector for p.
func newSlabinfo(p Paths) *Slabinfo {
	s := &Slabinfo{
		proc:     p.Proc,
		pageSize: uint64(os.Getpagesize()),
		dir:      statsfs.NewSource("slabinfo"),
		total:    statsfs.NewCounters(SlabinfoTable),
		caches:   map[string]*slabDev{},
	}
	s.dir.SetHidden(true)
	s.Refresher = NewRefresherMaxAge("slabinfo", SlabinfoMaxAge, s.read)
	return s
}

// attach adds mm/slabinfo/ under parent and makes a first read.
func (s *Slabinfo) attach(parent *statsfs.Source) error {
	if err := s.dir.AddValues(SlabinfoTable, s.Record(s.total), 0); err != nil {
		return err
	}
	Child(parent, "mm").AddSubordinate(s.dir)
	_ = s.Refresh()
	return nil
}

func (s *Slabinfo) read() error {
	pfs, err := procfs.NewFS(s.proc)
	if err != nil {
		return err
	}
	path := filepath.Join(s.proc, "slabinfo")
	info, err := pfs.SlabInfo()
	if err != nil {
		return withPath(path, err)
	}
	caches, err := slabinfoCaches(info, s.pageSize)
	if err != nil {
		return withPath(path, err)
	}
	var active, total uint64
	for _, c := range caches {
		active += c.active
		total += c.totalB
	}
	s.total.Store(0, uint64(len(caches)))
	s.total.Store(1, active)
	s.total.Store(2, total)
	s.pass++
	for _, c := range caches[:min(len(caches), SlabinfoTop)] {
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
	return nil
}
