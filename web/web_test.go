package web

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kstat/kstat/internal/history"
	"github.com/kstat/kstat/internal/knob"
	"github.com/kstat/kstat/statsfs"
)

// testConfig is a dashboard of a tree with one memory value and one knob.
func testConfig(t *testing.T, version string) (Config, *history.Recorder, *statsfs.Counters) {
	t.Helper()
	root := statsfs.NewSource("kstat")
	mem := statsfs.NewSource("memory")
	tb := statsfs.NewTable(statsfs.Value{Name: "total", Type: statsfs.U64, Flag: statsfs.Floating},
		statsfs.Value{Name: "available", Type: statsfs.U64, Flag: statsfs.Floating})
	c := statsfs.NewCounters(tb)
	if err := mem.AddValues(tb, c, 0); err != nil {
		t.Fatal(err)
	}
	root.AddSubordinate(mem)
	c.Store(0, 4096)
	c.Store(1, 1024)
	knobs := &knob.Registry{}
	on := true
	if err := knobs.Add("memory/enable", mem, knob.Bool("enable", "a test knob", func() bool { return on },
		func(b bool) error { on = b; return nil })); err != nil {
		t.Fatal(err)
	}
	rec := history.New(root, history.Options{})
	return Config{Version: version, Root: root, Knobs: knobs, History: rec}, rec, c
}

// get serves one request and returns the response and its body.
func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	resp := rec.Result()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestPage: the page carries the version, HTML-escaped, and links only
// files the handler serves, uPlot among them, with its licence beside it.
func TestPage(t *testing.T) {
	cfg, _, _ := testConfig(t, `1.2<script>`)
	h := Handler(cfg)
	resp, body := get(t, h, "GET", "/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(body, `id="version">1.2&lt;script&gt;</b>`) {
		t.Errorf("the version is not shown escaped:\n%s", body)
	}
	for _, f := range []struct{ path, ctype string }{
		{"/static/app.js", "text/javascript"},
		{"/static/style.css", "text/css"},
		{"/static/vendor/uplot/uPlot.iife.min.js", "text/javascript"},
		{"/static/vendor/uplot/uPlot.min.css", "text/css"},
	} {
		if !strings.Contains(body, `"`+f.path+`"`) {
			t.Errorf("the page does not link %s", f.path)
		}
		resp, text := get(t, h, "GET", f.path)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), f.ctype) || len(text) == 0 {
			t.Errorf("GET %s: %d %q, %d bytes", f.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(text))
		}
	}
	for _, f := range []string{"/static/app.js", "/static/style.css"} {
		if _, text := get(t, h, "GET", f); strings.Contains(text, "http://") || strings.Contains(text, "https://") {
			t.Errorf("%s refers to something outside the daemon", f)
		}
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("the page loads something from outside the daemon:\n%s", body)
	}
	if _, lic := get(t, h, "GET", "/static/vendor/uplot/LICENSE"); !strings.Contains(lic, "MIT License") {
		t.Errorf("uPlot's licence is not served beside it:\n%s", lic)
	}
}

// TestNotFound: no directory listing, no other paths, no other methods.
func TestNotFound(t *testing.T) {
	cfg, _, _ := testConfig(t, "dev")
	h := Handler(cfg)
	for _, p := range []string{"/static/", "/static/vendor/", "/static/missing.css", "/index.html", "/x"} {
		if resp, _ := get(t, h, "GET", p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/", HistoryAPI, EventsAPI} {
		if resp, _ := get(t, h, "POST", p); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d, want 405", p, resp.StatusCode)
		}
	}
}

// TestHistoryAPI: GET /api/v1/history has the samples in columns and the
// tables' values and knobs.
func TestHistoryAPI(t *testing.T) {
	cfg, rec, _ := testConfig(t, "dev")
	rec.Record(time.Now())
	resp, body := get(t, Handler(cfg), "GET", HistoryAPI)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %s", HistoryAPI, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var m struct {
		History struct {
			Times  []int64 `json:"times"`
			Series map[string]struct {
				Values []*float64 `json:"values"`
			} `json:"series"`
		} `json:"history"`
		Status Status `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if used := m.History.Series["mem/used"].Values; len(m.History.Times) != 1 || len(used) != 1 || *used[0] != 3072 {
		t.Errorf("history %s", body)
	}
	if m.Status.Values["memory"]["total"] != 4096 || m.Status.Knobs["memory/enable"] != "1" {
		t.Errorf("status %+v", m.Status)
	}
}

// TestEvents: the stream starts with the history and sends an update per
// sample; it ends when the daemon stops.
func TestEvents(t *testing.T) {
	cfg, rec, mem := testConfig(t, "dev")
	done := make(chan struct{})
	cfg.Done = done
	rec.Record(time.Now())
	srv := httptest.NewServer(Handler(cfg))
	defer srv.Close()
	resp, err := http.Get(srv.URL + EventsAPI)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	events := make(chan [2]string)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<24)
		var ev string
		for sc.Scan() {
			line := sc.Text()
			if e, ok := strings.CutPrefix(line, "event: "); ok {
				ev = e
			} else if d, ok := strings.CutPrefix(line, "data: "); ok {
				events <- [2]string{ev, d}
			}
		}
	}()
	next := func() [2]string {
		t.Helper()
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no event in 10s")
		}
		return [2]string{}
	}
	if e := next(); e[0] != "history" || !strings.Contains(e[1], `"times":[`) {
		t.Fatalf("first event %q", e)
	}
	mem.Store(1, 96)
	rec.Record(time.Now().Add(time.Second))
	e := next()
	var m struct {
		Update history.Update `json:"update"`
		Status Status         `json:"status"`
	}
	if err := json.Unmarshal([]byte(e[1]), &m); e[0] != "update" || err != nil {
		t.Fatalf("second event %q: %v", e, err)
	}
	if got := m.Update.Sample.Values["mem/used"]; got != 4000 {
		t.Errorf("mem/used %v in the update, want 4000", got)
	}
	close(done)
	select {
	case _, ok := <-events:
		if ok {
			t.Error("an event after the daemon stopped")
		}
	case <-time.After(10 * time.Second):
		t.Error("the stream did not end when the daemon stopped")
	}
}

// TestVendored: the vendored uPlot is the release scripts/vendor-web.sh
// names (CI re-runs the script and compares the bytes).
func TestVendored(t *testing.T) {
	script, err := os.ReadFile("../scripts/vendor-web.sh")
	if err != nil {
		t.Fatal(err)
	}
	js, err := files.ReadFile("static/vendor/uplot/uPlot.iife.min.js")
	if err != nil {
		t.Fatal(err)
	}
	var version string
	for _, line := range strings.Split(string(script), "\n") {
		if v, ok := strings.CutPrefix(line, "UPLOT_VERSION="); ok {
			version = v
		}
	}
	if version == "" || !strings.Contains(string(js[:min(len(js), 200)]), "(v"+version+")") {
		t.Errorf("the vendored uPlot does not say v%s in its header:\n%.200s", version, js)
	}
}

// TestStatusSlabTop: the slab panel gets the largest caches only, the
// largest first.
func TestStatusSlabTop(t *testing.T) {
	root := statsfs.NewSource("kstat")
	mm := statsfs.NewSource("mm")
	slab := statsfs.NewSource("slabinfo")
	root.AddSubordinate(mm)
	mm.AddSubordinate(slab)
	tb := statsfs.NewTable(statsfs.Value{Name: "total_bytes", Type: statsfs.U64, Flag: statsfs.Floating})
	for i := range 30 {
		c := statsfs.NewInstance("cache", fmt.Sprintf("cache%02d", i))
		rec := statsfs.NewCounters(tb)
		rec.Store(0, uint64((i*7)%30)) // sizes in a shuffled order
		if err := c.AddValues(tb, rec, 0); err != nil {
			t.Fatal(err)
		}
		slab.AddSubordinate(c)
	}
	items := ReadStatus(root, nil).Lists["mm/slabinfo"]
	if len(items) != slabTop {
		t.Fatalf("%d caches, want %d", len(items), slabTop)
	}
	for i, it := range items {
		if want := float64(29 - i); it.Values["total_bytes"] != want {
			t.Errorf("cache %d: %s of %v bytes, want %v", i, it.Name, it.Values["total_bytes"], want)
		}
	}
}
