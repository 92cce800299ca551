package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/kstat/kstat/internal/telemetry"
	"github.com/kstat/kstat/internal/testutil"
)

var snapshotRE = regexp.MustCompile(`(?m)^snapshot (\d+) at `)

// ringSeqs are the sequence numbers of the blocks of a ring's text.
func ringSeqs(text string) []uint64 {
	var seqs []uint64
	for _, m := range snapshotRE.FindAllStringSubmatch(text, -1) {
		n, _ := strconv.ParseUint(m[1], 10, 64)
		seqs = append(seqs, n)
	}
	return seqs
}

func apiSnapshots(t *testing.T, base string) []telemetry.Snapshot {
	t.Helper()
	code, body := httpDo(t, "GET", base+"/api/v1/snapshots", "")
	if code != 200 {
		t.Fatalf("GET /api/v1/snapshots: %d %s", code, body)
	}
	var snaps []telemetry.Snapshot
	if err := json.Unmarshal([]byte(body), &snaps); err != nil {
		t.Fatalf("GET /api/v1/snapshots: %v\n%s", err, body)
	}
	return snaps
}

func apiLastSeq(t *testing.T, base string) uint64 {
	snaps := apiSnapshots(t, base)
	if len(snaps) == 0 {
		return 0
	}
	return snaps[len(snaps)-1].Seq
}

func waitAPISeq(t *testing.T, base string, seq uint64, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); apiLastSeq(t, base) < seq; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot %d within %v (last %d)", seq, limit, apiLastSeq(t, base))
		}
	}
}

// TestTelemetryDaemon runs the daemon at log_interval=100ms with a ring of
// 4: the mount's telemetry/snapshots and GET /api/v1/snapshots hold exactly
// 4 snapshots, oldest first, numbered one by one, with rates that are the
// snapshots' own deltas over their own interval; the control files take
// good settings at once and refuse bad ones with EINVAL.
func TestTelemetryDaemon(t *testing.T) {
	d, base := startHTTPDaemon(t, "--telemetry-ring", "4", "--telemetry-interval", "100ms")
	waitForLog(t, d, "eBPF IRQ counters attached")
	waitAPISeq(t, base, 7, 10*time.Second)

	// The programs' own cost, in the tree as the tracer's (checked against
	// bpftool in internal/irqcount).
	// An idle machine may raise no device interrupt for a while (the
	// timer's LOC does not go through irq_handler_entry): disk I/O makes
	// the block device's line move.
	for _, prog := range []string{"irq_handler_entry", "softirq_entry"} {
		deadline := time.Now().Add(10 * time.Second)
		runs := ""
		for {
			runs = strings.TrimSpace(readText(t, d.Path("irqcount/programs/"+prog+"/runs")))
			n, err := strconv.ParseUint(runs, 10, 64)
			if err == nil && n > 0 || time.Now().After(deadline) {
				break
			}
			testutil.DiskIO(t)
			time.Sleep(100 * time.Millisecond)
		}
		if n, err := strconv.ParseUint(runs, 10, 64); err != nil || n == 0 {
			t.Errorf("irqcount/programs/%s/runs %q after disk I/O: %v", prog, runs, err)
		}
		if secs := readText(t, d.Path("irqcount/programs/"+prog+"/run_seconds")); strings.TrimSpace(secs) == "" {
			t.Errorf("irqcount/programs/%s/run_seconds empty", prog)
		}
	}

	seqs := ringSeqs(readText(t, d.Path("telemetry/snapshots")))
	if len(seqs) != 4 {
		t.Fatalf("telemetry/snapshots has %d blocks (%v), want 4", len(seqs), seqs)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("telemetry/snapshots blocks %v: not oldest first one by one", seqs)
		}
	}

	snaps := apiSnapshots(t, base)
	if len(snaps) != 4 {
		t.Fatalf("/api/v1/snapshots has %d snapshots, want 4", len(snaps))
	}
	total := procField(t, "/proc/meminfo", "MemTotal") * 1024
	for i, s := range snaps {
		if s.Memory == nil || s.Memory.Total != total {
			t.Errorf("snapshot %d memory %+v, /proc/meminfo MemTotal %d bytes", s.Seq, s.Memory, total)
		}
		numbered := 0
		for _, l := range s.IRQs {
			if _, err := strconv.Atoi(l.Name); err == nil {
				numbered++
				if l.BPF == nil {
					t.Errorf("snapshot %d irq %s has no eBPF count", s.Seq, l.Name)
				}
			}
		}
		if numbered == 0 || len(s.SoftirqVectors) != 10 {
			t.Errorf("snapshot %d: %d numbered IRQ lines, %d softirq vectors", s.Seq, numbered, len(s.SoftirqVectors))
		}
		if i == 0 {
			continue
		}
		p := snaps[i-1]
		if s.Seq != p.Seq+1 {
			t.Fatalf("snapshot %d follows %d", s.Seq, p.Seq)
		}
		dt := s.Interval
		if got := s.Time.Sub(p.Time).Seconds(); dt < 0.1 || dt > got+1e-6 || dt < got-1e-6 {
			t.Errorf("snapshot %d interval %v, times %v apart", s.Seq, dt, got)
		}
		if want := float64(s.ContextSwitches-p.ContextSwitches) / dt; s.Rates.ContextSwitches != want {
			t.Errorf("snapshot %d context switch rate %v, want %v", s.Seq, s.Rates.ContextSwitches, want)
		}
		if want := float64(s.Interrupts-p.Interrupts) / dt; s.Rates.Interrupts != want {
			t.Errorf("snapshot %d interrupt rate %v, want %v", s.Seq, s.Rates.Interrupts, want)
		}
		if want := float64(s.Forks-p.Forks) / dt; s.Rates.Forks != want {
			t.Errorf("snapshot %d fork rate %v, want %v", s.Seq, s.Rates.Forks, want)
		}
	}

	// Bad settings: EINVAL through the control files, old value kept.
	interval, enable := d.Path("telemetry/log_interval"), d.Path("telemetry/enable")
	for _, bad := range []string{"50ms", "25h", "abc", "-1", "1.5", "0"} {
		if err := os.WriteFile(interval, []byte(bad+"\n"), 0); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("writing %q to telemetry/log_interval: %v, want EINVAL", bad, err)
		}
	}
	for _, bad := range []string{"2", "yes", ""} {
		if err := os.WriteFile(enable, []byte(bad+"\n"), 0); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("writing %q to telemetry/enable: %v, want EINVAL", bad, err)
		}
	}
	if got := readText(t, interval); got != "100ms\n" {
		t.Errorf("telemetry/log_interval reads %q after bad writes", got)
	}
	if got := readText(t, enable); got != "1\n" {
		t.Errorf("telemetry/enable reads %q after bad writes", got)
	}
	if err := os.WriteFile(d.Path("telemetry/snapshots"), []byte("x"), 0); err == nil {
		t.Error("telemetry/snapshots took a write")
	}

	// enable=0 stops sampling.
	if err := os.WriteFile(enable, []byte("0\n"), 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // a snapshot in progress at the switch may land
	stopped := apiLastSeq(t, base)
	time.Sleep(700 * time.Millisecond)
	if got := apiLastSeq(t, base); got != stopped {
		t.Errorf("snapshots went on from %d to %d with enable=0", stopped, got)
	}

	// A long interval, then a short one: the short one applies at once.
	if err := os.WriteFile(interval, []byte("3600\n"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(enable, []byte("1\n"), 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := apiLastSeq(t, base); got != stopped {
		t.Errorf("snapshot %d within 300ms of a 1h interval", got)
	}
	if err := os.WriteFile(interval, []byte("100ms\n"), 0); err != nil {
		t.Fatal(err)
	}
	waitAPISeq(t, base, stopped+2, 5*time.Second)

	// kstat telemetry prints the daemon's ring.
	out, stderr, err := runKstat(t, "telemetry", "--mount", d.Mount)
	if err != nil || len(ringSeqs(out)) != 4 || stderr != "" {
		t.Errorf("kstat telemetry --mount: %v, %d blocks, stderr %q\n%s", err, len(ringSeqs(out)), stderr, out)
	}
}

// logLines parses every line of a JSON log file; a torn line fails.
func logLines(t *testing.T, path string) []telemetry.Snapshot {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []telemetry.Snapshot
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for n := 1; sc.Scan(); n++ {
		var s telemetry.Snapshot
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("%s line %d does not parse (%v): %q", path, n, err, sc.Text())
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTelemetryJSONLogSIGKILL kills the daemon while it logs every 100ms
// and rotates every few lines: every line of every file parses, exactly
// --log-json-keep rotated files exist, and the sequence numbers run on
// from the oldest file to the newest.
func TestTelemetryJSONLogSIGKILL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "telemetry.json")
	const keep = 2
	d := startDaemon(t, "--listen", "", "--telemetry-interval", "100ms",
		"--log-json", path, "--log-json-max-size", "30000", "--log-json-keep", strconv.Itoa(keep))
	waitForFile(t, path+".2", 30*time.Second, nil)
	progs := irqcountProgs(t, d.cmd.Process.Pid)
	if len(progs) != 2 {
		t.Errorf("the daemon holds irqcount programs %v, want 2", progs)
	}
	time.Sleep(730 * time.Millisecond) // land the kill anywhere in the cycle
	d.Signal(t, syscall.SIGKILL)
	_ = d.Wait(t, 10*time.Second)

	// Nothing was pinned: with the process gone the kernel frees the
	// programs (after an RCU grace period).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left := 0
		for _, id := range progs {
			if p, err := ebpf.NewProgramFromID(id); err == nil {
				p.Close()
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d irqcount programs still loaded 10s after SIGKILL", left)
		}
	}

	names, _ := filepath.Glob(path + "*")
	if len(names) != keep+1 {
		t.Fatalf("files %v, want the log and %d rotated", names, keep)
	}
	var seqs []uint64
	for _, p := range []string{path + ".2", path + ".1", path} {
		lines := logLines(t, p)
		if p != path && len(lines) == 0 {
			t.Errorf("rotated %s is empty", p)
		}
		if st, _ := os.Stat(p); st != nil && st.Size() > 30000 {
			t.Errorf("%s is %d bytes, past --log-json-max-size", p, st.Size())
		}
		for _, s := range lines {
			seqs = append(seqs, s.Seq)
		}
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("sequence numbers across the files: %v", seqs)
		}
	}
}

// irqcountProgs lists the irqcount programs process pid holds, from
// /proc/PID/fdinfo.
func irqcountProgs(t *testing.T, pid int) []ebpf.ProgramID {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[ebpf.ProgramID]bool{}
	var ids []ebpf.ProgramID
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		m := progIDRE.FindSubmatch(b)
		if m == nil {
			continue
		}
		n, _ := strconv.ParseUint(string(m[1]), 10, 32)
		id := ebpf.ProgramID(n)
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, err := p.Info()
		p.Close()
		if err == nil && !seen[id] && (strings.HasPrefix(info.Name, "irq_handler_ent") || info.Name == "softirq_entry") {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

var progIDRE = regexp.MustCompile(`(?m)^prog_id:\s*(\d+)$`)

// TestTelemetryJSONLogOpenError gives a log path that cannot be opened:
// the daemon exits non-zero with one line that says what failed.
func TestTelemetryJSONLogOpenError(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "no-such-dir", "log.json")
	serveMustFail(t, []string{"--listen", "", "--telemetry-interval", "100ms", "--log-json", bad},
		"--log-json "+bad, "opening the JSON log", "no such file or directory")
}

// TestTelemetryCommandOwnSnapshots runs kstat telemetry with no daemon: it
// takes its own snapshots, the second with rates.
func TestTelemetryCommandOwnSnapshots(t *testing.T) {
	out, stderr, err := runKstat(t, "telemetry", "--mount", t.TempDir(), "--count", "2", "--interval", "100ms")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if fmt.Sprint(ringSeqs(out)) != "[1 2]" || !strings.Contains(out, "after the previous") || !strings.Contains(out, "/s)") {
		t.Errorf("output:\n%s", out)
	}
	if !strings.Contains(stderr, "taking 2 snapshots") {
		t.Errorf("stderr %q does not say it takes its own snapshots", stderr)
	}
	if _, stderr, err := runKstat(t, "telemetry", "--interval", "50ms"); err == nil || !strings.Contains(stderr, "100ms") {
		t.Errorf("--interval 50ms: %v, %q", err, stderr)
	}
}

// TestTelemetryDaemonOnFixtures runs the daemon on testdata/telemetry/proc:
// the snapshots carry the fixture's values, and no eBPF counts (the
// programs would count this machine, not the fixture).
func TestTelemetryDaemonOnFixtures(t *testing.T) {
	d, base := startHTTPDaemon(t, "--proc", testutil.Fixture(t, "telemetry", "proc"), "--telemetry-interval", "100ms")
	waitForLog(t, d, "no eBPF IRQ counts: --proc is not /proc")
	waitAPISeq(t, base, 2, 10*time.Second)
	s := apiSnapshots(t, base)[1]
	if s.UptimeSeconds != 627.53 || s.ContextSwitches != 741118 || s.Forks != 12428 || s.Interrupts != 450566 ||
		s.Softirqs != 156671 || s.ProcsRunning != 2 || s.Load != [3]float64{1.04, 0.84, 0.39} {
		t.Errorf("snapshot of the fixtures: %+v", s)
	}
	if s.Memory == nil || s.Memory.Total == 0 || s.Rates == nil || s.Rates.ContextSwitches != 0 {
		t.Errorf("memory %+v, rates %+v", s.Memory, s.Rates)
	}
	found := false
	for _, l := range s.IRQs {
		if l.BPF != nil {
			t.Errorf("irq %s has an eBPF count on fixtures", l.Name)
		}
		if l.Name == "36" && l.Desc == "PCI-MSIX-0000:00:02.0 1-edge virtio1-req.0" && l.Rate != nil && *l.Rate == 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("no irq 36 of the fixture in %+v", s.IRQs)
	}
}
