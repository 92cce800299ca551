package export

import (
	"cmp"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/kstat/kstat/internal/collector"
)

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

// Gather reads the tree once and returns its metric families, and those
// of Collect's other metrics, sorted as a prometheus.Registry sorts them.
// It builds the families directly, without the registry's channel and
// consistency checks, which the Collector's own uniqueness makes moot.
// The families are the caller's to keep (label pairs are shared with
// later scrapes and must not be changed).
func (c *Collector) Gather() ([]*dto.MetricFamily, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b familyBuf
	return c.buildFamilies(&b), nil
}

// gatherReused is Gather building the families in buffers the Collector
// reuses: the families are valid, and other scrapes wait, until done is
// called.
func (c *Collector) gatherReused() (mfs []*dto.MetricFamily, done func()) {
	c.mu.Lock()
	return c.buildFamilies(&c.buf), c.mu.Unlock
}

// familyBuf holds the families of one scrape: families, metrics and
// values, reused from scrape to scrape when the buffer is.
type familyBuf struct {
	pool []*dto.MetricFamily // families, the first used of them in use
	used int
	out  []*dto.MetricFamily
	ms   []dto.Metric // one per metric, with its value and counter or gauge
	cs   []dto.Counter
	gs   []dto.Gauge
	vals []float64
	next int // the first unused of ms
}

// The metric types families point to.
var (
	gaugeType   = dto.MetricType_GAUGE
	counterType = dto.MetricType_COUNTER
)

// reset readies b for a scrape of n metrics at most.
func (b *familyBuf) reset(n int) {
	b.used, b.next, b.out = 0, 0, b.out[:0]
	if cap(b.ms) < n {
		if b.ms != nil { // a reused buffer: room for growth
			n += n / 4
		}
		b.ms, b.cs, b.gs, b.vals = make([]dto.Metric, n), make([]dto.Counter, n), make([]dto.Gauge, n), make([]float64, n)
	}
}

// family returns an empty family named name, added to b.out.
func (b *familyBuf) family(name, help *string, counter bool) *dto.MetricFamily {
	if b.used == len(b.pool) {
		b.pool = append(b.pool, &dto.MetricFamily{})
	}
	mf := b.pool[b.used]
	b.used++
	typ := &gaugeType
	if counter {
		typ = &counterType
	}
	*mf = dto.MetricFamily{Name: name, Help: help, Type: typ, Metric: mf.Metric[:0]}
	b.out = append(b.out, mf)
	return mf
}

// add appends a metric of labels and value to mf.
func (b *familyBuf) add(mf *dto.MetricFamily, labels []*dto.LabelPair, value float64) {
	i := b.next
	b.next++
	b.vals[i] = value
	m := &b.ms[i]
	*m = dto.Metric{Label: labels}
	if mf.GetType() == dto.MetricType_COUNTER {
		b.cs[i] = dto.Counter{Value: &b.vals[i]}
		m.Counter = &b.cs[i]
	} else {
		b.gs[i] = dto.Gauge{Value: &b.vals[i]}
		m.Gauge = &b.gs[i]
	}
	mf.Metric = append(mf.Metric, m)
}

// buildFamilies scrapes the tree and builds its families and the extras' in b,
// sorted by name; c.mu is held.
func (c *Collector) buildFamilies(b *familyBuf) []*dto.MetricFamily {
	kept, _, pidsDropped, duplicates := c.scrape()
	var cols []collector.Collector
	if c.opts.Collectors != nil {
		cols = c.opts.Collectors.All()
	}
	b.reset(len(kept) + 3*len(cols) + 4)
	c.built++
	for _, s := range kept {
		f := s.ve.fam
		if f.built != c.built {
			f.built, f.mf = c.built, b.family(&f.name, &f.help, f.counter)
		}
		b.add(f.mf, s.ve.pairs, s.value)
	}
	for _, mf := range b.out {
		slices.SortFunc(mf.Metric, compareLabels)
	}
	c.extraFamilies(b, cols, pidsDropped, duplicates)
	slices.SortFunc(b.out, compareNames)
	return b.out
}

// compareNames orders families by name.
func compareNames(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) }

// extraFamilies adds the families of Collector.extras to b, built
// directly: a registry of their own would cost more than the rest of the
// scrape's families.
func (c *Collector) extraFamilies(b *familyBuf, cols []collector.Collector, pidsDropped, duplicates int) {
	x := &c.extra
	if len(cols) > 0 {
		dur := b.family(&x.names[extraDuration], &x.help[extraDuration], false)
		succ := b.family(&x.names[extraSuccess], &x.help[extraSuccess], false)
		skip := b.family(&x.names[extraSkipped], &x.help[extraSkipped], true)
		for _, col := range cols {
			st := col.Status()
			ok := 0.0
			if st.Err == nil {
				ok = 1
			}
			lp := c.labelPair("collector", st.Name)
			b.add(dur, lp, st.Duration.Seconds())
			b.add(succ, lp, ok)
			b.add(skip, lp, float64(st.SkippedLines))
		}
		for _, f := range []*dto.MetricFamily{dur, succ, skip} {
			slices.SortFunc(f.Metric, compareLabels)
		}
	}
	b.add(b.family(&x.names[extraBuild], &x.help[extraBuild], false), x.buildLabels, 1)
	b.add(b.family(&x.names[extraPids], &x.help[extraPids], false), nil, float64(pidsDropped))
	series := b.family(&x.names[extraSeries], &x.help[extraSeries], false)
	b.add(series, c.labelPair("reason", "conflict"), float64(c.conflicts))
	b.add(series, c.labelPair("reason", "duplicate"), float64(duplicates))
}

// labelPair returns the label pairs of one label, made once.
func (c *Collector) labelPair(name, value string) []*dto.LabelPair {
	key := [2]string{name, value}
	lp := c.extra.labels[key]
	if lp == nil {
		lp = []*dto.LabelPair{{Name: proto.String(name), Value: proto.String(value)}}
		c.extra.labels[key] = lp
	}
	return lp
}

// The extras' families, in extraFams.names and help.
const (
	extraDuration = iota
	extraSuccess
	extraSkipped
	extraBuild
	extraPids
	extraSeries
	numExtras
)

// extraFams are the names, help texts and label pairs of the extras,
// made once.
type extraFams struct {
	names, help [numExtras]string
	buildLabels []*dto.LabelPair
	labels      map[[2]string][]*dto.LabelPair
}

func newExtraFams(opts Options) extraFams {
	ns := opts.Namespace
	label := func(name, value string) *dto.LabelPair {
		return &dto.LabelPair{Name: proto.String(name), Value: proto.String(value)}
	}
	return extraFams{
		names: [numExtras]string{ns + "_scrape_collector_duration_seconds", ns + "_scrape_collector_success",
			ns + "_scrape_collector_skipped_lines_total", ns + "_build_info", ns + "_exporter_pids_dropped", ns + "_exporter_series_dropped"},
		help:        [numExtras]string{helpDuration, helpSuccess, helpSkipped, helpBuild, helpPidsDropped, helpSeriesDropped},
		buildLabels: []*dto.LabelPair{label("commit", opts.Commit), label("goversion", runtime.Version()), label("version", opts.Version)},
		labels:      map[[2]string][]*dto.LabelPair{},
	}
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

// Gatherer is what /metrics serves: a Collector's families, gathered
// directly, merged with those of the Go runtime and process collectors,
// which it gathers at the same time.
type Gatherer struct {
	c   *Collector
	reg *prometheus.Registry

	mu  sync.Mutex // one transactional scrape at a time; guards out
	out []*dto.MetricFamily
}

// NewGatherer returns the Gatherer of c.
func NewGatherer(c *Collector) *Gatherer {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		newProcessCollector("/proc"))
	return &Gatherer{c: c, reg: reg}
}

// gather gathers the registry's families while mine runs: on two CPUs
// the scrape takes the longer of the two, not their sum.
func (g *Gatherer) gather(mine func() []*dto.MetricFamily) (kstat, theirs []*dto.MetricFamily, err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		theirs, err = g.reg.Gather()
	}()
	kstat = mine()
	<-done
	return kstat, theirs, err
}

// Gather implements prometheus.Gatherer: families the caller may keep
// (OTLP's exporter does), sorted by name.
func (g *Gatherer) Gather() ([]*dto.MetricFamily, error) {
	mine, theirs, err := g.gather(func() []*dto.MetricFamily {
		mfs, _ := g.c.Gather()
		return mfs
	})
	mfs := append(mine, theirs...)
	slices.SortFunc(mfs, compareNames)
	return mfs, err
}

// Transactional returns the gatherer /metrics uses: its families are
// built in buffers the Collector reuses, valid until the done function
// it returns is called (which lets the next scrape start).
func (g *Gatherer) Transactional() prometheus.TransactionalGatherer {
	return transactional{g}
}

type transactional struct{ g *Gatherer }

// Gather gathers into the reused buffers; done releases them.
func (t transactional) Gather() ([]*dto.MetricFamily, func(), error) {
	g := t.g
	g.mu.Lock()
	var release func()
	mine, theirs, err := g.gather(func() []*dto.MetricFamily {
		var mfs []*dto.MetricFamily
		mfs, release = g.c.gatherReused()
		return mfs
	})
	g.out = append(append(g.out[:0], mine...), theirs...)
	slices.SortFunc(g.out, compareNames)
	return g.out, func() {
		release()
		g.mu.Unlock()
	}, err
}
