package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kstat/kstat/statsfs/fusefs"
)

func readNumber(t *testing.T, path string) float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(string(b), "\n"), 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// TestServeRecoversAfterSIGKILL kills a daemon so that it leaves a dead
// mount behind, and starts a new one on the same mount point.
func TestServeRecoversAfterSIGKILL(t *testing.T) {
	mount := filepath.Join(t.TempDir(), "mnt")
	first := startDaemonAt(t, mount)
	if up := readNumber(t, first.Path("self/uptime_seconds")); up < 0 || up > 60 {
		t.Errorf("first daemon's uptime %v", up)
	}
	first.Signal(t, syscall.SIGKILL)
	_ = first.Wait(t, 10*time.Second)
	if _, err := os.Stat(mount); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after SIGKILL the mount point gives %v, want a dead mount (ENOTCONN)", err)
	}

	second := startDaemonAt(t, mount)
	time.Sleep(50 * time.Millisecond)
	if up := readNumber(t, second.Path("self/uptime_seconds")); up <= 0 || up > 60 {
		t.Errorf("second daemon's uptime %v", up)
	}
	if !strings.Contains(second.Stderr(), "detached a stale statistics mount") {
		t.Errorf("the second daemon did not report the recovery:\n%s", second.Stderr())
	}
}

// TestServeSIGTERMUnmounts checks that SIGTERM ends the daemon with status
// 0 and nothing left mounted, as /proc/self/mountinfo shows.
func TestServeSIGTERMUnmounts(t *testing.T) {
	d := startDaemon(t)
	if _, ok := fusefs.MountedAt(d.Mount); !ok {
		t.Fatal("the daemon's mount is not in /proc/self/mountinfo")
	}
	// An open file must not keep the mount.
	f, err := os.Open(d.Path("self/goroutines"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d.Signal(t, syscall.SIGTERM)
	if err := d.Wait(t, 15*time.Second); err != nil {
		t.Errorf("kstat serve exited with %v after SIGTERM", err)
	}
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mountinfo), " "+d.Mount+" ") {
		t.Errorf("%s is still mounted after SIGTERM:\n%s", d.Mount, mountinfo)
	}
}

// TestServeSelf checks the self/ values against what the test sees of the
// daemon's process in /proc.
func TestServeSelf(t *testing.T) {
	d := startDaemon(t)
	pid := d.cmd.Process.Pid

	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	// The daemon's count includes the descriptor of the open file being
	// read and FUSE's own; allow a few either way.
	if got := readNumber(t, d.Path("self/open_fds")); got < float64(len(fds)-3) || got > float64(len(fds)+3) {
		t.Errorf("open_fds = %v, /proc/%d/fd has %d", got, pid, len(fds))
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var rss float64
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			rss, _ = strconv.ParseFloat(f[1], 64)
			rss *= 1024
		}
	}
	if heap := readNumber(t, d.Path("self/heap_bytes")); heap <= 0 || heap > rss {
		t.Errorf("heap_bytes = %v, resident set is %v bytes", heap, rss)
	}
	if g := readNumber(t, d.Path("self/goroutines")); g < 2 {
		t.Errorf("goroutines = %v", g)
	}

	up1 := readNumber(t, d.Path("self/uptime_seconds"))
	time.Sleep(1100 * time.Millisecond)
	if up2 := readNumber(t, d.Path("self/uptime_seconds")); up2-up1 < 1 || up2-up1 > 30 {
		t.Errorf("uptime went from %v to %v over 1.1s", up1, up2)
	}

	// The FUSE counters count the requests this test makes.
	reads := d.Path("self/fuse_reads")
	before := readNumber(t, reads)
	const n = 20
	for range n {
		readNumber(t, d.Path("self/goroutines"))
	}
	if after := readNumber(t, reads); after-before < n+1 {
		t.Errorf("fuse_reads went from %v to %v over %d reads", before, after, n+1)
	}
	if err := os.WriteFile(reads, []byte("0\n"), 0); err != nil {
		t.Fatal(err)
	}
	if after := readNumber(t, reads); after > 3 {
		t.Errorf("fuse_reads = %v right after it was cleared", after)
	}
	if err := os.WriteFile(d.Path("self/uptime_seconds"), []byte("0\n"), 0); !errors.Is(err, syscall.EACCES) {
		t.Errorf("writing uptime_seconds: %v, want EACCES", err)
	}
}
