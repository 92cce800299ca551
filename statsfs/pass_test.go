package statsfs_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kstat/kstat/statsfs"
)

// countingRecord is a partial record of fixed values that counts its
// loads, so a test can check that a pass reads each value once.
type countingRecord struct {
	raw    []uint64
	absent []bool
	loads  []atomic.Int32
}

func (r *countingRecord) Load(i int) uint64 {
	v, _ := r.LoadAvailable(i)
	return v
}

func (r *countingRecord) LoadAvailable(i int) (uint64, bool) {
	r.loads[i].Add(1)
	if r.absent[i] {
		return 0, false
	}
	return r.raw[i], true
}

// randomTree builds a random tree: tables of every type and kind, records
// with random (sometimes absent, sometimes extreme) values, aggregates at
// random sources (nested ones of the same table included), hidden
// sources, hidden groups and revoked sources.
func randomTree(rng *rand.Rand) (*statsfs.Source, []*countingRecord) {
	types := []statsfs.Type{statsfs.U64, statsfs.U32, statsfs.U8, statsfs.S64, statsfs.S16, statsfs.Bool, statsfs.F64}
	var tables []*statsfs.Table
	for t := range 1 + rng.IntN(4) {
		var vals []statsfs.Value
		for i := range 1 + rng.IntN(6) {
			vals = append(vals, statsfs.Value{
				Name: fmt.Sprintf("t%dv%d", t, i),
				Type: types[rng.IntN(len(types))],
				Aggr: statsfs.Aggr(rng.IntN(6)),
			})
		}
		tables = append(tables, statsfs.NewTable(vals...))
	}
	value := func(typ statsfs.Type) uint64 {
		switch rng.IntN(5) {
		case 0:
			return 0
		case 1:
			return math.MaxUint64 - uint64(rng.IntN(3))
		}
		if typ == statsfs.F64 {
			return statsfs.FloatBits(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(30)-10)))
		}
		return rng.Uint64() >> rng.IntN(64)
	}
	var records []*countingRecord
	var all []*statsfs.Source
	root := statsfs.NewSource("root")
	all = append(all, root)
	for n := range 1 + rng.IntN(60) {
		s := statsfs.NewSource("s%d", n)
		if rng.IntN(4) == 0 {
			s = statsfs.NewInstance("k", fmt.Sprint("i", n))
		}
		all[rng.IntN(len(all))].AddSubordinate(s)
		all = append(all, s)
	}
	for _, s := range all {
		for range rng.IntN(3) {
			tab := tables[rng.IntN(len(tables))]
			var flags statsfs.GroupFlag
			if rng.IntN(8) == 0 {
				flags = statsfs.HiddenGroup
			}
			if rng.IntN(3) == 0 {
				_ = s.AddValues(tab, nil, flags)
				continue
			}
			r := &countingRecord{loads: make([]atomic.Int32, tab.Len())}
			for i := range tab.Len() {
				r.raw = append(r.raw, value(tab.Value(i).Type))
				r.absent = append(r.absent, rng.IntN(12) == 0)
			}
			records = append(records, r)
			_ = s.AddValues(tab, r, flags)
		}
		switch rng.IntN(10) {
		case 0:
			s.SetHidden(true)
		case 1:
			s.Revoke()
		}
	}
	return root, records
}

// TestPassMatchesReads is the property: on random trees a Pass reads every
// visible value (aggregates included) exactly as its own Read does, bit
// for bit, absent or not; it reads no value twice; and it holds the
// visible sources only.
func TestPassMatchesReads(t *testing.T) {
	var p statsfs.Pass // reused, as the samplers do
	for seed := range uint64(500) {
		rng := rand.New(rand.NewPCG(seed, 12))
		root, records := randomTree(rng)
		p.Take(root)
		for _, r := range records {
			for i := range r.loads {
				if n := r.loads[i].Swap(0); n > 1 {
					t.Fatalf("seed %d: a value was read %d times in one pass", seed, n)
				}
			}
		}
		visible := map[*statsfs.Source]bool{}
		root.Walk(func(path string, _ []statsfs.Label, s *statsfs.Source) bool {
			visible[s] = true
			for _, v := range s.Values() {
				got, ok := p.Reading(v)
				want := v.Read()
				if !ok || got != want {
					t.Fatalf("seed %d: %s/%s (aggregate %v, %s of %s): pass %+v (%v), Read %+v",
						seed, path, v.Value().Name, v.Aggregate(), v.Value().Aggr, v.Value().Type, got, ok, want)
				}
			}
			return true
		})
		// Samples are the visible values in Walk order, as a walk reading
		// each value finds them.
		var walked []statsfs.Sample
		root.Walk(func(path string, labels []statsfs.Label, s *statsfs.Source) bool {
			for _, v := range s.Values() {
				if !v.Hidden() {
					walked = append(walked, statsfs.Sample{Path: path, Labels: labels, Value: v.Value(), Aggregate: v.Aggregate(), Reading: v.Read()})
				}
			}
			return true
		})
		if got := p.Samples(); fmt.Sprint(got) != fmt.Sprint(walked) {
			t.Fatalf("seed %d: pass samples\n%v\nwalk\n%v", seed, got, walked)
		}
		var check func(s *statsfs.Source)
		check = func(s *statsfs.Source) {
			if p.Has(s) != visible[s] {
				t.Fatalf("seed %d: source %s in the pass: %v, visible: %v", seed, s.Name(), p.Has(s), visible[s])
			}
			for _, c := range s.Subordinates() {
				check(c)
			}
		}
		check(root)
	}
}

// TestPassRoots reads two subtrees in one pass: their values are there,
// the rest of the tree is not, and a value outside falls back to Read.
func TestPassRoots(t *testing.T) {
	tab := kinds(statsfs.U64)
	root := statsfs.NewSource("root")
	var fams []*statsfs.Source
	for _, name := range []string{"a", "b", "c"} {
		f := statsfs.NewSource("%s", name)
		if err := f.AddValues(tab, nil, 0); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			l, _ := leaf(t, fmt.Sprint(name, i), tab, uint64(i+1))
			f.AddSubordinate(l)
		}
		root.AddSubordinate(f)
		fams = append(fams, f)
	}
	var p statsfs.Pass
	p.Take(fams[0], fams[2], fams[0].Subordinates()[1])
	if !p.Has(fams[0]) || p.Has(fams[1]) || !p.Has(fams[2]) || p.Has(root) {
		t.Fatal("the pass holds other sources than the roots' trees")
	}
	sum, _ := fams[2].LookupName("sum")
	if r, ok := p.Reading(sum); !ok || r.Raw != 6 {
		t.Errorf("c/sum in the pass: %v %v, want 6", r, ok)
	}
	other, _ := fams[1].LookupName("max")
	if _, ok := p.Reading(other); ok {
		t.Error("b/max outside the pass has a reading")
	}
	if r := p.Read(other); r.Raw != 3 {
		t.Errorf("Read of b/max outside the pass: %v, want 3", r)
	}
}

// TestPassConcurrent takes passes while writers change values and the
// tree's shape, for the race detector: every pass stays consistent with
// itself (a sum equals the sum of the readings it covers).
func TestPassConcurrent(t *testing.T) {
	tab := statsfs.NewTable(statsfs.Value{Name: "n", Type: statsfs.U64, Aggr: statsfs.Sum})
	root := statsfs.NewSource("root")
	if err := root.AddValues(tab, nil, 0); err != nil {
		t.Fatal(err)
	}
	var leaves []*statsfs.Counters
	for i := range 8 {
		s := statsfs.NewSource("l%d", i)
		c := statsfs.NewCounters(tab)
		_ = s.AddValues(tab, c, 0)
		root.AddSubordinate(s)
		leaves = append(leaves, c)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			leaves[i%len(leaves)].Add(0, 1)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s := statsfs.NewSource("tmp%d", i)
			s.SetHidden(i%2 == 0)
			_ = s.AddValues(tab, statsfs.NewCounters(tab), 0)
			root.AddSubordinate(s)
			root.RemoveSubordinate(s)
		}
	}()
	var p statsfs.Pass
	for range 2000 {
		p.Take(root)
		if !p.Has(root) {
			t.Fatal("root not in its own pass")
		}
	}
	close(stop)
	wg.Wait()
	p.Take(root)
	var sum uint64
	for _, s := range root.Subordinates() {
		v, _ := s.LookupName("n")
		r, _ := p.Reading(v)
		sum += r.Raw
	}
	total, _ := root.LookupName("n")
	if r, _ := p.Reading(total); r.Raw != sum {
		t.Errorf("sum %d in the pass, its leaves add up to %d", r.Raw, sum)
	}
}
