package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
	if code, _ := httpDo(t, "PUT", base+"/", "x"); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT /: %d, want 405", code)
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
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("headless Chromium is needed at %s (%v): run scripts/test.sh, which installs the chromium package", chromiumPath, err)
	}
	d, base := startHTTPDaemon(t, "--telemetry-interval", "1s")
	if got := dashReadMount(t, d, "kstat/start"); got != "0" {
		t.Fatalf("kstat/start is %q before the test, want 0", got)
	}
	counterBefore := dashReadMount(t, d, "kstat/counter")

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
		chromedp.WindowSize(1280, 1000),
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

	// run runs steps within a bound; on failure the test ends with the
	// page's text, so a broken page is readable in the log.
	run := func(what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(tab, timeout)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v\npage:\n%s", what, err, dashPageText(tab))
		}
	}
	// eval evaluates the JavaScript expression expr, a string, within 10s.
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
	// waitFor polls expr until ok accepts it, and returns it.
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
	text := func(id string) string {
		return fmt.Sprintf(`(document.getElementById(%q) || {textContent: "no #%s"}).textContent`, id, id)
	}

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

	if out := os.Getenv("KSTAT_DASHBOARD_SCREENSHOT"); out != "" {
		time.Sleep(2500 * time.Millisecond) // a few snapshots for the chart
		ctx, cancel := context.WithTimeout(tab, 20*time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
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
