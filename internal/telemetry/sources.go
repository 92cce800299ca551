package telemetry

import (
	"errors"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/statsfs"
)

// Sources are the collectors of the values a snapshot reads, except
// memory/, which the meminfo collector fills.
type Sources struct {
	Interrupts *collector.Lines // irq/
	Softirqs   *collector.Lines // softirq/
}

// AddSources adds system/ (the uptime, stat and loadavg collectors), irq/
// (interrupts) and softirq/ (softirqs) under root, each collector added to
// reg. A collector that cannot read its file is still added, with its
// error in its Status; the returned error joins those errors.
func AddSources(root *statsfs.Source, p collector.Paths, reg *collector.Registry) (*Sources, error) {
	var errs []error
	sys := collector.Child(root, "system")
	for _, add := range []func(collector.Paths, *statsfs.Source) (*collector.Refresher, error){
		collector.NewUptime, collector.NewStat, collector.NewLoadavg,
	} {
		r, err := add(p, sys)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		reg.Add(r)
		if err := r.Refresh(); err != nil {
			errs = append(errs, err)
		}
	}
	var s Sources
	var err error
	if s.Interrupts, err = collector.NewInterrupts(p, collector.Child(root, "irq")); s.Interrupts != nil {
		reg.Add(s.Interrupts)
	}
	errs = append(errs, err)
	if s.Softirqs, err = collector.NewSoftirqs(p, collector.Child(root, "softirq")); s.Softirqs != nil {
		reg.Add(s.Softirqs)
	}
	errs = append(errs, err)
	return &s, errors.Join(errs...)
}
