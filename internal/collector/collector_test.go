package collector

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kstat/kstat/statsfs"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestRefresherReadsOncePerMaxAge(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	reads := 0
	fail := errors.New("file gone")
	var err error
	r := NewRefresher("meminfo", func() error { reads++; return err })
	r.now = clock.now

	if s := r.Status(); s.Name != "meminfo" || !s.Time.IsZero() {
		t.Fatalf("status before any read: %+v", s)
	}
	for i := 0; i < 5; i++ {
		if e := r.Refresh(); e != nil {
			t.Fatal(e)
		}
		clock.add(MaxAge / 10)
	}
	if reads != 1 {
		t.Fatalf("%d reads within MaxAge, want 1", reads)
	}
	clock.add(MaxAge)
	err = fail
	if e := r.Refresh(); !errors.Is(e, fail) || reads != 2 {
		t.Fatalf("after MaxAge: err %v, %d reads; want the read's error and 2 reads", e, reads)
	}
	// A cached failure keeps reporting its error until the next read.
	if e := r.Refresh(); !errors.Is(e, fail) || reads != 2 {
		t.Fatalf("cached failure: err %v, %d reads", e, reads)
	}
	if s := r.Status(); !errors.Is(s.Err, fail) || !s.Time.Equal(time.Unix(1000, 0).Add(MaxAge/2+MaxAge)) {
		t.Fatalf("status after the failed read: %+v", s)
	}
}

func TestRefresherMaxAge(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	reads := 0
	r := NewRefresherMaxAge("slabinfo", 2*time.Second, func() error { reads++; return nil })
	r.now = clock.now
	_ = r.Refresh()
	clock.add(1900 * time.Millisecond)
	_ = r.Refresh()
	clock.add(200 * time.Millisecond)
	_ = r.Refresh()
	if reads != 2 {
		t.Fatalf("%d reads, want 2 (one at 0 s, one at 2.1 s)", reads)
	}
}

// TestRefresherConcurrent checks under -race that many readers of a record
// share one read per MaxAge.
func TestRefresherConcurrent(t *testing.T) {
	var reads atomic.Int64
	tbl := statsfs.NewTable(statsfs.Value{Name: "v", Type: statsfs.U64, ReadOnly: true})
	c := statsfs.NewCounters(tbl)
	r := NewRefresherMaxAge("x", time.Hour, func() error { c.Store(0, uint64(reads.Add(1))); return nil })
	rec := r.Record(c)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if v := rec.Load(0); v != 1 {
					t.Errorf("loaded %d, want 1 (the first and only read)", v)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d reads, want 1", n)
	}
}

func TestRegistry(t *testing.T) {
	var reg Registry
	a, b := NewRefresher("a", func() error { return nil }), NewRefresher("b", func() error { return nil })
	reg.Add(a)
	reg.Add(b)
	all := reg.All()
	if len(all) != 2 || all[0].Name() != "a" || all[1].Name() != "b" {
		t.Fatalf("All = %v", all)
	}
}

// BenchmarkRefreshFresh is the cost every value read pays to learn that
// its collector's data is fresh.
func BenchmarkRefreshFresh(b *testing.B) {
	r := NewRefresherMaxAge("x", time.Hour, func() error { return nil })
	_ = r.Refresh()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = r.Refresh()
		}
	})
}

// TestSkippedOnly: a read whose error holds only skipped lines (wrapped or
// joined) succeeded and counts them; one that also holds a real failure
// failed, and its collector's values are absent.
func TestSkippedOnly(t *testing.T) {
	sk := func(n int) error { return &Skipped{Lines: n, First: ErrMalformed} }
	for _, x := range []struct {
		err   error
		lines int
		ok    bool
	}{
		{sk(2), 2, true},
		{fmt.Errorf("/proc/x: %w", sk(3)), 3, true},
		{errors.Join(sk(1), fmt.Errorf("b: %w", sk(4))), 5, true},
		{errors.Join(sk(1), os.ErrNotExist), 0, false},
		{fmt.Errorf("%w", os.ErrPermission), 0, false},
		{nil, 0, false},
	} {
		if n, ok := skippedOnly(x.err); n != x.lines || ok != x.ok {
			t.Errorf("skippedOnly(%v) = %d, %v; want %d, %v", x.err, n, ok, x.lines, x.ok)
		}
	}
	fail := true
	c := statsfs.NewCounters(statsfs.NewTable(statsfs.Value{Name: "x"}))
	c.Store(0, 7)
	r := NewRefresher("t", func() error {
		if fail {
			return errors.Join(sk(1), os.ErrNotExist)
		}
		return fmt.Errorf("f: %w", sk(2))
	})
	rec := r.Record(c)
	if _, ok := rec.LoadAvailable(0); ok || r.Status().Err == nil || r.Status().SkippedLines != 0 {
		t.Errorf("a failed read: value available, status %+v", r.Status())
	}
	fail = false
	r.now = func() time.Time { return time.Now().Add(time.Hour) }
	if v, ok := rec.LoadAvailable(0); !ok || v != 7 || r.Status().Err != nil || r.Status().Skipped == nil || r.Status().SkippedLines != 2 {
		t.Errorf("a read that skipped lines: %d %v, status %+v", v, ok, r.Status())
	}
}
