package export

import (
	"cmp"
	"errors"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
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
