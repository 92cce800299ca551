package testutil

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Cgroup2Mount returns where the cgroup v2 hierarchy is mounted (from
// /proc/mounts: it may be /sys/fs/cgroup or, on hybrid systems,
// /sys/fs/cgroup/unified). It fails the test when there is none.
func Cgroup2Mount(tb testing.TB) string {
	tb.Helper()
	RequireRoot(tb)
	f, err := os.Open("/proc/mounts")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 3 && fs[2] == "cgroup2" {
			return fs[1]
		}
	}
	tb.Fatal("no cgroup2 file system mounted (see /proc/mounts): cgroup v2 is needed")
	return ""
}

// Cgroup is a cgroup v2 group a test made.
type Cgroup struct {
	Path string // its directory
	ID   uint64 // its cgroup v2 id: the directory's inode number
}

// NewCgroup makes a cgroup v2 group for the test, removed at its end
// (after moving any process left in it to the root group).
func NewCgroup(tb testing.TB) *Cgroup {
	tb.Helper()
	root := Cgroup2Mount(tb)
	dir, err := os.MkdirTemp(root, "kstat-test-")
	if err != nil {
		tb.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				_ = os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(pid), 0)
			}
		}
		if err := os.Remove(dir); err != nil {
			tb.Errorf("removing cgroup %s: %v", dir, err)
		}
	})
	return &Cgroup{Path: dir, ID: st.Ino}
}

// Enter moves the process pid into the group.
func (c *Cgroup) Enter(tb testing.TB, pid int) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(c.Path, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		tb.Fatalf("moving pid %d into cgroup %s: %v", pid, c.Path, err)
	}
}

// SelfCgroup is the directory of this process's cgroup v2 group.
func SelfCgroup(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(Cgroup2Mount(tb), rest)
		}
	}
	tb.Fatal("this process is in no cgroup v2 group (/proc/self/cgroup has no 0:: line)")
	return ""
}
