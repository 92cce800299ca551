package telemetry

// Collectors are the registered collectors whose values a snapshot reads:
// system/ (uptime, stat, loadavg), irq/ (interrupts), softirq/ (softirqs)
// and memory/ (meminfo). A view that samples builds them from the
// collector registry (collector.Registry.Build with collector.Only).
var Collectors = []string{"uptime", "stat", "loadavg", "interrupts", "softirqs", "meminfo"}
