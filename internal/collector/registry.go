package collector

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/kstat/kstat/statsfs"
)

// Config is what a collector's Factory gets: where the kernel files are and
// the tree its values go under.
type Config struct {
	Paths Paths
	Root  *statsfs.Source
}

// Factory makes a collector and attaches its sources and values under
// cfg.Root. It may read the kernel once; a read that fails is the
// collector's Status, not the factory's error, which is for a collector
// that cannot exist at all.
type Factory func(cfg Config) (Collector, error)

// Info describes a registered collector.
type Info struct {
	Name    string // as in --collector.NAME
	Help    string // what it reads, for --help
	Default bool   // enabled unless --no-collector.NAME or --collector.disable-defaults
}

type registration struct {
	Info
	factory Factory
}

var (
	regMu      sync.Mutex
	registered []registration // sorted by name
)

// Register adds a collector factory under info.Name. Each collector file
// calls it in init; a second registration of a name panics.
func Register(info Info, f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	i, found := slices.BinarySearchFunc(registered, info.Name, func(r registration, n string) int { return strings.Compare(r.Name, n) })
	if found {
		panic("collector: " + info.Name + " registered twice")
	}
	registered = slices.Insert(registered, i, registration{info, f})
}

// Registered lists the registered collectors by name.
func Registered() []Info {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]Info, len(registered))
	for i, r := range registered {
		out[i] = r.Info
	}
	return out
}

// Registry lists a daemon's collectors, in the order they were added.
type Registry struct {
	// Timeout is how long a read may take before it counts as failed
	// (set on collectors that have SetTimeout when they are added);
	// 0 keeps DefaultTimeout.
	Timeout time.Duration

	mu   sync.Mutex
	list []Collector
}

// Add appends c.
func (r *Registry) Add(c Collector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := c.(interface{ SetTimeout(time.Duration) }); ok && r.Timeout > 0 {
		t.SetTimeout(r.Timeout)
	}
	r.list = append(r.list, c)
}

// All returns the collectors.
func (r *Registry) All() []Collector {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Collector(nil), r.list...)
}

// Get returns the collector called name, or nil.
func (r *Registry) Get(name string) Collector {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.list {
		if c.Name() == name {
			return c
		}
	}
	return nil
}

// Build makes every registered collector that enabled accepts, in name
// order, and adds it to r. A factory's error is returned (joined with the
// others') and its collector left out; the rest are built.
func (r *Registry) Build(cfg Config, enabled func(name string) bool) error {
	regMu.Lock()
	regs := slices.Clone(registered)
	regMu.Unlock()
	var errs []error
	for _, reg := range regs {
		if !enabled(reg.Name) {
			continue
		}
		c, err := reg.factory(cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("collector %s: %w", reg.Name, err))
			continue
		}
		r.Add(c)
	}
	return errors.Join(errs...)
}

// RefreshAll starts a read of every collector whose values are not fresh
// and waits for them together: at most about the timeout, however many
// stall. A view calls it once before it reads the tree, so a whole pass
// costs one read per collector and the reads overlap.
func (r *Registry) RefreshAll() {
	type async interface {
		start() (*flight, *Status)
		wait(*flight) error
	}
	all := r.All()
	var wg sync.WaitGroup
	flights := make([]*flight, len(all))
	for i, c := range all {
		if a, ok := c.(async); ok {
			flights[i], _ = a.start()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Refresh() // the error is in c.Status()
		}()
	}
	for i, f := range flights {
		if f != nil {
			_ = all[i].(async).wait(f)
		}
	}
	wg.Wait()
}

// Only returns an enabled function that accepts the given names.
func Only(names ...string) func(string) bool {
	return func(n string) bool { return slices.Contains(names, n) }
}

// Selection is which collectors the --collector.NAME,
// --no-collector.NAME and --collector.disable-defaults flags enable.
type Selection struct {
	// Timeout is --collector.timeout: how long a collector's read may
	// take before it counts as failed.
	Timeout time.Duration

	on, off         map[string]*bool
	disableDefaults bool
	defaults        map[string]bool
}

// AddFlags adds the selection flags of every registered collector, and
// any others named in extra (collectors a feature builds itself), to fs.
func AddFlags(fs *pflag.FlagSet, extra ...Info) *Selection {
	s := &Selection{on: map[string]*bool{}, off: map[string]*bool{}, defaults: map[string]bool{}}
	infos := append(Registered(), extra...)
	slices.SortFunc(infos, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	for _, in := range infos {
		state := "disabled"
		if in.Default {
			state = "enabled"
		}
		s.defaults[in.Name] = in.Default
		s.on[in.Name] = fs.Bool("collector."+in.Name, false, fmt.Sprintf("enable the %s collector: %s (default %s)", in.Name, in.Help, state))
		s.off[in.Name] = fs.Bool("no-collector."+in.Name, false, "disable the "+in.Name+" collector")
		_ = fs.MarkHidden("no-collector." + in.Name)
	}
	fs.DurationVar(&s.Timeout, "collector.timeout", DefaultTimeout,
		"how long a collector's read of its kernel files may take; a slower one counts as failed for that scrape (its values are absent) and does not hold up the others")
	fs.BoolVar(&s.disableDefaults, "collector.disable-defaults", false,
		"disable every collector that is on by default; enable the ones you want with --collector.NAME (--no-collector.NAME disables one)")
	return s
}

// Check reports a collector both enabled and disabled by flags.
func (s *Selection) Check() error {
	if s.Timeout <= 0 {
		return fmt.Errorf("--collector.timeout %v: give a positive duration", s.Timeout)
	}
	for name, on := range s.on {
		if *on && *s.off[name] {
			return fmt.Errorf("--collector.%s and --no-collector.%s: give one of them", name, name)
		}
	}
	return nil
}

// Enabled reports whether the flags enable the collector called name.
// Names without flags are enabled.
func (s *Selection) Enabled(name string) bool {
	on, ok := s.on[name]
	switch {
	case !ok:
		return true
	case *on:
		return true
	case *s.off[name]:
		return false
	case s.disableDefaults:
		return false
	}
	return s.defaults[name]
}
