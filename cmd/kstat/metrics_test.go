package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/kstat/kstat/internal/testutil"
)

// TestMetricsModels scrapes a daemon with every collector on and the
// tracer attached: promtool check metrics finds nothing, no family with
// an instance label also holds a series without one (a total sum() would
// count twice), no value is ±Inf or NaN, and per-pid series carry comm.
func TestMetricsModels(t *testing.T) {
	testutil.RequireCommand(t, "promtool")
	_, base := startHTTPDaemon(t, "--collector.slabinfo", "--tracer")
	time.Sleep(1500 * time.Millisecond) // the tracer sees processes
	text, mfs := scrapeMetrics(t, base)

	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	pidSeries := 0
	for name, mf := range mfs {
		labelled, bare := false, false
		for _, m := range mf.Metric {
			if len(m.Label) > 0 {
				labelled = true
			} else {
				bare = true
			}
			if v := metricValue(m); v != v || v > 1e308 || v < -1e308 {
				t.Errorf("%s%v = %v", name, m.Label, v)
			}
			if hasLabel(m, "pid") {
				pidSeries++
				if !hasLabel(m, "comm") {
					t.Errorf("%s%v: a per-pid series without comm", name, m.Label)
				}
			}
		}
		if labelled && bare && !strings.HasPrefix(name, "go_") {
			t.Errorf("%s holds series with and without instance labels", name)
		}
		if strings.HasSuffix(name, "_total") && mf.GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s ends in _total but is a %v", name, mf.GetType())
		}
		for _, doubled := range []string{"kstat_kstat_", "_sum_"} {
			if strings.Contains(name, doubled) {
				t.Errorf("%s: %q in a name", name, doubled)
			}
		}
	}
	if pidSeries == 0 {
		t.Error("no per-pid series with the tracer attached")
	}
	described := 0
	if mf := mfs["kstat_irq_info"]; mf != nil {
		for _, m := range mf.Metric {
			if hasLabel(m, "description") {
				described++
			}
		}
	}
	if described == 0 {
		t.Error("no kstat_irq_info with a description label")
	}
	start := mustSeries(t, mfs, "kstat_self_start_time_seconds")
	if d := time.Since(time.Unix(int64(start), 0)); d < 0 || d > time.Minute {
		t.Errorf("kstat_self_start_time_seconds %v is %v ago", start, d)
	}
}

// seriesWith returns the value of the one series of family name that has
// the given labels ("key=value") among others (a pid's comm, say).
func seriesWith(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	var found []float64
	for _, m := range mfs[name].GetMetric() {
		have := map[string]bool{}
		for _, l := range m.Label {
			have[l.GetName()+"="+l.GetValue()] = true
		}
		all := true
		for _, l := range labels {
			all = all && have[l]
		}
		if all {
			found = append(found, metricValue(m))
		}
	}
	if len(found) != 1 {
		return 0, false
	}
	return found[0], true
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func hasLabel(m *dto.Metric, name string) bool {
	for _, l := range m.Label {
		if l.GetName() == name && l.GetValue() != "" {
			return true
		}
	}
	return false
}

// TestPrometheusScrapes runs Debian's Prometheus server against a live
// daemon: the target is up with no scrape error, and the MemTotal it
// stored equals /proc/meminfo's.
func TestPrometheusScrapes(t *testing.T) {
	testutil.RequireCommand(t, "prometheus")
	_, base := startHTTPDaemon(t)
	target := strings.TrimPrefix(base, "http://")

	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: kstat\n    static_configs:\n      - targets: [%q]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	promAddr := l.Addr().String()
	l.Close()
	var logs lockedBuffer
	prom := exec.Command("prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr)
	prom.Stdout, prom.Stderr = &logs, &logs
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = prom.Process.Kill()
		_ = prom.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})

	// The target, as Prometheus sees it.
	var health, lastErr string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var targets struct {
			Data struct {
				ActiveTargets []struct {
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if promGet(t, promAddr, "/api/v1/targets", &targets) && len(targets.Data.ActiveTargets) == 1 {
			health, lastErr = targets.Data.ActiveTargets[0].Health, targets.Data.ActiveTargets[0].LastError
			if health == "up" {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if health != "up" || lastErr != "" {
		t.Fatalf("target health %q, last error %q", health, lastErr)
	}
	// A few scrapes later: every scrape went through, and a value equals /proc's.
	time.Sleep(3 * time.Second)
	for q, want := range map[string]float64{
		`up{job="kstat"}`:                            1,
		`kstat_memory_total_bytes`:                   float64(procField(t, "/proc/meminfo", "MemTotal") * 1024),
		`count(kstat_scrape_collector_success == 0)`: -1, // no failed collector: an empty result
	} {
		got, ok := promQuery(t, promAddr, q)
		switch {
		case want == -1 && ok:
			t.Errorf("%s = %v, want no result", q, got)
		case want != -1 && (!ok || got != want):
			t.Errorf("%s = %v (found %v), want %v", q, got, ok, want)
		}
	}
	if got, ok := promQuery(t, promAddr, `sum(increase(prometheus_target_scrapes_sample_out_of_order_total[1m])) + sum(increase(prometheus_target_scrapes_sample_duplicate_timestamp_total[1m])) + sum(increase(prometheus_target_scrapes_exceeded_sample_limit_total[1m]))`); ok && got != 0 {
		t.Errorf("Prometheus counted %v rejected samples", got)
	}
}

// promGet fetches a Prometheus API path into v; false while it is not up.
func promGet(t *testing.T, addr, path string, v any) bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(v) == nil
}

// promQuery runs an instant query and returns its only value.
func promQuery(t *testing.T, addr, q string) (float64, bool) {
	t.Helper()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if !promGet(t, addr, "/api/v1/query?query="+url.QueryEscape(q), &r) {
		t.Fatalf("query %s failed", q)
	}
	if len(r.Data.Result) != 1 {
		return 0, false
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}
