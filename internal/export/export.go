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
	prefixes  []string   // name prefix per depth, during the walk
	series    []series   // this scrape's readings, reused
	activity  []pidScore // per pid activity, reused
	pidIndex  map[string]int
	seen      map[uint64]struct{} // hashes of this scrape's series
	seed      maphash.Seed
	padded    []string // label values of a padded series, reused
	conflicts int      // this scrape's series dropped as type conflicts
}

// errDuplicate is a series with the name and labels of an earlier one.
var errDuplicate = errors.New("duplicate series")

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

// series is one reading of a scrape, before the budget and emission.
type series struct {
	entry *sourceEntry
	fam   *family
	value float64
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
			"Series this scrape left out: duplicate (same name and labels as an earlier one) or conflict (same name as a family of the other metric type).",
			[]string{"reason"}, nil),
		sources:  map[*statsfs.Source]*sourceEntry{},
		families: map[string]*family{},
		pidIndex: map[string]int{},
		seen:     map[uint64]struct{}{},
		seed:     maphash.MakeSeed(),
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
	pidsDropped := c.budget()
	var duplicates, invalid int
	for _, s := range c.series {
		if s.entry.hasPid && !c.activity[c.pidIndex[s.entry.pid]].keep {
			continue
		}
		m, err := c.metric(s)
		switch {
		case err == errDuplicate:
			duplicates++
		case err != nil:
			invalid++
		default:
			ch <- m
		}
	}
	if c.opts.Collectors != nil {
		for _, col := range c.opts.Collectors.All() {
			st := col.Status()
			ok := 0.0
			if st.Err == nil {
				ok = 1
			}
			ch <- prometheus.MustNewConstMetric(c.durationDesc, prometheus.GaugeValue, st.Duration.Seconds(), st.Name)
			ch <- prometheus.MustNewConstMetric(c.successDesc, prometheus.GaugeValue, ok, st.Name)
		}
	}
	ch <- c.build
	ch <- prometheus.MustNewConstMetric(c.pidsDroppedDesc, prometheus.GaugeValue, float64(pidsDropped))
	ch <- prometheus.MustNewConstMetric(c.seriesDroppedDesc, prometheus.GaugeValue, float64(duplicates), "duplicate")
	ch <- prometheus.MustNewConstMetric(c.seriesDroppedDesc, prometheus.GaugeValue, float64(c.conflicts), "conflict")
	ch <- prometheus.MustNewConstMetric(c.seriesDroppedDesc, prometheus.GaugeValue, float64(invalid), "invalid")
	c.sweep(live)
}

// read records the visible values of one source in c.series.
func (c *Collector) read(path string, labels []statsfs.Label, src *statsfs.Source) {
	depth := 0
	if path != "" {
		depth = strings.Count(path, "/") + 1
	}
	e := c.sources[src]
	if e == nil || e.path != path {
		e = c.newEntry(path, labels, src, depth)
		c.sources[src] = e
	}
	e.gen = c.gen
	if len(c.prefixes) <= depth {
		c.prefixes = append(c.prefixes, make([]string, depth+1-len(c.prefixes))...)
	}
	c.prefixes[depth] = e.prefix

	refs := src.Values()
	if !e.matches(refs) {
		e.values = e.values[:0]
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
		c.series = append(c.series, series{entry: e, fam: ve.fam, value: val})
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
// parent's (c.prefixes[depth-1], set earlier in the depth-first walk)
// unless it is an instance, whose name becomes a label instead.
func (c *Collector) newEntry(path string, labels []statsfs.Label, src *statsfs.Source, depth int) *sourceEntry {
	e := &sourceEntry{path: path, prefix: c.opts.Namespace}
	if depth > 0 {
		e.prefix = c.prefixes[depth-1]
		if src.Label() == "" {
			e.prefix = appendName(e.prefix, src.Name())
		}
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
	return valueEntry{v: v, aggregate: aggregate, fam: f, conflict: f.counter != counter}
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

// metric makes the const metric of one series; errDuplicate when the
// series repeats an earlier one's name and labels.
func (c *Collector) metric(s series) (prometheus.Metric, error) {
	f := s.fam
	values := s.entry.labelValues
	if !slices.Equal(s.entry.labelNames, f.labels) {
		c.padded = c.padded[:0]
		for _, name := range f.labels {
			v := ""
			if i := slices.Index(s.entry.labelNames, name); i >= 0 {
				v = s.entry.labelValues[i]
			}
			c.padded = append(c.padded, v)
		}
		values = c.padded
	}
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(f.name)
	for _, v := range values {
		h.WriteByte(0xff)
		h.WriteString(v)
	}
	key := h.Sum64()
	if _, dup := c.seen[key]; dup {
		return nil, errDuplicate
	}
	c.seen[key] = struct{}{}
	if f.desc == nil || !slices.Equal(f.descFor, f.labels) {
		f.descFor = append(f.descFor[:0], f.labels...)
		f.desc = prometheus.NewDesc(f.name, f.help, slices.Clone(f.labels), nil)
	}
	t := prometheus.GaugeValue
	if f.counter {
		t = prometheus.CounterValue
	}
	return prometheus.NewConstMetric(f.desc, t, s.value, values...)
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

// NewRegistry returns a registry holding c and the Go runtime and process
// collectors, the registry /metrics serves.
func NewRegistry(c *Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
