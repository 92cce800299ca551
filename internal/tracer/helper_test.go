package tracer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// The test binary doubles as the workload: run with KSTAT_TRACER_HELPER
// set, it acts as a child process whose pid the test knows.
func TestMain(m *testing.M) {
	if mode := os.Getenv("KSTAT_TRACER_HELPER"); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}

func envInt(name string) int {
	n, _ := strconv.Atoi(os.Getenv(name))
	return n
}

// helperMain runs a helper. It talks over stdin/stdout: it prints "ready"
// when set up, then obeys one command per line.
func helperMain(mode string) int {
	in := bufio.NewScanner(os.Stdin)
	say := func(s string) { fmt.Println(s) }
	switch mode {
	case "forkexec":
		// Exec ourselves KSTAT_EXECS more times (same pid), then fork
		// and reap KSTAT_FORKS children and end KSTAT_THREADS threads.
		if k := envInt("KSTAT_EXECS"); k > 0 {
			env := []string{"KSTAT_EXECS=" + strconv.Itoa(k-1)}
			for _, e := range os.Environ() {
				if !strings.HasPrefix(e, "KSTAT_EXECS=") {
					env = append(env, e)
				}
			}
			self, err := os.Executable()
			if err == nil {
				err = syscall.Exec(self, os.Args, env)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "exec:", err)
				return 1
			}
		}
		say("ready")
		if !in.Scan() {
			return 1
		}
		for range envInt("KSTAT_FORKS") {
			if err := forkAndReap(); err != nil {
				fmt.Fprintln(os.Stderr, "fork:", err)
				return 1
			}
		}
		for range envInt("KSTAT_THREADS") {
			done := make(chan struct{})
			go func() {
				// Exiting while locked ends the OS thread.
				runtime.LockOSThread()
				close(done)
			}()
			<-done
		}
		time.Sleep(50 * time.Millisecond) // let the runtime finish the thread exits
		say("done")
	case "pipes":
		// "open" makes KSTAT_PIPES pipes, "close" closes them. With
		// KSTAT_PIPE_READ_ONLY=1 only the read ends are kept.
		say("ready")
		var fds []int
		for in.Scan() {
			switch in.Text() {
			case "open":
				for range envInt("KSTAT_PIPES") {
					var p [2]int
					if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
						fmt.Fprintln(os.Stderr, "pipe:", err)
						return 1
					}
					if envInt("KSTAT_PIPE_READ_ONLY") == 1 {
						syscall.Close(p[1])
						fds = append(fds, p[0])
					} else {
						fds = append(fds, p[0], p[1])
					}
				}
			case "close":
				for _, fd := range fds {
					syscall.Close(fd)
				}
				fds = nil
			}
			say("done")
		}
	case "contend":
		// "go" runs KSTAT_THREADS threads writing to one pipe for
		// KSTAT_MS milliseconds: they contend for the pipe's mutex.
		say("ready")
		if !in.Scan() {
			return 1
		}
		var p [2]int
		if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
			return 1
		}
		stop := time.Now().Add(time.Duration(envInt("KSTAT_MS")) * time.Millisecond)
		go func() {
			buf := make([]byte, 1<<16)
			for {
				if n, err := syscall.Read(p[0], buf); n <= 0 || err != nil {
					return
				}
			}
		}()
		var wg sync.WaitGroup
		for range envInt("KSTAT_THREADS") {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				buf := make([]byte, 512)
				for time.Now().Before(stop) {
					_, _ = syscall.Write(p[1], buf)
				}
			}()
		}
		wg.Wait()
		syscall.Close(p[1])
		say("done")
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", mode)
		return 2
	}
	// Hold on until the test closes stdin.
	for in.Scan() {
	}
	return 0
}

// forkAndReap forks a child that exits at once, and waits for it: exactly
// one fork (os/exec would add the runtime's own CLONE_PIDFD probe).
func forkAndReap() error {
	pid, _, errno := syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	if pid == 0 {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	var ws syscall.WaitStatus
	_, err := syscall.Wait4(int(pid), &ws, 0, nil)
	return err
}

// helper is a running helper process.
type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	Pid   uint32
}

func startHelper(t *testing.T, mode string, env ...string) *helper {
	t.Helper()
	return startHelperIn(t, "", mode, env...)
}

// startHelperIn starts a helper in the cgroup v2 directory cgroup (clone3
// CLONE_INTO_CGROUP), or in the test's own when it is "".
func startHelperIn(t *testing.T, cgroup string, mode string, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if cgroup != "" {
		dir, err := os.Open(cgroup)
		if err != nil {
			t.Fatal(err)
		}
		defer dir.Close()
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	}
	cmd.Env = append(os.Environ(), append([]string{"KSTAT_TRACER_HELPER=" + mode}, env...)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout), Pid: uint32(cmd.Process.Pid)}
	t.Cleanup(func() { h.Stop() })
	h.expect("ready")
	return h
}

func (h *helper) expect(want string) {
	h.t.Helper()
	if !h.out.Scan() {
		h.t.Fatalf("helper %d ended before saying %q: %v", h.Pid, want, h.out.Err())
	}
	if got := strings.TrimSpace(h.out.Text()); got != want {
		h.t.Fatalf("helper %d said %q, want %q", h.Pid, got, want)
	}
}

// Do sends a command and waits for "done".
func (h *helper) Do(cmd string) {
	h.t.Helper()
	if _, err := fmt.Fprintln(h.stdin, cmd); err != nil {
		h.t.Fatal(err)
	}
	h.expect("done")
}

// Stop closes stdin and waits for the helper to exit.
func (h *helper) Stop() {
	if h.stdin != nil {
		h.stdin.Close()
		h.stdin = nil
		_ = h.cmd.Wait()
	}
}

// tpCounter is the independent count: a minimal classic tracepoint
// program (perf event by tracepoint id, through tracefs; not tp_btf),
// written here, counting one event for one tgid.
type tpCounter struct {
	m *ebpf.Map
	p *ebpf.Program
	l link.Link
}

func newTPCounter(t *testing.T, group, name string, tgid uint32) *tpCounter {
	t.Helper()
	if err := EnsureTracefs(); err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.TracePoint,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.FnGetCurrentPidTgid.Call(),
			asm.RSh.Imm(asm.R0, 32),
			asm.JNE.Imm(asm.R0, int32(tgid), "out"),
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
			asm.Return(),
		},
	})
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	l, err := link.Tracepoint(group, name, p, nil)
	if err != nil {
		p.Close()
		m.Close()
		t.Fatalf("attaching tracepoint %s:%s: %v", group, name, err)
	}
	c := &tpCounter{m: m, p: p, l: l}
	t.Cleanup(func() { l.Close(); p.Close(); m.Close() })
	return c
}

func (c *tpCounter) Count(t *testing.T) uint64 {
	t.Helper()
	var n uint64
	if err := c.m.Lookup(uint32(0), &n); err != nil {
		t.Fatal(err)
	}
	return n
}
