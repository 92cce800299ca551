package export

import (
	"cmp"
	"errors"
	"runtime"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
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
	mfs = append(mfs, c.extraFamilies(pidsDropped, duplicates)...)
	slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return mfs, nil
}

// extraFamilies are the families of Collector.extras, built directly:
// a registry of their own would cost more than the rest of the scrape's
// families.
func (c *Collector) extraFamilies(pidsDropped, duplicates int) []*dto.MetricFamily {
	ns := c.opts.Namespace
	gauge, counter := dto.MetricType_GAUGE, dto.MetricType_COUNTER
	fam := func(name, help string, t dto.MetricType) *dto.MetricFamily {
		return &dto.MetricFamily{Name: proto.String(ns + name), Help: proto.String(help), Type: t.Enum()}
	}
	label := func(name, value string) *dto.LabelPair {
		return &dto.LabelPair{Name: proto.String(name), Value: proto.String(value)}
	}
	var out []*dto.MetricFamily
	if c.opts.Collectors != nil {
		dur := fam("_scrape_collector_duration_seconds", helpDuration, gauge)
		succ := fam("_scrape_collector_success", helpSuccess, gauge)
		skip := fam("_scrape_collector_skipped_lines_total", helpSkipped, counter)
		for _, col := range c.opts.Collectors.All() {
			st := col.Status()
			ok := 0.0
			if st.Err == nil {
				ok = 1
			}
			lp := []*dto.LabelPair{label("collector", st.Name)}
			dur.Metric = append(dur.Metric, &dto.Metric{Label: lp, Gauge: &dto.Gauge{Value: proto.Float64(st.Duration.Seconds())}})
			succ.Metric = append(succ.Metric, &dto.Metric{Label: lp, Gauge: &dto.Gauge{Value: proto.Float64(ok)}})
			skip.Metric = append(skip.Metric, &dto.Metric{Label: lp, Counter: &dto.Counter{Value: proto.Float64(float64(st.SkippedLines))}})
		}
		for _, f := range []*dto.MetricFamily{dur, succ, skip} {
			if len(f.Metric) > 0 {
				slices.SortFunc(f.Metric, compareLabels)
				out = append(out, f)
			}
		}
	}
	build := fam("_build_info", helpBuild, gauge)
	build.Metric = []*dto.Metric{{
		Label: []*dto.LabelPair{label("commit", c.opts.Commit), label("goversion", runtime.Version()), label("version", c.opts.Version)},
		Gauge: &dto.Gauge{Value: proto.Float64(1)},
	}}
	pids := fam("_exporter_pids_dropped", helpPidsDropped, gauge)
	pids.Metric = []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(float64(pidsDropped))}}}
	series := fam("_exporter_series_dropped", helpSeriesDropped, gauge)
	series.Metric = []*dto.Metric{
		{Label: []*dto.LabelPair{label("reason", "conflict")}, Gauge: &dto.Gauge{Value: proto.Float64(float64(c.conflicts))}},
		{Label: []*dto.LabelPair{label("reason", "duplicate")}, Gauge: &dto.Gauge{Value: proto.Float64(float64(duplicates))}},
	}
	return append(out, build, pids, series)
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

// NewGatherer returns what /metrics serves: c's families, gathered
// directly, merged with those of the Go runtime and process collectors.
func NewGatherer(c *Collector) prometheus.Gatherer {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		// The registry's collectors read /proc/self while c reads the
		// tree: on two CPUs the scrape takes the longer of the two, not
		// their sum.
		var theirs []*dto.MetricFamily
		var err2 error
		done := make(chan struct{})
		go func() {
			defer close(done)
			theirs, err2 = reg.Gather()
		}()
		mine, err := c.Gather()
		<-done
		mfs := append(mine, theirs...)
		slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
		return mfs, errors.Join(err, err2)
	})
}
