package main

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kstat/kstat/statsfs"
)

// featureTable is the one value of each feature/<name>/ source.
var featureTable = statsfs.NewTable(statsfs.Value{
	Name: "up",
	Help: "1 when the feature works; 0 when it is off or this kernel or the daemon's privileges lack what it needs (feature/<name>/reason says why)",
	Type: statsfs.U64, Flag: statsfs.Floating,
})

// featureState is one feature's state.
type featureState struct {
	up     atomic.Bool
	mu     sync.Mutex
	reason string // "up", "off: ..." or why it cannot work
}

func (s *featureState) Load(int) uint64 {
	if s.up.Load() {
		return 1
	}
	return 0
}

func (s *featureState) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// featureStates holds the state of every feature, as the sources
// feature/<name>/ (up, reason) of the tree, so every view shows it
// (kstat_feature_up{feature="..."} in /metrics), and /healthz.
type featureStates struct {
	src   *statsfs.Source
	ready atomic.Bool // start-up done and not yet stopping

	mu     sync.Mutex
	states map[string]*featureState
}

func newFeatureStates(root *statsfs.Source) *featureStates {
	src := statsfs.NewSource("feature")
	root.AddSubordinate(src)
	return &featureStates{src: src, states: map[string]*featureState{}}
}

// state returns the state of feature, adding its source on first use.
func (fs *featureStates) state(feature string) (*featureState, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if s, ok := fs.states[feature]; ok {
		return s, true
	}
	s := &featureState{}
	fs.states[feature] = s
	inst := statsfs.NewInstance("feature", feature)
	// Neither call can fail on a new source.
	_ = inst.AddValues(featureTable, s, 0)
	_ = inst.AddControl(&statsfs.Control{
		Name: "reason",
		Help: `"up", or why the feature is off or cannot work`,
		Read: func() string { return s.text() + "\n" },
	})
	fs.src.AddSubordinate(inst)
	return s, false
}

// set records feature as up (err nil) or down with err as the reason.
func (fs *featureStates) set(feature string, err error) {
	s, _ := fs.state(feature)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.reason = "up"
	} else {
		s.reason = oneLine(err.Error())
	}
	s.up.Store(err == nil)
}

// off records feature as turned off by the user's configuration.
func (fs *featureStates) off(feature, why string) {
	s, _ := fs.state(feature)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reason = "off: " + oneLine(why)
	s.up.Store(false)
}

// setDefault records feature as up unless its start recorded a state.
func (fs *featureStates) setDefault(feature string) {
	if _, had := fs.state(feature); !had {
		fs.set(feature, nil)
	}
}

// names returns the features that are up and those that are not, each
// sorted.
func (fs *featureStates) names() (on, off []string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for name, s := range fs.states {
		if s.up.Load() {
			on = append(on, name)
		} else {
			off = append(off, name)
		}
	}
	sort.Strings(on)
	sort.Strings(off)
	return on, off
}

// ServeHTTP is /healthz: "ready" (200) once start-up is done, else
// "starting" or "stopping" (503), then a line per feature: its name and
// its state ("up", "off: ..." or the reason it cannot work).
func (fs *featureStates) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	fs.mu.Lock()
	names := make([]string, 0, len(fs.states))
	for name := range fs.states {
		names = append(names, name)
	}
	fs.mu.Unlock()
	sort.Strings(names)
	var b strings.Builder
	status := http.StatusOK
	if fs.ready.Load() {
		b.WriteString("ready\n")
	} else {
		status = http.StatusServiceUnavailable
		b.WriteString("not ready: starting or stopping\n")
	}
	for _, name := range names {
		s, _ := fs.state(name)
		fmt.Fprintf(&b, "%s %s\n", name, s.text())
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// oneLine puts s on one line: every run of spaces and newlines becomes
// one space.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
