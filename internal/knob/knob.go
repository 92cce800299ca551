// Package knob holds kstat's typed, validated control settings (start,
// counter, enable, log_interval, debug, ...). One knob serves the FUSE
// control file, the HTTP API and the CLI with the same validation.
package knob

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kstat/kstat/statsfs"
)

// Knob is one setting. Set validates the text before anything changes; a
// rejected text returns an error wrapping statsfs.ErrInvalid.
type Knob struct {
	Name string
	Help string
	get  func() string
	set  func(string) error
}

// New returns a knob from a getter and a setter of its text form. set must
// wrap statsfs.ErrInvalid for bad input.
func New(name, help string, get func() string, set func(string) error) *Knob {
	return &Knob{Name: name, Help: help, get: get, set: set}
}

// Get returns the current setting as text, without a newline.
func (k *Knob) Get() string { return k.get() }

// Set parses text (surrounding white space ignored) and applies it.
func (k *Knob) Set(text string) error { return k.set(strings.TrimSpace(text)) }

// Control is the knob as a statsfs control file.
func (k *Knob) Control() *statsfs.Control {
	return &statsfs.Control{
		Name:  k.Name,
		Help:  k.Help,
		Read:  func() string { return k.Get() + "\n" },
		Write: k.Set,
	}
}

func invalid(name, text, want string) error {
	return fmt.Errorf("%w: %s: %q is not %s", statsfs.ErrInvalid, name, text, want)
}

// Bool is a knob that accepts 0 or 1.
func Bool(name, help string, get func() bool, set func(bool) error) *Knob {
	return New(name, help,
		func() string {
			if get() {
				return "1"
			}
			return "0"
		},
		func(text string) error {
			switch text {
			case "0":
				return set(false)
			case "1":
				return set(true)
			}
			return invalid(name, text, "0 or 1")
		})
}

// Uint is a knob that accepts a decimal integer in [lo, hi].
func Uint(name, help string, lo, hi uint64, get func() uint64, set func(uint64) error) *Knob {
	want := fmt.Sprintf("a whole number from %d to %d", lo, hi)
	return New(name, help,
		func() string { return strconv.FormatUint(get(), 10) },
		func(text string) error {
			v, err := strconv.ParseUint(text, 10, 64)
			if err != nil || v < lo || v > hi {
				return invalid(name, text, want)
			}
			return set(v)
		})
}

// Duration is a knob that accepts a Go duration ("5s", "250ms") or a whole
// number of seconds, in [lo, hi].
func Duration(name, help string, lo, hi time.Duration, get func() time.Duration, set func(time.Duration) error) *Knob {
	want := fmt.Sprintf("a duration from %v to %v (like 5s, or a whole number of seconds)", lo, hi)
	return New(name, help,
		func() string { return get().String() },
		func(text string) error {
			d, err := ParseDuration(text)
			if err != nil || d < lo || d > hi {
				return invalid(name, text, want)
			}
			return set(d)
		})
}

// ParseDuration reads a Go duration or a whole number of seconds.
func ParseDuration(text string) (time.Duration, error) {
	if n, err := strconv.ParseUint(text, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(text)
}

// Registry is the set of knobs of one daemon, by path ("kstat/counter").
// Every change made through it, by a control file or by Set, is logged
// once, here.
type Registry struct {
	mu    sync.RWMutex
	knobs map[string]*Knob
	log   *slog.Logger
}

// SetLog makes the registry log every setting change and refusal to l.
func (r *Registry) SetLog(l *slog.Logger) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = l
}

// Add registers k under path and adds its control file to src; writes to
// the file go through Set, "via" the mount.
func (r *Registry) Add(path string, src *statsfs.Source, k *Knob) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.knobs == nil {
		r.knobs = map[string]*Knob{}
	}
	if _, ok := r.knobs[path]; ok {
		return fmt.Errorf("knob %s: %w", path, statsfs.ErrExist)
	}
	c := k.Control()
	c.Write = func(text string) error { return r.set(path, k, text, "mount") }
	if err := src.AddControl(c); err != nil {
		return err
	}
	r.knobs[path] = k
	return nil
}

// Set sets the knob at path to text and logs the change, or the refusal,
// with via (who asked, and how: "mount", "http user alice", "socket uid
// 0"). An unknown path gives an error wrapping statsfs.ErrNotFound.
func (r *Registry) Set(path, text, via string) error {
	k := r.Lookup(path)
	if k == nil {
		return fmt.Errorf("%w: no knob %q", statsfs.ErrNotFound, path)
	}
	return r.set(path, k, text, via)
}

func (r *Registry) set(path string, k *Knob, text, via string) error {
	r.mu.RLock()
	log := r.log
	r.mu.RUnlock()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	old := k.Get()
	err := k.Set(text)
	switch {
	case errors.Is(err, statsfs.ErrInvalid):
		log.Warn("setting refused", "knob", path, "value", strings.TrimSpace(text), "via", via, "err", err)
	case err != nil:
		log.Error("setting failed", "knob", path, "value", strings.TrimSpace(text), "via", via, "err", err)
	default:
		log.Info("setting changed", "knob", path, "from", old, "to", k.Get(), "via", via)
	}
	return err
}

// Lookup returns the knob at path, or nil.
func (r *Registry) Lookup(path string) *Knob {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.knobs[path]
}

// Paths returns every registered path, sorted.
func (r *Registry) Paths() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	paths := make([]string, 0, len(r.knobs))
	for p := range r.knobs {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}
