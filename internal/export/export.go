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
//
// Collector.Gather makes the same families without a registry; NewGatherer
// adds the Go and process collectors to it, for /metrics. Files: export.go
// (options, Collector, extras), scrape.go (the walk and its caches, the
// budget, labels), gather.go (metrics and families), name.go (names).
package export

import (
	"hash/maphash"
	"runtime"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

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
	// SeriesLabels name controls of instance sources whose text labels
	// every series of the source (bounded to MaxLabelLen bytes); nil:
	// DefaultSeriesLabels.
	SeriesLabels []string
}

// DefaultSeriesLabels labels per-process series with the command name.
var DefaultSeriesLabels = []string{"comm"}

// componentNames rename a top-level directory in metric names: KSTAT's
// kstat/ would otherwise give kstat_kstat_….
var componentNames = map[string]string{"kstat": "netout"}

// Collector is a prometheus.Collector over a statsfs tree. It is unchecked
// (Describe sends nothing) because the tree's shape changes at run time.
// Scrapes are serialised: the name and descriptor caches are per Collector.
type Collector struct {
	root *statsfs.Source
	opts Options

	durationDesc, successDesc, buildDesc *prometheus.Desc
	skippedDesc                          *prometheus.Desc
	pidsDroppedDesc, seriesDroppedDesc   *prometheus.Desc
	build                                prometheus.Metric

	mu        sync.Mutex // one scrape at a time; guards everything below
	gen       uint64     // scrape number, marks cache entries in use
	sources   map[*statsfs.Source]*sourceEntry
	families  map[string]*family
	ancestors []frame            // the walk's current chain of sources
	series    []series           // this scrape's readings, reused
	activity  []pidScore         // per pid activity, reused
	order     []int              // the budget's order of activity, reused
	refs      []statsfs.ValueRef // the values of the source being read, reused
	pidIndex  map[string]int
	seen      map[uint64]struct{} // hashes of this scrape's series
	seed      maphash.Seed
	conflicts int             // this scrape's series dropped as conflicts
	reserved  map[string]bool // names of the extras (see Collector.extras)
	extra     extraFams       // the extras' families' parts, made once
	built     uint64          // families' builds, marks family.mf
	buf       familyBuf       // the families of transactional scrapes
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
	// The controls of Options.SeriesLabels the source has: their labels
	// are the last ones of labelNames.
	controlLabels []string
	// The source's info series (nil without Info values): its labels
	// are labelNames then one per Info value; infoBuilt is the values
	// its label pairs were last built with.
	info                             *valueEntry
	infoNames, infoValues, infoBuilt []string
}

// valueEntry is one value of a source as exported.
type valueEntry struct {
	v         *statsfs.Value
	aggregate bool
	fam       *family
	conflict  bool // the family has the other metric type: dropped
	infoIndex int  // for an Info value, its label's index in infoNames
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
	// helpOfInstance: help is that of an instance's value; a total's
	// help (which the family does not export) gives way to it.
	helpOfInstance bool
	labels         []string // union of label names seen this scrape
	// mf is the family's metric family in the build built (see
	// Collector.buildFamilies).
	built   uint64
	mf      *dto.MetricFamily
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
	info  bool // the source's info series
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
	if opts.SeriesLabels == nil {
		opts.SeriesLabels = DefaultSeriesLabels
	}
	ns := opts.Namespace
	c := &Collector{
		root:              root,
		opts:              opts,
		durationDesc:      prometheus.NewDesc(ns+"_scrape_collector_duration_seconds", helpDuration, []string{"collector"}, nil),
		successDesc:       prometheus.NewDesc(ns+"_scrape_collector_success", helpSuccess, []string{"collector"}, nil),
		skippedDesc:       prometheus.NewDesc(ns+"_scrape_collector_skipped_lines_total", helpSkipped, []string{"collector"}, nil),
		buildDesc:         prometheus.NewDesc(ns+"_build_info", helpBuild, []string{"version", "commit", "goversion"}, nil),
		pidsDroppedDesc:   prometheus.NewDesc(ns+"_exporter_pids_dropped", helpPidsDropped, nil, nil),
		seriesDroppedDesc: prometheus.NewDesc(ns+"_exporter_series_dropped", helpSeriesDropped, []string{"reason"}, nil),
		sources:           map[*statsfs.Source]*sourceEntry{},
		families:          map[string]*family{},
		pidIndex:          map[string]int{},
		seen:              map[uint64]struct{}{},
		seed:              maphash.MakeSeed(),
		extra:             newExtraFams(opts),
	}
	// The tree's values never take the names of the extras.
	c.reserved = map[string]bool{}
	for _, n := range []string{"_scrape_collector_duration_seconds", "_scrape_collector_success", "_scrape_collector_skipped_lines_total", "_build_info", "_exporter_pids_dropped", "_exporter_series_dropped"} {
		c.reserved[ns+n] = true
	}
	c.build = prometheus.MustNewConstMetric(c.buildDesc, prometheus.GaugeValue, 1,
		opts.Version, opts.Commit, runtime.Version())
	return c
}

// The HELP texts of the extras.
const (
	helpDuration      = "How long the collector's last read of its kernel files took."
	helpSuccess       = "Whether the collector's last read succeeded (1) or failed or timed out (0)."
	helpSkipped       = "Lines of its kernel files the collector could not parse and skipped (their values are absent), since the daemon started."
	helpBuild         = "kstat's version, commit and Go version; the value is always 1."
	helpPidsDropped   = "Pids whose series this scrape left out to keep within the pid budget (--metrics-max-pids)."
	helpSeriesDropped = "Series this scrape left out: duplicate (same name and labels as an earlier one) or conflict (same name as a family of the other metric type, or as one of kstat's own metrics)."
)

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
				prometheus.MustNewConstMetric(c.successDesc, prometheus.GaugeValue, ok, st.Name),
				prometheus.MustNewConstMetric(c.skippedDesc, prometheus.CounterValue, float64(st.SkippedLines), st.Name))
		}
	}
	return append(out, c.build,
		prometheus.MustNewConstMetric(c.pidsDroppedDesc, prometheus.GaugeValue, float64(pidsDropped)),
		prometheus.MustNewConstMetric(c.seriesDroppedDesc, prometheus.GaugeValue, float64(duplicates), "duplicate"),
		prometheus.MustNewConstMetric(c.seriesDroppedDesc, prometheus.GaugeValue, float64(c.conflicts), "conflict"))
}
