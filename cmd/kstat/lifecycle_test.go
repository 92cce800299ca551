package main

// Tests of the daemon's start-up: fail-closed on what the user asked for,
// degraded and visible on what the kernel lacks, ready only when every
// source is in the tree.

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
	"github.com/kstat/kstat/statsfs/fusefs"
)

// serveMustFail runs `kstat serve --mount DIR args...` and checks that it
// exits non-zero within 10 seconds with one "kstat: " line, last on
// stderr, that contains every want, and that it leaves nothing mounted.
func serveMustFail(t *testing.T, args []string, want ...string) {
	t.Helper()
	testutil.RequireFUSE(t)
	mount := filepath.Join(t.TempDir(), "mnt")
	bin := kstatBinary(t) // built before the clock starts
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"serve", "--mount", mount, "--control-socket", ""}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if _, ok := err.(*exec.ExitError); !ok || cmd.ProcessState.ExitCode() <= 0 {
		t.Fatalf("kstat serve %v: %v, want a non-zero exit\n%s", args, err, stderr.String())
	}
	if took > 10*time.Second {
		t.Errorf("kstat serve %v took %v to fail, want seconds", args, took)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "kstat: ") {
			n++
		}
	}
	if n != 1 || !strings.HasPrefix(last, "kstat: ") {
		t.Errorf("kstat serve %v: want one \"kstat: \" line, the last, got:\n%s", args, stderr.String())
	}
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Errorf("kstat serve %v: the error %q does not say %q", args, last, w)
		}
	}
	if _, ok := fusefs.MountedAt(mount); ok {
		_ = syscall.Unmount(mount, syscall.MNT_DETACH)
		t.Errorf("kstat serve %v left %s mounted", args, mount)
	}
}

// TestServeFailsClosed: what the user configured either starts or the
// daemon exits non-zero with one line saying why.
func TestServeFailsClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"listen in use", []string{"--listen", ln.Addr().String()}, []string{ln.Addr().String(), "already in use"}},
		{"telemetry-ring", []string{"--listen", "", "--telemetry-ring", "0"}, []string{"--telemetry-ring"}},
		{"capabilities.keep", []string{"--listen", "", "--capabilities.keep", "cap_nonsense"}, []string{"--capabilities.keep", "cap_nonsense"}},
		{"netns missing", []string{"--listen", "", "--netns", filepath.Join(dir, "no-netns")}, []string{"--netns"}},
	} {
		t.Run(c.name, func(t *testing.T) { serveMustFail(t, c.args, c.want...) })
	}
	t.Run("tracer without BPF capabilities", func(t *testing.T) {
		// Without CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN nothing can load
		// the tracer's programs: --tracer asked for it, so the daemon
		// exits; KSTAT and the IRQ counters, not asked for, only degrade.
		testutil.RequireCommand(t, "setpriv")
		drop := "-bpf,-perfmon,-sys_admin"
		out, err := exec.Command("setpriv", "--inh-caps", drop, "--bounding-set", drop, "--",
			kstatBinary(t), "serve", "--mount", "", "--listen", "", "--control-socket", "", "--tracer").CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		last := lines[len(lines)-1]
		if err == nil || !strings.HasPrefix(last, "kstat: tracer: --tracer: ") || !strings.Contains(last, "CAP_BPF") {
			t.Errorf("--tracer without CAP_BPF: %v, want a non-zero exit whose last line names --tracer and CAP_BPF:\n%s", err, out)
		}
		if !strings.Contains(string(out), "feature=kstat") {
			t.Errorf("KSTAT's missing capability is not reported as a degraded feature:\n%s", out)
		}
	})
	t.Run("mount on a file", func(t *testing.T) {
		testutil.RequireFUSE(t)
		cmd := exec.Command(kstatBinary(t), "serve", "--mount", file, "--listen", "", "--control-socket", "")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "kstat: mounting the statistics filesystem at "+file) {
			t.Errorf("--mount on a file: %v\n%s", err, out)
		}
	})
}

// TestServeReadyAndFeatures: /healthz says each feature's state, the
// ready line says where everything is, and the first scrape the daemon
// answers holds every metric family a later one does, on each of several
// starts.
func TestServeReadyAndFeatures(t *testing.T) {
	for i := range 3 {
		d, base := startHTTPDaemon(t, "--telemetry-interval", "200ms")
		_, first := scrapeMetrics(t, base)
		code, health := httpDo(t, "GET", base+"/healthz", "")
		if code != http.StatusOK || !strings.HasPrefix(health, "ready\n") {
			t.Fatalf("/healthz after start-up: %d\n%s", code, health)
		}
		for _, f := range []string{"bufstat", "http", "kstat", "self", "telemetry", "tracer", "irqcount"} {
			if !strings.Contains(health, "\n"+f+" up\n") {
				t.Errorf("/healthz does not say %s is up:\n%s", f, health)
			}
			if v, ok := series(first, "kstat_feature_up", "feature="+f); !ok || v != 1 {
				t.Errorf("kstat_feature_up{feature=%q} = %v (present %v), want 1", f, v, ok)
			}
		}
		ready := d.Stderr()
		for _, w := range []string{`msg="kstat serve ready"`, "mount=" + d.Mount, "dashboard=" + base + "/", "api=" + base + "/api/v1/", "features_on="} {
			if !strings.Contains(ready, w) {
				t.Errorf("the ready log line lacks %q:\n%s", w, ready)
			}
		}
		time.Sleep(1500 * time.Millisecond)
		_, later := scrapeMetrics(t, base)
		var missing []string
		for name := range later {
			if _, ok := first[name]; !ok {
				missing = append(missing, name)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("start %d: the first scrape lacks %d families a later one has: %v", i+1, len(missing), missing)
		}
	}
}

// TestServeHealthzBeforeReady: until start-up is done (and once the
// daemon stops) /healthz answers 503, with each feature's state.
func TestServeHealthzBeforeReady(t *testing.T) {
	h := newFeatureStates(statsfs.NewSource("kstat"))
	h.set("kstat", nil)
	h.off("http", "--listen is empty")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != "not ready: starting or stopping\nhttp off: --listen is empty\nkstat up\n" {
		t.Errorf("before ready: %d %q", rec.Code, rec.Body.String())
	}
	h.ready.Store(true)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "ready\n") {
		t.Errorf("ready: %d %q", rec.Code, rec.Body.String())
	}
}

// TestServeJSONLogFullDisk puts the JSON log on a small tmpfs the test
// mounts and fills: the daemon keeps serving, the failures are counted
// (telemetry/log_json_errors, kstat_telemetry_log_json_errors_total) and
// logging resumes, with whole lines, when space returns. The log's lines
// are checked with encoding/json, the space with statfs.
func TestServeJSONLogFullDisk(t *testing.T) {
	testutil.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Fatalf("mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	logPath := filepath.Join(dir, "log.json")
	d, base := startHTTPDaemon(t, "--telemetry-interval", "100ms", "--log-json", logPath, "--log-json-max-size", "0")
	waitUntil(t, 10*time.Second, "the log has lines", func() bool { return fileSize(logPath) > 0 })

	// Fill the tmpfs to the last byte.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	for {
		if _, err := f.Write(buf[:1]); err != nil {
			break
		}
	}
	f.Close()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Bavail != 0 {
		t.Fatalf("the tmpfs is not full: %d blocks free, %v", st.Bavail, err)
	}

	waitUntil(t, 10*time.Second, "telemetry/log_json_errors counts failures", func() bool {
		return readNumber(t, d.Path("telemetry/log_json_errors")) >= 3
	})
	if v := readText(t, d.Path("telemetry/log_json_failing")); v != "1\n" {
		t.Errorf("telemetry/log_json_failing = %q on a full disk", v)
	}
	if !strings.Contains(d.Stderr(), "writing the JSON log failed") {
		t.Errorf("the failure is not logged:\n%s", d.Stderr())
	}
	// Serving goes on: the mount, /healthz and /metrics, with the error
	// as a metric.
	if code, _ := httpDo(t, "GET", base+"/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz on a full log disk: %d", code)
	}
	_, mfs := scrapeMetrics(t, base)
	if v, ok := series(mfs, "kstat_telemetry_log_json_errors_total"); !ok || v < 3 {
		t.Errorf("kstat_telemetry_log_json_errors_total = %v (present %v)", v, ok)
	}
	if got, want := readNumber(t, d.Path("memory/total")), float64(procField(t, "/proc/meminfo", "MemTotal")*1024); got != want {
		t.Errorf("memory/total = %v, /proc/meminfo %v", got, want)
	}

	// Space returns: logging resumes.
	full := fileSize(logPath)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the log grows again", func() bool { return fileSize(logPath) > full+1 })
	waitUntil(t, 5*time.Second, "telemetry/log_json_failing returns to 0", func() bool {
		return readText(t, d.Path("telemetry/log_json_failing")) == "0\n"
	})
	if !strings.Contains(d.Stderr(), "writing the JSON log works again") {
		t.Errorf("the recovery is not logged:\n%s", d.Stderr())
	}
	time.Sleep(300 * time.Millisecond)
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for i, l := range lines[:len(lines)-1] { // the last may be half written now
		if !json.Valid([]byte(l)) {
			t.Errorf("log line %d of %d is not JSON: %.80q", i+1, len(lines), l)
		}
	}
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return st.Size()
}

// waitUntil polls cond every 20ms until it holds, failing the test after
// timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
	}
}
