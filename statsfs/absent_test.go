package statsfs_test

import (
	"testing"

	"github.com/kstat/kstat/statsfs"
)

// TestAbsentValues: an absent simple value reads Absent (never a number),
// every aggregate over it is absent while it is, and a Store brings both
// back; a value that is available stays readable beside it.
func TestAbsentValues(t *testing.T) {
	for _, typ := range []statsfs.Type{statsfs.U64, statsfs.S32, statsfs.F64} {
		tab := kinds(typ)
		root := statsfs.NewSource("root")
		if err := root.AddValues(tab, nil, 0); err != nil {
			t.Fatal(err)
		}
		num := func(v uint64) uint64 {
			if typ == statsfs.F64 {
				return statsfs.FloatBits(float64(v))
			}
			return v
		}
		a, ca := leaf(t, "a", tab, num(3))
		b, cb := leaf(t, "b", tab, num(5))
		root.AddSubordinate(a)
		root.AddSubordinate(b)
		if got := readAll(t, root, tab)["sum"]; got.Absent || got.Float64() != 8 {
			t.Fatalf("%s: sum before = %+v, want 8", typ, got)
		}

		cb.SetAbsent(0) // "sum" of b
		r, err := b.GetByName("sum")
		if err != nil || !r.Absent || r.Raw != 0 || r.String() != statsfs.Unavailable {
			t.Errorf("%s: absent simple value reads %+v (%q), %v", typ, r, r.String(), err)
		}
		if got := tab.Value(0).Text(r); got != "unavailable\n" {
			t.Errorf("%s: Text of an absent value = %q", typ, got)
		}
		if r, _ := b.GetByName("min"); r.Absent {
			t.Errorf("%s: b's other values went absent too", typ)
		}
		if r, _ := root.GetByName("sum"); !r.Absent {
			t.Errorf("%s: sum over an absent value = %v, want absent", typ, r)
		}
		for _, name := range []string{"min", "max", "count_zero", "avg"} {
			if r, _ := root.GetByName(name); r.Absent {
				t.Errorf("%s: aggregate %s over available values is absent", typ, name)
			}
		}
		// The absent value is not cleared back into existence.
		if err := b.Clear(tab, 0); err != nil {
			t.Fatal(err)
		}
		if r, _ := b.GetByName("sum"); !r.Absent {
			t.Errorf("%s: Clear made an absent value available", typ)
		}
		cb.Store(0, num(7))
		if r, _ := root.GetByName("sum"); r.Absent || r.Float64() != 10 {
			t.Errorf("%s: sum after Store = %+v, want 10", typ, r)
		}
		ca.SetAbsent(tab.Len() - 1)
		ca.Add(tab.Len()-1, 1)
		if r, _ := a.GetByName("none"); r.Absent {
			t.Errorf("%s: Add did not make the value available", typ)
		}
	}
}

// TestPartialFunc: a PartialFunc record is read through LoadAvailable, so
// its unavailable values are absent in reads, snapshots and aggregates,
// deep in the tree and in hidden groups too.
func TestPartialFunc(t *testing.T) {
	tab := statsfs.NewTable(
		statsfs.Value{Name: "x", Type: statsfs.U64, Aggr: statsfs.Sum},
		statsfs.Value{Name: "y", Type: statsfs.U64, Aggr: statsfs.Max},
	)
	have := map[int]bool{0: true}
	rec := statsfs.PartialFunc(func(i int) (uint64, bool) { return 4, have[i] })
	if rec.Load(1) != 0 || rec.Load(0) != 4 {
		t.Errorf("PartialFunc.Load = %d, %d; want 4, 0", rec.Load(0), rec.Load(1))
	}
	root, mid, deep := statsfs.NewSource("root"), statsfs.NewSource("mid"), statsfs.NewSource("deep")
	root.AddSubordinate(mid)
	mid.AddSubordinate(deep)
	if err := root.AddValues(tab, nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := deep.AddValues(tab, rec, statsfs.HiddenGroup); err != nil {
		t.Fatal(err)
	}
	got := map[string]statsfs.Reading{}
	for _, s := range root.Snapshot() {
		got[s.Value.Name] = s.Reading
	}
	if r := got["x"]; r.Absent || r.Raw != 4 {
		t.Errorf("x = %+v, want 4", r)
	}
	if r := got["y"]; !r.Absent {
		t.Errorf("max over a hidden absent value = %+v, want absent", r)
	}
	// An empty aggregate keeps the statsfs semantics: 0 for a sum.
	empty := statsfs.NewSource("empty")
	if err := empty.AddValues(tab, nil, 0); err != nil {
		t.Fatal(err)
	}
	if r, _ := empty.GetByName("x"); r.Absent || r.Raw != 0 {
		t.Errorf("empty sum = %+v, want 0", r)
	}
}
