package otlp

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/kstat/kstat/statsfs"
)

// The values of the otlp/ source, in sourceTable's order.
const (
	valPushes = iota
	valFailures
	valSkipped
	valBackoff
)

var sourceTable = statsfs.NewTable(
	statsfs.Value{Name: "pushes", Help: "OTLP pushes the receiver accepted", Type: statsfs.U64, ReadOnly: true},
	statsfs.Value{Name: "push_failures", Help: "OTLP pushes that failed (receiver unreachable, refused, timed out)", Type: statsfs.U64, ReadOnly: true},
	statsfs.Value{Name: "pushes_skipped", Help: "OTLP pushes not attempted while backing off after failures", Type: statsfs.U64, ReadOnly: true},
	statsfs.Value{Name: "backoff", Help: "Current wait between OTLP push attempts after failures (0 when pushes succeed)", Type: statsfs.F64, Unit: "seconds", Flag: statsfs.Floating},
)

// exporter wraps the SDK's OTLP exporter: it counts pushes and failures,
// logs failures with back-off (the first, then each time the count of
// consecutive failures doubles), and after failures skips attempts until
// a back-off that doubles from the interval up to MaxBackoff has passed.
// It is the otlp/ source's record.
type exporter struct {
	sdkmetric.Exporter
	interval time.Duration
	log      *slog.Logger
	commit   func() // after a successful push (delta baselines); may be nil
	final    atomic.Bool

	pushes, failures, skipped atomic.Uint64

	mu      sync.Mutex
	streak  uint64        // consecutive failures
	backoff time.Duration // wait after the last failure
	next    time.Time     // no attempt before this
}

func newCountingExporter(inner sdkmetric.Exporter, interval time.Duration, log *slog.Logger, commit func()) *exporter {
	return &exporter{Exporter: inner, interval: interval, log: log, commit: commit}
}

// Export pushes rm unless backing off. A skipped or failed push returns
// nil to the reader: the failure is counted and logged here, and the
// reader's next collection carries the data again (cumulative) or the
// change since the last success (delta).
func (e *exporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	e.mu.Lock()
	if !e.final.Load() && time.Now().Before(e.next) {
		e.mu.Unlock()
		e.skipped.Add(1)
		return nil
	}
	e.mu.Unlock()
	err := e.Exporter.Export(ctx, rm)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.failures.Add(1)
		e.streak++
		e.backoff = min(max(2*e.backoff, e.interval), MaxBackoff)
		e.next = time.Now().Add(e.backoff - e.interval/2)
		if e.streak&(e.streak-1) == 0 { // 1, 2, 4, 8, ...
			e.log.Warn("OTLP push failed; retrying with back-off", "err", err,
				"consecutive_failures", e.streak, "next_attempt_in", e.backoff.String())
		}
		return nil
	}
	if e.streak > 0 {
		e.log.Info("OTLP push succeeded again", "after_failures", e.streak)
	}
	e.streak, e.backoff, e.next = 0, 0, time.Time{}
	e.pushes.Add(1)
	if e.commit != nil {
		e.commit()
	}
	return nil
}

// Load reads value i of the otlp/ source.
func (e *exporter) Load(i int) uint64 {
	switch i {
	case valPushes:
		return e.pushes.Load()
	case valFailures:
		return e.failures.Load()
	case valSkipped:
		return e.skipped.Load()
	case valBackoff:
		e.mu.Lock()
		defer e.mu.Unlock()
		return statsfs.FloatBits(e.backoff.Seconds())
	}
	return 0
}
