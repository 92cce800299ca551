package main

// Helpers for tests that run the kstat binary: it is built once per test
// run (on first use) and started as a child process.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs/fusefs"
)

var (
	binDir   string // holds the binary; removed after the run
	binOnce  sync.Once
	binPath  string
	binError error
)

func TestMain(m *testing.M) {
	runPeerRequest()
	var err error
	binDir, err = os.MkdirTemp("", "kstat-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// kstatBinary returns the path of the kstat binary built from this
// package's source, building it on the first call of the run.
func kstatBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(binDir, "kstat")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("building kstat: %v\n%s", err, out)
		}
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

// runKstat runs `kstat args...` to the end and returns its stdout, its
// stderr and its error (an *exec.ExitError when it exits non-zero).
func runKstat(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(kstatBinary(t), args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// lockedBuffer is a bytes.Buffer safe for a child's writes and the test's
// reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// daemon is a running `kstat serve` child.
type testDaemon struct {
	Mount  string // the mount point
	Socket string // the control socket (in a directory of the test)
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // its exit error, set before done closes
}

// startDaemon starts `kstat serve --mount DIR args...` with DIR a new
// directory of the test, and waits until the mount serves self/.
func startDaemon(t *testing.T, args ...string) *testDaemon {
	t.Helper()
	return startDaemonAt(t, filepath.Join(t.TempDir(), "mnt"), args...)
}

// startDaemonAt is startDaemon on a given mount point. The child runs in
// its own process group; its stderr goes to the test log when the test
// fails. At cleanup it gets SIGTERM, then SIGKILL after 10s, and a mount
// it left behind is detached. Unless args give --control-socket, the
// daemon's control socket is in a directory of the test (d.Socket), never
// the default /run/kstat.sock.
func startDaemonAt(t *testing.T, mount string, args ...string) *testDaemon {
	t.Helper()
	testutil.RequireFUSE(t)
	d := &testDaemon{Mount: mount, stderr: &lockedBuffer{}, done: make(chan struct{})}
	if !slices.ContainsFunc(args, func(a string) bool { return a == "--control-socket" || strings.HasPrefix(a, "--control-socket=") }) {
		// A directory others may enter, so that tests can show that the
		// socket's mode and its peer check keep them out.
		dir := t.TempDir()
		for _, p := range []string{dir, filepath.Dir(dir)} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		d.Socket = filepath.Join(dir, "kstat.sock")
		args = append([]string{"--control-socket", d.Socket}, args...)
	}
	d.cmd = exec.Command(kstatBinary(t), append([]string{"serve", "--mount", mount}, args...)...)
	d.cmd.Stdout = d.stderr
	d.cmd.Stderr = d.stderr
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
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
			t.Logf("kstat serve %s stderr:\n%s", strings.Join(args, " "), d.stderr.String())
		}
	})
	waitForFile(t, filepath.Join(mount, "self", "uptime_seconds"), 30*time.Second, d.done)
	if d.Socket != "" {
		// The control socket listens after the mount.
		waitForFile(t, d.Socket, 10*time.Second, d.done)
	}
	return d
}

// Path is the path of a file of the mount.
func (d *testDaemon) Path(rel string) string { return filepath.Join(d.Mount, rel) }

// Stderr is what the daemon has logged so far.
func (d *testDaemon) Stderr() string { return d.stderr.String() }

// Signal sends sig to the daemon's process group.
func (d *testDaemon) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(-d.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("kill %v: %v", sig, err)
	}
}

// Wait waits up to timeout for the daemon to exit and returns its exit
// error (nil for status 0).
func (d *testDaemon) Wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-d.done:
		return d.err
	case <-time.After(timeout):
		t.Fatalf("kstat serve still running %v after it was told to stop", timeout)
		return nil
	}
}

func (d *testDaemon) stop(t testing.TB) {
	select {
	case <-d.done:
	default:
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			t.Errorf("kstat serve ignored SIGTERM for 10s; killing it")
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-d.done:
			case <-time.After(10 * time.Second):
				t.Errorf("kstat serve (pid %d) did not die of SIGKILL within 10s", d.cmd.Process.Pid)
			}
		}
	}
	if _, ok := fusefs.MountedAt(d.Mount); ok {
		_ = unix.Unmount(d.Mount, unix.MNT_DETACH)
	}
}

// waitForFile waits until path exists, failing the test after timeout or
// as soon as exited (may be nil) is closed.
func waitForFile(t testing.TB, path string, timeout time.Duration, exited <-chan struct{}) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		// Stat in a goroutine: on a mount whose server does not answer
		// it blocks until the server dies, and the test must not.
		found := make(chan bool, 1)
		go func() {
			_, err := os.Stat(path)
			found <- err == nil
		}()
		select {
		case ok := <-found:
			if ok {
				return
			}
		case <-exited:
			t.Fatalf("the process exited before %s appeared", path)
		case <-deadline:
			t.Fatalf("%s did not appear within %v", path, timeout)
		}
		select {
		case <-exited:
			t.Fatalf("the process exited before %s appeared", path)
		case <-deadline:
			t.Fatalf("%s did not appear within %v", path, timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
