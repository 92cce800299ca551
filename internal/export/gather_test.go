package export

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/statsfs"
)

func text(t *testing.T, mfs []*dto.MetricFamily) string {
	t.Helper()
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestGatherMatchesRegistry: Collector.Gather, which builds the families
// itself, gives exactly what a prometheus.Registry makes of Collect, on
// trees with labels, aggregates, padding, duplicates and the pid budget.
func TestGatherMatchesRegistry(t *testing.T) {
	root, recs := tree(t, 5, 300, 40, 2000, 1)
	fam := statsfs.NewSource("fam")
	root.AddSubordinate(fam)
	add(t, fam, statsfs.NewInstance("device", "eth0"), oneTable, 1)
	add(t, fam, statsfs.NewInstance("cpu", "0"), oneTable, 2)
	add(t, root, statsfs.NewSource("io.q"), oneTable, 1)
	add(t, root, statsfs.NewSource("io_q"), oneTable, 2)
	add(t, root, statsfs.NewSource("io-q"), totalGauge, 3)
	reg := &collector.Registry{}
	st := collector.NewRefresherMaxAge("meminfo", time.Hour, func() error { return nil }) // one read: both scrapes see its duration
	_ = st.Refresh()
	reg.Add(st)

	viaCollect := New(root, Options{MaxPids: 3, Collectors: reg})
	direct := New(root, Options{MaxPids: 3, Collectors: reg})
	pr := prometheus.NewPedanticRegistry()
	pr.MustRegister(viaCollect)
	for round := range 3 {
		want, err := pr.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got, err := direct.Gather()
		if err != nil {
			t.Fatal(err)
		}
		w, g := text(t, want), text(t, got)
		if w != g {
			t.Fatalf("round %d: Gather differs from the registry's\n--- registry\n%s\n--- Gather\n%s", round, w, g)
		}
		recs["1"].Add(0, 1e6) // pid 1 enters the budget
		recs["eth0"].Add(0, 7)
	}
	// Gather through NewGatherer adds the Go and process families.
	mfs, err := NewGatherer(direct).Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for i, mf := range mfs {
		if i > 0 && mfs[i-1].GetName() >= mf.GetName() {
			t.Errorf("families out of order: %s then %s", mfs[i-1].GetName(), mf.GetName())
		}
		names[mf.GetName()] = true
	}
	for _, n := range []string{"go_goroutines", "process_cpu_seconds_total", "kstat_net_dev_rx_bytes_total", "kstat_build_info"} {
		if !names[n] {
			t.Errorf("NewGatherer has no %s", n)
		}
	}
}

// TestTransactionalGather: the families /metrics gets, built in reused
// buffers, are those Gather makes, scrape after scrape (the same text
// twice when nothing changed, the new values when something did), and a
// scrape's families are not overwritten before its done function runs.
func TestTransactionalGather(t *testing.T) {
	root, recs := tree(t, 5, 300, 40, 2000, 1)
	reg := &collector.Registry{}
	st := collector.NewRefresherMaxAge("meminfo", time.Hour, func() error { return nil })
	_ = st.Refresh()
	reg.Add(st)
	c := New(root, Options{MaxPids: 3, Collectors: reg})
	g := NewGatherer(c)
	tg := g.Transactional()
	kstatOnly := func(mfs []*dto.MetricFamily) []*dto.MetricFamily {
		var out []*dto.MetricFamily
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), "kstat_") {
				out = append(out, mf)
			}
		}
		return out
	}
	var last string
	for round := range 4 {
		want, err := c.Gather()
		if err != nil {
			t.Fatal(err)
		}
		mfs, done, err := tg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := text(t, kstatOnly(mfs))
		done()
		if w := text(t, want); got != w {
			t.Fatalf("round %d: the transactional families differ from Gather's\n--- Gather\n%s\n--- transactional\n%s", round, w, got)
		}
		if round == 1 && got != last {
			t.Fatalf("round 1: nothing changed, yet the families did\n--- before\n%s\n--- after\n%s", last, got)
		}
		if round >= 2 && got == last {
			t.Fatalf("round %d: a value changed, the families did not", round)
		}
		if !strings.Contains(text(t, mfs), "go_goroutines ") || !strings.Contains(text(t, mfs), "process_cpu_seconds_total ") {
			t.Errorf("round %d: no Go or process families", round)
		}
		last = got
		if round >= 1 {
			recs["eth0"].Add(0, 7)
			recs["1"].Add(0, 1e6) // pid 1 enters the budget
		}
	}

	// A second scrape waits for the first one's done.
	mfs, done, _ := tg.Gather()
	before := text(t, mfs)
	second := make(chan string)
	go func() {
		m, d, _ := tg.Gather()
		defer d()
		second <- text(t, kstatOnly(m))
	}()
	recs["eth0"].Add(0, 1)
	select {
	case <-second:
		t.Fatal("a second scrape ran before the first one's done")
	case <-time.After(100 * time.Millisecond):
	}
	if after := text(t, mfs); after != before {
		t.Fatalf("the first scrape's families changed before its done\n--- before\n%s\n--- after\n%s", before, after)
	}
	done()
	<-second
}

// TestTransactionalConcurrent scrapes through the transactional view, the
// Gatherer's Gather and the Collector's Gather at once; -race checks that
// the reused buffers are never shared.
func TestTransactionalConcurrent(t *testing.T) {
	root, recs := tree(t, 5, 300, 40, 2000, 1)
	g := NewGatherer(New(root, Options{MaxPids: 3}))
	tg := g.Transactional()
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			for range 20 {
				switch i % 3 {
				case 0:
					mfs, done, err := tg.Gather()
					if err != nil {
						t.Error(err)
					}
					var b bytes.Buffer
					for _, mf := range mfs {
						_, _ = expfmt.MetricFamilyToText(&b, mf)
					}
					done()
				case 1:
					if _, err := g.Gather(); err != nil {
						t.Error(err)
					}
				case 2:
					if _, err := g.c.Gather(); err != nil {
						t.Error(err)
					}
				}
				recs["eth0"].Add(0, 1)
			}
		})
	}
	wg.Wait()
}
