// Package history keeps the last minutes of kstat's statistics tree for the
// dashboard. Every step a Recorder reads the tree (never /proc) into a
// Sample: memory gauges and per-second rates of counters (network devices,
// KSTAT, context switches, interrupts, IRQ lines, softirq vectors, the
// tracer's processes), computed here so that no viewer computes any. It
// keeps a window of samples, chooses which series each chart shows (the
// busiest devices, lines and processes of the window) and hands every new
// sample to its subscribers.
package history

import (
	"cmp"
	"context"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/internal/netout"
	"github.com/kstat/kstat/internal/tick"
	"github.com/kstat/kstat/internal/tracer"
	"github.com/kstat/kstat/statsfs"
)

// The defaults of Options.
const (
	DefaultStep   = time.Second
	DefaultWindow = 15 * time.Minute
	DefaultTop    = 8
)

// Options shape a Recorder.
type Options struct {
	Step   time.Duration // time between samples; 0: DefaultStep
	Window time.Duration // how far back samples are kept; 0: DefaultWindow
	Top    int           // series a chart of many (devices, lines, processes) shows; 0: DefaultTop
}

// Sample is the tree at one moment. A value the tree lacked, and a rate
// without an earlier reading (or whose counter went back), is absent.
type Sample struct {
	Time   int64              `json:"t"` // Unix milliseconds
	Values map[string]float64 `json:"v"` // series key -> gauge or per-second rate
}

// Chart is one chart of the dashboard and the series it shows, chosen by
// the Recorder.
type Chart struct {
	ID     string   `json:"id"`
	Title  string   `json:"title"`
	Unit   string   `json:"unit"` // "bytes", "bytes/s" or "/s"
	Series []Series `json:"series"`
}

// Series is one line of a chart: a key of Sample.Values and its legend.
type Series struct {
	Key   string `json:"key"`
	Label string `json:"label"`
}

// Proc is one process of the tracer's top list: its rates over the last
// step, the busiest by allocated bytes first.
type Proc struct {
	PID              string  `json:"pid"`
	Comm             string  `json:"comm"`
	AllocatedBytes   float64 `json:"allocated_bytes"` // per second, like the other rates
	FreedBytes       float64 `json:"freed_bytes"`
	KmallocCalls     float64 `json:"kmalloc_calls"`
	Forks            float64 `json:"forks"`
	Execs            float64 `json:"execs"`
	LockContentions  float64 `json:"lock_contentions"`
	LockWaitSeconds  float64 `json:"lock_wait_seconds"` // seconds waited per second
	OutstandingBytes float64 `json:"outstanding_bytes"` // a gauge: bytes not freed yet
}

// Update is what a subscriber receives for every new sample: the sample,
// the charts' series as of the window now, and the tracer's top processes.
type Update struct {
	Sample Sample  `json:"sample"`
	Charts []Chart `json:"charts"`
	Procs  []Proc  `json:"procs"`
	Traced int     `json:"traced"` // processes the tracer shows (0 when it is off)
}

// History is the whole window: what a viewer receives once before the
// updates.
type History struct {
	Step    time.Duration
	Window  time.Duration
	Samples []Sample
	Update  Update // the latest update (its Sample is the last of Samples)
}

// Recorder samples a tree every step into a window of samples.
type Recorder struct {
	root *statsfs.Source
	opts Options

	// readMu serialises Record; the tree is read without mu, so that
	// viewers do not wait for a slow reading.
	readMu sync.Mutex
	prev   map[string]reading   // the counters of the last sample, for rates
	spare  map[string]reading   // the map before prev, reused for the next sample
	prevT  int64                // the last sample's time
	names  map[string]string    // this sample's legends, reused
	pass   statsfs.Pass         // Record's
	keys   map[keyRef]*keyEntry // series keys and legends of the sources read, kept while they are
	gen    uint64               // samples taken, to drop keys of sources gone
	lastN  int                  // values in the last sample

	mu      sync.Mutex
	samples []Sample          // oldest first, within the window
	window  totals            // of samples
	labels  map[string]string // legends of keys: device names, IRQ descriptions, comms
	last    Update
	subs    map[chan Update]struct{}
}

// reading is a counter as read, typed so that integer differences are exact.
type reading = statsfs.Reading

// New returns a Recorder of root; Run starts it.
func New(root *statsfs.Source, opts Options) *Recorder {
	if opts.Step <= 0 {
		opts.Step = DefaultStep
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Top <= 0 {
		opts.Top = DefaultTop
	}
	return &Recorder{root: root, opts: opts, labels: map[string]string{}, subs: map[chan Update]struct{}{},
		window: totals{sum: map[string]float64{}, n: map[string]int{}, positive: map[string]int{}}}
}

// Paths are the subtrees a sample reads in its pass (mm/'s one value is
// read on its own: mm/ may hold slabinfo's caches).
var Paths = []string{collector.DirMemory, collector.DirBlock, collector.DirSystem, collector.DirNetDev,
	netout.Dir, collector.DirIRQ, collector.DirSoftirq, tracer.Dir}

// Run takes a sample at once and then every step, on a clock of its own,
// until ctx ends; then it closes the subscriptions.
func (r *Recorder) Run(ctx context.Context) {
	c := tick.New(r.root)
	r.Join(c)
	c.Run(ctx)
	r.Close()
}

// Join makes c take a sample at once and then every step, in the passes
// it shares with its other jobs.
func (r *Recorder) Join(c *tick.Clock) {
	c.Job(Paths, func(now time.Time, p *statsfs.Pass) {
		r.readMu.Lock()
		defer r.readMu.Unlock()
		r.record(now, p)
	}).Start(r.opts.Step, 0)
}

// Close ends every subscription (closing its channel).
func (r *Recorder) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.subs {
		close(ch)
		delete(r.subs, ch)
	}
}

// Record reads the tree now into a sample, drops the samples older than
// the window, and sends the update to every subscriber. A subscriber too
// slow to take it is dropped (its channel closed), so it can start over.
func (r *Recorder) Record(now time.Time) Update {
	r.readMu.Lock()
	var roots []*statsfs.Source
	for _, path := range Paths {
		if s := r.root.FindVisible(path); s != nil {
			roots = append(roots, s)
		}
	}
	r.pass.Take(roots...)
	defer r.readMu.Unlock()
	return r.record(now, &r.pass)
}

// record is Record from a pass that read Paths. Callers hold r.readMu.
func (r *Recorder) record(now time.Time, p *statsfs.Pass) Update {
	t := now.UnixMilli()
	if r.spare == nil {
		r.spare, r.names, r.keys = map[string]reading{}, map[string]string{}, map[keyRef]*keyEntry{}
	}
	clear(r.spare)
	clear(r.names)
	r.gen++
	s := sampler{root: r.root, pass: p, top: r.opts.Top, prev: r.prev, dt: float64(t-r.prevT) / 1000,
		vals: make(map[string]float64, r.lastN), cur: r.spare, labels: r.names, keys: r.keys, gen: r.gen}
	if r.prev == nil || s.dt <= 0 {
		s.dt = 0 // no rates: the first sample, or the clock went back
	}
	s.read()
	r.spare, r.prev, r.prevT, r.lastN = r.prev, s.cur, t, len(s.vals)
	for k, e := range r.keys {
		if e.gen != r.gen {
			delete(r.keys, k)
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	maps.Copy(r.labels, s.labels)
	sample := Sample{Time: t, Values: s.vals}
	r.samples = append(r.samples, sample)
	r.window.add(sample, 1)
	cut := t - r.opts.Window.Milliseconds()
	i := 0
	for i < len(r.samples) && r.samples[i].Time < cut {
		r.window.add(r.samples[i], -1)
		i++
	}
	if i > 0 {
		r.samples = slices.Delete(r.samples, 0, i)
	}
	u := Update{Sample: sample, Charts: r.charts(), Procs: s.procs, Traced: s.traced}
	r.last = u
	for ch := range r.subs {
		select {
		case ch <- u:
		default:
			close(ch)
			delete(r.subs, ch)
		}
	}
	return u
}

// Subscribe returns a channel of updates, with the history up to now, and
// a function that ends the subscription. The channel is closed when the
// subscriber falls behind or the recorder stops.
func (r *Recorder) Subscribe() (History, <-chan Update, func()) {
	ch := make(chan Update, 8)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	h := r.historyLocked()
	r.mu.Unlock()
	return h, ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.subs[ch]; ok {
			delete(r.subs, ch)
			close(ch)
		}
	}
}

// History returns the samples of the window and the latest update.
func (r *Recorder) History() History {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.historyLocked()
}

func (r *Recorder) historyLocked() History {
	return History{Step: r.opts.Step, Window: r.opts.Window, Samples: slices.Clone(r.samples), Update: r.last}
}

// sampler reads one sample.
type sampler struct {
	root   *statsfs.Source
	pass   *statsfs.Pass      // the readings
	top    int                // processes kept
	prev   map[string]reading // the last sample's counters
	dt     float64            // seconds since the last sample; 0: no rates
	vals   map[string]float64 // the sample
	cur    map[string]reading // this sample's counters
	labels map[string]string  // legends of keys
	keys   map[keyRef]*keyEntry
	gen    uint64
	procs  []Proc
	traced int
}

// keyRef is a value of a source, or the source itself (name "").
type keyRef struct {
	src  *statsfs.Source
	name string
}

// keyEntry is the series key of a keyRef, made once, and its legend.
type keyEntry struct {
	key   string
	gen   uint64 // the last sample that used it
	label string // the legend, made from text
	text  string
}

// key is prefix + src's name (+ "/" + name), made once while src stays.
func (s *sampler) key(prefix string, src *statsfs.Source, name string) *keyEntry {
	e := s.keys[keyRef{src, name}]
	if e == nil {
		k := prefix + src.Name()
		if name != "" {
			k += "/" + name
		}
		e = &keyEntry{key: k}
		s.keys[keyRef{src, name}] = e
	}
	e.gen = s.gen
	return e
}

// labelOf records e's legend, made by join(text) when text changed.
func (s *sampler) labelOf(e *keyEntry, text string, join func(string) string) {
	if e.label == "" || e.text != text {
		e.text, e.label = text, join(text)
	}
	s.labels[e.key] = e.label
}

// find follows path from the root; nil when a source on the way is
// missing or hidden.
func (s *sampler) find(path string) *statsfs.Source { return s.root.FindVisible(path) }

// get reads the visible value name of src, from the pass; false when it
// is not there or unavailable.
func (s *sampler) get(src *statsfs.Source, name string) (reading, bool) {
	if src == nil {
		return reading{}, false
	}
	ref, ok := src.FindValue(name)
	if !ok || ref.Hidden() {
		return reading{}, false
	}
	r := s.pass.Read(ref)
	return r, !r.Absent // an unavailable value is no sample, not a 0
}

// gauge records value name of src under key.
func (s *sampler) gauge(key string, src *statsfs.Source, name string) {
	if v, ok := s.get(src, name); ok && finite(v.Float64()) {
		s.vals[key] = v.Float64()
	}
}

// counter keeps value name of src for the next sample and records its
// rate since the last one under key; it returns the rate.
func (s *sampler) counter(key string, src *statsfs.Source, name string) (float64, bool) {
	v, ok := s.get(src, name)
	if !ok {
		return 0, false
	}
	s.cur[key] = v
	old, had := s.prev[key]
	if !had || s.dt == 0 {
		return 0, false
	}
	rate, ok := perSecond(v, old, s.dt)
	if ok {
		s.vals[key] = rate
	}
	return rate, ok
}

// perSecond is (cur-old)/dt, exact for integer counters; a counter that
// went back (a reset) has no rate.
func perSecond(cur, old reading, dt float64) (float64, bool) {
	if cur.Type == statsfs.F64 || old.Type == statsfs.F64 {
		d := cur.Float64() - old.Float64()
		if d < 0 || !finite(d) {
			return 0, false
		}
		return d / dt, true
	}
	if cur.Raw < old.Raw {
		return 0, false
	}
	return float64(cur.Raw-old.Raw) / dt, true
}

// label remembers the legend of key.
func (s *sampler) label(key, text string) { s.labels[key] = text }

// read takes the sample.
func (s *sampler) read() {
	if mem := s.find(collector.DirMemory); mem != nil {
		total, ok1 := s.get(mem, collector.MemoryTotal)
		avail, ok2 := s.get(mem, collector.MemoryAvailable)
		if ok1 && ok2 {
			s.vals["mem/used"] = total.Float64() - avail.Float64()
		}
	}
	block := s.find(collector.DirBlock)
	s.gauge("mem/cached", block, collector.BlockCached)
	s.gauge("mem/dirty", block, collector.BlockDirty)
	s.gauge("mem/buffers", block, collector.BlockBuffers)
	s.gauge("mem/slab", s.find(collector.DirMM), collector.MMSlab)

	sys := s.find(collector.DirSystem)
	for _, c := range [][2]string{
		{"sys/context_switches", collector.SystemContextSwitches}, {"sys/interrupts", collector.SystemInterrupts},
		{"sys/softirqs", collector.SystemSoftirqs}, {"sys/forks", collector.SystemForks},
	} {
		s.counter(c[0], sys, c[1])
	}
	for _, dev := range children(s.find(collector.DirNetDev)) {
		for _, f := range []string{collector.NetdevRxBytes, collector.NetdevTxBytes, collector.NetdevRxPackets, collector.NetdevTxPackets} {
			key := s.key("net/", dev, f).key
			s.counter(key, dev, f)
			s.label(key, dev.Name())
		}
	}
	for _, fam := range children(s.find(netout.Dir)) {
		for _, ref := range fam.Values() {
			name := ref.Value().Name
			if proto, ok := strings.CutSuffix(name, "_packets"); ok {
				e := s.key("kstat/", fam, name)
				s.counter(e.key, fam, name)
				s.labelOf(e, proto, func(proto string) string { return fam.Name() + " " + proto })
			}
		}
	}
	for _, kind := range []string{collector.DirIRQ, collector.DirSoftirq} {
		for _, line := range children(s.find(kind)) {
			e := s.key(kind+"/", line, "")
			s.counter(e.key, line, collector.LineCount)
			d := ""
			if ref, ok := line.FindValue(collector.LineDescription); ok {
				d = strings.TrimSpace(ref.Value().Text(s.pass.Read(ref)))
			}
			s.labelOf(e, d, func(d string) string {
				if d == "" {
					return line.Name()
				}
				return line.Name() + " " + d
			})
		}
	}
	s.tracer()
}

// children are the visible subordinates of src.
func children(src *statsfs.Source) []*statsfs.Source {
	if src == nil {
		return nil
	}
	var out []*statsfs.Source
	for _, c := range src.Subordinates() {
		if !c.Hidden() {
			out = append(out, c)
		}
	}
	return out
}

// tracer reads the tracer's processes: rates of their counters, the top
// by allocated bytes recorded as series "tracer/<pid>".
func (s *sampler) tracer() {
	tr := s.find(tracer.Dir)
	if tr == nil {
		return
	}
	// A process the tracer did not show at the last sample while it ran
	// counted from zero since then.
	_, traced := s.prev["tracer"]
	s.cur["tracer"] = reading{} // the tracer ran at this sample
	var procs []Proc
	for _, p := range children(tr) {
		s.traced++
		pid := p.Name()
		alloc, ok := s.procRate(p, tracer.ValueAllocatedBytes, traced)
		pr := Proc{PID: pid, AllocatedBytes: alloc}
		pr.FreedBytes, _ = s.procRate(p, tracer.ValueFreedBytes, traced)
		pr.KmallocCalls, _ = s.procRate(p, tracer.ValueKmallocCalls, traced)
		pr.Forks, _ = s.procRate(p, tracer.ValueForks, traced)
		pr.Execs, _ = s.procRate(p, tracer.ValueExecs, traced)
		pr.LockContentions, _ = s.procRate(p, tracer.ValueLockContentions, traced)
		pr.LockWaitSeconds, _ = s.procRate(p, tracer.ValueLockWaitSeconds, traced)
		if v, ok := s.get(p, tracer.ValueOutstandingBytes); ok && finite(v.Float64()) {
			pr.OutstandingBytes = v.Float64()
		}
		if c := p.Control(tracer.ControlComm); c != nil && c.Read != nil {
			pr.Comm = strings.TrimSpace(c.Read())
		}
		if ok {
			procs = append(procs, pr)
		}
	}
	slices.SortFunc(procs, func(a, b Proc) int {
		if c := cmp.Compare(b.AllocatedBytes, a.AllocatedBytes); c != 0 {
			return c
		}
		return comparePIDs(a.PID, b.PID)
	})
	if len(procs) > s.top {
		procs = procs[:s.top]
	}
	for _, p := range procs {
		key := "tracer/" + p.PID
		s.vals[key] = p.AllocatedBytes
		s.label(key, p.Comm+" ("+p.PID+")")
	}
	s.procs = procs
}

// procRate is the rate of value name of the process p since the last
// sample; traced tells whether the tracer ran then, so that a process it
// did not show counted from zero since.
func (s *sampler) procRate(p *statsfs.Source, name string, traced bool) (float64, bool) {
	key := s.key("tracer/", p, name).key
	if _, seen := s.prev[key]; !seen && traced && s.dt > 0 {
		if v, ok := s.get(p, name); ok {
			s.cur[key] = v
			return perSecond(v, reading{Type: v.Type}, s.dt)
		}
		return 0, false
	}
	r, ok := s.counter(key, p, name)
	delete(s.vals, key) // only the chosen processes' series are kept
	return r, ok
}

// comparePIDs orders decimal pids by number.
func comparePIDs(a, b string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
