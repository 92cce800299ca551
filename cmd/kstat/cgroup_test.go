package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kstat/kstat/internal/cgroup"
	"github.com/kstat/kstat/internal/testutil"
)

// forker is a shell in its own cgroup v2 group that forks n children
// (each runs /bin/true) when told to, then waits to be ended.
type forker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	group string // path below the cgroup2 mount
	n     int
}

func startForker(t *testing.T, mount, group string, n int) *forker {
	t.Helper()
	dir := filepath.Join(mount, group)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// One external command per loop turn: dash forks exactly once for it.
	script := "read go; for i in" + strings.Repeat(" x", n) + "; do /bin/true; done; read end"
	f := &forker{cmd: exec.Command("/bin/sh", "-c", script), group: group, n: n}
	var err error
	if f.stdin, err = f.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.stdin.Close()
		f.cmd.Wait() //nolint:errcheck // ended by closing stdin
		if err := os.Remove(dir); err != nil {
			t.Errorf("removing the test's cgroup: %v", err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(f.cmd.Process.Pid)), 0o644); err != nil {
		t.Fatalf("moving the shell into %s: %v", dir, err)
	}
	return f
}

// TestCgroupAttribution runs two shells in two cgroup v2 groups the test
// creates, traced alone, and reads their exact fork counts under their
// own group: in the tree (tracer/cgroup/<path>/forks) and in /metrics
// (cgroup label). A second daemon with a budget of one group shows the
// more active one and counts the other as dropped.
func TestCgroupAttribution(t *testing.T) {
	testutil.RequireRoot(t)
	mount, err := cgroup.FindMount("/proc")
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("kstat-test-%d", os.Getpid())
	a := startForker(t, mount, prefix+"-a", 7)
	b := startForker(t, mount, prefix+"-b", 13)
	only := []string{"--tracer", "--tracer-pid", strconv.Itoa(a.cmd.Process.Pid), "--tracer-pid", strconv.Itoa(b.cmd.Process.Pid)}
	d, url := startHTTPDaemon(t, only...)
	small := startDaemon(t, append([]string{"--listen=", "--cgroup.max", "1"}, only...)...)
	for _, f := range []*forker{a, b} {
		if got, err := cgroup.ProcPath("/proc", f.cmd.Process.Pid); err != nil || got != f.group {
			t.Fatalf("the shell is in cgroup %q (%v), want %q", got, err, f.group)
		}
		if _, err := io.WriteString(f.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []*forker{a, b} {
		path := d.Path("tracer/cgroup/" + cgroup.DirName(f.group) + "/forks")
		waitValue(t, path, uint64(f.n))
		_, body := httpDo(t, "GET", url+"/metrics", "")
		want := fmt.Sprintf(`kstat_tracer_cgroup_forks_total{cgroup=%q} %d`, f.group, f.n)
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Budget of one: the more active group (b) stays, a is dropped.
	t.Cleanup(func() {
		if t.Failed() {
			ents, _ := os.ReadDir(small.Path("tracer/cgroup"))
			for _, e := range ents {
				b, _ := os.ReadFile(small.Path("tracer/cgroup/" + e.Name() + "/forks"))
				t.Logf("budget 1: tracer/cgroup/%s forks=%s", e.Name(), b)
			}
		}
	})
	waitValue(t, small.Path("tracer/cgroup/"+cgroup.DirName(b.group)+"/forks"), uint64(b.n))
	if got := kstatRead(t, small.Path("tracer/cgroup/groups_dropped")); got != 1 {
		t.Errorf("groups_dropped = %d with 2 traced groups and a budget of 1", got)
	}
	if _, err := os.Stat(small.Path("tracer/cgroup/" + cgroup.DirName(a.group))); err == nil {
		t.Errorf("the less active group is shown beyond the budget")
	}
}

// waitValue waits up to 10 s for a value file to read want.
func waitValue(t *testing.T, path string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		got = strings.TrimSpace(string(b))
		if err == nil && got == strconv.FormatUint(want, 10) {
			return
		}
		if err != nil {
			got = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s = %s, want %d", path, got, want)
}
