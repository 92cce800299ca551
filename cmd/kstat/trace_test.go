package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/internal/tracer"
	"github.com/kstat/kstat/internal/tracetop"
)

// tracerPrograms is how many BPF links an attached tracer holds.
const tracerPrograms = 9

// waitAttached waits until process pid holds the tracer's BPF links.
func waitAttached(t *testing.T, pid int) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir(dir)
		links := 0
		for _, e := range ents {
			if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && l == "anon_inode:bpf_link" {
				links++
			}
		}
		if links >= tracerPrograms {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("kstat (pid %d) did not attach its %d programs within 30s", pid, tracerPrograms)
}

// shellWorkload starts sh running script with a pipe on its stdin; the
// script's `read` lines wait for the test.
func shellWorkload(t *testing.T, script string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	sh := exec.Command("/bin/sh", "-c", script)
	in, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); _ = sh.Wait() })
	return sh, in
}

// kstat trace --pid --json counts exactly the forks of a shell that runs
// /bin/true five times: the totals, and the per-second rates summed over
// the intervals. With --duration 3s at 500ms it prints exactly six frames.
func TestTraceJSONCountsForks(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint)
	sh, in := shellWorkload(t, "read a; for i in 1 2 3 4 5; do /bin/true; done; echo done; read b")
	cmd := exec.Command(kstatBinary(t), "trace", "--pid", strconv.Itoa(sh.Process.Pid),
		"--json", "--interval", "500ms", "--duration", "3s")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitAttached(t, cmd.Process.Pid)
	fmt.Fprintln(in, "go")
	var (
		last   tracetop.JSONFrame
		frames int
		forks  float64 // the sum of per_second.forks × interval_seconds
	)
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var f tracetop.JSONFrame
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatalf("line %d is not a JSON frame: %v: %q", frames+1, err, sc.Text())
		}
		for _, p := range f.Procs {
			if p.PerSecond != nil {
				forks += p.PerSecond.Forks * f.IntervalSeconds
			}
		}
		frames++
		last = f
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kstat trace: %v", err)
	}
	if frames != 6 {
		t.Errorf("%d frames in 3s at 500ms, want 6 (the last one once)", frames)
	}
	var p *tracetop.JSONProc
	for i := range last.Procs {
		if last.Procs[i].Pid == uint32(sh.Process.Pid) {
			p = &last.Procs[i]
		} else {
			t.Errorf("process %d shown though only --pid %d is traced", last.Procs[i].Pid, sh.Process.Pid)
		}
	}
	if p == nil {
		t.Fatalf("shell %d not in the last frame: %+v", sh.Process.Pid, last)
	}
	if p.Forks != 5 || p.ChildExits != 5 {
		t.Errorf("shell: forks %d, child_exits %d, want 5 and 5", p.Forks, p.ChildExits)
	}
	if math.Abs(forks-5) > 1e-6 {
		t.Errorf("per-second fork rates add up to %v forks, want 5", forks)
	}
	if p.Comm != "sh" || len(p.Locks) != len(tracer.LockKinds) {
		t.Errorf("comm %q, lock kinds %v", p.Comm, p.Locks)
	}
}

// Piped, kstat trace prints plain tables: a "---" line, a status line,
// the header and rows, among them its own process; at 200ms for 1s,
// exactly five.
func TestTracePlainRows(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint)
	cmd := exec.Command(kstatBinary(t), "trace", "--interval", "200ms", "--duration", "1s", "--sort", "pid", "--comm", "kstat", "--cumulative")
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("kstat trace: %v", err)
	}
	outText := string(b)
	if strings.Contains(outText, "\x1b[") {
		t.Error("escape sequences in piped output")
	}
	tables := strings.Split(outText, "---\n")[1:]
	if len(tables) != 5 {
		t.Fatalf("%d tables in 1s at 200ms, want 5:\n%s", len(tables), outText)
	}
	lines := strings.Split(strings.TrimSpace(tables[len(tables)-1]), "\n")
	if len(lines) < 3 || !strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "PID PPID COMM FORKS") {
		t.Fatalf("last table:\n%s", tables[len(tables)-1])
	}
	if !strings.Contains(lines[0], "counts since start") {
		t.Errorf("status line %q", lines[0])
	}
	self := false
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if f[2] != "kstat" {
			t.Errorf("--comm kstat shows %q", l)
		}
		if f[0] == strconv.Itoa(cmd.Process.Pid) {
			self = true
		}
	}
	if !self {
		t.Errorf("kstat's own pid %d not in:\n%s", cmd.Process.Pid, tables[len(tables)-1])
	}
}

func TestTraceBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--sort", "bogus"},
		{"--pid", "0"},
		{"--interval", "1ms"},
		{"--duration", "-1s"},
	} {
		_, stderr, err := runKstat(t, append([]string{"trace"}, args...)...)
		if err == nil || !strings.Contains(stderr, args[0]) {
			t.Errorf("trace %v: err %v, stderr %q", args, err, stderr)
		}
	}
}

// kstat serve --tracer: the tracer's files in the mount, bad input refused
// with EINVAL, enable switching the programs off.
func TestServeTracerFiles(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint)
	d := startDaemon(t, "--tracer", "--tracer-pid", strconv.Itoa(os.Getpid()))
	if got := readText(t, d.Path("tracer/enable")); got != "1\n" {
		t.Fatalf("tracer/enable = %q with --tracer", got)
	}
	if got := readText(t, d.Path("tracer/pids")); got != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("tracer/pids = %q", got)
	}
	st := readText(t, d.Path("tracer/functions_status"))
	if !strings.HasPrefix(st, "not supported: ") && !strings.HasPrefix(st, "attached (") {
		t.Errorf("tracer/functions_status = %q", st)
	}
	// The test itself allocates (it reads files of the mount), so it
	// shows up in the report and gets a directory.
	var rep string
	for range 50 {
		rep = readText(t, d.Path("tracer/report"))
		if strings.Contains(rep, "\n") && len(strings.Split(strings.TrimSpace(rep), "\n")) >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(rep), "\n")
	if len(lines) != 2 || strings.Fields(lines[1])[0] != strconv.Itoa(os.Getpid()) {
		t.Fatalf("tracer/report:\n%s", rep)
	}
	if got := readText(t, d.Path("tracer/"+strconv.Itoa(os.Getpid())+"/comm")); got == "" {
		t.Error("empty comm")
	}
	for file, bad := range map[string]string{"tracer/pids": "+abc", "tracer/enable": "2", "tracer/sort": "nope"} {
		err := os.WriteFile(d.Path(file), []byte(bad+"\n"), 0)
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("writing %q to %s: %v, want EINVAL", bad, file, err)
		}
	}
	if err := os.WriteFile(d.Path("tracer/enable"), []byte("0\n"), 0); err != nil {
		t.Fatal(err)
	}
	if got := readText(t, d.Path("tracer/report")); !strings.Contains(got, "disabled") {
		t.Errorf("report after enable=0: %q", got)
	}
}
