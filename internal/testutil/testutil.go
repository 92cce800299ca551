// Package testutil holds the checks and helpers shared by kstat's tests:
// the one place that decides whether a test needs root or a kernel feature,
// network namespaces, and fixture paths.
package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/kstat/kstat/internal/netns"
	"github.com/kstat/kstat/internal/testutil/host"
)

// RequireRoot skips the test with the reason when it does not run as root.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	host.RequireRoot(tb)
}

// RequireBPF skips the test unless it runs as root on a kernel that supports
// the BPF program type pt. It fails the test when the check itself errs.
func RequireBPF(tb testing.TB, pt ebpf.ProgramType) {
	tb.Helper()
	RequireRoot(tb)
	err := features.HaveProgramType(pt)
	if errors.Is(err, ebpf.ErrNotSupported) {
		tb.Skipf("kernel does not support BPF program type %v: %v", pt, err)
	}
	if err != nil {
		tb.Fatalf("probing BPF program type %v: %v", pt, err)
	}
}

// RequireFUSE skips the test unless it runs as root with /dev/fuse present.
func RequireFUSE(tb testing.TB) {
	tb.Helper()
	host.RequireFUSE(tb)
}

// RequireCommand fails the test when a program the test needs is missing:
// the README's test command installs every one of them.
func RequireCommand(tb testing.TB, name string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		tb.Fatalf("%s is not installed; run scripts/test.sh, which installs the test dependencies", name)
	}
}

// Fixture returns the path of a file or folder under the module's testdata/.
func Fixture(tb testing.TB, parts ...string) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "testdata")
	return filepath.Join(append([]string{root}, parts...)...)
}

// Run runs a command and fails the test with its output when it fails.
func Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var nsSeq atomic.Uint64

// NetNS is a network namespace made for one test with `ip netns add`.
type NetNS struct {
	Name string // the name given to ip netns
	Path string // /run/netns/NAME, for setns(2) and kstat's --netns
}

// NewNetNS makes a namespace with its loopback up and deletes it when the
// test ends.
func NewNetNS(tb testing.TB) *NetNS {
	tb.Helper()
	RequireRoot(tb)
	RequireCommand(tb, "ip")
	name := fmt.Sprintf("kstat-t%d-%d", os.Getpid(), nsSeq.Add(1))
	Run(tb, "ip", "netns", "add", name)
	tb.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	ns := &NetNS{Name: name, Path: "/run/netns/" + name}
	ns.Exec(tb, "ip", "link", "set", "lo", "up")
	return ns
}

// Exec runs a command inside the namespace and returns its output.
func (ns *NetNS) Exec(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	return Run(tb, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Do runs fn on an OS thread that has joined the namespace (netns.Do).
// Sockets opened by fn belong to the namespace.
func (ns *NetNS) Do(fn func() error) error { return netns.Do(ns.Path, fn) }

// DiskIO writes and syncs a file on the disk behind the test's temporary
// folder, so the block device interrupts and the BLOCK softirq runs: tests
// of IRQ counts use it to make numbered IRQ lines move.
func DiskIO(t testing.TB) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "io"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for i := range 20 {
		buf[0] = byte(i)
		if _, err := f.WriteAt(buf, int64(i)*int64(len(buf))); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}
