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

// Clearer is a Record whose values can be reset to zero.
type Clearer interface {
	Record
	Clear(i int)
}

// Counters is a clearable record of atomic 64-bit cells, one per value of
// its table. The owner updates cells with Add and Store; readers never block
// it.
type Counters struct {
	cells []atomic.Uint64
}

// NewCounters returns zeroed counters for every value of t.
func NewCounters(t *Table) *Counters {
	return &Counters{cells: make([]atomic.Uint64, t.Len())}
}

// Load returns cell i.
func (c *Counters) Load(i int) uint64 { return c.cells[i].Load() }

// Clear sets cell i to zero.
func (c *Counters) Clear(i int) { c.cells[i].Store(0) }

// Add adds d to cell i (wrapping).
func (c *Counters) Add(i int, d uint64) { c.cells[i].Add(d) }

// Store sets cell i to v.
func (c *Counters) Store(i int, v uint64) { c.cells[i].Store(v) }

// StoreFloat sets cell i to the bits of f, for F64 values.
func (c *Counters) StoreFloat(i int, f float64) { c.cells[i].Store(math.Float64bits(f)) }

// RecordFunc is a read-only record computed by a function of the value's
// index, such as a collector's cached parse of a /proc file.
type RecordFunc func(i int) uint64

// Load calls f.
func (f RecordFunc) Load(i int) uint64 { return f(i) }

// FloatBits returns the raw bits that store f in an F64 value.
func FloatBits(f float64) uint64 { return math.Float64bits(f) }
