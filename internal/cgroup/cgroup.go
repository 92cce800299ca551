// Package cgroup attributes kernel activity to cgroup v2 groups (systemd
// units, containers, pods). It finds the cgroup2 mount in /proc/mounts,
// resolves a cgroup id (what bpf_get_current_cgroup_id and
// bpf_skb_cgroup_id return: the inode number of the group's directory) or
// a process to the group's path below the mount, and keeps per-group sums
// of per-process counters as statsfs sources, at most a budget of groups,
// the most active first.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kstat/kstat/internal/mountinfo"
)

// ErrNoCgroup2 says that no cgroup v2 hierarchy is mounted.
var ErrNoCgroup2 = errors.New("no cgroup2 filesystem in /proc/mounts (cgroup v2 is needed for per-cgroup attribution: boot with systemd.unified_cgroup_hierarchy=1 or mount -t cgroup2 none /sys/fs/cgroup)")

// FindMount returns where the cgroup2 filesystem is mounted, read from
// procRoot/mounts (the first cgroup2 line).
func FindMount(procRoot string) (string, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, "mounts"))
	if err != nil {
		return "", err
	}
	return parseMounts(b)
}

func parseMounts(b []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[2] == "cgroup2" {
			return mountinfo.Unescape(f[1]), nil
		}
	}
	return "", ErrNoCgroup2
}

// ProcPath returns the cgroup v2 path of process pid ("0::/system.slice/x"
// in procRoot/PID/cgroup), without its leading slash; "/" for the root.
func ProcPath(procRoot string, pid int) (string, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return label(p), nil
		}
	}
	return "", fmt.Errorf("process %d has no cgroup v2 line in %s/%d/cgroup", pid, procRoot, pid)
}

// label is a group's path as kstat shows it: relative to the mount, "/"
// for the root group.
func label(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return "/"
	}
	return p
}

// ID returns the cgroup id of the group directory at path: its inode number.
func ID(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// Resolver maps cgroup ids to paths below a cgroup2 mount. It walks the
// hierarchy when it meets an id it does not know, at most once per
// MinRewalk, so ids of groups that are gone cost no walk each time.
type Resolver struct {
	root string

	mu       sync.Mutex
	paths    map[uint64]string
	lastWalk time.Time
}

// MinRewalk is the shortest time between two walks of the hierarchy.
const MinRewalk = time.Second

// NewResolver resolves the ids of the hierarchy mounted at root.
func NewResolver(root string) *Resolver {
	return &Resolver{root: root, paths: map[uint64]string{}}
}

// Path returns the path of group id ("system.slice/foo.service", "/"
// for the root group), or false when no group has that id.
func (r *Resolver) Path(id uint64) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.paths[id]; ok {
		return p, true
	}
	if time.Since(r.lastWalk) < MinRewalk {
		return "", false
	}
	r.walk()
	p, ok := r.paths[id]
	return p, ok
}

// walk rebuilds the id → path map from the hierarchy.
func (r *Resolver) walk() {
	r.lastWalk = time.Now()
	paths := make(map[uint64]string, len(r.paths))
	filepath.WalkDir(r.root, func(p string, d fs.DirEntry, err error) error { //nolint:errcheck // a group that vanished mid-walk is skipped
		if err != nil || !d.IsDir() {
			return nil
		}
		id, err := ID(p)
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(r.root, p)
		if rel == "." {
			rel = ""
		}
		paths[id] = label(rel)
		return nil
	})
	r.paths = paths
}
