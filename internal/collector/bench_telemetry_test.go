package collector_test

import (
	"testing"

	"github.com/kstat/kstat/internal/collector"
)

// BenchmarkTelemetryCollectors is the per-scrape work of the telemetry
// collectors on this machine's /proc: "parse" parses one read of the file,
// "read+parse" reads it with collector.ReadFile into a reused buffer and
// parses it, as each collector's refresh does.
func BenchmarkTelemetryCollectors(b *testing.B) {
	parsers := []struct {
		name, path string
		parse      func([]byte) error
	}{
		{"interrupts", "/proc/interrupts", func(p []byte) error { _, err := collector.ParseInterrupts(p); return err }},
		{"softirqs", "/proc/softirqs", func(p []byte) error { _, err := collector.ParseSoftirqs(p); return err }},
		{"stat", "/proc/stat", func(p []byte) error { _, err := collector.ParseStat(p); return err }},
		{"uptime", "/proc/uptime", func(p []byte) error { _, err := collector.ParseUptime(p); return err }},
		{"loadavg", "/proc/loadavg", func(p []byte) error { _, err := collector.ParseLoadavg(p); return err }},
	}
	for _, p := range parsers {
		content, err := collector.ReadFile(p.path, nil)
		if err != nil {
			b.Fatalf("%s: %v", p.path, err)
		}
		b.Run(p.name+"/parse", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := p.parse(content); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(p.name+"/read+parse", func(b *testing.B) {
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = collector.ReadFile(p.path, buf); err != nil {
					b.Fatal(err)
				}
				if err := p.parse(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
