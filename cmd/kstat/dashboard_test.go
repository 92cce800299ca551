package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kstat/kstat/internal/netout/nettest"
	"github.com/kstat/kstat/internal/testutil"
)

// chromiumPath is where Debian's chromium package (installed by
// scripts/test.sh) puts the browser.
const chromiumPath = "/usr/bin/chromium"

// TestDashboardRoutes: the page and its files are served next to the API,
// without directory listings, and --dashboard=false takes the page away
// but not the API.
func TestDashboardRoutes(t *testing.T) {
	_, base := startHTTPDaemon(t)
	code, body := httpDo(t, "GET", base+"/", "")
	if code != http.StatusOK || !strings.Contains(body, `<script src="/static/app.js"`) || !strings.Contains(body, `id="version">`+version+`<`) {
		t.Fatalf("GET /: %d\n%s", code, body)
	}
	for _, f := range []string{"/static/app.js", "/static/style.css"} {
		if code, body := httpDo(t, "GET", base+f, ""); code != http.StatusOK || len(body) < 500 {
			t.Errorf("GET %s: %d, %d bytes", f, code, len(body))
		}
	}
	for _, p := range []string{"/static/", "/nothing", "/static/missing.js"} {
		if code, _ := httpDo(t, "GET", base+p, ""); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
	if code, _ := httpDo(t, "PUT", base+"/", "x"); code != http.StatusForbidden {
		t.Errorf("PUT / by a reader: %d, want 403", code)
	}
	if code, body := httpDo(t, "GET", base+"/api/v1/tree/memory", ""); code != http.StatusOK || !strings.Contains(body, `"total"`) {
		t.Errorf("GET /api/v1/tree/memory beside the dashboard: %d\n%s", code, body)
	}

	_, off := startHTTPDaemon(t, "--dashboard=false")
	if code, _ := httpDo(t, "GET", off+"/", ""); code != http.StatusNotFound {
		t.Errorf("with --dashboard=false GET /: %d, want 404", code)
	}
	if code, _ := httpDo(t, "GET", off+"/healthz", ""); code != http.StatusOK {
		t.Errorf("with --dashboard=false GET /healthz: %d", code)
	}
}

// TestDashboardBrowser drives the page in headless Chromium against a real
// daemon: the memory panel shows /proc/meminfo's MemTotal, the lo row
// shows a packet count /proc/net/dev brackets, and the KSTAT panel's
// toggle and counter form change the knobs as the daemon's mount (not the
// page) reports, with a refused value's error shown and the old value kept;
// the tracer toggle attaches the tracer, the telemetry form sets the
// interval, and a stopped daemon shows as an error banner.
func TestDashboardBrowser(t *testing.T) {
	// The page changes knobs: it runs as the writer, over HTTPS.
	d, base, writer := startWriterDaemon(t, "--telemetry-interval", "1s")
	if got := dashReadMount(t, d, "kstat/start"); got != "0" {
		t.Fatalf("kstat/start is %q before the test, want 0", got)
	}
	counterBefore := dashReadMount(t, d, "kstat/counter")

	b := newBrowser(t)
	b.run("sending the writer's credentials", 10*time.Second, writer.Browser())
	run, eval, waitFor, tab := b.run, b.eval, b.waitFor, b.tab
	text := dashText

	// The first start of a browser may be slow on a busy machine.
	loBefore := procNetDevCol(t, "lo", 1)
	memBefore := procField(t, "/proc/meminfo", "MemTotal")
	time.Sleep(100 * time.Millisecond) // past the collectors' cache age
	run("opening the dashboard", 60*time.Second, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("memory-panel")))

	kbRE := regexp.MustCompile(`(\d+) kB$`)
	mem := waitFor("memory panel MemTotal", text("mem-total"), 15*time.Second, kbRE.MatchString)
	pageKB, _ := strconv.ParseUint(kbRE.FindStringSubmatch(mem)[1], 10, 64)
	if memAfter := procField(t, "/proc/meminfo", "MemTotal"); pageKB != memBefore && pageKB != memAfter {
		t.Errorf("page MemTotal %d kB, /proc/meminfo says %d kB (before) and %d kB (after)", pageKB, memBefore, memAfter)
	}

	// The lo row: its rx packets lie between two reads of /proc/net/dev
	// around the page's fetch, and a second refresh fills in the rate.
	loRow := `(() => { const r = document.querySelector('tr[data-dev="lo"]'); return r ? Array.from(r.cells, c => c.textContent).join("|") : ""; })()`
	cells := strings.Split(waitFor("the lo row with a rate", loRow, 15*time.Second, func(s string) bool {
		c := strings.Split(s, "|")
		return len(c) == 11 && c[4] != "–" && strings.HasSuffix(c[4], "/s")
	}), "|")
	loAfter := procNetDevCol(t, "lo", 1)
	pagePackets, err := strconv.ParseUint(strings.ReplaceAll(cells[3], ",", ""), 10, 64)
	if err != nil || cells[0] != "lo" {
		t.Fatalf("lo row %q: %v", cells, err)
	}
	if pagePackets < loBefore || pagePackets > loAfter {
		t.Errorf("page lo rx packets %d, /proc/net/dev said %d before and %d after", pagePackets, loBefore, loAfter)
	}

	// The KSTAT start toggle attaches the counter: the mount says 1.
	waitFor("the KSTAT start button", `(() => { const b = document.getElementById("kstat-start-toggle"); return b.disabled ? "" : b.textContent; })()`,
		10*time.Second, func(s string) bool { return s == "Start counting" })
	run("clicking start", 10*time.Second, chromedp.Click(chromedp.ID("kstat-start-toggle")))
	dashWaitMount(t, d, "kstat/start", "1", 10*time.Second, tab)
	waitFor("the KSTAT panel showing start", text("kstat-start"), 10*time.Second, func(s string) bool { return s == "1 (counting)" })

	// A refused counter: the page shows the server's error, the mount
	// keeps the old value.
	code, refused := httpDo(t, "PUT", base+"/api/v1/knobs/kstat/counter", "abc")
	errRE := regexp.MustCompile(`"error":\s*"((?:[^"\\]|\\.)*)"`)
	m := errRE.FindStringSubmatch(refused)
	if code != http.StatusBadRequest || m == nil {
		t.Fatalf("PUT kstat/counter abc: %d %s", code, refused)
	}
	serverErr, err := strconv.Unquote(`"` + m[1] + `"`)
	if err != nil {
		t.Fatal(err)
	}
	run("typing a bad counter", 10*time.Second,
		chromedp.SendKeys(chromedp.ID("kstat-counter-input"), "abc"),
		chromedp.Click(chromedp.ID("kstat-counter-set")))
	waitFor("the refused counter's error", text("kstat-error"), 10*time.Second, func(s string) bool { return strings.Contains(s, serverErr) })
	if got := dashReadMount(t, d, "kstat/counter"); got != counterBefore {
		t.Errorf("after the refused counter the mount's kstat/counter is %q, want %q", got, counterBefore)
	}

	// A good counter lands in the mount and clears the error.
	// The refused text stays in the field for the user to fix: empty it.
	eval("emptying the counter field", `document.getElementById("kstat-counter-input").value = ""`)
	run("typing a good counter", 10*time.Second,
		chromedp.SendKeys(chromedp.ID("kstat-counter-input"), "25"),
		chromedp.Click(chromedp.ID("kstat-counter-set")))
	dashWaitMount(t, d, "kstat/counter", "25", 10*time.Second, tab)
	waitFor("the error cleared and the counter shown", `document.getElementById("kstat-error").hidden + "|" + `+text("kstat-counter"),
		10*time.Second, func(s string) bool { return s == "true|25" })

	// The tracer toggle attaches the tracer (the mount says 1) and the
	// panel lists processes.
	run("clicking the tracer toggle", 10*time.Second, chromedp.Click(chromedp.ID("tracer-toggle")))
	dashWaitMount(t, d, "tracer/enable", "1", 15*time.Second, tab)
	waitFor("the tracer's process table", `document.getElementById("tracer-table").hidden ? "hidden" : String(document.getElementById("tracer-rows").rows.length)`,
		15*time.Second, func(s string) bool { n, err := strconv.Atoi(s); return err == nil && n > 0 })
	// Its chart shows processes the tree has, chosen by the server.
	c := b.waitChart(t, "tracer", 30*time.Second, "a traced process", func(c *dashChart) bool { return len(c.Keys) > 0 })
	pid := strings.TrimPrefix(c.Keys[0], "tracer/")
	if comm, err := os.ReadFile("/proc/" + pid + "/comm"); err == nil && !strings.HasPrefix(c.Labels[0], strings.TrimSpace(string(comm))+" ("+pid+")") {
		t.Errorf("the tracer chart's %s is labelled %q; /proc/%s/comm says %q", c.Keys[0], c.Labels[0], pid, comm)
	}

	// The telemetry interval form: a refused value is shown and the mount
	// keeps the old one, a good one lands in the mount.
	intervalBefore := dashReadMount(t, d, "telemetry/log_interval")
	run("typing a bad interval", 10*time.Second,
		chromedp.SendKeys(chromedp.ID("telemetry-interval-input"), "soon"),
		chromedp.Click(chromedp.ID("telemetry-interval-set")))
	waitFor("the refused interval's error", text("telemetry-error"), 10*time.Second,
		func(s string) bool { return strings.Contains(s, `"soon"`) && strings.Contains(s, "refused") })
	if got := dashReadMount(t, d, "telemetry/log_interval"); got != intervalBefore {
		t.Errorf("after the refused interval the mount's telemetry/log_interval is %q, want %q", got, intervalBefore)
	}
	eval("emptying the interval field", `document.getElementById("telemetry-interval-input").value = ""`)
	run("typing a good interval", 10*time.Second,
		chromedp.SendKeys(chromedp.ID("telemetry-interval-input"), "2s"),
		chromedp.Click(chromedp.ID("telemetry-interval-set")))
	dashWaitMount(t, d, "telemetry/log_interval", "2s", 10*time.Second, tab)

	// No request failed and the script threw nothing (the banner shows both).
	if got := eval("the banner", `document.getElementById("api-error").hidden ? "ok" : document.getElementById("api-error").textContent`); got != "ok" {
		t.Errorf("the page shows an error: %s", got)
	}

	// With the daemon gone the page says so instead of showing stale
	// numbers silently.
	d.Signal(t, syscall.SIGTERM)
	if err := d.Wait(t, 15*time.Second); err != nil {
		t.Fatalf("kstat serve exited with %v", err)
	}
	waitFor("the API error banner", `document.getElementById("api-error").hidden ? "" : document.getElementById("api-error").textContent`,
		10*time.Second, func(s string) bool { return strings.Contains(s, "/api/v1/") })
}

// browser is a headless Chromium tab and the test's ways to drive it.
type browser struct {
	tab context.Context
	// run runs steps within a bound; on failure the test ends with the
	// page's text, so a broken page is readable in the log.
	run func(what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void])
	// eval evaluates the JavaScript expression expr, a string, within 10s.
	eval func(what, expr string) string
	// waitFor polls expr until ok accepts it, and returns it.
	waitFor func(what, expr string, timeout time.Duration, ok func(string) bool) string
}

// newBrowser starts headless Chromium for the test.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("headless Chromium is needed at %s (%v): run scripts/test.sh, which installs the chromium package", chromiumPath, err)
	}
	userData := t.TempDir() // before the browser's cleanup, so removed after it exits
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(userData),
		chromedp.WindowSize(1400, 1000),
		chromedp.Flag("ignore-certificate-errors", true), // startWriterDaemon's generated certificate
	)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancelTab)

	// The first Run starts the browser and must not carry a timeout (it
	// would stop the browser), so it is bounded from outside.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(tab) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting %s: %v", chromiumPath, err)
		}
	case <-time.After(60 * time.Second):
		cancelTab()
		t.Fatalf("%s did not start within 60s", chromiumPath)
	}

	run := func(what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(tab, timeout)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v\npage:\n%s", what, err, dashPageText(tab))
		}
	}
	eval := func(what, expr string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(tab, 10*time.Second)
		defer cancel()
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v\npage:\n%s", what, err, dashPageText(tab))
		}
		return got
	}
	waitFor := func(what, expr string, timeout time.Duration, ok func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			got := eval(what, expr)
			if ok(got) {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %q after %v\npage:\n%s", what, got, timeout, dashPageText(tab))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	return &browser{tab: tab, run: run, eval: eval, waitFor: waitFor}
}

// dashText is a JavaScript expression of the text of the element id.
func dashText(id string) string {
	return fmt.Sprintf(`(document.getElementById(%q) || {textContent: "no #%s"}).textContent`, id, id)
}

// screenshot writes the page to the file KSTAT_DASHBOARD_SCREENSHOT names,
// if it names one, with the name's extension after suffix.
func (b *browser) screenshot(t *testing.T, suffix string) {
	t.Helper()
	out := os.Getenv("KSTAT_DASHBOARD_SCREENSHOT")
	if out == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.tab, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	ext := filepath.Ext(out)
	if err := os.WriteFile(strings.TrimSuffix(out, ext)+suffix+ext, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// dashPageText is the page's visible text, for failure messages.
func dashPageText(tab context.Context) string {
	ctx, cancel := context.WithTimeout(tab, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : "(no body)"`))
	if err != nil {
		return fmt.Sprintf("(page text unavailable: %v)", err)
	}
	return s
}

// dashReadMount reads a file of the daemon's mount, trimmed.
func dashReadMount(t *testing.T, d *testDaemon, rel string) string {
	t.Helper()
	b, err := os.ReadFile(d.Path(rel))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// dashWaitMount waits until the mount's file rel reads want.
func dashWaitMount(t *testing.T, d *testDaemon, rel, want string, timeout time.Duration, tab context.Context) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := dashReadMount(t, d, rel)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mount's %s is %q after %v, want %q\npage:\n%s", rel, got, timeout, want, dashPageText(tab))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dashChart is a chart of the page as uPlot draws it: the series keys
// the server chose and the data (times in seconds first).
type dashChart struct {
	Keys   []string     `json:"keys"`
	Labels []string     `json:"labels"`
	Data   [][]*float64 `json:"data"`
}

// String shows the chart's keys, their last points and integrals.
func (c *dashChart) String() string {
	if c == nil {
		return "no chart"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d points", len(c.Data[0]))
	for _, k := range c.Keys {
		v, ok := c.last(k)
		fmt.Fprintf(&b, "; %s: last %v (%v), integral %v", k, v, ok, c.integral(k))
	}
	return b.String()
}

// series is the column of key, or nil.
func (c *dashChart) series(key string) []*float64 {
	for i, k := range c.Keys {
		if k == key {
			return c.Data[i+1]
		}
	}
	return nil
}

// last is key's last point, and whether it has one.
func (c *dashChart) last(key string) (float64, bool) {
	s := c.series(key)
	if len(s) == 0 || s[len(s)-1] == nil {
		return 0, false
	}
	return *s[len(s)-1], true
}

// integral is the sum of key's rates times the time each covers: the
// count the chart says went by over its window.
func (c *dashChart) integral(key string) float64 {
	s, x := c.series(key), c.Data[0]
	sum := 0.0
	for i := 1; i < len(s); i++ {
		if s[i] != nil && x[i] != nil && x[i-1] != nil {
			// The times are Unix milliseconds / 1000: back to whole
			// milliseconds, as the server divided by, before the difference.
			sum += *s[i] * (math.Round(*x[i]*1000) - math.Round(*x[i-1]*1000)) / 1000
		}
	}
	return sum
}

// chart reads the chart id from the page; nil when it has no plot.
func (b *browser) chart(t *testing.T, id string) *dashChart {
	t.Helper()
	js := b.eval("chart "+id, fmt.Sprintf(`JSON.stringify((() => {
		const p = window.kstat && window.kstat.plots[%q];
		return p ? {keys: p.def.series.map((s) => s.key), labels: p.def.series.map((s) => s.label), data: p.plot.data} : null;
	})())`, id))
	var c *dashChart
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		t.Fatalf("chart %s: %v\n%s", id, err, js)
	}
	return c
}

// waitChart waits until ok accepts chart id and returns it.
func (b *browser) waitChart(t *testing.T, id string, timeout time.Duration, what string, ok func(*dashChart) bool) *dashChart {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := b.chart(t, id)
		if c != nil && ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("chart %s: %s: not within %v; last %s\npage:\n%s", id, what, timeout, c, dashPageText(b.tab))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// apiValue reads one value of the tree through the JSON API.
func apiValue(t *testing.T, base, path, name string) float64 {
	t.Helper()
	src := getTree(t, base, path)
	return src.value(name)
}

// apiWait waits until the API reads want for a value (past the
// collectors' cache) and returns it.
func apiWait(t *testing.T, base, path, name string, want float64) float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := apiValue(t, base, path, name)
		if got == want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API's %s/%s is %v, want %v", path, name, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// editFixture rewrites file, replacing the first line that starts with
// prefix by line.
func editFixture(t *testing.T, file, prefix, line string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			lines[i] = line
			tmp := file + ".new"
			if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, file); err != nil { // readers see the old file or the new one
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("%s has no line starting with %q", file, prefix)
}

// copyDir copies the fixture tree src to a new directory the test owns.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if e.Type()&os.ModeSymlink != 0 {
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestDashboardCharts drives the charts with numbers the test controls:
// the daemon reads /proc and /sys fixtures the test edits, and counts
// KSTAT packets in a namespace the test makes. The memory chart's last
// points are the values the JSON API reads (before and after an edit); a
// rate chart's points, times the time each covers, add up to the count
// the API says went by (context switches, lo's received bytes, KSTAT's
// IPv4 and IPv6 TCP packets). The KSTAT toggle set from the page lands in
// the mount.
func TestDashboardCharts(t *testing.T) {
	ns := kstatNS(t)
	fix := copyDir(t, testutil.Fixture(t, "e2e"))
	proc := filepath.Join(fix, "proc")
	d, base, writer := startWriterDaemon(t, "--proc", proc, "--sys", filepath.Join(fix, "sys"), "--netns", ns.Path, "--dashboard-step", "300ms")
	b := newBrowser(t)
	b.run("sending the writer's credentials", 10*time.Second, writer.Browser())
	b.run("opening the dashboard", 60*time.Second, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("memory-panel")))

	// Memory: each series' last point is the API's value.
	memAPI := func() map[string]float64 {
		return map[string]float64{
			"mem/used":   apiValue(t, base, "memory", "total") - apiValue(t, base, "memory", "available"),
			"mem/cached": apiValue(t, base, "block", "cached"),
			"mem/dirty":  apiValue(t, base, "block", "dirty"),
			"mem/slab":   apiValue(t, base, "mm", "slab"),
		}
	}
	checkMemory := func(what string) {
		t.Helper()
		want := memAPI()
		b.waitChart(t, "memory", 15*time.Second, what, func(c *dashChart) bool {
			for k, v := range want {
				if got, ok := c.last(k); !ok || got != v {
					return false
				}
			}
			return true
		})
	}
	checkMemory("the last points equal the API's memory values")
	if got := memAPI()["mem/cached"]; got != float64(procField(t, filepath.Join(proc, "meminfo"), "Cached")*1024) {
		t.Fatalf("the API's block/cached %v is not the fixture's Cached", got)
	}
	editFixture(t, filepath.Join(proc, "meminfo"), "Cached:", "Cached:          1400000 kB")
	editFixture(t, filepath.Join(proc, "meminfo"), "Dirty:", "Dirty:              4321 kB")
	apiWait(t, base, "block", "dirty", 4321*1024)
	checkMemory("the last points follow the edited meminfo")

	// Context switches and lo's received bytes: a known jump, and the
	// rate charts account for all of it.
	ctxtBefore := apiValue(t, base, "system", "context_switches")
	rxBefore := apiValue(t, base, "net/dev/lo", "rx_bytes")
	b.waitChart(t, "activity", 15*time.Second, "two samples", func(c *dashChart) bool { return len(c.Data[0]) >= 2 })
	editFixture(t, filepath.Join(proc, "stat"), "ctxt ", fmt.Sprintf("ctxt %d", uint64(ctxtBefore)+123457))
	editFixture(t, filepath.Join(proc, "net", "dev"), "    lo:",
		fmt.Sprintf("    lo: %7d      30    0    0    0     0          0         0     3245      30    0    0    0     0       0          0", uint64(rxBefore)+1000003))
	ctxtDelta := apiWait(t, base, "system", "context_switches", ctxtBefore+123457) - ctxtBefore
	rxDelta := apiWait(t, base, "net/dev/lo", "rx_bytes", rxBefore+1000003) - rxBefore
	b.waitChart(t, "activity", 15*time.Second, fmt.Sprintf("context switches adding up to %v", ctxtDelta), func(c *dashChart) bool {
		return math.Round(c.integral("sys/context_switches")) == ctxtDelta
	})
	b.waitChart(t, "net-rx", 15*time.Second, fmt.Sprintf("lo's bytes adding up to %v", rxDelta), func(c *dashChart) bool {
		return math.Round(c.integral("net/lo/rx_bytes")) == rxDelta
	})

	// KSTAT, started from the page: the mount says 1; TCP packets sent in
	// the namespace add up in the chart to the API's counts.
	b.waitFor("the KSTAT start button", `(() => { const b = document.getElementById("kstat-start-toggle"); return b.disabled ? "" : b.textContent; })()`,
		15*time.Second, func(s string) bool { return s == "Start counting" })
	b.run("clicking start", 10*time.Second, chromedp.Click(chromedp.ID("kstat-start-toggle")))
	dashWaitMount(t, d, "kstat/start", "1", 10*time.Second, b.tab)
	if err := nettest.SendTCP(ns, kstatAddrs, kstatTraffic); err != nil {
		t.Fatal(err)
	}
	_, got := kstatQuiet(t, ns, d)
	for _, fam := range []string{"ipv4", "ipv6"} {
		want := apiValue(t, base, "kstat/"+fam, "tcp_packets")
		if want == 0 || want != float64(got[fam+"/tcp_packets"]) {
			t.Fatalf("the API's kstat/%s/tcp_packets %v, the mount's %d", fam, want, got[fam+"/tcp_packets"])
		}
		key := "kstat/" + fam + "/tcp_packets"
		b.waitChart(t, "kstat", 15*time.Second, fmt.Sprintf("%s adding up to %v", key, want), func(c *dashChart) bool {
			return math.Round(c.integral(key)) == want
		})
	}

	if got := b.eval("the banner", `document.getElementById("api-error").hidden ? "ok" : document.getElementById("api-error").textContent`); got != "ok" {
		t.Errorf("the page shows an error: %s", got)
	}
	b.screenshot(t, "-charts")
}

// TestDashboardReconnect: the page holds one event stream, with no
// polling; a script error leaves the banner with the next update; when the
// daemon restarts on the same address the page says the stream broke,
// reconnects by itself and keeps updating.
func TestDashboardReconnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args := []string{"--listen", addr, "--dashboard-step", "300ms"}
	d := startDaemon(t, args...)
	base := "http://" + addr
	waitHTTP := func() {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			if resp, err := http.Get(base + "/healthz"); err == nil {
				resp.Body.Close()
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no HTTP on %s", addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitHTTP()
	b := newBrowser(t)
	b.run("opening the dashboard", 60*time.Second, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("memory-panel")))
	lastTime := func() float64 {
		c := b.chart(t, "memory")
		if c == nil || len(c.Data[0]) == 0 || c.Data[0][len(c.Data[0])-1] == nil {
			return 0
		}
		return *c.Data[0][len(c.Data[0])-1]
	}
	waitAfter := func(what string, after float64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for lastTime() <= after {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the memory chart's last point stays at %v\npage:\n%s", what, lastTime(), dashPageText(b.tab))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitAfter("first update", 0)

	// One stream and nothing else: no request to the API for 2s.
	requests := `String(performance.getEntriesByType("resource").filter((e) => e.name.includes("/api/v1/") && !e.name.includes("/access")).length)`
	before := b.eval("requests", requests)
	t0 := lastTime()
	time.Sleep(2 * time.Second)
	waitAfter("updates over the stream", t0)
	if after := b.eval("requests", requests); after != before {
		t.Errorf("the page made API requests while it had its stream: %s, then %s", before, after)
	}

	// A script error shows in the banner and goes with the next update
	// drawn without one.
	banner := `document.getElementById("api-error").hidden ? "ok" : document.getElementById("api-error").textContent`
	b.eval("an error", `(window.dispatchEvent(new ErrorEvent("error", {message: "test error"})), "")`)
	b.waitFor("the script error in the banner", banner, 5*time.Second, func(s string) bool { return strings.Contains(s, "test error") })
	b.waitFor("the banner cleared by the next update", banner, 10*time.Second, func(s string) bool { return s == "ok" })

	d.Signal(t, syscall.SIGTERM)
	if err := d.Wait(t, 15*time.Second); err != nil {
		t.Fatalf("kstat serve exited with %v", err)
	}
	b.waitFor("the broken stream in the banner", `document.getElementById("api-error").hidden ? "" : document.getElementById("api-error").textContent`,
		10*time.Second, func(s string) bool { return strings.Contains(s, "lost the stream") })
	stopped := float64(time.Now().UnixMilli()) / 1000

	startDaemon(t, args...)
	waitHTTP()
	waitAfter("updates after the restart", stopped)
	b.waitFor("the banner cleared", banner, 10*time.Second, func(s string) bool { return s == "ok" })
	t1 := lastTime()
	waitAfter("more updates after the restart", t1)
}

// TestDashboardReadOnly: to a viewer who may not write (plain HTTP, no
// credentials) the page says read-only, shows the server's hint where the
// controls were, and offers no control that works: none is visible or
// enabled, and a write the page sends anyway is refused, the mount keeping
// its setting.
func TestDashboardReadOnly(t *testing.T) {
	d, base := startHTTPDaemon(t)
	code, body := httpDo(t, "GET", base+"/api/v1/access", "")
	var acc struct {
		Write bool   `json:"write"`
		Hint  string `json:"hint"`
	}
	if err := json.Unmarshal([]byte(body), &acc); code != http.StatusOK || err != nil || acc.Write || acc.Hint == "" {
		t.Fatalf("GET /api/v1/access: %d %s (%v); want write false with a hint", code, body, err)
	}
	b := newBrowser(t)
	b.run("opening the dashboard", 60*time.Second, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("memory-panel")))
	b.waitFor("the header's access", dashText("access"), 15*time.Second, func(s string) bool { return s == "read-only" })
	b.waitFor("knob values shown", dashText("kstat-start"), 15*time.Second, func(s string) bool { return s == "0 (stopped)" })

	// No control is shown, let alone enabled.
	shownControls := `JSON.stringify(Array.from(document.querySelectorAll("button, input, select, textarea"))
		.filter((e) => e.offsetParent !== null || !e.disabled).map((e) => e.id || e.outerHTML))`
	if got := b.eval("controls", shownControls); got != "[]" {
		t.Errorf("controls shown or enabled to a read-only viewer: %s", got)
	}
	hints := b.eval("hints", `JSON.stringify(Array.from(document.querySelectorAll(".ro-hint")).map((e) => e.offsetParent !== null ? e.textContent : "(hidden)"))`)
	var shown []string
	if err := json.Unmarshal([]byte(hints), &shown); err != nil || len(shown) != 3 {
		t.Fatalf("hints %s: %v", hints, err)
	}
	for _, h := range shown {
		if h != acc.Hint {
			t.Errorf("a knob panel's hint is %q, want the server's %q", h, acc.Hint)
		}
	}

	// A write sent from the page anyway is refused; the mount keeps 0.
	b.eval("a PUT from the page", `(fetch("/api/v1/knobs/kstat/start", {method: "PUT", body: "1"}).then((r) => { window.putStatus = String(r.status); }), "")`)
	got := b.waitFor("the PUT's answer", `window.putStatus || ""`, 10*time.Second, func(s string) bool { return s != "" })
	if got != "403" {
		t.Errorf("PUT kstat/start from a read-only page: %s, want 403", got)
	}
	if v := dashReadMount(t, d, "kstat/start"); v != "0" {
		t.Errorf("the mount's kstat/start is %q after a refused write, want 0", v)
	}
	b.screenshot(t, "-readonly")
}
