package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kstat/kstat/internal/bufstat"
	"github.com/kstat/kstat/internal/testutil"
)

// TestAbsentEverywhere runs the daemon on testdata/crafted (see its
// README): /proc files without MemAvailable, with unknown fields, truncated
// lines, numbers past 2^64 and device names with a colon, a space and
// UTF-8. The values the files give are kept, with the numbers written in
// the fixture; the ones they do not give are absent in every view: a read
// error (ENODATA) in the mount, no series in /metrics, null in the JSON
// API, "unavailable" (text) or left out (JSON) in the report. Sums over an
// absent value are absent too, and the skipped lines are counted.
func TestAbsentEverywhere(t *testing.T) {
	fixture := testutil.Fixture(t, "crafted")
	d, base := startHTTPDaemon(t, "--proc", fixture+"/proc", "--sys", fixture+"/sys", "--collector.slabinfo")

	// The mount.
	for file, want := range map[string]string{
		"memory/total":                strconv.Itoa(8000000*1024) + "\n",
		"memory/free":                 strconv.Itoa(4000000*1024) + "\n",
		"block/writeback":             strconv.Itoa(123*1024) + "\n",
		"mm/page_tables":              strconv.Itoa(20000*1024) + "\n",
		"net/dev/ibr10:30/rx_bytes":   "1000\n",
		"net/dev/ibr10:30/tx_dropped": "4\n",
		"net/dev/my dev/tx_bytes":     "888\n",
		"net/dev/wlän0/rx_packets":    "5\n",
		"net/dev/wlän0/tx_queue_len":  "1000\n",
		"net/dev/eth0/rx_bytes":       "98434861\n",
		"net/tcp_inuse":               "1\n",
		"system/context_switches":     "460767\n",
		"system/uptime_seconds":       "627.53\n",
		"system/load5":                "0.84\n",
	} {
		b, err := os.ReadFile(d.Path(file))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", file, b, err, want)
		}
	}
	absent := []string{
		"memory/available", "block/cached", "block/dirty",
		"net/dev/trunc0/rx_bytes", "net/dev/big0/rx_bytes", "net/dev/ibr10:30/tx_queue_len",
		"net/dev/rx_bytes", "net/dev/tx_packets", // sums over trunc0 and big0
		"net/tcp_mem_pages", "net/tcp_mem_bytes",
		"system/forks", "system/idle_seconds", "system/load15",
		"irq/98/count", "irq/99/count", "irq/count", "softirq/BOGUS/count", "softirq/count",
	}
	for _, file := range absent {
		if _, err := os.Stat(d.Path(file)); err != nil {
			t.Errorf("stat %s: %v (an absent value keeps its file)", file, err)
		}
		if b, err := os.ReadFile(d.Path(file)); !errors.Is(err, syscall.ENODATA) {
			t.Errorf("read %s = %q, %v; want ENODATA", file, b, err)
		}
	}

	// kstat get through the mount says so, as the API does.
	out, stderr, err := runKstat(t, "get", "--mount", d.Mount, "memory/available")
	if err != nil || out != "unavailable\n" {
		t.Errorf("kstat get memory/available = %q, %v %s; want unavailable", out, err, stderr)
	}
	out, stderr, err = runKstat(t, "get", "--json", "--mount", d.Mount, "memory/available")
	if err != nil || !strings.Contains(out, `"value": null`) {
		t.Errorf("kstat get --json memory/available = %q, %v %s; want a null value", out, err, stderr)
	}

	// /metrics.
	_, mfs := scrapeMetrics(t, base)
	golden, err := os.ReadFile(testutil.Fixture(t, "e2e", "metrics.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"kstat_memory_total_bytes", nil, 8000000 * 1024},
		{"kstat_net_dev_rx_bytes_total", []string{"device=ibr10:30"}, 1000},
		{"kstat_net_dev_tx_bytes_total", []string{"device=my dev"}, 888},
		{"kstat_net_dev_rx_packets_total", []string{"device=wlän0"}, 5},
		{"kstat_scrape_collector_success", []string{"collector=netdev"}, 1},
		{"kstat_irq_count_total", []string{"irq=24"}, 1},
		{"kstat_scrape_collector_success", []string{"collector=meminfo"}, 1},
	} {
		if v := mustSeries(t, mfs, x.name, x.labels...); v != x.want {
			t.Errorf("%s%v = %v, want %v", x.name, x.labels, v, x.want)
		}
	}
	for _, x := range []struct {
		name   string
		labels []string
	}{
		{"kstat_memory_available_bytes", nil},
		{"kstat_block_cached_bytes", nil},
		{"kstat_net_dev_rx_bytes_total", []string{"device=trunc0"}},
		{"kstat_net_dev_rx_bytes_total", []string{"device=big0"}},
		{"kstat_net_tcp_mem_bytes", nil},
		{"kstat_system_load15", nil},
		{"kstat_irq_count_total", []string{"irq=98"}},
		{"kstat_irq_count_total", []string{"irq=99"}},
	} {
		if v, ok := series(mfs, x.name, x.labels...); ok {
			t.Errorf("/metrics has %s%v = %v, want no series", x.name, x.labels, v)
		}
		// The family exists where the kernel gives the value: a renamed
		// metric must not make this check pass by itself.
		if !strings.Contains(string(golden), "\n"+x.name+" ") && !strings.Contains(string(golden), "\n"+x.name+"{") {
			t.Errorf("%s is not in testdata/e2e/metrics.golden: was it renamed?", x.name)
		}
	}
	for _, c := range []string{"meminfo", "netdev", "stat", "uptime", "loadavg", "interrupts", "softirqs"} {
		if v := mustSeries(t, mfs, "kstat_scrape_collector_skipped_lines_total", "collector="+c); v < 1 {
			t.Errorf("collector %s skipped %v lines, want at least 1", c, v)
		}
	}

	// The JSON API: null and "unavailable".
	code, body := httpDo(t, "GET", base+"/api/v1/tree/memory", "")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/tree/memory: %d %s", code, body)
	}
	var src struct {
		Values []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
			Text  string          `json:"text"`
		} `json:"values"`
	}
	if err := json.Unmarshal([]byte(body), &src); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	got := map[string]string{}
	for _, v := range src.Values {
		got[v.Name] = string(v.Value) + " " + v.Text
	}
	if got["available"] != "null unavailable" || got["total"] != "8192000000 8192000000" {
		t.Errorf("API memory values %v: want available null/unavailable, total 8192000000", got)
	}
	code, body = httpDo(t, "GET", base+"/api/v1/tree/net/dev/"+url.PathEscape("ibr10:30"), "")
	src.Values = nil
	if err := json.Unmarshal([]byte(body), &src); code != http.StatusOK || err != nil {
		t.Fatalf("GET the ibr10:30 device: %d %v %s", code, err, body)
	}
	got = map[string]string{}
	for _, v := range src.Values {
		got[v.Name] = string(v.Value)
	}
	if got["rx_bytes"] != "1000" || got["tx_queue_len"] != "null" {
		t.Errorf("API ibr10:30 values %v: want rx_bytes 1000, tx_queue_len null", got)
	}

	// The report, text and JSON.
	out, stderr, err = runKstat(t, "report", "--proc", fixture+"/proc", "--sys", fixture+"/sys")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{
		"Available memory: unavailable", "Total memory: 8000000 kB", "Cached: unavailable", "Writeback pages: 123 kB",
		"  ibr10:30: rx_buffers=10 ", "  my dev: rx_buffers=7 ", "  wlän0: rx_buffers=5 ",
		"  trunc0: rx_buffers=unavailable", "all 7 devices: rx_buffers=unavailable",
		"mem=unavailable pages", "Kernel buffers: unavailable",
		"=== Skipped Input ===", "netdev: ", "meminfo: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	out, stderr, err = runKstat(t, "report", "--json", "--proc", fixture+"/proc", "--sys", fixture+"/sys")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var rep bufstat.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Memory.Available != nil || rep.Block.Cached != nil || numOf(rep.Memory.Total) != 8000000*1024 || strings.Contains(out, "available_bytes") {
		t.Errorf("report JSON memory %+v, want available and cached left out, total kept:\n%s", rep.Memory, out)
	}
	devs := map[string]bufstat.Device{}
	for _, dev := range rep.Network.Devices {
		devs[dev.Name] = dev
	}
	if numOf(devs["ibr10:30"].RxBytes) != 1000 || numOf(devs["my dev"].TxBytes) != 888 || devs["trunc0"].RxBytes != nil || rep.Network.Total == nil || rep.Network.Total.RxBytes != nil {
		t.Errorf("report JSON devices %+v, total %+v", rep.Network.Devices, rep.Network.Total)
	}
}
