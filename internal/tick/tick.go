// Package tick runs the daemon's periodic readers of the statistics tree
// (the telemetry sampler, the dashboard's history) from one goroutine, so
// that the readers due at the same moment share one statsfs.Pass: each
// value, and the collector read behind it, is read once per tick however
// many readers want it.
//
// A job due at a tick runs with it; so does a job due a little later (no
// more than half its own interval, nor more than the shortest interval of
// the jobs due): it runs once early and keeps that phase, so jobs of the
// same or commensurate intervals fall into step after their first tick.
package tick

import (
	"context"
	"sync"
	"time"

	"github.com/kstat/kstat/statsfs"
)

// Clock runs jobs; see the package comment.
type Clock struct {
	root *statsfs.Source
	now  func() time.Time

	mu   sync.Mutex
	jobs []*Job
	wake chan struct{} // a schedule changed

	pass  statsfs.Pass // the clock goroutine's, reused
	roots []*statsfs.Source
}

// Job is a reader of parts of the tree that a Clock runs every interval
// while started.
type Job struct {
	c     *Clock
	paths []string
	run   func(now time.Time, p *statsfs.Pass)

	// guarded by c.mu
	every time.Duration // 0: stopped
	next  time.Time
}

// New returns a clock of the tree below root; Run runs it.
func New(root *statsfs.Source) *Clock {
	return &Clock{root: root, now: time.Now, wake: make(chan struct{}, 1)}
}

// Job adds a stopped job that reads the subtrees at paths (below the
// clock's root; a missing or hidden one is left out) and is handed them
// in a Pass, with the time they were read.
func (c *Clock) Job(paths []string, run func(now time.Time, p *statsfs.Pass)) *Job {
	j := &Job{c: c, paths: paths, run: run}
	c.mu.Lock()
	c.jobs = append(c.jobs, j)
	c.mu.Unlock()
	return j
}

// Start runs j every interval (> 0), the first time after first.
func (j *Job) Start(every, first time.Duration) {
	j.c.mu.Lock()
	j.every, j.next = every, j.c.now().Add(first)
	j.c.mu.Unlock()
	j.c.poke()
}

// Stop stops j; a run in progress finishes.
func (j *Job) Stop() {
	j.c.mu.Lock()
	j.every = 0
	j.c.mu.Unlock()
	j.c.poke()
}

func (c *Clock) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run runs the jobs until ctx ends.
func (c *Clock) Run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		c.mu.Lock()
		var first time.Time
		for _, j := range c.jobs {
			if j.every > 0 && (first.IsZero() || j.next.Before(first)) {
				first = j.next
			}
		}
		c.mu.Unlock()
		wait := time.Hour
		if !first.IsZero() {
			wait = max(first.Sub(c.now()), 0)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
			t.Stop()
		case <-t.C:
			c.tick()
		}
	}
}

// tick runs the jobs due now, and those close enough to join them, on
// one pass.
func (c *Clock) tick() {
	now := c.now()
	c.mu.Lock()
	var due []*Job
	shortest := time.Duration(0)
	for _, j := range c.jobs {
		if j.every > 0 && !j.next.After(now) {
			due = append(due, j)
			if shortest == 0 || j.every < shortest {
				shortest = j.every
			}
		}
	}
	if len(due) == 0 {
		c.mu.Unlock()
		return
	}
	for _, j := range c.jobs {
		if j.every > 0 && j.next.After(now) && j.next.Sub(now) <= min(j.every/2, shortest) {
			due = append(due, j)
		}
	}
	c.roots = c.roots[:0]
	for _, j := range due {
		j.next = now.Add(j.every)
		for _, p := range j.paths {
			if s := c.root.FindVisible(p); s != nil {
				c.roots = append(c.roots, s)
			}
		}
	}
	c.mu.Unlock()
	c.pass.Take(c.roots...)
	for _, j := range due {
		j.run(now, &c.pass)
	}
}
