package telemetry

import "github.com/kstat/kstat/internal/collector"

// Collectors are the registered collectors whose values a snapshot reads:
// system/ (uptime, stat, loadavg), irq/ (interrupts), softirq/ (softirqs)
// and memory/ (meminfo). A view that samples builds them from the
// collector registry (collector.Registry.Build with collector.Only).
var Collectors = []string{
	collector.NameUptime, collector.NameStat, collector.NameLoadavg,
	collector.NameInterrupts, collector.NameSoftirqs, collector.NameMeminfo,
}

// The daemon's telemetry/ directory and its control file with the ring's
// text; the daemon makes them with these names and clients read the ring
// through them.
const (
	Dir              = "telemetry"
	ControlSnapshots = "snapshots"
)
