package otlp

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// seriesKey names one data point: its metric and its attributes.
type seriesKey struct {
	name  string
	attrs attribute.Distinct
}

// point is a cumulative reading at a time.
type point struct {
	t       time.Time
	value   float64  // a sum's value, a histogram's sum
	count   uint64   // a histogram's count
	buckets []uint64 // a histogram's bucket counts
}

// deltaProducer turns the cumulative sums and histograms of the
// Prometheus bridge into deltas against the last successful push: each
// Produce keeps its readings as pending, and commit (called after the
// push succeeded) makes them the baseline. A failed push therefore loses
// nothing: the next one carries the change since the last success. A
// series that went down (a counter cleared or the kernel's reset) starts
// again from its new value. Gauges and summaries pass unchanged.
type deltaProducer struct {
	inner sdkmetric.Producer

	mu      sync.Mutex
	last    map[seriesKey]point
	pending map[seriesKey]point
}

func newDeltaProducer(inner sdkmetric.Producer) *deltaProducer {
	return &deltaProducer{inner: inner, last: map[seriesKey]point{}}
}

func (d *deltaProducer) commit() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending != nil {
		d.last, d.pending = d.pending, nil
	}
}

// Produce returns the inner producer's metrics with deltas.
func (d *deltaProducer) Produce(ctx context.Context) ([]metricdata.ScopeMetrics, error) {
	sms, err := d.inner.Produce(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	pending := make(map[seriesKey]point, len(d.last))
	for i := range sms {
		for j := range sms[i].Metrics {
			m := &sms[i].Metrics[j]
			switch data := m.Data.(type) {
			case metricdata.Sum[float64]:
				if data.Temporality == metricdata.CumulativeTemporality && data.IsMonotonic {
					data.Temporality = metricdata.DeltaTemporality
					for k := range data.DataPoints {
						d.sumDelta(m.Name, &data.DataPoints[k], pending)
					}
					m.Data = data
				}
			case metricdata.Histogram[float64]:
				if data.Temporality == metricdata.CumulativeTemporality {
					data.Temporality = metricdata.DeltaTemporality
					for k := range data.DataPoints {
						d.histDelta(m.Name, &data.DataPoints[k], pending)
					}
					m.Data = data
				}
			}
		}
	}
	d.pending = pending
	return sms, err
}

func (d *deltaProducer) sumDelta(name string, dp *metricdata.DataPoint[float64], pending map[seriesKey]point) {
	key := seriesKey{name, dp.Attributes.Equivalent()}
	now := point{t: dp.Time, value: dp.Value}
	pending[key] = now
	if prev, ok := d.last[key]; ok && dp.Value >= prev.value {
		dp.Value -= prev.value
		dp.StartTime = prev.t
	}
}

func (d *deltaProducer) histDelta(name string, dp *metricdata.HistogramDataPoint[float64], pending map[seriesKey]point) {
	key := seriesKey{name, dp.Attributes.Equivalent()}
	pending[key] = point{t: dp.Time, value: dp.Sum, count: dp.Count, buckets: append([]uint64(nil), dp.BucketCounts...)}
	prev, ok := d.last[key]
	if !ok || dp.Count < prev.count || len(prev.buckets) != len(dp.BucketCounts) {
		return
	}
	for i := range dp.BucketCounts {
		if dp.BucketCounts[i] < prev.buckets[i] {
			return // a reset: send the whole new histogram
		}
	}
	for i := range dp.BucketCounts {
		dp.BucketCounts[i] -= prev.buckets[i]
	}
	dp.Count -= prev.count
	dp.Sum -= prev.value
	dp.StartTime = prev.t
	// Min and max are of the whole run, not of the interval: drop them.
	dp.Min, dp.Max = metricdata.Extrema[float64]{}, metricdata.Extrema[float64]{}
}
