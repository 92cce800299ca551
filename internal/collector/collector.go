// Package collector fills statsfs sources from kernel files under /proc and
// /sys, one file per kernel file. A collector never formats output: views
// read the tree. The proc and sys roots are parameters, so tests run the
// same code on fixtures under testdata/.
package collector

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/kstat/kstat/statsfs"
)

// MaxAge is how long one read of a kernel file serves the values it feeds,
// so that a whole-tree read costs one read per file.
const MaxAge = 50 * time.Millisecond

// Paths are the mount points collectors read from.
type Paths struct {
	Proc string // normally /proc
	Sys  string // normally /sys
}

// Status is how a collector's last read went, for the
// kstat_scrape_collector_duration_seconds and _success metrics.
type Status struct {
	Name     string
	Time     time.Time     // when the last read started (zero: never read)
	Duration time.Duration // how long it took
	Err      error         // nil on success
}

// Collector is what every collector reports about itself.
type Collector interface {
	Name() string
	Status() Status
}

// Registry lists a daemon's collectors, in the order they were added.
type Registry struct {
	mu   sync.Mutex
	list []Collector
}

// Add appends c.
func (r *Registry) Add(c Collector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, c)
}

// All returns the collectors.
func (r *Registry) All() []Collector {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Collector(nil), r.list...)
}

// Refresher runs a collector's read function at most once per MaxAge and
// keeps its Status. It implements Collector.
type Refresher struct {
	name   string
	read   func() error
	now    func() time.Time
	maxAge time.Duration

	mu   sync.Mutex             // serialises reads
	last atomic.Pointer[Status] // the last read; nil before the first
}

// NewRefresher returns a Refresher for read, named name.
func NewRefresher(name string, read func() error) *Refresher {
	return NewRefresherMaxAge(name, MaxAge, read)
}

// NewRefresherMaxAge is NewRefresher with a longer cache, for kernel files
// that are slow to generate (such as /proc/slabinfo).
func NewRefresherMaxAge(name string, maxAge time.Duration, read func() error) *Refresher {
	return &Refresher{name: name, read: read, now: time.Now, maxAge: maxAge}
}

// Name is the collector's name.
func (r *Refresher) Name() string { return r.name }

// Status returns the last read's outcome.
func (r *Refresher) Status() Status {
	if s := r.last.Load(); s != nil {
		return *s
	}
	return Status{Name: r.name}
}

// fresh returns the last read when it is younger than the max age at now.
func (r *Refresher) fresh(now time.Time) (*Status, bool) {
	s := r.last.Load()
	return s, s != nil && now.Sub(s.Time) < r.maxAge
}

// Refresh calls read unless the last read is younger than the max age, and
// returns that read's error. Checking a fresh read takes no lock, since
// every value read of the collector's sources asks.
func (r *Refresher) Refresh() error {
	if s, ok := r.fresh(r.now()); ok {
		return s.Err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	start := r.now()
	if s, ok := r.fresh(start); ok { // read by another caller meanwhile
		return s.Err
	}
	err := r.read()
	r.last.Store(&Status{Name: r.name, Time: start, Duration: r.now().Sub(start), Err: err})
	return err
}

// Record returns a statsfs record of c that refreshes before each load.
func (r *Refresher) Record(c *statsfs.Counters) statsfs.Record {
	return statsfs.RecordFunc(func(i int) uint64 {
		_ = r.Refresh() // a failed read keeps the last values; Status has the error
		return c.Load(i)
	})
}
