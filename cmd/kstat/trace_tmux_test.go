package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/cilium/ebpf"

	"github.com/kstat/kstat/internal/testutil"
)

// tmuxPane is one kstat trace running in a detached tmux session on a
// private server; the test types into it and reads the screen back.
type tmuxPane struct {
	t      *testing.T
	socket string
	status string // the file kstat's exit status is written to
}

func startTmux(t *testing.T, cols, rows int, args ...string) *tmuxPane {
	t.Helper()
	testutil.RequireCommand(t, "tmux")
	dir := t.TempDir()
	p := &tmuxPane{t: t, socket: filepath.Join(dir, "tmux.sock"), status: filepath.Join(dir, "status")}
	script := fmt.Sprintf("%s %s; echo $? > %s; sleep 600", kstatBinary(t), strings.Join(args, " "), p.status)
	p.tmux("-f", "/dev/null", "new-session", "-d", "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows), "sh", "-c", script)
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", p.socket, "kill-server").Run() })
	return p
}

func (p *tmuxPane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", p.socket}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

// screen is the pane's text, wrapped lines joined (-J): a line wider than
// the pane is a row that wrapped.
func (p *tmuxPane) screen() []string {
	return strings.Split(strings.TrimRight(p.tmux("capture-pane", "-p", "-J"), "\n"), "\n")
}

func (p *tmuxPane) keys(keys ...string) {
	p.tmux(append([]string{"send-keys"}, keys...)...)
}

// waitFor waits until the screen satisfies ok and returns it.
func (p *tmuxPane) waitFor(what string, ok func([]string) bool) []string {
	p.t.Helper()
	var s []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if s = p.screen(); ok(s) {
			return s
		}
	}
	p.t.Fatalf("the screen never showed %s:\n%s", what, strings.Join(s, "\n"))
	return nil
}

// sortBy presses < until the status line says the table is sorted by
// column, and returns that screen.
func (p *tmuxPane) sortBy(column string) []string {
	p.t.Helper()
	sorted := func(s []string) bool { return strings.Contains(s[0]+"  ", "sort "+column+"  ") }
	s := p.screen()
	for range 40 {
		if sorted(s) {
			return s
		}
		before := s[0]
		p.keys("<")
		s = p.waitFor("a new sort column", func(s []string) bool { return sortOf(s[0]) != sortOf(before) })
	}
	p.t.Fatalf("no sort column %s:\n%s", column, strings.Join(s, "\n"))
	return nil
}

// sortOf is the sort column named on a status line.
func sortOf(status string) string {
	f := strings.Fields(status[strings.Index(status, " sort ")+1:])
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// tableRows are the screen's table rows as fields, keyed by pid: the
// lines between the header and the footer.
func tableRows(screen []string) (header []string, rows [][]string) {
	for i, l := range screen {
		f := strings.Fields(l)
		if len(f) > 0 && strings.TrimRight(f[0], "▲▼") == "PID" {
			header = f
			for _, r := range screen[i+1:] {
				rf := strings.Fields(r)
				if len(rf) == 0 || strings.HasPrefix(r, "q quit") {
					break
				}
				rows = append(rows, rf)
			}
			return header, rows
		}
	}
	return nil, nil
}

// cell is column name's field of row, "" when the column is not shown.
func cell(header, row []string, name string) string {
	for i, h := range header {
		if strings.TrimRight(h, "▲▼") == name && i < len(row) {
			return row[i]
		}
	}
	return ""
}

// kstat trace on a terminal, driven in tmux: its rows fit 80 and 200
// columns; the sort and filter keys change the order and the rows; in
// totals mode it shows exactly the forks two shells made (5 and 2, what
// the shells ran), in rate mode 0 once they stopped; q quits with 0.
func TestTraceTopTmux(t *testing.T) {
	testutil.RequireBPF(t, ebpf.RawTracepoint)
	// Two shells with names of their own (comm is the name executed).
	dir := t.TempDir()
	for _, n := range []string{"kstwa", "kstwb"} {
		if err := os.Symlink("/bin/sh", filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	// Each runs /bin/true forks times: that many forks (the word list
	// is literal; a command substitution would fork too).
	start := func(name string, forks int) (*exec.Cmd, func()) {
		sh := exec.Command(filepath.Join(dir, name), "-c", fmt.Sprintf("read a; for i in %s; do /bin/true; done; read b", strings.Repeat("x ", forks)))
		in, err := sh.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := sh.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close(); _ = sh.Wait() })
		return sh, func() { fmt.Fprintln(in, "go") }
	}
	b, goB := start("kstwb", 2) // started first: the lower pid
	a, goA := start("kstwa", 5)
	pidA, pidB := strconv.Itoa(a.Process.Pid), strconv.Itoa(b.Process.Pid)

	p := startTmux(t, 80, 24, "trace", "--interval", "300ms")
	fits := func(cols int, s []string) {
		t.Helper()
		for _, l := range s {
			if w := ansi.StringWidth(l); w > cols {
				t.Errorf("a line of %d cells at %d columns (wrapped): %q", w, cols, l)
			}
		}
	}
	s := p.waitFor("the table", func(s []string) bool { h, r := tableRows(s); return h != nil && len(r) > 2 })
	fits(80, s)
	header80, _ := tableRows(s)
	if !strings.HasPrefix(s[0], "") || !strings.Contains(s[0], "per second") || !strings.Contains(s[len(s)-1], "q quit") {
		t.Errorf("status or footer missing:\n%s", strings.Join(s, "\n"))
	}
	// The shells fork once the tracer is attached (the table is up).
	goA()
	goB()

	// Totals, filtered to the two shells: exactly their forks.
	p.keys("c", "/", "k", "s", "t", "w", "Enter")
	rowsOf := func(s []string) map[string][]string {
		h, rows := tableRows(s)
		m := map[string][]string{}
		for _, r := range rows {
			m[r[0]] = r
			_ = h
		}
		return m
	}
	s = p.waitFor("5 and 2 forks", func(s []string) bool {
		h, _ := tableRows(s)
		r := rowsOf(s)
		return len(r) == 2 && cell(h, r[pidA], "FORKS") == "5" && cell(h, r[pidB], "FORKS") == "2"
	})
	if !strings.Contains(s[0], "counts since start") || !strings.Contains(s[0], `filter "kstw"`) {
		t.Errorf("status line %q", s[0])
	}
	// Sort by forks: a first; by pid: b first.
	s = p.sortBy("forks")
	if _, rows := tableRows(s); len(rows) != 2 || rows[0][0] != pidA {
		t.Errorf("by forks, want %s first:\n%s", pidA, strings.Join(s, "\n"))
	}
	s = p.sortBy("pid")
	if _, rows := tableRows(s); len(rows) != 2 || rows[0][0] != pidB {
		t.Errorf("by pid, want %s first:\n%s", pidB, strings.Join(s, "\n"))
	}
	// A narrower filter keeps one row.
	p.keys("/", "a", "Enter")
	p.waitFor("only kstwa", func(s []string) bool {
		r := rowsOf(s)
		return len(r) == 1 && r[pidA] != nil
	})
	// Rates: the forks are over, so 0 per second.
	p.keys("c")
	s = p.waitFor("a rate of 0 forks", func(s []string) bool {
		h, _ := tableRows(s)
		return strings.Contains(s[0], "per second") && cell(h, rowsOf(s)[pidA], "FORKS") == "0"
	})
	fits(80, s)

	// At 200 columns more columns, still no wrapped row.
	p.keys("Escape")
	p.tmux("resize-window", "-x", "200", "-y", "50")
	s = p.waitFor("a wider table", func(s []string) bool {
		h, r := tableRows(s)
		return len(h) > len(header80)+8 && len(r) > 2
	})
	fits(200, s)
	header200, _ := tableRows(s)
	t.Logf("80 columns: %v\n200 columns: %v", header80, header200)

	p.keys("q")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(p.status); err == nil && len(b) > 0 {
			if got := strings.TrimSpace(string(b)); got != "0" {
				t.Errorf("kstat trace exited with %s after q, want 0", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kstat trace still runs 10s after q:\n%s", strings.Join(p.screen(), "\n"))
		}
	}
}
