package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kstat/kstat/internal/promtest"
)

// TestOTLPPushToPrometheus pushes kstat's metrics over OTLP to a real
// Prometheus 3 (its OTLP receiver, names kept as they are) that also
// scrapes the same daemon's /metrics: the pushed memory total equals
// /proc/meminfo's, a pushed counter's rate is positive, and both ways in
// give the same metric names.
func TestOTLPPushToPrometheus(t *testing.T) {
	kstatAddr := fmt.Sprintf("127.0.0.1:%d", promtest.FreePort(t))
	prom := promtest.Start(t, `
global:
  scrape_interval: 1s
otlp:
  translation_strategy: NoTranslation
scrape_configs:
  - job_name: kstat-scrape
    static_configs:
      - targets: ["`+kstatAddr+`"]
`, "--web.enable-otlp-receiver")
	d := startDaemon(t, "--listen", kstatAddr,
		"--otlp.endpoint", prom.URL+"/api/v1/otlp/v1/metrics",
		"--otlp.interval", "1s",
		"--otlp.resource-attributes", "service.instance.id=kstat-test")

	// The pushed series: job is service.name, instance service.instance.id.
	const pushed = `{job="kstat",instance="kstat-test"}`
	memTotal := procField(t, "/proc/meminfo", "MemTotal") * 1024
	got := prom.WaitQuery(t, `kstat_memory_total_bytes`+pushed, 30*time.Second)
	if len(got) != 1 || got[0].Value != float64(memTotal) {
		t.Errorf("pushed kstat_memory_total_bytes = %v, /proc/meminfo MemTotal×1024 = %d", got, memTotal)
	}
	rate := prom.WaitQuery(t, `rate(kstat_system_context_switches_total`+pushed+`[10s]) > 0`, 30*time.Second)
	t.Logf("pushed: kstat_memory_total_bytes = %.0f; rate(kstat_system_context_switches_total[10s]) = %.1f/s", got[0].Value, rate[0].Value)

	// Prometheus's own series of each way in, not kstat's.
	own := func(name string) bool {
		return name == "up" || name == "target_info" || strings.HasPrefix(name, "scrape_")
	}
	names := func(match string) []string {
		all, err := prom.Names(match)
		if err != nil {
			t.Fatal(err)
		}
		return slices.DeleteFunc(all, own)
	}
	var viaOTLP, viaScrape []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		viaOTLP, viaScrape = names(pushed), names(`{job="kstat-scrape"}`)
		if len(viaOTLP) > 0 && slices.Equal(viaOTLP, viaScrape) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric names differ:\nonly pushed: %v\nonly scraped: %v", minus(viaOTLP, viaScrape), minus(viaScrape, viaOTLP))
		}
		time.Sleep(time.Second)
	}
	t.Logf("%d metric names, the same pushed and scraped", len(viaOTLP))
	if n := kstatRead(t, d.Path("otlp/pushes")); n == 0 {
		t.Errorf("otlp/pushes = 0 after pushes Prometheus stored")
	}
}

// minus is the names of a that b lacks.
func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}
