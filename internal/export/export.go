// Package export serves a statsfs tree as Prometheus metrics. Its Collector
// reads the whole visible tree once per scrape and maps every value to a
// metric: cumulative values are counters (named with _total), floating ones
// gauges; the name is kstat_<path>_<value>_<unit> from the non-instance path
// components, and instance sources (statsfs.NewInstance) become labels, so
// net/dev/eth0/rx_bytes and net/dev/lo/rx_bytes are one family
// kstat_net_dev_rx_bytes_total{device=...}. Aggregates carry their kind in
// the name (kstat_net_dev_sum_rx_bytes_total) so they never collide with the
// instance family. Series of "pid" instances are limited to the most active
// MaxPids pids per scrape.
package export

import (
	"cmp"
	"errors"
	"hash/maphash"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/statsfs"
)

// DefaultMaxPids is the default budget of pids exported per scrape.
const DefaultMaxPids = 50

// Options configure a Collector.
type Options struct {
	// Namespace starts every metric name; "kstat" when empty.
	Namespace string
	// Collectors give kstat_scrape_collector_duration_seconds and
	// kstat_scrape_collector_success; nil: none.
	Collectors *collector.Registry
	// MaxPids is how many pids keep their series, the most active first
	// (the rest are dropped and counted); 0 keeps none, a negative value
	// all of them.
	MaxPids int
	// PidLabel is the instance label the budget applies to; "pid" when
	// empty.
	PidLabel string
	// Version and Commit label kstat_build_info.
	Version, Commit string
}

// Collector is a prometheus.Collector over a statsfs tree. It is unchecked
// (Describe sends nothing) because the tree's shape changes at run time.
// Scrapes are serialised: the name and descriptor caches are per Collector.
type Collector struct {
	root *statsfs.Source
	opts Options

	durationDesc, successDesc, buildDesc *prometheus.Desc
	pidsDroppedDesc, seriesDroppedDesc   *prometheus.Desc
	build                                prometheus.Metric

	mu        sync.Mutex // one scrape at a time; guards everything below
	gen       uint64     // scrape number, marks cache entries in use
	sources   map[*statsfs.Source]*sourceEntry
	families  map[string]*family
	ancestors []frame    // the walk's current chain of sources
	series    []series   // this scrape's readings, reused
	activity  []pidScore // per pid activity, reused
	pidIndex  map[string]int
	seen      map[uint64]struct{} // hashes of this scrape's series
	seed      maphash.Seed
	conflicts int             // this scrape's series dropped as conflicts
	reserved  map[string]bool // names of the extras (see Collector.extras)
}

// sourceEntry caches what one source contributes to names and labels.
type sourceEntry struct {
	gen         uint64
	path        string
	prefix      string   // namespace and non-instance path components
	labelNames  []string // sanitized instance keys, outermost first
	labelValues []string
	pid         string // value of the budget label, if hasPid
	hasPid      bool
	values      []valueEntry
}

// valueEntry is one value of a source as exported.
type valueEntry struct {
	v         *statsfs.Value
	aggregate bool
	fam       *family
	conflict  bool // the family has the other metric type: dropped
	// The series' label pairs (sorted, shared by every scrape) and the
	// hash of its name and label values, for the family labels in
	// pairsFor; rebuilt when the family's label set changes.
	built    bool
	pairsFor []string
	pairs    []*dto.LabelPair
	hash     uint64
}

// family is one metric family: all values mapping to one name.
type family struct {
	used    uint64 // scrape that last saw a source with this family
	gen     uint64 // scrape that last saw one of its values visible
	name    string
	help    string
	counter bool
	labels  []string // union of label names seen this scrape
	desc    *prometheus.Desc
	descFor []string // the labels desc was made with
}

// frame is a source on the walk's chain: its path and name prefix.
type frame struct{ path, prefix string }

// series is one reading of a scrape, before the budget and emission.
type series struct {
	entry *sourceEntry
	ve    *valueEntry
	value float64
}

// seriesMetric is a prometheus.Metric of one series of a scrape. Its label
// pairs are the cached ones of its valueEntry; the metrics of a scrape are
// allocated together, so a series costs no allocation of its own.
type seriesMetric struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  float64
	c      *dto.Counter // one of c and g is set
	g      *dto.Gauge
}

// Desc is the family's descriptor.
func (m *seriesMetric) Desc() *prometheus.Desc { return m.desc }

// Write fills out with the labels and the value.
func (m *seriesMetric) Write(out *dto.Metric) error {
	out.Label = m.labels
	if m.c != nil {
		m.c.Value = &m.value
		out.Counter = m.c
	} else {
		m.g.Value = &m.value
		out.Gauge = m.g
	}
	return nil
}

type pidScore struct {
	pid      string
	activity float64
	keep     bool
}

// New returns a Collector of the tree below root.
func New(root *statsfs.Source, opts Options) *Collector {
	if opts.Namespace == "" {
		opts.Namespace = "kstat"
	}
	if opts.PidLabel == "" {
		opts.PidLabel = "pid"
	}
	ns := opts.Namespace
	c := &Collector{
		root: root,
		opts: opts,
		durationDesc: prometheus.NewDesc(ns+"_scrape_collector_duration_seconds",
			"How long the collector's last read of its kernel files took.", []string{"collector"}, nil),
		successDesc: prometheus.NewDesc(ns+"_scrape_collector_success",
			"Whether the collector's last read succeeded (1) or failed (0).", []string{"collector"}, nil),
		buildDesc: prometheus.NewDesc(ns+"_build_info",
			"kstat's version, commit and Go version; the value is always 1.", []string{"version", "commit", "goversion"}, nil),
		pidsDroppedDesc: prometheus.NewDesc(ns+"_exporter_pids_dropped",
			"Pids whose series this scrape left out to keep within the pid budget (--metrics-max-pids).", nil, nil),
		seriesDroppedDesc: prometheus.NewDesc(ns+"_exporter_series_dropped",
			"Series this scrape left out: duplicate (same name and labels as an earlier one) or conflict (same name as a family of the other metric type, or as one of kstat's own metrics).",
			[]string{"reason"}, nil),
		sources:  map[*statsfs.Source]*sourceEntry{},
		families: map[string]*family{},
		pidIndex: map[string]int{},
		seen:     map[uint64]struct{}{},
		seed:     maphash.MakeSeed(),
	}
	// The tree's values never take the names of the extras.
	c.reserved = map[string]bool{}
	for _, n := range []string{"_scrape_collector_duration_seconds", "_scrape_collector_success", "_build_info", "_exporter_pids_dropped", "_exporter_series_dropped"} {
		c.reserved[ns+n] = true
	}
	c.build = prometheus.MustNewConstMetric(c.buildDesc, prometheus.GaugeValue, 1,
		opts.Version, opts.Commit, runtime.Version())
	return c
}

// Describe sends nothing: the Collector is unchecked.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect reads the tree once and sends a metric per visible value, then
// the collector statuses, the build info and the drop counts.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept, counters, pidsDropped, duplicates := c.scrape()
	// The metrics come from slabs allocated anew each scrape: the
	// registry may still be reading the last scrape's metrics.
	slab := make([]seriesMetric, len(kept))
	cs := make([]dto.Counter, counters)
	gs := make([]dto.Gauge, len(kept)-counters)
	for i, s := range kept {
		m := &slab[i]
		m.desc, m.labels, m.value = s.ve.fam.desc, s.ve.pairs, s.value
		if s.ve.fam.counter {
			m.c, cs = &cs[0], cs[1:]
		} else {
			m.g, gs = &gs[0], gs[1:]
		}
		ch <- m
	}
	for _, m := range c.extras(pidsDropped, duplicates) {
		ch <- m
	}
}

// Gather reads the tree once and returns its metric families, and those
// of Collect's other metrics, sorted as a prometheus.Registry sorts them.
// It builds the families directly, without the registry's channel and
// consistency checks, which the Collector's own uniqueness makes moot.
func (c *Collector) Gather() ([]*dto.MetricFamily, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept, counters, pidsDropped, duplicates := c.scrape()
	ms := make([]dto.Metric, len(kept))
	cs := make([]dto.Counter, counters)
	gs := make([]dto.Gauge, len(kept)-counters)
	vals := make([]float64, len(kept))
	var mfs []*dto.MetricFamily
	byName := make(map[string]*dto.MetricFamily)
	for i, s := range kept {
		f := s.ve.fam
		mf := byName[f.name]
		if mf == nil {
			mf = &dto.MetricFamily{Name: &f.name, Help: &f.help, Type: dto.MetricType_GAUGE.Enum()}
			if f.counter {
				mf.Type = dto.MetricType_COUNTER.Enum()
			}
			byName[f.name] = mf
			mfs = append(mfs, mf)
		}
		m := &ms[i]
		m.Label = s.ve.pairs
		vals[i] = s.value
		if f.counter {
			m.Counter, cs = &cs[0], cs[1:]
			m.Counter.Value = &vals[i]
		} else {
			m.Gauge, gs = &gs[0], gs[1:]
			m.Gauge.Value = &vals[i]
		}
		mf.Metric = append(mf.Metric, m)
	}
	for _, mf := range mfs {
		slices.SortFunc(mf.Metric, compareLabels)
	}
	extras, err := gatherOf(c.extras(pidsDropped, duplicates))
	mfs = append(mfs, extras...)
	slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return mfs, err
}

// compareLabels orders the series of one family by their label values,
// in label name order, as the registry does.
func compareLabels(a, b *dto.Metric) int {
	for i := range min(len(a.Label), len(b.Label)) {
		if r := strings.Compare(a.Label[i].GetValue(), b.Label[i].GetValue()); r != 0 {
			return r
		}
	}
	return cmp.Compare(len(a.Label), len(b.Label))
}

// gatherOf gathers a few metrics through a registry of their own.
func gatherOf(ms []prometheus.Metric) ([]*dto.MetricFamily, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(metrics(ms)); err != nil {
		return nil, err
	}
	return reg.Gather()
}

// metrics is a fixed list of metrics as an unchecked collector.
type metrics []prometheus.Metric

func (metrics) Describe(chan<- *prometheus.Desc) {}

func (ms metrics) Collect(ch chan<- prometheus.Metric) {
	for _, m := range ms {
		ch <- m
	}
}

// extras are the metrics about the scrape and the daemon: collector
// statuses, build info, and what the budget and the checks dropped.
func (c *Collector) extras(pidsDropped, duplicates int) []prometheus.Metric {
	var out []prometheus.Metric
	if c.opts.Collectors != nil {
		for _, col := range c.opts.Collectors.All() {
			st := col.Status()
			ok := 0.0
			if st.Err == nil {
				ok = 1
			}
			out = append(out,
				prometheus.MustNewConstMetric(c.durationDesc, prometheus.GaugeValue, st.Duration.Seconds(), st.Name),
				prometheus.MustNewConstMetric(c.successDesc, prometheus.GaugeValue, ok, st.Name))
		}
	}
	return append(out, c.build,
		prometheus.MustNewConstMetric(c.pidsDroppedDesc, prometheus.GaugeValue, float64(pidsDropped)),
		prometheus.MustNewConstMetric(c.seriesDroppedDesc, prometheus.GaugeValue, float64(duplicates), "duplicate"),
		prometheus.MustNewConstMetric(c.seriesDroppedDesc, prometheus.GaugeValue, float64(c.conflicts), "conflict"))
}

// scrape reads the tree and returns the series to export, with their
// label pairs and family descriptors ready: the pids within budget, each
// name and label set once. It also counts the counters among them, the
// pids over budget and the duplicates dropped. The slice is valid until
// the next scrape; c.mu must be held.
func (c *Collector) scrape() (kept []series, counters, pidsDropped, duplicates int) {
	c.gen++
	c.series = c.series[:0]
	c.activity = c.activity[:0]
	clear(c.pidIndex)
	clear(c.seen)
	c.conflicts = 0
	live := 0
	c.root.Walk(func(path string, labels []statsfs.Label, src *statsfs.Source) bool {
		live++
		c.read(path, labels, src)
		return true
	})
	pidsDropped = c.budget()
	kept = c.series[:0]
	for _, s := range c.series {
		if s.entry.hasPid && !c.activity[c.pidIndex[s.entry.pid]].keep {
			continue
		}
		if !c.prepare(s) {
			duplicates++
			continue
		}
		kept = append(kept, s)
		if s.ve.fam.counter {
			counters++
		}
	}
	c.sweep(live)
	return kept, counters, pidsDropped, duplicates
}

// read records the visible values of one source in c.series.
func (c *Collector) read(path string, labels []statsfs.Label, src *statsfs.Source) {
	// The walk is depth first: the parent is the newest source on the
	// chain with the path this one extends by its name ("" for the
	// root's children). Names may hold slashes, so the path is not split.
	parent := c.opts.Namespace
	if src == c.root {
		c.ancestors = c.ancestors[:0]
	} else {
		pp := ""
		if path != src.Name() {
			pp = path[:len(path)-len(src.Name())-1]
		}
		for len(c.ancestors) > 1 && c.ancestors[len(c.ancestors)-1].path != pp {
			c.ancestors = c.ancestors[:len(c.ancestors)-1]
		}
		parent = c.ancestors[len(c.ancestors)-1].prefix
	}
	e := c.sources[src]
	if e == nil || e.path != path {
		e = c.newEntry(path, labels, src, parent)
		c.sources[src] = e
	}
	e.gen = c.gen
	c.ancestors = append(c.ancestors, frame{path, e.prefix})

	refs := src.Values()
	if !e.matches(refs) {
		// A new slice: series of this scrape may point into the old one.
		e.values = make([]valueEntry, 0, len(refs))
		for _, r := range refs {
			e.values = append(e.values, c.newValue(e, r.Value(), r.Aggregate()))
		}
	}
	pid := -1
	if e.hasPid {
		i, ok := c.pidIndex[e.pid]
		if !ok {
			i = len(c.activity)
			c.activity = append(c.activity, pidScore{pid: e.pid})
			c.pidIndex[e.pid] = i
		}
		pid = i
	}
	for i, r := range refs {
		ve := &e.values[i]
		ve.fam.used = c.gen
		if r.Hidden() {
			continue
		}
		if ve.conflict {
			c.conflicts++
			continue
		}
		if ve.fam.gen != c.gen {
			// First time this family is seen in this scrape: its
			// label set starts from this source's.
			ve.fam.gen = c.gen
			ve.fam.labels = append(ve.fam.labels[:0], e.labelNames...)
		} else {
			ve.fam.labels = union(ve.fam.labels, e.labelNames)
		}
		val := r.Read().Float64()
		if pid >= 0 && ve.fam.counter && !ve.aggregate {
			c.activity[pid].activity += val
		}
		c.series = append(c.series, series{entry: e, ve: ve, value: val})
	}
}

// matches reports whether the cached values are refs, in order.
func (e *sourceEntry) matches(refs []statsfs.ValueRef) bool {
	if len(refs) != len(e.values) {
		return false
	}
	for i, r := range refs {
		if e.values[i].v != r.Value() || e.values[i].aggregate != r.Aggregate() {
			return false
		}
	}
	return true
}

// newEntry builds the cache entry of a source: its name prefix extends its
// parent's unless it is an instance, whose name becomes a label instead.
// The root's prefix is the namespace.
func (c *Collector) newEntry(path string, labels []statsfs.Label, src *statsfs.Source, parent string) *sourceEntry {
	e := &sourceEntry{path: path, prefix: parent}
	if src != c.root && src.Label() == "" {
		e.prefix = appendName(parent, src.Name())
	}
	for _, l := range labels {
		name := labelName(l.Name)
		// A nested instance with the same key gets a numbered name, so
		// no series has two labels of one name.
		for n, base := 2, name; slices.Contains(e.labelNames, name); n++ {
			name = base + "_" + strconv.Itoa(n)
		}
		e.labelNames = append(e.labelNames, name)
		e.labelValues = append(e.labelValues, strings.ToValidUTF8(l.Value, "\uFFFD"))
		if l.Name == c.opts.PidLabel && !e.hasPid {
			e.pid, e.hasPid = l.Value, true
		}
	}
	return e
}

// newValue resolves the family of value v in entry e, creating it at first
// sight; a family keeps the help and metric type it was created with.
func (c *Collector) newValue(e *sourceEntry, v *statsfs.Value, aggregate bool) valueEntry {
	counter := isCounter(v, aggregate)
	name := metricName(e.prefix, v, aggregate, counter)
	f := c.families[name]
	if f == nil {
		f = &family{name: name, help: help(name, v, aggregate), counter: counter}
		c.families[name] = f
	}
	conflict := f.counter != counter || c.reserved[name]
	return valueEntry{v: v, aggregate: aggregate, fam: f, conflict: conflict}
}

// budget marks which pids keep their series: all of them when they are no
// more than MaxPids, otherwise the MaxPids most active (by the sum of their
// cumulative values; ties by pid). It returns how many were dropped.
func (c *Collector) budget() int {
	max := c.opts.MaxPids
	if max < 0 || len(c.activity) <= max {
		for i := range c.activity {
			c.activity[i].keep = true
		}
		return 0
	}
	order := make([]int, len(c.activity))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		x, y := c.activity[a], c.activity[b]
		if r := cmp.Compare(y.activity, x.activity); r != 0 {
			return r
		}
		return comparePids(x.pid, y.pid)
	})
	for _, i := range order[:max] {
		c.activity[i].keep = true
	}
	return len(c.activity) - max
}

// comparePids orders pids numerically when they are numbers of one length
// and lexically otherwise.
func comparePids(a, b string) int {
	if len(a) != len(b) {
		return cmp.Compare(len(a), len(b))
	}
	return strings.Compare(a, b)
}

// prepare readies the label pairs of series s and its family's
// descriptor, or reports false when s repeats an earlier series' name and
// labels.
func (c *Collector) prepare(s series) bool {
	ve, f := s.ve, s.ve.fam
	if !ve.built || !slices.Equal(ve.pairsFor, f.labels) {
		c.label(s.entry, ve)
	}
	if _, dup := c.seen[ve.hash]; dup {
		return false
	}
	c.seen[ve.hash] = struct{}{}
	if f.desc == nil || !slices.Equal(f.descFor, f.labels) {
		f.descFor = append(f.descFor[:0], f.labels...)
		f.desc = prometheus.NewDesc(f.name, f.help, slices.Clone(f.labels), nil)
	}
	return true
}

// label builds the label pairs and the identity hash of a value of entry
// e for its family's current label set: e's own labels, and an empty
// value for every family label e does not have.
func (c *Collector) label(e *sourceEntry, ve *valueEntry) {
	f := ve.fam
	ve.built = true
	ve.pairsFor = append(ve.pairsFor[:0], f.labels...)
	ve.pairs = make([]*dto.LabelPair, 0, len(f.labels))
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(f.name)
	for _, name := range f.labels {
		v := ""
		if i := slices.Index(e.labelNames, name); i >= 0 {
			v = e.labelValues[i]
		}
		h.WriteByte(0xff)
		h.WriteString(name)
		h.WriteByte(0xfe)
		h.WriteString(v)
		ve.pairs = append(ve.pairs, &dto.LabelPair{Name: proto.String(name), Value: proto.String(v)})
	}
	slices.SortFunc(ve.pairs, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	ve.hash = h.Sum64()
}

// sweep forgets the sources and families the last scrapes did not see,
// once they outnumber the live ones by a quarter.
func (c *Collector) sweep(live int) {
	if len(c.sources) <= live+live/4+16 {
		return
	}
	for src, e := range c.sources {
		if e.gen != c.gen {
			delete(c.sources, src)
		}
	}
	for name, f := range c.families {
		if f.used != c.gen {
			delete(c.families, name)
		}
	}
}

// union adds the names of add missing from have, keeping have's order.
func union(have, add []string) []string {
	for _, n := range add {
		if !slices.Contains(have, n) {
			have = append(have, n)
		}
	}
	return have
}

// NewGatherer returns what /metrics serves: c's families, gathered
// directly, merged with those of the Go runtime and process collectors.
func NewGatherer(c *Collector) prometheus.Gatherer {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mine, err := c.Gather()
		theirs, err2 := reg.Gather()
		mfs := append(mine, theirs...)
		slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
		return mfs, errors.Join(err, err2)
	})
}
