package statsfs

import (
	"fmt"
	"math"
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
	if d.Type == F64 {
		return aggregateFloat(s, t, i)
	}
	var sum, count, zeros uint64
	var umin, umax uint64 = math.MaxUint64, 0
	var smin, smax int64 = math.MaxInt64, math.MinInt64
	absent := false
	visit(s, func(src *Source) {
		for _, g := range load(&src.groups) {
			if absent || g.table != t || g.aggregate() || g.revoked.Load() {
				continue
			}
			raw, ok := g.load(i)
			if !ok {
				absent = true
				continue
			}
			v := d.Type.normalize(raw)
			sum += v
			count++
			if v == 0 {
				zeros++
			}
			umin, umax = min(umin, v), max(umax, v)
			smin, smax = min(smin, int64(v)), max(smax, int64(v))
		}
	})
	if absent {
		return Reading{Type: d.Type, Absent: true}
	}
	var r uint64
	signed := d.Type.Signed()
	switch d.Aggr {
	case Sum:
		r = sum
	case CountZero:
		r = zeros
	case Min:
		r = umin
		if signed {
			r = uint64(smin)
		}
	case Max:
		r = umax
		if signed {
			r = uint64(smax)
		}
	case Avg:
		switch {
		case count == 0:
		case signed:
			r = uint64(int64(sum) / int64(count))
		default:
			r = sum / count
		}
	}
	return Reading{Raw: r, Type: d.Type}
}

// aggregateFloat is aggregate for F64 values; an empty min is +Inf and an
// empty max -Inf.
func aggregateFloat(s *Source, t *Table, i int) Reading {
	d := t.Value(i)
	var sum float64
	var count, zeros int
	fmin, fmax := math.Inf(1), math.Inf(-1)
	absent := false
	visit(s, func(src *Source) {
		for _, g := range load(&src.groups) {
			if absent || g.table != t || g.aggregate() || g.revoked.Load() {
				continue
			}
			raw, ok := g.load(i)
			if !ok {
				absent = true
				continue
			}
			v := math.Float64frombits(raw)
			sum += v
			count++
			if v == 0 {
				zeros++
			}
			fmin, fmax = math.Min(fmin, v), math.Max(fmax, v)
		}
	})
	if absent {
		return Reading{Type: F64, Absent: true}
	}
	var r float64
	switch d.Aggr {
	case Sum:
		r = sum
	case CountZero:
		r = float64(zeros)
	case Min:
		r = fmin
	case Max:
		r = fmax
	case Avg:
		if count > 0 {
			r = sum / float64(count)
		}
	}
	return Reading{Raw: math.Float64bits(r), Type: F64}
}

// Values returns the values of s in the order their groups were added,
// hidden groups included (views check Hidden).
func (s *Source) Values() []ValueRef {
	gs := load(&s.groups)
	n := 0
	for _, g := range gs {
		n += g.table.Len()
	}
	refs := make([]ValueRef, 0, n)
	for _, g := range gs {
		for i := range g.table.values {
			refs = append(refs, ValueRef{src: s, g: g, index: i})
		}
	}
	return refs
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
	gs := load(&s.groups)
	for j := len(gs) - 1; j >= 0; j-- {
		if i := gs[j].table.Index(name); i >= 0 {
			return ValueRef{src: s, g: gs[j], index: i}, nil
		}
	}
	return ValueRef{}, fmt.Errorf("%w: %q in source %q", ErrNotFound, name, s.name)
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
