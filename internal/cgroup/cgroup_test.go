package cgroup

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
)

func TestParseMounts(t *testing.T) {
	got, err := parseMounts([]byte("proc /proc proc rw 0 0\ncgroup2 /sys/fs/my\\040cgroup cgroup2 rw,nosuid 0 0\nnone /x cgroup2 rw 0 0\n"))
	if err != nil || got != "/sys/fs/my cgroup" {
		t.Errorf("parseMounts = %q, %v", got, err)
	}
	if _, err := parseMounts([]byte("proc /proc proc rw 0 0\nbad\n")); err != ErrNoCgroup2 {
		t.Errorf("without cgroup2: %v", err)
	}
}

// kernelID is the id the kernel gives group dir: the 8 bytes of its
// file handle (what bpf_get_current_cgroup_id returns), read with
// name_to_handle_at, independently of the inode the resolver uses.
func kernelID(t *testing.T, dir string) uint64 {
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, dir, 0)
	if err != nil {
		t.Fatalf("name_to_handle_at %s: %v", dir, err)
	}
	if len(h.Bytes()) != 8 {
		t.Fatalf("cgroup file handle of %d bytes", len(h.Bytes()))
	}
	return binary.NativeEndian.Uint64(h.Bytes())
}

func TestResolver(t *testing.T) {
	testutil.RequireRoot(t)
	mount, err := FindMount("/proc")
	if err != nil {
		t.Fatal(err)
	}
	group := fmt.Sprintf("kstat-resolver-%d", os.Getpid())
	dir := filepath.Join(mount, group)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	if err := os.Mkdir(filepath.Join(dir, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filepath.Join(dir, "child"))
	r := NewResolver(mount)
	for path, want := range map[string]string{dir: group, filepath.Join(dir, "child"): group + "/child", mount: "/"} {
		id := kernelID(t, path)
		if got, ok := r.Path(id); !ok || got != want {
			t.Errorf("Path(%d) = %q, %v; want %q", id, got, ok, want)
		}
	}
	if _, ok := r.Path(1 << 62); ok {
		t.Error("an unknown id resolved")
	}
	// This process's own group, from /proc/self/cgroup.
	self, err := ProcPath("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	selfDir := mount
	if self != "/" {
		selfDir = filepath.Join(mount, self)
	}
	if _, err := os.Stat(selfDir); err != nil {
		t.Errorf("ProcPath = %q, not a group: %v", self, err)
	}
}

func TestGroupsBudget(t *testing.T) {
	values := []statsfs.Value{
		{Name: "forks", Type: statsfs.U64, Aggr: statsfs.Sum},
		{Name: "wait", Type: statsfs.F64, Unit: "seconds", Aggr: statsfs.Sum},
	}
	parent := statsfs.NewSource("cgroup")
	g, err := NewGroups(parent, values, 2)
	if err != nil {
		t.Fatal(err)
	}
	s := Sums{}
	s.Add(2, "system.slice/a.service", 0, 5)
	s.Add(2, "system.slice/a.service", 0, 6)
	s.Add(2, "system.slice/a.service", 1, 0.75)
	s.Add(2, "b", 0, 3)
	s.Add(2, "/", 0, 1)
	g.Update(s)
	a := parent.Subordinate("system.slice:a.service")
	if a == nil || a.LabelValue() != "system.slice/a.service" || a.Label() != "cgroup" {
		t.Fatalf("group a: %v", a)
	}
	for name, want := range map[string]float64{"forks": 11, "wait": 0.75} {
		if got, err := a.GetByName(name); err != nil || got.Float64() != want {
			t.Errorf("%s = %v, %v; want %v", name, got.Float64(), err, want)
		}
	}
	if parent.Subordinate("b") == nil || parent.Subordinate("-") != nil {
		t.Error("budget of 2: want a and b, not the root group")
	}
	if d, _ := parent.GetByName("groups_dropped"); d.Uint64() != 1 {
		t.Errorf("groups_dropped = %d", d.Uint64())
	}
	// Groups that went quiet leave room: their sources go.
	g.Update(Sums{"/": {4, 0}})
	if parent.Subordinate("system.slice:a.service") != nil || parent.Subordinate("-") == nil {
		t.Error("after an update without a and b they remain, or / is missing")
	}
}
