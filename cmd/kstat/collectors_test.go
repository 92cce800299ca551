package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kstat/kstat/internal/testutil"
)

// TestCollectorFlags: a collector disabled by flag has no series and no
// source in the mount; the others, and one enabled by flag, do.
func TestCollectorFlags(t *testing.T) {
	d, base := startHTTPDaemon(t, "--no-collector.netdev", "--no-collector.tracer", "--collector.slabinfo")
	_, mfs := scrapeMetrics(t, base)
	for name := range mfs {
		if strings.HasPrefix(name, "kstat_net_dev_") || strings.HasPrefix(name, "kstat_tracer_") {
			t.Errorf("%s exported with its collector disabled", name)
		}
	}
	mustSeries(t, mfs, "kstat_scrape_collector_success", "collector=meminfo")
	mustSeries(t, mfs, "kstat_scrape_collector_success", "collector=slabinfo")
	if _, ok := series(mfs, "kstat_scrape_collector_success", "collector=netdev"); ok {
		t.Error("a status for the disabled netdev collector")
	}
	if _, ok := mfs["kstat_memory_total_bytes"]; !ok {
		t.Error("no kstat_memory_total_bytes: meminfo is on by default")
	}
	for _, p := range []string{"net/dev", "tracer"} {
		if _, err := os.Stat(d.Path(p)); !os.IsNotExist(err) {
			t.Errorf("%s in the mount with its collector disabled (stat: %v)", p, err)
		}
	}
	for _, p := range []string{"mm/slabinfo", "memory/total", "net/sockets_used"} {
		if _, err := os.Stat(d.Path(p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}

	// --collector.disable-defaults keeps only what is named.
	_, base = startHTTPDaemon(t, "--collector.disable-defaults", "--collector.meminfo")
	_, mfs = scrapeMetrics(t, base)
	if _, ok := series(mfs, "kstat_scrape_collector_success", "collector=stat"); ok {
		t.Error("stat collector built with --collector.disable-defaults")
	}
	mustSeries(t, mfs, "kstat_scrape_collector_success", "collector=meminfo")
}

// TestCollectorTimeout puts a FIFO that no one writes in place of
// /proc/loadavg (on a copy of the e2e fixtures): the scrape completes
// within the collector timeout, loadavg is reported failed, and the other
// collectors' values are there.
func TestCollectorTimeout(t *testing.T) {
	fixture := testutil.Fixture(t, "e2e")
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(fixture)); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "proc", "loadavg")
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	_, base := startHTTPDaemon(t, "--proc", filepath.Join(dir, "proc"), "--sys", filepath.Join(dir, "sys"),
		"--collector.timeout", "500ms", "--no-collector.kstat", "--no-collector.tracer")
	for i := range 2 {
		start := time.Now()
		_, mfs := scrapeMetrics(t, base)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("scrape %d took %v with --collector.timeout 500ms", i, d)
		}
		if v := mustSeries(t, mfs, "kstat_scrape_collector_success", "collector=loadavg"); v != 0 {
			t.Errorf("scrape %d: loadavg success %v, want 0", i, v)
		}
		if v := mustSeries(t, mfs, "kstat_scrape_collector_success", "collector=meminfo"); v != 1 {
			t.Errorf("scrape %d: meminfo success %v, want 1", i, v)
		}
		if v := mustSeries(t, mfs, "kstat_memory_total_bytes"); uint64(v) != procField(t, filepath.Join(dir, "proc", "meminfo"), "MemTotal")*1024 {
			t.Errorf("scrape %d: kstat_memory_total_bytes %v is not the fixture's", i, v)
		}
	}
}
