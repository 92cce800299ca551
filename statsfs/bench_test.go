package statsfs_test

import (
	"fmt"
	"testing"

	"github.com/kstat/kstat/statsfs"
)

// BenchmarkAggregateSum reads one Sum aggregate over n sources, all
// children of one parent.
func BenchmarkAggregateSum(b *testing.B) {
	tab := statsfs.NewTable(statsfs.Value{Name: "pkts", Type: statsfs.U64, Aggr: statsfs.Sum})
	for _, n := range []int{10, 1000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			root := statsfs.NewSource("root")
			if err := root.AddValues(tab, nil, 0); err != nil {
				b.Fatal(err)
			}
			for i := range n {
				s := statsfs.NewSource("s%d", i)
				c := statsfs.NewCounters(tab)
				c.Store(0, 1)
				_ = s.AddValues(tab, c, 0)
				root.AddSubordinate(s)
			}
			agg, err := root.LookupName("pkts")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if agg.Read().Raw != uint64(n) {
					b.Fatal("wrong sum")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/source")
		})
	}
}

// BenchmarkSnapshot snapshots a tree shaped like kstat's: 8 CPUs and 64
// network devices of 12 values each under aggregates, and a 20-value
// memory source.
func BenchmarkSnapshot(b *testing.B) {
	values := make([]statsfs.Value, 12)
	for i := range values {
		values[i] = statsfs.Value{Name: fmt.Sprint("v", i), Type: statsfs.U64, Aggr: statsfs.Aggr(i % 6)}
	}
	tab := statsfs.NewTable(values...)
	mem := make([]statsfs.Value, 20)
	for i := range mem {
		mem[i] = statsfs.Value{Name: fmt.Sprint("m", i), Type: statsfs.U64, Flag: statsfs.Floating, Unit: "bytes"}
	}
	memTab := statsfs.NewTable(mem...)
	root := statsfs.NewSource("kstat")
	m := statsfs.NewSource("memory")
	_ = m.AddValues(memTab, statsfs.NewCounters(memTab), 0)
	root.AddSubordinate(m)
	for family, n := range map[string]int{"cpu": 8, "net": 64} {
		f := statsfs.NewSource("%s", family)
		_ = f.AddValues(tab, nil, 0)
		root.AddSubordinate(f)
		for i := range n {
			s := statsfs.NewInstance(family, fmt.Sprint(family, i))
			_ = s.AddValues(tab, statsfs.NewCounters(tab), 0)
			f.AddSubordinate(s)
		}
	}
	want := 20 + 2*12 + (8+64)*12
	b.ReportAllocs()
	for b.Loop() {
		if n := len(root.Snapshot()); n != want {
			b.Fatalf("%d samples, want %d", n, want)
		}
	}
}

// BenchmarkReadTree reads every value of a tree of n leaves under three
// levels of Sum aggregates of the same table (root, 10 families, 100
// groups per family): "each" reads every value on its own, as a view
// walking the tree did, so each aggregate walks its subtree again (the
// leaves are read once per aggregate above them); "pass" reads them all
// in one Pass.
func BenchmarkReadTree(b *testing.B) {
	tab := statsfs.NewTable(
		statsfs.Value{Name: "pkts", Type: statsfs.U64, Aggr: statsfs.Sum},
		statsfs.Value{Name: "bytes", Type: statsfs.U64, Aggr: statsfs.Sum},
		statsfs.Value{Name: "max", Type: statsfs.U64, Aggr: statsfs.Max},
	)
	for _, n := range []int{1000, 100000} {
		root := statsfs.NewSource("root")
		_ = root.AddValues(tab, nil, 0)
		var parents []*statsfs.Source
		for f := range 10 {
			fam := statsfs.NewSource("f%d", f)
			_ = fam.AddValues(tab, nil, 0)
			root.AddSubordinate(fam)
			for g := range 100 {
				grp := statsfs.NewSource("g%d", g)
				_ = grp.AddValues(tab, nil, 0)
				fam.AddSubordinate(grp)
				parents = append(parents, grp)
			}
		}
		for i := range n {
			s := statsfs.NewSource("s%d", i)
			c := statsfs.NewCounters(tab)
			c.Store(0, 1)
			c.Store(1, uint64(i))
			c.Store(2, uint64(i))
			_ = s.AddValues(tab, c, 0)
			parents[i%len(parents)].AddSubordinate(s)
		}
		sources := n + len(parents) + 11
		total, _ := root.LookupName("pkts")
		b.Run(fmt.Sprintf("each/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var sum uint64
				root.Walk(func(_ string, _ []statsfs.Label, s *statsfs.Source) bool {
					for _, v := range s.Values() {
						sum += v.Read().Raw
					}
					return true
				})
				if sum == 0 {
					b.Fatal("nothing read")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(sources), "ns/source")
		})
		b.Run(fmt.Sprintf("pass/%d", n), func(b *testing.B) {
			var p statsfs.Pass
			b.ReportAllocs()
			for b.Loop() {
				p.Take(root)
				if r, _ := p.Reading(total); r.Raw != uint64(n) {
					b.Fatalf("sum %d, want %d", r.Raw, n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(sources), "ns/source")
		})
	}
}
