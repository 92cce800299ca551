package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/kstat/kstat/internal/testutil"
)

// kstat leaks --pid (the test itself) reports the pipes the test opens
// while it runs, under the kernel's pipe creation path.
func TestLeaksShowsPipes(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint)
	const pipes = 32
	cmd := exec.Command(kstatBinary(t), "leaks", "--pid", strconv.Itoa(os.Getpid()),
		"--older-than", "0s", "--duration", "2s", "--top", "50", "--json")
	cmd.Stderr = os.Stderr
	done := make(chan []byte, 1)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		b := make([]byte, 0, 1<<16)
		buf := make([]byte, 4096)
		for {
			n, err := out.Read(buf)
			b = append(b, buf[:n]...)
			if err != nil {
				done <- b
				return
			}
		}
	}()
	waitAttached(t, cmd.Process.Pid)
	var fds []int
	for range pipes {
		var p [2]int
		if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		fds = append(fds, p[0], p[1])
	}
	defer func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}()
	b := <-done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kstat leaks: %v", err)
	}
	var rep leaksReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	var pipeAllocs uint64
	for _, s := range rep.Stacks {
		for _, p := range s.Pids {
			if p != uint32(os.Getpid()) {
				t.Errorf("stack of pid %d in a --pid %d report", p, os.Getpid())
			}
		}
		j := strings.Join(s.Frames, " ")
		if strings.Contains(j, "alloc_pipe_info+0x") || strings.Contains(j, "create_pipe_files+0x") {
			pipeAllocs += s.Count
		}
	}
	if pipeAllocs < pipes {
		t.Errorf("%d allocations under the pipe creation path for %d pipes; report:\n%s", pipeAllocs, pipes, b)
	}
	if rep.Seconds < 2 {
		t.Errorf("traced %.2fs, asked for 2s", rep.Seconds)
	}
}

// The text report ends with the loss counters and their rates.
func TestLeaksText(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint)
	stdout, stderr, err := runKstat(t, "leaks", "--duration", "500ms", "--older-than", "0s", "--top", "50") // other loads on the machine may hold the biggest stacks
	if err != nil {
		t.Fatalf("kstat leaks: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	lastLine := lines[len(lines)-1]
	if !regexp.MustCompile(`^traced \d+\.\ds: \d+ allocations not tracked .*\(\d+\.\d/s\)$`).MatchString(lastLine) {
		t.Errorf("last line %q", lastLine)
	}
	if !strings.Contains(stdout, " bytes in ") || !strings.Contains(stdout, "\tdo_syscall_64+0x") {
		t.Errorf("no symbolized stack:\n%s", stdout)
	}
	if _, stderr, err := runKstat(t, "leaks", "--duration", "0s"); err == nil || !strings.Contains(stderr, "--duration") {
		t.Errorf("--duration 0s accepted: %v %q", err, stderr)
	}
}
