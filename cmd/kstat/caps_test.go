package main

// Tests of the daemon's privileges after start-up, read from
// /proc/PID/status (the kernel's view, independent of internal/caps).

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/caps"
	"github.com/kstat/kstat/internal/testutil"
)

// procStatus returns the fields of /proc/PID/status, or of one of its
// threads' (path "task/TID").
func procStatus(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(path, "status"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// checkPrivileges checks that every thread of pid has exactly the
// effective and permitted capabilities of mask, no inheritable or ambient
// ones, and no_new_privs set.
func checkPrivileges(t *testing.T, pid int, mask uint64) {
	t.Helper()
	want := fmtMask(mask)
	tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*"))
	if err != nil || len(tasks) < 2 {
		t.Fatalf("threads of %d: %v %v", pid, tasks, err)
	}
	for _, task := range append([]string{filepath.Join("/proc", strconv.Itoa(pid))}, tasks...) {
		st := procStatus(t, task)
		for k, w := range map[string]string{"CapEff": want, "CapPrm": want, "CapInh": fmtMask(0), "CapAmb": fmtMask(0), "NoNewPrivs": "1"} {
			if st[k] != w {
				t.Errorf("%s: %s = %s, want %s", task, k, st[k], w)
			}
		}
	}
}

func fmtMask(m uint64) string {
	return strings.Repeat("0", 16-len(strconv.FormatUint(m, 16))) + strconv.FormatUint(m, 16)
}

// TestServeCapabilities: after start-up the daemon keeps exactly the
// documented set (caps.Default: cap_bpf, cap_perfmon, cap_sys_admin) on
// every thread, with no_new_privs; with --capabilities.keep none it keeps
// nothing, a knob that needs a capability says which, the others work,
// and SIGTERM still ends it with status 0.
func TestServeCapabilities(t *testing.T) {
	const documented = 0x000000c000200000 // docs/SECURITY.md
	if caps.Default.Mask() != documented {
		t.Errorf("caps.Default is %s (%x), docs/SECURITY.md documents %x", caps.Default, caps.Default.Mask(), uint64(documented))
	}
	d := startDaemon(t, "--listen", "")
	waitForLog(t, d, "kstat serve ready")
	checkPrivileges(t, d.cmd.Process.Pid, documented)
	if err := os.WriteFile(d.Path("tracer/enable"), []byte("1\n"), 0); err != nil {
		t.Errorf("tracer/enable with the default capabilities: %v", err)
	}
	if err := os.WriteFile(d.Path("kstat/start"), []byte("1\n"), 0); err != nil {
		t.Errorf("kstat/start with the default capabilities: %v", err)
	}

	none, _ := startHTTPDaemon(t, "--capabilities.keep", "none")
	waitForLog(t, none, "kstat serve ready")
	checkPrivileges(t, none.cmd.Process.Pid, 0)
	code, body := none.SocketDo(t, "PUT", "/api/v1/knobs/tracer/enable", "1")
	if code == http.StatusOK || !strings.Contains(body, "cap_bpf") || !strings.Contains(body, "cap_perfmon") {
		t.Errorf("PUT tracer/enable 1 with no capabilities: %d %s, want a refusal naming cap_bpf and cap_perfmon", code, body)
	}
	if r := readText(t, none.Path("feature/tracer/reason")); !strings.Contains(r, "cap_bpf") {
		t.Errorf("feature/tracer/reason = %q, want it to name cap_bpf", r)
	}
	if up := readText(t, none.Path("feature/tracer/up")); up != "0\n" {
		t.Errorf("feature/tracer/up = %q after a failed attach", up)
	}
	// Creating KSTAT's link from the program loaded at start-up needs no
	// capability.
	if err := os.WriteFile(none.Path("kstat/start"), []byte("1\n"), 0); err != nil {
		t.Errorf("kstat/start with no capabilities: %v", err)
	}
	none.Signal(t, syscall.SIGTERM)
	if err := none.Wait(t, 15*time.Second); err != nil {
		t.Errorf("--capabilities.keep none: exit %v after SIGTERM, want 0", err)
	}
	if !strings.Contains(none.Stderr(), "unmounting needs cap_sys_admin") {
		t.Errorf("the daemon did not say why its mount stays:\n%s", none.Stderr())
	}
	// The dead mount it leaves is the next start's to recover.
	next := startDaemonAt(t, none.Mount, "--listen", "")
	if !strings.Contains(next.Stderr(), "detached a stale statistics mount") {
		t.Errorf("the next daemon did not recover the mount:\n%s", next.Stderr())
	}
}

// TestServeNonRoot runs the daemon as uid 65534 with only the ambient
// capabilities of deploy/systemd/kstat.service: every feature and every
// collector works (the test reads the mount and sets knobs as root), and
// after start-up it keeps the documented set (that of root plus
// cap_dac_read_search, for /proc/slabinfo).
func TestServeNonRoot(t *testing.T) {
	testutil.RequireFUSE(t)
	const nobody = 65534
	bin := kstatBinary(t)
	// The binary's and the mount point's directories must let uid
	// 65534 through.
	for _, dir := range []string{filepath.Dir(bin)} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	top := t.TempDir()
	if err := os.Chmod(filepath.Dir(top), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	mount := filepath.Join(top, "mnt")
	if err := os.Mkdir(mount, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mount, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	sockDir := filepath.Join(top, "run") // the daemon's own, for its control socket
	if err := os.Mkdir(sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sockDir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	ambient := []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_NET_ADMIN, unix.CAP_DAC_READ_SEARCH}
	d := &testDaemon{Mount: mount, stderr: &lockedBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(bin, "serve", "--mount", mount, "--listen", "127.0.0.1:0", "--collector.slabinfo", "--control-socket", filepath.Join(sockDir, "kstat.sock"))
	d.cmd.Stdout, d.cmd.Stderr = d.stderr, d.stderr
	d.cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:     true,
		Credential:  &syscall.Credential{Uid: nobody, Gid: nobody, NoSetGroups: false},
		AmbientCaps: ambient,
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			t.Logf("kstat serve (uid %d) stderr:\n%s", nobody, d.stderr.String())
		}
	})
	waitForFile(t, filepath.Join(mount, "self", "uptime_seconds"), 30*time.Second, d.done)
	waitForLog(t, d, "kstat serve ready")
	pid := d.cmd.Process.Pid
	if st := procStatus(t, filepath.Join("/proc", strconv.Itoa(pid))); !strings.HasPrefix(st["Uid"], "65534\t65534\t65534\t65534") {
		t.Errorf("the daemon runs as Uid %q", st["Uid"])
	}
	checkPrivileges(t, pid, caps.DefaultFor(nobody, true).Mask())

	// Every feature is up; values match /proc.
	for _, f := range []string{"bufstat", "http", "irqcount", "kstat", "self", "telemetry", "tracer"} {
		if up := readText(t, filepath.Join(mount, "feature", f, "up")); up != "1\n" {
			t.Errorf("as uid %d, feature %s: up %q, reason %q", nobody, f, up, readText(t, filepath.Join(mount, "feature", f, "reason")))
		}
	}
	if got, want := readNumber(t, filepath.Join(mount, "memory", "total")), float64(procField(t, "/proc/meminfo", "MemTotal")*1024); got != want {
		t.Errorf("memory/total = %v, /proc/meminfo says %v", got, want)
	}
	for _, knob := range []string{"tracer/enable", "kstat/start"} {
		if err := os.WriteFile(filepath.Join(mount, knob), []byte("1\n"), 0); err != nil {
			t.Errorf("as uid %d: writing 1 to %s: %v", nobody, knob, err)
		}
	}
	m := listenRE.FindStringSubmatch(d.Stderr())
	if m == nil {
		t.Fatalf("no HTTP address in the log")
	}
	_, mfs := scrapeMetrics(t, "http://"+m[1])
	for _, s := range mfs["kstat_scrape_collector_success"].GetMetric() {
		if s.GetGauge().GetValue() != 1 {
			t.Errorf("as uid %d a collector fails: %v", nobody, s.GetLabel())
		}
	}
}
