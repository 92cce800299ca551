package main

// Tests of the HTTP feature on the real daemon: /metrics scraped over TCP,
// parsed and linted, checked against /proc read by the test; the knob API
// against the control files of the mount.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kstat/kstat/internal/testutil"
)

var listenRE = regexp.MustCompile(`msg="HTTP server listening" addr=(\S+)`)

// startHTTPDaemon starts kstat serve with its HTTP server on a free
// loopback port (it listens on port 0 and logs the one it got), waits
// until it is ready, and returns the daemon and the server's base URL.
func startHTTPDaemon(t *testing.T, args ...string) (*testDaemon, string) {
	t.Helper()
	d := startDaemon(t, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Ready: every listener started and the capabilities dropped.
		if m := listenRE.FindStringSubmatch(d.Stderr()); m != nil && strings.Contains(d.Stderr(), `msg="kstat serve ready"`) {
			return d, "http://" + m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not log its HTTP address:\n%s", d.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpDo sends one request and returns the status and the body. On the
// https:// base of startWriterDaemon it sends the writer's credentials.
func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := clientFor(url).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrapeMetrics fetches /metrics, fails on any parse error or lint
// problem, and returns the exposition text and its families.
func scrapeMetrics(t *testing.T, base string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	code, body := httpDo(t, "GET", base+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	return body, mfs
}

// series returns the value of the series of family name with exactly the
// given labels ("key=value"), and whether it is there.
func series(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	want := strings.Join(labels, ",")
	for _, m := range mf.Metric {
		var got []string
		for _, l := range m.Label {
			got = append(got, l.GetName()+"="+l.GetValue())
		}
		if strings.Join(got, ",") != want {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func mustSeries(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := series(mfs, name, labels...)
	if !ok {
		t.Fatalf("/metrics has no %s%v", name, labels)
	}
	return v
}

// procField returns the number after key in a /proc file of "key value"
// lines (the first field after the key, as /proc/meminfo and /proc/stat
// write them).
func procField(t *testing.T, path, key string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && strings.TrimSuffix(f[0], ":") == key {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("%s %s: %v", path, key, err)
			}
			return v
		}
	}
	t.Fatalf("%s has no %s", path, key)
	return 0
}

// TestHTTPMetricsMatchProc scrapes the daemon several times: the
// exposition parses and lints clean, every counter only grows, and values
// agree with /proc read by the test around each scrape.
func TestHTTPMetricsMatchProc(t *testing.T) {
	d, base := startHTTPDaemon(t)
	// Stop the telemetry sampler: its snapshots would refresh the
	// collectors between the test's reads and the scrape.
	if code, body := d.SocketDo(t, "PUT", "/api/v1/knobs/telemetry/enable", "0"); code != 200 {
		t.Fatalf("PUT telemetry/enable 0: %d %s", code, body)
	}
	memTotal := procField(t, "/proc/meminfo", "MemTotal") * 1024

	var prev map[string]*dto.MetricFamily
	for range 4 {
		// The collectors serve one read for up to 50ms: let the last
		// scrape's read age out, so the next one reads after "before".
		time.Sleep(60 * time.Millisecond)
		rxBefore := procNetDevCol(t, "lo", 0)
		ctxtBefore := procField(t, "/proc/stat", "ctxt")
		// Traffic on lo between the reads, so lo's counter moves.
		if code, _ := httpDo(t, "GET", base+"/healthz", ""); code != 200 {
			t.Fatalf("healthz: %d", code)
		}
		_, mfs := scrapeMetrics(t, base)
		rxAfter := procNetDevCol(t, "lo", 0)
		ctxtAfter := procField(t, "/proc/stat", "ctxt")

		if v := mustSeries(t, mfs, "kstat_memory_total_bytes"); uint64(v) != memTotal {
			t.Errorf("kstat_memory_total_bytes = %v, /proc/meminfo MemTotal = %d bytes", v, memTotal)
		}
		if v := mustSeries(t, mfs, "kstat_net_dev_rx_bytes_total", "device=lo"); uint64(v) < rxBefore || uint64(v) > rxAfter {
			t.Errorf("lo rx bytes %v outside /proc/net/dev's [%d, %d] read around the scrape", v, rxBefore, rxAfter)
		}
		if v := mustSeries(t, mfs, "kstat_system_context_switches_total"); uint64(v) < ctxtBefore || uint64(v) > ctxtAfter {
			t.Errorf("context switches %v outside /proc/stat ctxt [%d, %d]", v, ctxtBefore, ctxtAfter)
		}
		for _, name := range []string{"kstat_build_info", "kstat_scrape_collector_success", "kstat_scrape_collector_duration_seconds", "go_goroutines", "process_resident_memory_bytes"} {
			if mfs[name] == nil {
				t.Errorf("/metrics has no %s", name)
			}
		}
		for _, m := range mfs["kstat_scrape_collector_success"].GetMetric() {
			if m.Gauge.GetValue() != 1 {
				t.Errorf("collector %s failed on the real /proc", m.Label[0].GetValue())
			}
		}
		checkCountersGrow(t, prev, mfs)
		prev = mfs
	}
}

// checkCountersGrow fails when a counter series of before is lower in
// after. A series may go (an interface or a process went away).
func checkCountersGrow(t *testing.T, before, after map[string]*dto.MetricFamily) {
	t.Helper()
	if before == nil {
		return
	}
	compared := 0
	defer func() {
		if compared < 20 {
			t.Errorf("only %d counter series in two scrapes to compare", compared)
		}
	}()
	for name, mf := range before {
		if mf.GetType() != dto.MetricType_COUNTER {
			continue
		}
		for _, m := range mf.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v, ok := series(after, name, labels...)
			if ok {
				compared++
			}
			if ok && v < m.Counter.GetValue() {
				t.Errorf("counter %s%v went down from %v to %v", name, labels, m.Counter.GetValue(), v)
			}
		}
	}
}

var refusedRE = regexp.MustCompile(`msg="statistics file refused a request" path=(\S+) op=write reason=("(?:[^"\\]|\\.)*")`)

// TestHTTPKnobs sets a knob through the API and through its control file
// in the mount: each sees the other's setting, and bad input gets the
// same error text from both (HTTP 400; the mount's EINVAL and its log).
func TestHTTPKnobs(t *testing.T) {
	d, base, _ := startWriterDaemon(t)
	code, body := httpDo(t, "GET", base+"/api/v1/knobs", "")
	if code != 200 || !strings.Contains(body, `"kstat/counter"`) {
		t.Fatalf("GET /api/v1/knobs: %d %s", code, body)
	}
	if code, body := httpDo(t, "PUT", base+"/api/v1/knobs/kstat/counter", "25"); code != 200 {
		t.Fatalf("PUT 25: %d %s", code, body)
	}
	if got := readText(t, d.Path("kstat/counter")); got != "25\n" {
		t.Errorf("kstat/counter reads %q after PUT 25", got)
	}
	if err := os.WriteFile(d.Path("kstat/counter"), []byte("7\n"), 0); err != nil {
		t.Fatal(err)
	}
	if code, body := httpDo(t, "GET", base+"/api/v1/knobs/kstat/counter", ""); code != 200 || !strings.Contains(body, `"value": "7"`) {
		t.Errorf("GET after writing 7 to the file: %d %s", code, body)
	}

	for i, bad := range []string{"0", "ten", "99999999999999999999", "-3"} {
		code, body := httpDo(t, "PUT", base+"/api/v1/knobs/kstat/counter", bad)
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(body), &e); err != nil || code != http.StatusBadRequest {
			t.Fatalf("PUT %q: %d %s, want 400 with an error", bad, code, body)
		}
		err := os.WriteFile(d.Path("kstat/counter"), []byte(bad), 0)
		if !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("writing %q to kstat/counter: %v, want EINVAL", bad, err)
		}
		// The mount logs the same error, possibly followed by the input.
		reasons := waitRefusals(t, d, i+1)
		if r := reasons[i]; r != e.Error && r != e.Error+": "+strconv.Quote(bad) {
			t.Errorf("bad input %q: the mount logged %q, HTTP said %q", bad, r, e.Error)
		}
		if got := readText(t, d.Path("kstat/counter")); got != "7\n" {
			t.Errorf("kstat/counter reads %q after the bad input %q, want 7 kept", got, bad)
		}
	}
	if code, _ := httpDo(t, "PUT", base+"/api/v1/knobs/kstat/counter", strings.Repeat("9", 5000)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT of 5000 bytes: %d, want 413", code)
	}
	if code, _ := httpDo(t, "PUT", base+"/api/v1/knobs/no/such", "1"); code != http.StatusNotFound {
		t.Errorf("PUT of an unknown knob: %d, want 404", code)
	}

	// The tree API shows the same knob as a control of kstat/.
	code, body = httpDo(t, "GET", base+"/api/v1/tree/kstat", "")
	if code != 200 || !strings.Contains(body, `"name": "counter"`) || !strings.Contains(body, `"text": "7\n"`) {
		t.Errorf("GET /api/v1/tree/kstat: %d %s", code, body)
	}
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitRefusals waits for the daemon to have logged n refused writes of
// kstat/counter and returns their reasons.
func waitRefusals(t *testing.T, d *testDaemon, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var reasons []string
		for _, m := range refusedRE.FindAllStringSubmatch(d.Stderr(), -1) {
			if m[1] != "kstat/counter" {
				continue
			}
			r, err := strconv.Unquote(m[2])
			if err != nil {
				t.Fatalf("log reason %s: %v", m[2], err)
			}
			reasons = append(reasons, r)
		}
		if len(reasons) >= n {
			return reasons
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon logged %d refusals of kstat/counter, want %d:\n%s", len(reasons), n, d.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHTTPDisabled: --listen "" serves nothing and says so.
func TestHTTPDisabled(t *testing.T) {
	d := startDaemon(t, "--listen", "")
	time.Sleep(100 * time.Millisecond)
	if !strings.Contains(d.Stderr(), "HTTP server disabled") || listenRE.MatchString(d.Stderr()) {
		t.Errorf("with --listen \"\" the log says:\n%s", d.Stderr())
	}
	if got := readText(t, d.Path("feature/http/reason")); got != "off: --listen is empty\n" {
		t.Errorf("feature/http/reason = %q", got)
	}
}

func TestHTTPFlagsHelp(t *testing.T) {
	out, _, err := runKstat(t, "serve", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--listen", "127.0.0.1:9090", "--metrics-max-pids", "kstat_exporter_pids_dropped"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
}

// TestHTTPPidBudget runs the tracer on five helper processes that each
// fork a known number of children and then block, so their counts hold
// still; with --metrics-max-pids 3, /metrics keeps exactly the three most
// active (the sum of their cumulative values, recomputed here from the
// tree API) and counts two as dropped.
func TestHTTPPidBudget(t *testing.T) {
	testutil.RequireBPF(t, ebpf.TracePoint)
	type helper struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		pid   string
		forks int
	}
	var helpers []*helper
	args := []string{"--tracer", "--metrics-max-pids", "3"}
	for i := range 5 {
		h := &helper{forks: 2 + 3*i}
		h.cmd = exec.Command("sh", "-c", fmt.Sprintf(`read x; i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done; read y`, h.forks))
		var err error
		if h.stdin, err = h.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := h.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.stdin.Close(); _ = h.cmd.Wait() })
		h.pid = strconv.Itoa(h.cmd.Process.Pid)
		helpers = append(helpers, h)
		args = append(args, "--tracer-pid", h.pid)
	}
	_, base := startHTTPDaemon(t, args...)
	for _, h := range helpers {
		if _, err := io.WriteString(h.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until every helper's forks and child exits are all counted.
	var tree treeSource
	deadline := time.Now().Add(20 * time.Second)
	for {
		tree = getTree(t, base, "tracer")
		done := 0
		for _, h := range helpers {
			if p := tree.sub(h.pid); p != nil && p.value("forks") == float64(h.forks) && p.value("child_exits") == float64(h.forks) {
				done++
			}
		}
		if done == len(helpers) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tracer did not count the helpers' forks in 20s: %+v", tree)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the helpers are blocked in read by now
	_, mfs := scrapeMetrics(t, base)
	tree = getTree(t, base, "tracer")

	// The three most active by the sum of cumulative values.
	type score struct {
		pid string
		sum float64
	}
	var scores []score
	for _, h := range helpers {
		p := tree.sub(h.pid)
		sum := 0.0
		for _, v := range p.Values {
			if v.Flag == "cumulative" && v.Aggregate == "" {
				f, err := strconv.ParseFloat(string(v.Value), 64)
				if err != nil {
					t.Fatalf("%s/%s = %s", h.pid, v.Name, v.Value)
				}
				sum += f
			}
		}
		scores = append(scores, score{h.pid, sum})
	}
	sort.Slice(scores, func(i, j int) bool {
		if scores[i].sum != scores[j].sum {
			return scores[i].sum > scores[j].sum
		}
		return len(scores[i].pid) < len(scores[j].pid) || len(scores[i].pid) == len(scores[j].pid) && scores[i].pid < scores[j].pid
	})
	var want []string
	for _, s := range scores[:3] {
		want = append(want, s.pid)
	}
	sort.Strings(want)

	got := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "pid" {
					got[l.GetValue()] = true
				}
			}
		}
	}
	var gotPids []string
	for p := range got {
		gotPids = append(gotPids, p)
	}
	sort.Strings(gotPids)
	if strings.Join(gotPids, ",") != strings.Join(want, ",") {
		t.Errorf("/metrics has pids %v, want the three most active %v (scores %v)", gotPids, want, scores)
	}
	if v := mustSeries(t, mfs, "kstat_exporter_pids_dropped"); v != 2 {
		t.Errorf("kstat_exporter_pids_dropped = %v, want 2", v)
	}
	// The kept pids' fork counts are the forks each helper made.
	for _, h := range helpers {
		if v, ok := seriesWith(mfs, "kstat_tracer_forks_total", "pid="+h.pid); got[h.pid] && (!ok || v != float64(h.forks)) {
			t.Errorf("kstat_tracer_forks_total{pid=%s} = %v, the helper forked %d times", h.pid, v, h.forks)
		}
	}
	t.Logf("activity %v; kept %v", scores, gotPids)
}

// treeSource is the part of the tree API's JSON the tests read.
type treeSource struct {
	Name   string
	Values []struct {
		Name      string
		Value     json.RawMessage
		Flag      string
		Aggregate string
	}
	Sources []*treeSource
}

func (s *treeSource) sub(name string) *treeSource {
	for _, c := range s.Sources {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (s *treeSource) value(name string) float64 {
	for _, v := range s.Values {
		if v.Name == name {
			f, _ := strconv.ParseFloat(string(v.Value), 64)
			return f
		}
	}
	return -1
}

func getTree(t *testing.T, base, path string) treeSource {
	t.Helper()
	code, body := httpDo(t, "GET", base+"/api/v1/tree/"+path, "")
	var s treeSource
	if err := json.Unmarshal([]byte(body), &s); err != nil || code != 200 {
		t.Fatalf("GET /api/v1/tree/%s: %d %v", path, code, err)
	}
	return s
}
