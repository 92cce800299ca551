package netout

import (
	"errors"
	"fmt"
	"sync"

	"github.com/kstat/kstat/internal/bpf"
	"github.com/kstat/kstat/internal/collector"
)

// DefaultStep is the counter setting a service starts with, as in the
// seed.
const DefaultStep = 10

// MaxStep is the largest counter setting: 2^32.
const MaxStep = 1 << 32

// Service is KSTAT: it counts outgoing packets while started and publishes
// the outgoing TCP count (nout) in steps of counter packets.
//
// Published value, precisely: the service keeps nout and a remainder r of
// TCP packets counted but not yet published. Each sync adds the TCP packets
// the program counted since the previous sync to r, then moves the largest
// multiple of counter that r holds into nout. So nout only ever grows by
// multiples of counter and trails the true count by r < counter packets:
// with counter fixed since the last clear, nout = floor(T/counter)*counter
// for the T TCP packets counted since then, whenever it is read. A new
// counter takes effect at once: the packets up to the change are synced
// with the old one, the rest with the new. Clearing sets nout and r to 0.
// Stopping keeps both, so a restart goes on from the published total.
type Service struct {
	c       *Counter
	netns   string
	refresh *collector.Refresher // the families' counts (AddValues)

	mu        sync.Mutex
	step      uint64
	published uint64
	remainder uint64
	lastTCP   uint64 // the program's TCP packets at the last sync
	running   bool
	progs     *bpf.ProgView // the program's cost (AddValues)
	statsOff  func()        // releases BPF run-time statistics, nil when off
}

// timed reports whether the kernel measures the program's run time now.
func (s *Service) timed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsOff != nil
}

// NewService returns a stopped service over c; Start attaches c in the
// network namespace at netns ("" for the process's own).
func NewService(c *Counter, netns string) (*Service, error) {
	t, err := c.Read()
	if err != nil {
		return nil, err
	}
	return &Service{c: c, netns: netns, step: DefaultStep, lastTCP: t.TCPPackets()}, nil
}

// Counter returns the loaded program behind the service.
func (s *Service) Counter() *Counter { return s.c }

// Start attaches the program; starting a started service does nothing.
func (s *Service) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	// Packets the map holds from before (none: the program was detached)
	// must not be published; resync the baseline.
	if err := s.syncLocked(); err != nil {
		return err
	}
	if err := s.c.Attach(s.netns); err != nil {
		return err
	}
	s.running = true
	// The kernel measures run time only while someone holds
	// BPF_ENABLE_STATS; without it run_seconds and runs are absent.
	if off, err := bpf.EnableStats(); err == nil {
		s.statsOff = off
	}
	return nil
}

// Stop syncs the count and detaches the program; stopping a stopped
// service does nothing.
func (s *Service) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	err := s.c.Detach()
	s.running = false
	if s.statsOff != nil {
		s.statsOff()
		s.statsOff = nil
	}
	// After Detach no packet runs the program: this sync is final.
	return errors.Join(err, s.syncLocked())
}

// Running reports whether the service is started.
func (s *Service) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Step returns the counter setting.
func (s *Service) Step() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.step
}

// SetStep changes the counter setting, from 1 to MaxStep.
func (s *Service) SetStep(n uint64) error {
	if n < 1 || n > MaxStep {
		return fmt.Errorf("counter must be from 1 to %d, not %d", uint64(MaxStep), n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.syncLocked(); err != nil {
		return err
	}
	s.step = n
	s.publishLocked()
	return nil
}

// Nout syncs and returns the published TCP count.
func (s *Service) Nout() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.syncLocked()
	return s.published, err
}

// ClearNout sets the published count and the unpublished remainder to 0.
func (s *Service) ClearNout() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.syncLocked()
	s.published, s.remainder = 0, 0
	return err
}

// Totals returns the program's counts by family and protocol since it was
// loaded. They are not cleared by ClearNout.
func (s *Service) Totals() (Totals, error) { return s.c.Read() }

// syncLocked moves the TCP packets counted since the last sync into the
// remainder and publishes what it can.
func (s *Service) syncLocked() error {
	t, err := s.c.Read()
	if err != nil {
		return err
	}
	tcp := t.TCPPackets()
	s.remainder += tcp - s.lastTCP
	s.lastTCP = tcp
	s.publishLocked()
	return nil
}

func (s *Service) publishLocked() {
	whole := s.remainder - s.remainder%s.step
	s.published += whole
	s.remainder -= whole
}
