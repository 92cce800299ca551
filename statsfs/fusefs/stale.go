package fusefs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/mountinfo"
)

// prepare makes dir ready to be mounted on: it detaches dead FUSE mounts
// stacked on it, refuses a live kstat mount, and creates it when missing.
func prepare(dir string, log *slog.Logger) error {
	for range 8 {
		_, err := os.Stat(dir)
		if !errors.Is(err, syscall.ENOTCONN) {
			break
		}
		if err := detach(dir); err != nil {
			return fmt.Errorf("fusefs: %s is a dead FUSE mount and detaching it failed (needs root privileges): %w", dir, err)
		}
		log.Warn("detached a stale statistics mount left by a daemon that died", "mount", dir)
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("fusefs: creating the mount point: %w", err)
		}
		return nil
	case errors.Is(err, syscall.ENOTCONN):
		return fmt.Errorf("fusefs: %s: still a dead FUSE mount after detaching it: %w", dir, err)
	case err != nil:
		return fmt.Errorf("fusefs: mount point: %w", err)
	case !st.IsDir():
		return fmt.Errorf("fusefs: mount point %s is not a directory", dir)
	}
	if typ, ok := MountedAt(dir); ok && typ == "fuse."+Type {
		return fmt.Errorf("fusefs: a statistics filesystem is already mounted at %s (is another kstat serve running?)", dir)
	}
	return nil
}

// detach lazily unmounts dir.
func detach(dir string) error {
	return unix.Unmount(dir, unix.MNT_DETACH)
}

// MountedAt reports whether dir (an absolute, clean path) is a mount point
// in this process's mount namespace, and the type of the topmost mount
// there, from /proc/self/mountinfo.
func MountedAt(dir string) (fstype string, ok bool) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false
	}
	defer f.Close()
	return mountedIn(f, dir)
}

// mountedIn is MountedAt over a mountinfo file.
func mountedIn(r io.Reader, dir string) (fstype string, ok bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		point, typ, valid := parseMountinfo(sc.Text())
		if valid && point == dir {
			fstype, ok = typ, true // later lines are mounted on top
		}
	}
	return fstype, ok
}

// parseMountinfo returns the mount point and filesystem type of one line of
// /proc/self/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfo(line string) (point, fstype string, ok bool) {
	fields := strings.Split(line, " ") // the kernel escapes spaces in paths
	if len(fields) < 10 {
		return "", "", false
	}
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+1 >= len(fields) {
		return "", "", false
	}
	return mountinfo.Unescape(fields[4]), fields[sep+1], true
}
