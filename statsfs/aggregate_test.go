package statsfs_test

import (
	"errors"
	"math"
	"testing"

	"github.com/kstat/kstat/statsfs"
)

// kinds is one value per aggregation kind, of type typ.
func kinds(typ statsfs.Type) *statsfs.Table {
	return statsfs.NewTable(
		statsfs.Value{Name: "sum", Type: typ, Aggr: statsfs.Sum},
		statsfs.Value{Name: "min", Type: typ, Aggr: statsfs.Min},
		statsfs.Value{Name: "max", Type: typ, Aggr: statsfs.Max},
		statsfs.Value{Name: "count_zero", Type: typ, Aggr: statsfs.CountZero},
		statsfs.Value{Name: "avg", Type: typ, Aggr: statsfs.Avg},
		statsfs.Value{Name: "none", Type: typ, Aggr: statsfs.None},
	)
}

// leaf is a source with one record of t holding v in every cell.
func leaf(t *testing.T, name string, tab *statsfs.Table, v uint64) (*statsfs.Source, *statsfs.Counters) {
	t.Helper()
	s := statsfs.NewSource("%s", name)
	c := statsfs.NewCounters(tab)
	for i := range tab.Len() {
		c.Store(i, v)
	}
	if err := s.AddValues(tab, c, 0); err != nil {
		t.Fatal(err)
	}
	return s, c
}

// readAll reads every value of the first group of s by name.
func readAll(t *testing.T, s *statsfs.Source, tab *statsfs.Table) map[string]statsfs.Reading {
	t.Helper()
	out := map[string]statsfs.Reading{}
	for i := range tab.Len() {
		name := tab.Value(i).Name
		r, err := s.GetByName(name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = r
	}
	return out
}

// TestAggregateKinds builds root/mid/{a,b(hidden)}/leaves: three levels
// under the aggregate, and checks every kind for several types.
func TestAggregateKinds(t *testing.T) {
	neg := func(v int64) uint64 { return uint64(v) }
	for _, tc := range []struct {
		name   string
		typ    statsfs.Type
		leaves []uint64 // raw values in a (two leaves), b (hidden, one) and c (deep, one)
		want   map[string]string
	}{
		{"u64", statsfs.U64, []uint64{3, 0, 10, 7},
			map[string]string{"sum": "20", "min": "0", "max": "10", "count_zero": "1", "avg": "5", "none": "0"}},
		{"s64", statsfs.S64, []uint64{neg(-4), 0, neg(-10), 2},
			map[string]string{"sum": "-12", "min": "-10", "max": "2", "count_zero": "1", "avg": "-3", "none": "0"}},
		{"s8 sign extension", statsfs.S8, []uint64{0xff, 0x80, 0x7f, 0x01}, // -1, -128, 127, 1
			map[string]string{"sum": "-1", "min": "-128", "max": "127", "count_zero": "0", "avg": "0", "none": "0"}},
		{"u8 wraps to its width", statsfs.U8, []uint64{0x1ff, 0x100, 2, 3}, // 255, 0, 2, 3
			map[string]string{"sum": "260", "min": "0", "max": "255", "count_zero": "1", "avg": "65", "none": "0"}},
		{"u16", statsfs.U16, []uint64{0x1ffff, 1, 1, 1},
			map[string]string{"sum": "65538", "min": "1", "max": "65535", "count_zero": "0", "avg": "16384"}},
		{"s32", statsfs.S32, []uint64{0xffffffff, 0x80000000, 5, 0},
			map[string]string{"sum": "-2147483644", "min": "-2147483648", "max": "5", "count_zero": "1", "avg": "-536870911"}},
		{"bool", statsfs.Bool, []uint64{1, 0, 7, 0},
			map[string]string{"sum": "2", "min": "0", "max": "1", "count_zero": "2", "avg": "0"}},
		{"u64 max and wrap", statsfs.U64, []uint64{math.MaxUint64, 1, 0, math.MaxUint64},
			map[string]string{"sum": "18446744073709551615", "min": "0", "max": "18446744073709551615", "count_zero": "1"}},
		{"s64 extremes", statsfs.S64, []uint64{neg(math.MinInt64), neg(math.MaxInt64), 0, neg(-1)},
			map[string]string{"sum": "-2", "min": "-9223372036854775808", "max": "9223372036854775807", "count_zero": "1", "avg": "0"}},
		{"f64", statsfs.F64, []uint64{statsfs.FloatBits(1.5), statsfs.FloatBits(-2), statsfs.FloatBits(0), statsfs.FloatBits(4.5)},
			map[string]string{"sum": "4", "min": "-2", "max": "4.5", "count_zero": "1", "avg": "1", "none": "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := kinds(tc.typ)
			root := statsfs.NewSource("root")
			if err := root.AddValues(tab, nil, 0); err != nil {
				t.Fatal(err)
			}
			mid := statsfs.NewSource("mid")
			root.AddSubordinate(mid)
			a := statsfs.NewSource("a")
			mid.AddSubordinate(a)
			a1, _ := leaf(t, "a1", tab, tc.leaves[0])
			a2, _ := leaf(t, "a2", tab, tc.leaves[1])
			a.AddSubordinate(a1)
			a.AddSubordinate(a2)
			b, _ := leaf(t, "b", tab, tc.leaves[2])
			b.SetHidden(true) // hidden, still counted
			mid.AddSubordinate(b)
			c, _ := leaf(t, "c", tab, tc.leaves[3])
			a2.AddSubordinate(c) // four levels below root
			// An intermediate aggregate of the same table is not
			// counted twice.
			if err := a.AddValues(tab, nil, 0); err != nil {
				t.Fatal(err)
			}
			got := readAll(t, root, tab)
			for name, want := range tc.want {
				if s := got[name].String(); s != want {
					t.Errorf("%s = %s, want %s", name, s, want)
				}
			}
		})
	}
}

func TestEmptyAggregates(t *testing.T) {
	for _, tc := range []struct {
		typ  statsfs.Type
		want map[string]string
	}{
		{statsfs.U64, map[string]string{"sum": "0", "min": "18446744073709551615", "max": "0", "count_zero": "0", "avg": "0", "none": "0"}},
		{statsfs.U8, map[string]string{"min": "18446744073709551615", "max": "0"}},
		{statsfs.Bool, map[string]string{"min": "18446744073709551615", "max": "0", "sum": "0"}},
		{statsfs.S64, map[string]string{"sum": "0", "min": "9223372036854775807", "max": "-9223372036854775808", "count_zero": "0", "avg": "0"}},
		{statsfs.S16, map[string]string{"min": "9223372036854775807", "max": "-9223372036854775808"}},
		{statsfs.F64, map[string]string{"sum": "0", "min": "+Inf", "max": "-Inf", "avg": "0"}},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			tab := kinds(tc.typ)
			root := statsfs.NewSource("root")
			if err := root.AddValues(tab, nil, 0); err != nil {
				t.Fatal(err)
			}
			// Empty subtree: sources, but no record of the table;
			// a same-named table is a different table.
			sub := statsfs.NewSource("sub")
			root.AddSubordinate(sub)
			sub.AddSubordinate(statsfs.NewSource("deeper"))
			other, _ := leaf(t, "other", kinds(tc.typ), 5)
			sub.AddSubordinate(other)
			got := readAll(t, root, tab)
			for name, want := range tc.want {
				if s := got[name].String(); s != want {
					t.Errorf("%s = %s, want %s", name, s, want)
				}
			}
		})
	}
}

func TestAggregateFollowsStructure(t *testing.T) {
	tab := kinds(statsfs.U64)
	root := statsfs.NewSource("root")
	if err := root.AddValues(tab, nil, 0); err != nil {
		t.Fatal(err)
	}
	sum := func() uint64 {
		r, err := root.GetByName("sum")
		if err != nil {
			t.Fatal(err)
		}
		return r.Uint64()
	}
	mid := statsfs.NewSource("mid")
	root.AddSubordinate(mid)
	x, _ := leaf(t, "x", tab, 5)
	y, _ := leaf(t, "y", tab, 7)
	mid.AddSubordinate(x)
	if got := sum(); got != 5 {
		t.Errorf("sum with x = %d", got)
	}
	x.AddSubordinate(y)
	if got := sum(); got != 12 {
		t.Errorf("sum with x and y below it = %d", got)
	}
	mid.RemoveSubordinate(x) // takes y with it
	if got := sum(); got != 0 {
		t.Errorf("sum after removing x = %d", got)
	}
	mid.RemoveSubordinate(x) // absent: nothing happens
	mid.AddSubordinate(y)
	// A simple group of the same table in the aggregate's own source
	// counts too.
	c := statsfs.NewCounters(tab)
	c.Store(0, 100)
	if err := root.AddValues(tab, c, 0); err != nil {
		t.Fatal(err)
	}
	// root now has two groups of tab; GetByName finds the newest, the
	// simple one, so read the aggregate through Lookup on the oldest.
	agg := aggregateRef(t, root, tab)
	if got := agg.Read().Uint64(); got != 107 {
		t.Errorf("aggregate with root's own record = %d, want 107", got)
	}
	y.Revoke()
	if got := agg.Read().Uint64(); got != 100 {
		t.Errorf("aggregate after revoking y = %d, want 100", got)
	}
	if r, _ := y.GetByName("sum"); r.Uint64() != 0 {
		t.Errorf("revoked value reads %d", r.Uint64())
	}
}

// aggregateRef returns the aggregate "sum" of tab in s.
func aggregateRef(t *testing.T, s *statsfs.Source, tab *statsfs.Table) statsfs.ValueRef {
	t.Helper()
	for _, v := range s.Values() {
		if v.Table() == tab && v.Aggregate() && v.Value().Name == "sum" {
			return v
		}
	}
	t.Fatal("no aggregate")
	return statsfs.ValueRef{}
}

func TestClear(t *testing.T) {
	tab := statsfs.NewTable(
		statsfs.Value{Name: "count", Type: statsfs.U64, Aggr: statsfs.Sum},
		statsfs.Value{Name: "gauge", Type: statsfs.U64, Aggr: statsfs.Max, Flag: statsfs.Floating},
		statsfs.Value{Name: "kernel", Type: statsfs.U64, Aggr: statsfs.Sum, ReadOnly: true},
	)
	root := statsfs.NewSource("root")
	if err := root.AddValues(tab, nil, 0); err != nil {
		t.Fatal(err)
	}
	var cs []*statsfs.Counters
	parent := root
	for i := range 3 {
		s, c := leaf(t, "l", tab, uint64(i+1))
		s.SetHidden(i == 1)
		parent.AddSubordinate(s)
		parent = s
		cs = append(cs, c)
	}
	// Simple clear.
	if err := parent.Clear(tab, 0); err != nil {
		t.Fatal(err)
	}
	if cs[2].Load(0) != 0 || cs[1].Load(0) != 2 {
		t.Errorf("simple clear: %d %d", cs[2].Load(0), cs[1].Load(0))
	}
	// Aggregate clear zeroes every covered value, hidden ones too, and
	// only the value cleared.
	if err := root.Clear(tab, 0); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		if c.Load(0) != 0 || c.Load(1) == 0 {
			t.Errorf("leaf %d after aggregate clear: count %d gauge %d", i, c.Load(0), c.Load(1))
		}
	}
	for _, i := range []int{1, 2} {
		if err := root.Clear(tab, i); !errors.Is(err, statsfs.ErrPermission) {
			t.Errorf("clearing %s: %v, want ErrPermission", tab.Value(i).Name, err)
		}
		if cs[0].Load(i) == 0 {
			t.Errorf("refused clear of %s changed it", tab.Value(i).Name)
		}
	}
	// An aggregate over a record that cannot clear clears nothing.
	fn, _ := leafFunc(t, tab, 9)
	root.AddSubordinate(fn)
	cs[0].Store(0, 4)
	if err := root.Clear(tab, 0); !errors.Is(err, statsfs.ErrPermission) {
		t.Errorf("aggregate clear over a RecordFunc: %v, want ErrPermission", err)
	}
	if cs[0].Load(0) != 4 {
		t.Error("a refused aggregate clear cleared some values")
	}
	// Unknown values.
	if err := root.Clear(statsfs.NewTable(statsfs.Value{Name: "x"}), 0); !errors.Is(err, statsfs.ErrNotFound) {
		t.Errorf("clearing a value not in the source: %v", err)
	}
}

func leafFunc(t *testing.T, tab *statsfs.Table, v uint64) (*statsfs.Source, statsfs.RecordFunc) {
	t.Helper()
	s := statsfs.NewSource("func")
	f := statsfs.RecordFunc(func(int) uint64 { return v })
	if err := s.AddValues(tab, f, 0); err != nil {
		t.Fatal(err)
	}
	return s, f
}
