package statsfs

import (
	"math"
	"sync/atomic"
)

// Record backs a table's values in one source: Load(i) returns the raw bits
// of the table's i-th value. Load must be safe to call from any goroutine.
type Record interface {
	Load(i int) uint64
}

// PartialRecord is a Record some of whose values may be unavailable: the
// kernel does not provide them, or the read that backs them failed. The
// tree reads it through LoadAvailable; an unavailable value reads as a
// Reading with Absent set, and every aggregate covering it is absent too.
// A Record that is not a PartialRecord always has all its values.
type PartialRecord interface {
	Record
	// LoadAvailable returns value i's raw bits and whether it is
	// available. The bits of an unavailable value mean nothing.
	LoadAvailable(i int) (raw uint64, ok bool)
}

// Clearer is a Record whose values can be reset to zero.
type Clearer interface {
	Record
	Clear(i int)
}

// Counters is a clearable record of atomic 64-bit cells, one per value of
// its table. The owner updates cells with Add and Store; readers never block
// it. A cell can be marked unavailable with SetAbsent; Store and Add make it
// available again.
type Counters struct {
	cells  []atomic.Uint64
	absent []atomic.Uint64 // bit i%64 of word i/64 set: cell i is absent
}

// NewCounters returns zeroed counters for every value of t, all available.
func NewCounters(t *Table) *Counters {
	return &Counters{
		cells:  make([]atomic.Uint64, t.Len()),
		absent: make([]atomic.Uint64, (t.Len()+63)/64),
	}
}

// Load returns cell i (0 when it is absent).
func (c *Counters) Load(i int) uint64 { return c.cells[i].Load() }

// LoadAvailable returns cell i and whether it is available.
func (c *Counters) LoadAvailable(i int) (uint64, bool) {
	if c.absent[i/64].Load()&(1<<(i%64)) != 0 {
		return 0, false
	}
	return c.cells[i].Load(), true
}

// present marks cell i available; it writes only when the cell was absent,
// so that updating an available cell costs one extra load.
func (c *Counters) present(i int) {
	w, bit := &c.absent[i/64], uint64(1)<<(i%64)
	if w.Load()&bit != 0 {
		w.And(^bit)
	}
}

// SetAbsent marks cell i unavailable and zeroes it, until the next Store or
// Add.
func (c *Counters) SetAbsent(i int) {
	c.absent[i/64].Or(1 << (i % 64))
	c.cells[i].Store(0)
}

// Clear sets cell i to zero; an absent cell stays absent.
func (c *Counters) Clear(i int) { c.cells[i].Store(0) }

// Add adds d to cell i (wrapping) and makes it available.
func (c *Counters) Add(i int, d uint64) {
	c.cells[i].Add(d)
	c.present(i)
}

// Store sets cell i to v and makes it available.
func (c *Counters) Store(i int, v uint64) {
	c.cells[i].Store(v)
	c.present(i)
}

// StoreFloat sets cell i to the bits of f, for F64 values, and makes it
// available.
func (c *Counters) StoreFloat(i int, f float64) { c.Store(i, math.Float64bits(f)) }

// RecordFunc is a read-only record computed by a function of the value's
// index, such as a collector's cached parse of a /proc file.
type RecordFunc func(i int) uint64

// Load calls f.
func (f RecordFunc) Load(i int) uint64 { return f(i) }

// PartialFunc is a read-only PartialRecord computed by a function of the
// value's index that also reports whether the value is available.
type PartialFunc func(i int) (raw uint64, ok bool)

// Load calls f and returns its bits, or 0 for an unavailable value.
func (f PartialFunc) Load(i int) uint64 {
	if v, ok := f(i); ok {
		return v
	}
	return 0
}

// LoadAvailable calls f.
func (f PartialFunc) LoadAvailable(i int) (uint64, bool) { return f(i) }

// FloatBits returns the raw bits that store f in an F64 value.
func FloatBits(f float64) uint64 { return math.Float64bits(f) }
