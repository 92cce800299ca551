package statsfs_test

import (
	"fmt"

	"github.com/kstat/kstat/statsfs"
)

// A program exposing its own statistics: each worker counts its jobs in a
// source of its own, and the parent's aggregate sums them.
func ExampleSource() {
	jobs := statsfs.NewTable(
		statsfs.Value{Name: "done", Help: "Jobs finished", Type: statsfs.U64, Unit: "jobs", Aggr: statsfs.Sum},
		statsfs.Value{Name: "slowest", Help: "Longest job", Type: statsfs.U64, Unit: "milliseconds", Aggr: statsfs.Max, Flag: statsfs.Floating},
	)
	const done, slowest = 0, 1

	workers := statsfs.NewSource("workers")
	if err := workers.AddValues(jobs, nil, 0); err != nil { // no record: aggregates
		panic(err)
	}
	for i, ms := range []uint64{12, 40, 7} {
		w := statsfs.NewInstance("worker", fmt.Sprint("w", i))
		c := statsfs.NewCounters(jobs)
		if err := w.AddValues(jobs, c, 0); err != nil {
			panic(err)
		}
		workers.AddSubordinate(w)
		// The worker updates its counters; readers never block it.
		c.Add(done, uint64(i+1))
		c.Store(slowest, ms)
	}

	for _, s := range workers.Snapshot() {
		fmt.Printf("%-8s %-7s %s %v\n", s.Path, s.Value.Name, s.Reading, s.Labels)
	}
	// Clearing the aggregate clears every worker's count.
	if err := workers.Clear(jobs, done); err != nil {
		panic(err)
	}
	total, _ := workers.GetByName("done")
	fmt.Println("after clear:", total)
	// Output:
	//          done    6 []
	//          slowest 40 []
	// w0       done    1 [{worker w0}]
	// w0       slowest 12 [{worker w0}]
	// w1       done    2 [{worker w1}]
	// w1       slowest 40 [{worker w1}]
	// w2       done    3 [{worker w2}]
	// w2       slowest 7 [{worker w2}]
	// after clear: 0
}
