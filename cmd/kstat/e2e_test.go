package main

// The golden end-to-end test: the daemon on the /proc and /sys fixtures of
// testdata/e2e, scraped over TCP; the exposition, without the series that
// differ from run to run, must equal testdata/e2e/metrics.golden.
// go test ./cmd/kstat -run TestE2EGolden -update rewrites the file.

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/kstat/kstat/internal/testutil"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/e2e/metrics.golden from the daemon's scrape")

// volatile lists the metric name prefixes the golden file leaves out:
// the Go runtime and the process (they describe the test's daemon), the
// daemon's own self/ source, how long collectors took, and the build; and
// the sources of the BPF features, loaded but not attached here, whose
// zeros the fixtures do not drive (their own tests cover them).
var volatile = []string{
	"go_", "process_", "promhttp_",
	"kstat_self_",
	"kstat_scrape_collector_duration_seconds",
	"kstat_build_info",
	"kstat_netout_", "kstat_tracer_",
}

// stable keeps the lines of an exposition whose metric is not volatile.
func stable(exposition string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(exposition, "\n") {
		name := line
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name = rest
		} else if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name = rest
		}
		if i := strings.IndexAny(name, " {"); i >= 0 {
			name = name[:i]
		}
		keep := true
		for _, p := range volatile {
			if strings.HasPrefix(name, p) {
				keep = false
			}
		}
		if keep {
			b.WriteString(line)
		}
	}
	return b.String()
}

func TestE2EGolden(t *testing.T) {
	fixture := testutil.Fixture(t, "e2e")
	_, base := startHTTPDaemon(t,
		"--proc", fixture+"/proc", "--sys", fixture+"/sys", "--collector.slabinfo")
	text, mfs := scrapeMetrics(t, base)
	got := stable(text)
	golden := testutil.Fixture(t, "e2e", "metrics.golden")
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("the scrape differs from %s (run with -update after checking the change):\n%s", golden, lineDiff(string(want), got))
	}
	// The fixture's numbers, read straight from the fixture files.
	if v := mustSeries(t, mfs, "kstat_memory_total_bytes"); uint64(v) != procField(t, fixture+"/proc/meminfo", "MemTotal")*1024 {
		t.Errorf("kstat_memory_total_bytes %v is not the fixture's MemTotal", v)
	}
	// A second scrape of unchanged fixtures gives the same text.
	text2, _ := scrapeMetrics(t, base)
	if stable(text2) != got {
		t.Errorf("two scrapes of the same fixtures differ:\n%s", lineDiff(got, stable(text2)))
	}
}

// lineDiff lists the lines only in want (-) or only in got (+).
func lineDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}
