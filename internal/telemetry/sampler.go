package telemetry

import (
	"context"
	"sync"
	"time"

	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/internal/tick"
	"github.com/kstat/kstat/statsfs"
)

// The limits of the log_interval knob.
const (
	MinInterval = 100 * time.Millisecond
	MaxInterval = 24 * time.Hour
)

// Sampler takes a snapshot of a tree every interval while enabled, into a
// ring, and hands each to its sinks. Its snapshots run on a tick.Clock
// (Run, or Join a clock shared with other readers of the tree).
type Sampler struct {
	root *statsfs.Source
	ring *Ring

	mu       sync.Mutex
	enabled  bool
	interval time.Duration
	seq      uint64
	prev     *Snapshot
	sinks    []func(Snapshot)
	job      *tick.Job // nil until Join
}

// NewSampler returns an enabled sampler of root into ring, every interval
// (clamped to [MinInterval, MaxInterval]).
func NewSampler(root *statsfs.Source, ring *Ring, interval time.Duration) *Sampler {
	return &Sampler{
		root:     root,
		ring:     ring,
		enabled:  true,
		interval: min(max(interval, MinInterval), MaxInterval),
	}
}

// Ring is the sampler's ring.
func (s *Sampler) Ring() *Ring { return s.ring }

// OnSnapshot adds fn, called with every snapshot after it enters the
// ring, from the sampling goroutine.
func (s *Sampler) OnSnapshot(fn func(Snapshot)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sinks = append(s.sinks, fn)
}

// Sample takes a snapshot now, stores it in the ring and hands it to the
// sinks.
func (s *Sampler) Sample() Snapshot {
	var p statsfs.Pass
	p.Take(roots(s.root)...)
	return s.sample(time.Now(), &p)
}

// sample makes the snapshot of now from p.
func (s *Sampler) sample(now time.Time, p *statsfs.Pass) Snapshot {
	s.mu.Lock()
	s.seq++
	snap := take(p, s.root, s.seq, now, s.prev)
	s.prev = &snap
	sinks := s.sinks
	s.mu.Unlock()
	s.ring.Add(snap)
	for _, fn := range sinks {
		fn(snap)
	}
	return snap
}

// Join makes c take the sampler's snapshots from now on, every interval
// while enabled, in the passes it shares with its other jobs.
func (s *Sampler) Join(c *tick.Clock) {
	j := c.Job(Paths, func(now time.Time, p *statsfs.Pass) { s.sample(now, p) })
	s.mu.Lock()
	s.job = j
	s.mu.Unlock()
	s.schedule()
}

// schedule starts the job with the settings, the next snapshot one
// interval from now, or stops it.
func (s *Sampler) schedule() {
	s.mu.Lock()
	j, on, d := s.job, s.enabled, s.interval
	s.mu.Unlock()
	switch {
	case j == nil:
	case on:
		j.Start(d, d)
	default:
		j.Stop()
	}
}

// Enabled reports whether the sampler takes snapshots.
func (s *Sampler) Enabled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enabled
}

// SetEnabled starts or stops sampling; on enabling, the next snapshot
// comes one interval later.
func (s *Sampler) SetEnabled(on bool) {
	s.mu.Lock()
	s.enabled = on
	s.mu.Unlock()
	s.schedule()
}

// Interval is the time between snapshots.
func (s *Sampler) Interval() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.interval
}

// SetInterval changes the interval at once: the next snapshot comes d after
// the call, whatever was left of the old interval. Callers validate d (the
// knob does).
func (s *Sampler) SetInterval(d time.Duration) {
	s.mu.Lock()
	s.interval = d
	s.mu.Unlock()
	s.schedule()
}

// EnableKnob is telemetry/enable: 1 samples, 0 stops.
func (s *Sampler) EnableKnob() *knob.Knob {
	return knob.Bool("enable", "1 takes a telemetry snapshot every log_interval, 0 stops", s.Enabled,
		func(on bool) error { s.SetEnabled(on); return nil })
}

// IntervalKnob is telemetry/log_interval: a duration such as 5s or 250ms,
// or a whole number of seconds, from MinInterval to MaxInterval.
func (s *Sampler) IntervalKnob() *knob.Knob {
	return knob.Duration("log_interval", "time between telemetry snapshots (like 5s, or whole seconds; 100ms to 24h)",
		MinInterval, MaxInterval, s.Interval,
		func(d time.Duration) error { s.SetInterval(d); return nil })
}

// Run samples on a clock of its own until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	c := tick.New(s.root)
	s.Join(c)
	c.Run(ctx)
}
