package main

import (
	"fmt"

	"github.com/kstat/kstat/internal/collector"
)

// bpfCollectors are the collectors the BPF features (serve_kstat.go,
// serve_tracer.go, serve_telemetry.go) build themselves, since they come
// with knobs and programs; they are selected by the same
// --collector.NAME flags as the registered /proc collectors.
var bpfCollectors = []collector.Info{
	{Name: "kstat", Default: true, Help: "KSTAT: outgoing packets counted by an eBPF netfilter program into kstat/ (attached by kstat/start)"},
	{Name: "tracer", Default: true, Help: "per-process kernel allocations, locks, forks and exits by eBPF into tracer/ (attached by tracer/enable)"},
	{Name: "irqcount", Default: true, Help: "eBPF counts of IRQ and softirq handler entries beside /proc's, in irq/*/ and softirq/*/, and the programs' own cost in irqcount/programs/"},
}

// buildCollectors makes the registered collectors the flags select and
// attaches them to the daemon's tree.
func buildCollectors(d *daemon, sel *collector.Selection) error {
	if err := sel.Check(); err != nil {
		return err
	}
	d.selection = sel
	d.collectors.Timeout = sel.Timeout
	if err := d.collectors.Build(collector.Config{Paths: d.paths, Root: d.root}, sel.Enabled); err != nil {
		return fmt.Errorf("building the collectors: %w", err)
	}
	return nil
}

// collectorOn reports whether the flags enable the collector called name.
func (d *daemon) collectorOn(name string) bool {
	return d.selection == nil || d.selection.Enabled(name)
}
