package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/bufstat"
	"github.com/kstat/kstat/internal/testutil"
)

// The golden files of testdata/bufstat/* are written by the tests of
// internal/bufstat (go test ./internal/bufstat -update) with this clock.
const goldenGenerated = "Generated: 1716294825.123"

var generatedLine = regexp.MustCompile(`(?m)^Generated: (\d+)\.(\d{3})$`)
var generatedJSON = regexp.MustCompile(`"generated_unix_ms": \d+`)

// fixtureArgs are --proc and --sys for testdata/bufstat/<c>, relative to
// this package like the golden files' paths.
func fixtureArgs(c string) []string {
	dir := filepath.Join("..", "..", "testdata", "bufstat", c)
	return []string{"--proc", filepath.Join(dir, "proc"), "--sys", filepath.Join(dir, "sys")}
}

// TestReportGolden runs the built binary on every fixture and compares its
// output, its clock aside, with the golden text and JSON.
func TestReportGolden(t *testing.T) {
	for _, c := range []string{"real", "many-interfaces", "missing-fields", "truncated", "huge", "overflow", "missing-files", "empty"} {
		t.Run(c, func(t *testing.T) {
			start := time.Now().UnixMilli()
			out, stderr, err := runKstat(t, append([]string{"report"}, fixtureArgs(c)...)...)
			end := time.Now().UnixMilli()
			var exit *exec.ExitError
			switch {
			case c == "empty" && (!errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr, "no section of the report could be read")):
				t.Fatalf("kstat report on an empty /proc: %v, stderr %q; want exit status 1", err, stderr)
			case c != "empty" && err != nil:
				t.Fatalf("kstat report: %v\n%s", err, stderr)
			}
			m := generatedLine.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no Generated line:\n%s", out)
			}
			ms, _ := strconv.ParseInt(m[1]+m[2], 10, 64)
			if ms < start || ms > end {
				t.Errorf("Generated %s.%s is not between %d and %d ms", m[1], m[2], start, end)
			}
			want, err := os.ReadFile(filepath.Join("..", "..", "testdata", "bufstat", c, "report.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if got := generatedLine.ReplaceAllString(out, goldenGenerated); got != string(want) {
				t.Errorf("report differs from %s/report.txt:\n%s", c, got)
			}

			js, _, _ := runKstat(t, append([]string{"report", "--json"}, fixtureArgs(c)...)...)
			wantJS, err := os.ReadFile(filepath.Join("..", "..", "testdata", "bufstat", c, "report.json"))
			if err != nil {
				t.Fatal(err)
			}
			if got := generatedJSON.ReplaceAllString(js, `"generated_unix_ms": 1716294825123`); got != string(wantJS) {
				t.Errorf("JSON differs from %s/report.json:\n%s", c, got)
			}
		})
	}
}

// procMeminfoKB reads /proc/meminfo with the standard library.
func procMeminfoKB(t *testing.T) map[string]uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, l := range strings.Split(string(b), "\n") {
		if fs := strings.Fields(l); len(fs) == 3 && fs[2] == "kB" {
			v, err := strconv.ParseUint(fs[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			out[strings.TrimSuffix(fs[0], ":")] = v * 1024
		}
	}
	return out
}

// procNetDev reads /proc/net/dev with the standard library.
func procNetDev(t *testing.T) map[string][]uint64 {
	t.Helper()
	f, err := os.Open("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.Contains(sc.Text(), "|") {
			continue
		}
		var vs []uint64
		for _, x := range strings.Fields(rest) {
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			vs = append(vs, v)
		}
		out[strings.TrimSpace(name)] = vs
	}
	return out
}

// procNetDevCol is column col of dev's line in /proc/net/dev (0: rx bytes,
// 1: rx packets, 8: tx bytes, 9: tx packets).
func procNetDevCol(t *testing.T, dev string, col int) uint64 {
	t.Helper()
	vs := procNetDev(t)[dev]
	if len(vs) <= col {
		t.Fatalf("/proc/net/dev has no column %d for %s", col, dev)
	}
	return vs[col]
}

// numOf is a report value, or 2^64-1 (outside every range the tests
// accept) when it is unavailable.
func numOf(v bufstat.Num) uint64 {
	if v == nil {
		return math.MaxUint64
	}
	return *v
}

// TestReportLive compares "kstat report --json" on this machine with
// /proc/meminfo and /proc/net/dev read here before and after it.
// MemTotal must match exactly. Memory values that move must lie within the
// before/after range widened by 64 MiB (other tests build and run at the
// same time); interface counters only grow, so each must lie within its
// before and after readings exactly.
func TestReportLive(t *testing.T) {
	memBefore, devBefore := procMeminfoKB(t), procNetDev(t)
	out, stderr, err := runKstat(t, "report", "--json")
	memAfter, devAfter := procMeminfoKB(t), procNetDev(t)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var rep bufstat.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Block.Error != "" || rep.Network.Sockets == nil || rep.Network.Total == nil {
		t.Fatalf("a section failed on this machine: %s", out)
	}
	if total := numOf(rep.Memory.Total); total != memBefore["MemTotal"] || total != memAfter["MemTotal"] {
		t.Errorf("MemTotal %d, /proc/meminfo says %d", total, memBefore["MemTotal"])
	}
	const slack = 64 << 20
	for _, x := range []struct {
		key string
		got uint64
	}{
		{"MemFree", numOf(rep.Memory.Free)}, {"MemAvailable", numOf(rep.Memory.Available)}, {"Buffers", numOf(rep.Block.Buffers)},
		{"Cached", numOf(rep.Block.Cached)}, {"Dirty", numOf(rep.Block.Dirty)}, {"Writeback", numOf(rep.Block.Writeback)},
		{"Slab", numOf(rep.MM.Slab)}, {"SReclaimable", numOf(rep.MM.SReclaimable)}, {"SUnreclaim", numOf(rep.MM.SUnreclaim)},
		{"PageTables", numOf(rep.MM.PageTables)},
	} {
		lo, hi := min(memBefore[x.key], memAfter[x.key]), max(memBefore[x.key], memAfter[x.key])
		if x.got+slack < lo || x.got > hi+slack {
			t.Errorf("%s = %d, /proc/meminfo said %d before and %d after (±%d)", x.key, x.got, memBefore[x.key], memAfter[x.key], slack)
		}
	}
	seen := 0
	for _, d := range rep.Network.Devices {
		b, a := devBefore[d.Name], devAfter[d.Name]
		if len(b) != 16 || len(a) != 16 {
			continue // appeared or went during the run
		}
		seen++
		for _, x := range []struct {
			name string
			got  uint64
			col  int
		}{
			{"rx_bytes", numOf(d.RxBytes), 0}, {"rx_packets", numOf(d.RxPackets), 1}, {"rx_errors", numOf(d.RxErrors), 2}, {"rx_dropped", numOf(d.RxDropped), 3},
			{"tx_bytes", numOf(d.TxBytes), 8}, {"tx_packets", numOf(d.TxPackets), 9}, {"tx_errors", numOf(d.TxErrors), 10}, {"tx_dropped", numOf(d.TxDropped), 11},
		} {
			if x.got < b[x.col] || x.got > a[x.col] {
				t.Errorf("%s %s = %d, /proc/net/dev said %d before and %d after", d.Name, x.name, x.got, b[x.col], a[x.col])
			}
		}
	}
	if _, ok := devBefore["lo"]; !ok || seen == 0 {
		t.Errorf("no interface of /proc/net/dev found in the report: %v", rep.Network.Devices)
	}
}

// TestReportWatch runs --watch on a pipe: reports separated by a line,
// and exit status 0 on SIGINT.
func TestReportWatch(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", asJSON), func(t *testing.T) {
			args := append([]string{"report", "--watch", "100ms"}, fixtureArgs("real")...)
			if asJSON {
				args = append(args, "--json")
			}
			cmd := exec.Command(kstatBinary(t), args...)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			sc := bufio.NewScanner(stdout)
			sc.Buffer(nil, 1<<20)
			reports, seps := 0, 0
			for reports < 3 && sc.Scan() {
				switch l := sc.Text(); {
				case asJSON:
					var rep bufstat.Report
					if err := json.Unmarshal([]byte(l), &rep); err != nil || rep.Memory.Total == nil {
						t.Fatalf("line %q: %v", l, err)
					}
					reports++
				case l == "Kernel Buffer Statistics Report":
					reports++
				case strings.HasPrefix(l, "-----"):
					seps++
				}
			}
			if reports != 3 || (!asJSON && seps != 2) {
				t.Fatalf("%d reports, %d separators", reports, seps)
			}
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			for sc.Scan() {
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("kstat report --watch after SIGINT: %v", err)
			}
		})
	}
}

// TestReportWatchTerminal gives --watch a pseudo-terminal and expects each
// report to start by homing the cursor and clearing the screen.
func TestReportWatchTerminal(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal support in this kernel: %v", err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kstatBinary(t), append([]string{"report", "--watch", "100ms"}, fixtureArgs("real")...)...)
	cmd.Stdout = pts
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var got []byte
	buf := make([]byte, 4096)
	for strings.Count(string(got), "\x1b[H\x1b[2J") < 2 {
		_ = ptmx.SetReadDeadline(time.Now().Add(10 * time.Second))
		m, err := ptmx.Read(buf)
		if err != nil {
			t.Fatalf("reading the terminal: %v (got %q)", err, got)
		}
		got = append(got, buf[:m]...)
	}
	if !strings.HasPrefix(string(got), "\x1b[H\x1b[2JKernel Buffer Statistics Report") || strings.Contains(string(got), "-----") {
		t.Errorf("terminal output does not redraw in place: %q", got[:min(len(got), 200)])
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v", err)
	}
}

func TestReportBadWatch(t *testing.T) {
	_, stderr, err := runKstat(t, "report", "--watch", "1ms")
	if err == nil || !strings.Contains(stderr, "at least 10ms") {
		t.Fatalf("--watch 1ms: %v, %q", err, stderr)
	}
}

// TestReportAsOrdinaryUser runs the binary as nobody: every section but the
// slab caches (/proc/slabinfo is root's) prints, with the reason for those.
func TestReportAsOrdinaryUser(t *testing.T) {
	testutil.RequireRoot(t) // to switch to another user
	dir, err := os.MkdirTemp("", "kstat-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "kstat")
	b, err := os.ReadFile(kstatBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "report")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kstat report as nobody: %v\n%s", err, out)
	}
	text := string(out)
	if want := "Slab caches: section unavailable: open /proc/slabinfo: permission denied\n"; !strings.Contains(text, want) {
		t.Errorf("no %q in\n%s", want, text)
	}
	if n := strings.Count(text, "unavailable"); n != 1 {
		t.Errorf("%d sections unavailable as nobody, want only the slab caches:\n%s", n, text)
	}
	if !strings.Contains(text, "Total memory: ") || !strings.Contains(text, "  lo: rx_buffers=") {
		t.Errorf("sections missing:\n%s", text)
	}
}
