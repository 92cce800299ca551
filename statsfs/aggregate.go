package statsfs

import (
	"fmt"
	"math"
	"slices"
)

// ValueRef is one value of one source: a simple value read from its record,
// or an aggregate computed over the source's subtree.
type ValueRef struct {
	src   *Source
	g     *group
	index int
}

// Value is the descriptor.
func (v ValueRef) Value() *Value { return v.g.table.Value(v.index) }

// Table is the descriptor's table.
func (v ValueRef) Table() *Table { return v.g.table }

// Aggregate reports whether the value is computed over the subtree.
func (v ValueRef) Aggregate() bool { return v.g.aggregate() }

// Hidden reports whether the value was added with HiddenGroup.
func (v ValueRef) Hidden() bool { return v.g.hidden }

// Read returns the value now: a simple value's record, or the aggregate.
func (v ValueRef) Read() Reading {
	d := v.Value()
	if v.g.revoked.Load() {
		return Reading{Type: d.Type}
	}
	if !v.g.aggregate() {
		raw, ok := v.g.load(v.index)
		if !ok {
			return Reading{Type: d.Type, Absent: true}
		}
		return Reading{Raw: d.Type.normalize(raw), Type: d.Type}
	}
	return aggregate(v.src, v.g.table, v.index)
}

// Clear zeroes a simple value, or every value an aggregate covers. A
// read-only or floating value gives ErrPermission.
func (v ValueRef) Clear() error {
	d := v.Value()
	if d.Mode()&0o222 == 0 {
		return fmt.Errorf("%w: %s", ErrPermission, d.Name)
	}
	if v.g.revoked.Load() {
		return nil
	}
	if !v.g.aggregate() {
		c, ok := v.g.record.(Clearer)
		if !ok {
			return fmt.Errorf("%w: %s has no clear", ErrPermission, d.Name)
		}
		c.Clear(v.index)
		return nil
	}
	// An aggregate clears all it covers or nothing: check every record
	// first, then clear.
	var covered []Clearer
	var err error
	visit(v.src, func(s *Source) {
		for _, g := range load(&s.groups) {
			if g.table != v.g.table || g.aggregate() || g.revoked.Load() {
				continue
			}
			c, ok := g.record.(Clearer)
			if !ok && err == nil {
				err = fmt.Errorf("%w: %s in source %q has no clear", ErrPermission, d.Name, s.name)
			}
			covered = append(covered, c)
		}
	})
	if err != nil {
		return err
	}
	for _, c := range covered {
		c.Clear(v.index)
	}
	return nil
}

// visit calls fn on s and every source below it, depth first.
func visit(s *Source, fn func(*Source)) {
	fn(s)
	for _, c := range load(&s.subs) {
		visit(c, fn)
	}
}

// aggregate computes value i of table t over s and its whole subtree, from
// every non-revoked record of the identical table, hidden ones included.
// When any value it covers is absent the aggregate is absent: a sum, min
// or max without it would be a wrong number, not a smaller one.
func aggregate(s *Source, t *Table, i int) Reading {
	d := t.Value(i)
	a := t.empty[i]
	a.collect(s, t, i)
	return a.result(d)
}

// acc accumulates the values one aggregate covers, in walk order (a
// source's own records, then its children's subtrees in order). A
// subtree whose root aggregates the same table is added up on its own
// first and then added as one: float sums then come out the same bits
// whether an aggregate is read on its own or in a Pass, which keeps the
// subtree's total for that source's aggregate. Integer sums wrap, so
// their order does not matter.
type acc struct {
	typ          Type
	absent       bool
	count, zeros uint64
	// The sum, min and max: integers (min and max compare signed for
	// signed types) or, for F64, float64 bits.
	sum, lo, hi uint64
}

// newAcc returns an empty acc for values of type typ: its min is the
// largest value of the type (+Inf), its max the smallest (-Inf).
func newAcc(typ Type) acc {
	switch {
	case typ == F64:
		return acc{typ: typ, lo: math.Float64bits(math.Inf(1)), hi: math.Float64bits(math.Inf(-1))}
	case typ.Signed():
		return acc{typ: typ, lo: math.MaxInt64, hi: 1 << 63} // MinInt64's bits
	}
	return acc{typ: typ, lo: math.MaxUint64}
}

// add takes in one value's raw bits, or an absent value.
func (a *acc) add(raw uint64, ok bool) {
	if !ok {
		a.absent = true
		return
	}
	v := raw
	if a.typ != F64 {
		v = a.typ.normalize(raw)
	}
	a.count++
	if v == 0 || (a.typ == F64 && math.Float64frombits(v) == 0) {
		a.zeros++
	}
	a.combine(v, v, v)
}

// merge adds b, the acc of a subtree, to a.
func (a *acc) merge(b *acc) {
	if b.absent {
		a.absent = true
	}
	if b.count == 0 {
		return
	}
	a.count += b.count
	a.zeros += b.zeros
	a.combine(b.sum, b.lo, b.hi)
}

// combine adds sum to a's sum and takes in lo and hi, all as a's type
// (float64 bits for F64).
func (a *acc) combine(sum, lo, hi uint64) {
	switch {
	case a.typ == F64:
		f := math.Float64frombits
		a.sum = math.Float64bits(f(a.sum) + f(sum))
		a.lo = math.Float64bits(math.Min(f(a.lo), f(lo)))
		a.hi = math.Float64bits(math.Max(f(a.hi), f(hi)))
	case a.typ.Signed():
		a.sum += sum
		a.lo, a.hi = uint64(min(int64(a.lo), int64(lo))), uint64(max(int64(a.hi), int64(hi)))
	default:
		a.sum += sum
		a.lo, a.hi = min(a.lo, lo), max(a.hi, hi)
	}
}

// collect adds value i of every simple, non-revoked group of table t in s
// and, child by child, in its subtree; a child that aggregates t itself
// is added up on its own first.
func (a *acc) collect(s *Source, t *Table, i int) {
	for _, g := range load(&s.groups) {
		if a.absent {
			return // absent whatever else it covers
		}
		if g.table == t && !g.aggregate() && !g.revoked.Load() {
			a.add(g.load(i))
		}
	}
	for _, c := range load(&s.subs) {
		if a.absent {
			return
		}
		if !c.aggregates(t) {
			a.collect(c, t, i)
			continue
		}
		b := t.empty[i]
		b.collect(c, t, i)
		a.merge(&b)
	}
}

// aggregates reports whether s has aggregates of t (revoked or not).
func (s *Source) aggregates(t *Table) bool {
	for _, g := range load(&s.groups) {
		if g.table == t && g.aggregate() {
			return true
		}
	}
	return false
}

// result is the aggregate of kind d.Aggr over what a took in. An empty
// min is the type's largest value (+Inf for F64), an empty max its
// smallest (-Inf), an empty average 0.
func (a *acc) result(d *Value) Reading {
	if a.absent {
		return Reading{Type: d.Type, Absent: true}
	}
	var r uint64
	switch d.Aggr {
	case Sum:
		r = a.sum
	case CountZero:
		r = a.zeros
		if a.typ == F64 {
			r = math.Float64bits(float64(a.zeros))
		}
	case Min:
		r = a.lo
	case Max:
		r = a.hi
	case Avg:
		switch {
		case a.count == 0:
		case a.typ == F64:
			r = math.Float64bits(math.Float64frombits(a.sum) / float64(a.count))
		case a.typ.Signed():
			r = uint64(int64(a.sum) / int64(a.count))
		default:
			r = a.sum / a.count
		}
	}
	return Reading{Raw: r, Type: d.Type}
}

// Values returns the values of s in the order their groups were added,
// hidden groups included (views check Hidden).
func (s *Source) Values() []ValueRef {
	return s.AppendValues(nil)
}

// AppendValues appends the values of s, as Values returns them, to dst
// and returns the extended slice: a walk that reuses dst reads the tree
// without a slice per source.
func (s *Source) AppendValues(dst []ValueRef) []ValueRef {
	gs := load(&s.groups)
	n := 0
	for _, g := range gs {
		n += g.table.Len()
	}
	dst = slices.Grow(dst, n)
	for _, g := range gs {
		for i := range g.table.values {
			dst = append(dst, ValueRef{src: s, g: g, index: i})
		}
	}
	return dst
}

// Lookup finds value i of table t in s itself (not in its
// subordinates), in the newest group holding t.
func (s *Source) Lookup(t *Table, i int) (ValueRef, error) {
	gs := load(&s.groups)
	for j := len(gs) - 1; j >= 0; j-- {
		if gs[j].table == t && i >= 0 && i < t.Len() {
			return ValueRef{src: s, g: gs[j], index: i}, nil
		}
	}
	return ValueRef{}, fmt.Errorf("%w: in source %q", ErrNotFound, s.name)
}

// LookupName finds the first value called name in s itself, newest group
// first and in table order within a group.
func (s *Source) LookupName(name string) (ValueRef, error) {
	if v, ok := s.FindValue(name); ok {
		return v, nil
	}
	return ValueRef{}, fmt.Errorf("%w: %q in source %q", ErrNotFound, name, s.name)
}

// FindValue is LookupName for views that look up values every pass: it
// reports a missing value with false, without making an error.
func (s *Source) FindValue(name string) (ValueRef, bool) {
	gs := load(&s.groups)
	for j := len(gs) - 1; j >= 0; j-- {
		if i := gs[j].table.Index(name); i >= 0 {
			return ValueRef{src: s, g: gs[j], index: i}, true
		}
	}
	return ValueRef{}, false
}

// Get reads value i of table t in s, as Lookup finds it.
func (s *Source) Get(t *Table, i int) (Reading, error) {
	v, err := s.Lookup(t, i)
	if err != nil {
		return Reading{}, err
	}
	return v.Read(), nil
}

// GetByName reads the value called name in s, as LookupName finds it.
func (s *Source) GetByName(name string) (Reading, error) {
	v, err := s.LookupName(name)
	if err != nil {
		return Reading{}, err
	}
	return v.Read(), nil
}

// Clear clears value i of table t in s, as Lookup finds it.
func (s *Source) Clear(t *Table, i int) error {
	v, err := s.Lookup(t, i)
	if err != nil {
		return err
	}
	return v.Clear()
}
