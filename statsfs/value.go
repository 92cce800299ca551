// Package statsfs is a tree of typed statistics: sources (directories) that
// hold values (files) and subordinate sources, with aggregates (sum, min,
// max, count_zero, avg) computed at read time over a source's subtree.
//
// It follows the statsfs patch series for Linux (v3, 2020) in Go: a Table of
// Value descriptors is added to a Source together with a Record that backs
// it (a simple value) or with no record (an aggregate). The package does no
// I/O; views such as the FUSE filesystem in statsfs/fusefs, a Prometheus
// exporter or a text report read the tree through Walk and Snapshot.
//
// A value can be absent: its record (a PartialRecord, such as Counters
// after SetAbsent) does not have it now, because the kernel does not
// provide it or the read behind it failed. It then reads as a Reading with
// Absent set, never as an invented 0, and so does every aggregate that
// covers it. Views show no number for it: the FUSE file's read fails with
// ENODATA, the exporter has no series, reports print Unavailable.
package statsfs

import (
	"fmt"
	"io/fs"
	"math"
	"strconv"
)

// Type is the machine type of a value. A value is stored as 64 raw bits and
// read through its type: narrow types are truncated to their width, signed
// types are sign-extended, F64 holds the bits of a float64.
type Type uint8

// The value types.
const (
	U64 Type = iota
	U32
	U16
	U8
	S64
	S32
	S16
	S8
	Bool
	F64
)

var typeNames = [...]string{"u64", "u32", "u16", "u8", "s64", "s32", "s16", "s8", "bool", "f64"}

// String returns the type's short name, such as "u64".
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Signed reports whether the type is a signed integer.
func (t Type) Signed() bool { return t >= S64 && t <= S8 }

// normalize returns raw read as t: truncated to t's width and, for signed
// types, sign-extended to 64 bits.
func (t Type) normalize(raw uint64) uint64 {
	switch t {
	case U32:
		return raw & math.MaxUint32
	case U16:
		return raw & math.MaxUint16
	case U8:
		return raw & math.MaxUint8
	case S32:
		return uint64(int64(int32(raw)))
	case S16:
		return uint64(int64(int16(raw)))
	case S8:
		return uint64(int64(int8(raw)))
	case Bool:
		if raw != 0 {
			return 1
		}
		return 0
	}
	return raw
}

// Aggr is the aggregation a value performs when its table is added to a
// source without a record.
type Aggr uint8

// The aggregation kinds, in the order of the original's enum.
const (
	None Aggr = iota
	Sum
	Min
	Max
	CountZero
	Avg
)

var aggrNames = [...]string{"none", "sum", "min", "max", "count_zero", "avg"}

// String returns the kind's name, such as "count_zero".
func (a Aggr) String() string {
	if int(a) < len(aggrNames) {
		return aggrNames[a]
	}
	return fmt.Sprintf("Aggr(%d)", uint8(a))
}

// Flag describes how a value behaves over time.
type Flag uint8

const (
	// Cumulative values only grow (counters). It is the zero Flag.
	Cumulative Flag = 0
	// Floating values go up and down (gauges).
	Floating Flag = 1 << iota
)

// Value describes one statistic. Values are grouped in a Table; the same
// table can back many sources.
type Value struct {
	Name string // file name, unique within its table
	Help string // one-line description
	Type Type
	Unit string // "bytes", "seconds", "packets", ... or empty
	Aggr Aggr   // used when the table is added as an aggregate
	Flag Flag   // Cumulative (default) or Floating
	// ReadOnly marks a cumulative value that cannot be cleared, such as a
	// kernel counter read from /proc.
	ReadOnly bool
	// Show, when set, gives the text of a value (an enum name, say)
	// instead of the decimal number.
	Show func(Reading) string
	// Info marks a property of its source (a description, a parent's
	// pid) rather than a quantity: exporters put its text in a label of
	// the source's info series instead of making it a series of its own.
	Info bool
}

// Mode is the value's file mode: 0644 for a clearable cumulative value,
// 0444 for a floating or read-only one.
func (v *Value) Mode() fs.FileMode {
	if v.Flag&Floating != 0 || v.ReadOnly {
		return 0o444
	}
	return 0o644
}

// Reading is a value as read: its raw bits and the type to read them as,
// or Absent when the value is unavailable.
type Reading struct {
	Raw  uint64
	Type Type
	// Absent reports that the value is unavailable: its record does not
	// have it now (see PartialRecord), or it is an aggregate over a value
	// that is absent. Raw is then 0 and means nothing: views show no
	// number for it (no series, a read error, "unavailable").
	Absent bool
}

// Unavailable is the text that stands for an absent value in views that
// print one.
const Unavailable = "unavailable"

// Uint64 returns the reading as an unsigned integer (floats are truncated).
func (r Reading) Uint64() uint64 {
	if r.Type == F64 {
		return uint64(math.Float64frombits(r.Raw))
	}
	return r.Raw
}

// Int64 returns the reading as a signed integer (floats are truncated).
func (r Reading) Int64() int64 {
	if r.Type == F64 {
		return int64(math.Float64frombits(r.Raw))
	}
	return int64(r.Raw)
}

// Float64 returns the reading as a float64, whatever its type.
func (r Reading) Float64() float64 {
	switch {
	case r.Type == F64:
		return math.Float64frombits(r.Raw)
	case r.Type.Signed():
		return float64(int64(r.Raw))
	}
	return float64(r.Raw)
}

// String prints the reading in decimal: signed for signed types, 0 or 1 for
// Bool, the shortest exact form for F64; an absent reading is Unavailable.
func (r Reading) String() string {
	switch {
	case r.Absent:
		return Unavailable
	case r.Type == F64:
		return strconv.FormatFloat(math.Float64frombits(r.Raw), 'g', -1, 64)
	case r.Type.Signed():
		return strconv.FormatInt(int64(r.Raw), 10)
	}
	return strconv.FormatUint(r.Raw, 10)
}

// Text is what a value file shows: Show's text when the value has one,
// otherwise the decimal reading followed by a newline. An absent reading
// is Unavailable and a newline, Show or not.
func (v *Value) Text(r Reading) string {
	if v.Show != nil && !r.Absent {
		return v.Show(r)
	}
	return r.String() + "\n"
}

// Table is an immutable list of value descriptors. Tables are compared by
// identity: an aggregate covers records of the identical table only.
type Table struct {
	values []Value
	empty  []acc // an empty accumulator per value, for aggregates
}

// NewTable returns a table of the given values. It panics on a duplicate or
// empty name, which is a programming error.
func NewTable(values ...Value) *Table {
	seen := make(map[string]bool, len(values))
	for _, v := range values {
		if v.Name == "" || seen[v.Name] {
			panic(fmt.Sprintf("statsfs: bad or duplicate value name %q", v.Name))
		}
		seen[v.Name] = true
	}
	t := &Table{values: append([]Value(nil), values...), empty: make([]acc, len(values))}
	for i, v := range values {
		t.empty[i] = newAcc(v.Type)
	}
	return t
}

// Len is the number of values in the table.
func (t *Table) Len() int { return len(t.values) }

// Value returns the i-th descriptor.
func (t *Table) Value(i int) *Value { return &t.values[i] }

// Index returns the position of the value named name, or -1.
func (t *Table) Index(name string) int {
	for i := range t.values {
		if t.values[i].Name == name {
			return i
		}
	}
	return -1
}
