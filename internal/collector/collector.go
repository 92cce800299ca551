// Package collector fills statsfs sources from kernel files under /proc and
// /sys, one file per kernel file. A collector never formats output: views
// read the tree. The proc and sys roots are parameters, so tests run the
// same code on fixtures under testdata/.
//
// Every collector has one shape: a file that registers a Factory by name in
// init (see Register), a Collector the factory returns after attaching its
// values under the tree's root, and a Refresher that reads its kernel file
// at most once per MaxAge and never keeps a caller waiting past its timeout.
package collector

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kstat/kstat/statsfs"
)

// MaxAge is how long one read of a kernel file serves the values it feeds,
// so that a whole-tree read costs one read per file.
const MaxAge = 50 * time.Millisecond

// DefaultTimeout is how long a caller waits for a collector's read before
// the read counts as failed (the read goes on in the background and the
// values are absent until a read finishes).
const DefaultTimeout = 5 * time.Second

// ErrTimeout is the error of a read that did not finish within its
// collector's timeout.
var ErrTimeout = errors.New("read did not finish within the collector's timeout")

// Paths are the mount points collectors read from.
type Paths struct {
	Proc string // normally /proc
	Sys  string // normally /sys
}

// Status is how a collector's last read went, for the
// kstat_scrape_collector_duration_seconds, _success and
// _skipped_lines_total metrics.
type Status struct {
	Name     string
	Time     time.Time     // when the last read started (zero: never read)
	Duration time.Duration // how long it took (or has taken, when Err is ErrTimeout)
	Err      error         // nil on success; the collector's values are absent otherwise
	// Skipped is set when the last read succeeded but skipped lines it
	// could not parse (the values they feed are absent, the rest kept);
	// it wraps a *Skipped.
	Skipped error
	// SkippedLines counts the lines skipped by every read so far.
	SkippedLines uint64
}

// Skipped is what a parse returns when it kept the lines it could read
// and skipped others: a Refresher counts them and treats the read as a
// success, unless the read's error holds another error too. It wraps the
// first line's error, which wraps ErrMalformed.
type Skipped struct {
	Lines int   // how many lines were skipped
	First error // why the first one was
}

// Error names the count and the first line's reason.
func (s *Skipped) Error() string {
	return fmt.Sprintf("skipped %d unreadable line(s), the first: %v", s.Lines, s.First)
}

// Unwrap returns the first line's error.
func (s *Skipped) Unwrap() error { return s.First }

// skippedOnly reports whether err is made of *Skipped errors only (wrapped
// or joined), so that the read it ends succeeded, and how many lines they
// count.
func skippedOnly(err error) (int, bool) {
	switch e := err.(type) {
	case *Skipped:
		return e.Lines, true
	case interface{ Unwrap() []error }:
		n := 0
		for _, x := range e.Unwrap() {
			m, ok := skippedOnly(x)
			if !ok {
				return 0, false
			}
			n += m
		}
		return n, true
	case interface{ Unwrap() error }:
		return skippedOnly(e.Unwrap())
	}
	return 0, false
}

// skip records one skipped line, allocating only for the first.
func skip(s **Skipped, err error) {
	if *s == nil {
		*s = &Skipped{First: err}
	}
	(*s).Lines++
}

// partial returns s as an error, or nil when no line was skipped (a nil
// *Skipped must not become a non-nil error).
func partial(s *Skipped) error {
	if s == nil {
		return nil
	}
	return s
}

// Collector is what every collector reports about itself.
type Collector interface {
	// Name is the collector's registered name ("meminfo").
	Name() string
	// Status is the outcome of the last read.
	Status() Status
	// Refresh reads the kernel unless the last read is fresh, waiting at
	// most the collector's timeout, and returns the read's error.
	Refresh() error
}

// Refresher runs a collector's read function at most once per MaxAge and
// keeps its Status. A read runs in a goroutine of its own: a caller waits
// for it until the read's start plus the timeout, then gets ErrTimeout,
// and later callers get ErrTimeout at once until the read returns. It
// implements Collector.
type Refresher struct {
	name    string
	read    func() error
	now     func() time.Time
	maxAge  time.Duration
	timeout atomic.Int64 // nanoseconds

	mu       sync.Mutex             // guards inflight
	inflight *flight                // the read in progress, or nil
	last     atomic.Pointer[Status] // the last finished read; nil before the first
	skipped  atomic.Uint64          // lines skipped by every read so far
}

// flight is one read in progress.
type flight struct {
	start time.Time
	done  chan struct{} // closed when the read returned and last is set
}

// NewRefresher returns a Refresher for read, named name.
func NewRefresher(name string, read func() error) *Refresher {
	return NewRefresherMaxAge(name, MaxAge, read)
}

// NewRefresherMaxAge is NewRefresher with a longer cache, for kernel files
// that are slow to generate (such as /proc/slabinfo).
func NewRefresherMaxAge(name string, maxAge time.Duration, read func() error) *Refresher {
	r := &Refresher{name: name, read: read, now: time.Now, maxAge: maxAge}
	r.timeout.Store(int64(DefaultTimeout))
	return r
}

// Name is the collector's name.
func (r *Refresher) Name() string { return r.name }

// SetTimeout sets how long callers wait for a read (d > 0).
func (r *Refresher) SetTimeout(d time.Duration) {
	if d > 0 {
		r.timeout.Store(int64(d))
	}
}

// Status returns the last read's outcome; while a read has run past the
// timeout, a failure with ErrTimeout.
func (r *Refresher) Status() Status {
	r.mu.Lock()
	f := r.inflight
	r.mu.Unlock()
	if f != nil {
		if d := r.now().Sub(f.start); d >= time.Duration(r.timeout.Load()) {
			return Status{Name: r.name, Time: f.start, Duration: d, Err: r.timeoutErr()}
		}
	}
	if s := r.last.Load(); s != nil {
		return *s
	}
	return Status{Name: r.name}
}

func (r *Refresher) timeoutErr() error {
	return fmt.Errorf("%s: %w (%v)", r.name, ErrTimeout, time.Duration(r.timeout.Load()))
}

// fresh returns the last read when it is younger than the max age at now.
func (r *Refresher) fresh(now time.Time) (*Status, bool) {
	s := r.last.Load()
	return s, s != nil && now.Sub(s.Time) < r.maxAge
}

// Refresh calls read unless the last read is younger than the max age, and
// returns that read's error, or ErrTimeout when the read takes longer than
// the timeout. Checking a fresh read takes no lock, since every value read
// of the collector's sources asks.
func (r *Refresher) Refresh() error {
	if s, ok := r.fresh(r.now()); ok {
		return s.Err
	}
	f, s := r.start()
	if f == nil {
		return s.Err
	}
	return r.wait(f)
}

// start returns the read in progress, starting one unless the last read is
// fresh (then it returns nil and that read's status).
func (r *Refresher) start() (*flight, *Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight != nil {
		return r.inflight, nil
	}
	now := r.now()
	if s, ok := r.fresh(now); ok { // read by another caller meanwhile
		return nil, s
	}
	f := &flight{start: now, done: make(chan struct{})}
	r.inflight = f
	go func() {
		// The duration is the read's own, from when its goroutine runs:
		// not the wait for a CPU on a busy machine.
		began := r.now()
		err := r.read()
		st := &Status{Name: r.name, Time: f.start, Duration: r.now().Sub(began), Err: err}
		if n, ok := skippedOnly(err); ok { // a read that kept the good lines
			st.Skipped, st.Err = err, nil
			r.skipped.Add(uint64(n))
		}
		st.SkippedLines = r.skipped.Load()
		r.last.Store(st)
		r.mu.Lock()
		r.inflight = nil
		r.mu.Unlock()
		close(f.done)
	}()
	return f, nil
}

// wait waits for f until its start plus the timeout.
func (r *Refresher) wait(f *flight) error {
	select {
	case <-f.done:
		return r.last.Load().Err
	default:
	}
	left := time.Duration(r.timeout.Load()) - r.now().Sub(f.start)
	if left <= 0 {
		return r.timeoutErr()
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-f.done:
		return r.last.Load().Err
	case <-t.C:
		return r.timeoutErr()
	}
}

// Expire makes the next Refresh read, however fresh the last read is
// (for benchmarks of whole reads).
func (r *Refresher) Expire() {
	if s := r.last.Load(); s != nil {
		old := *s
		old.Time = time.Time{}
		r.last.Store(&old)
	}
}

// Record returns a statsfs record of c that refreshes before each load.
// While the collector's last read failed (or timed out), every value is
// absent (not the last numbers, not 0); otherwise a value is absent when c
// marks it so (the file lacks it, or its line was skipped).
func (r *Refresher) Record(c *statsfs.Counters) statsfs.PartialRecord {
	return statsfs.PartialFunc(func(i int) (uint64, bool) {
		if r.Refresh() != nil {
			return 0, false
		}
		return c.LoadAvailable(i)
	})
}
