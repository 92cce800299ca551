package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// nodeExporterVersion is the pinned peer: the newest release the module
// proxy served that builds with this Go toolchain.
const nodeExporterVersion = "v1.12.1"

// row is one line of the results table.
type row struct {
	section string
	what    string
	value   string
	target  string
	status  string // "met", "MISSED", "" (no target), or "not run"
}

// harness holds the state of one run.
type harness struct {
	cfg     config
	started time.Time
	repo    string // module root, where "go" commands run
	work    string // scratch directory, removed at the end
	env     env

	kstat       string // built kstat binary
	nodeExp     string // node_exporter binary
	neVersion   string
	iperf3      string
	iperfVer    string
	netns       string // name of the namespace the harness made
	iperfServer *exec.Cmd
	daemon      *daemon
	load        *footprint // daemon usage over the load steps

	mu       sync.Mutex
	rows     []row
	notes    []string
	details  []string // extra markdown blocks (per-program BPF table, raw benchmarks)
	cleanups []func()
	once     sync.Once
}

func newHarness(c config) *harness {
	h := &harness{cfg: c, started: time.Now()}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		fatalf("run from inside the kstat repository (go env GOMOD gave %q)", gomod)
	}
	h.repo = filepath.Dir(gomod)
	h.work, err = os.MkdirTemp("", "kstat-bench-")
	if err != nil {
		fatalf("%v", err)
	}
	h.atExit(func() { os.RemoveAll(h.work) })
	return h
}

// atExit registers fn to run at cleanup, last registered first.
func (h *harness) atExit(fn func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups = append(h.cleanups, fn)
}

// cleanup undoes everything the run set up; it is safe to call twice.
func (h *harness) cleanup() {
	h.once.Do(func() {
		h.mu.Lock()
		fns := h.cleanups
		h.cleanups = nil
		h.mu.Unlock()
		for i := len(fns) - 1; i >= 0; i-- {
			fns[i]()
		}
	})
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (h *harness) notef(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notes = append(h.notes, fmt.Sprintf(format, args...))
}

func (h *harness) add(r row) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rows = append(h.rows, r)
	h.logf("   %s | %s | %s | %s | %s", r.section, r.what, r.value, r.target, r.status)
}

// measured adds a row with a value and, when target is not "", whether
// ok says it was met.
func (h *harness) measured(section, what, value, target string, ok bool) {
	status := ""
	if target != "" {
		status = "met"
		if !ok {
			status = "MISSED"
		}
	}
	h.add(row{section, what, value, target, status})
}

// notRun adds a row saying why a measurement could not be made.
func (h *harness) notRun(section, what, target, why string) {
	h.add(row{section, what, "not run: " + why, target, "not run"})
}

func (h *harness) detail(title, body string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.details = append(h.details, "### "+title+"\n\n"+body)
}

// env describes the machine and the run.
type env struct {
	date, commit, kernel, cpu, goVersion string
	loadStart, loadEnd                   string
}

func collectEnv(h *harness) env {
	e := env{
		date:      time.Now().UTC().Format("2006-01-02 15:04 MST"),
		goVersion: runtime.Version(),
		loadStart: loadavg(),
	}
	if out, err := h.command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		e.commit = strings.TrimSpace(string(out))
		if st, err := h.command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			e.commit += " (with uncommitted changes)"
		}
	}
	e.kernel = "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.kernel = strings.TrimSpace(string(b))
	}
	e.cpu = fmt.Sprintf("%s × %d", cpuModel(), runtime.NumCPU())
	return e
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// command returns a command that runs in the repository.
func (h *harness) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = h.repo
	return cmd
}

// build compiles kstat from the working tree.
func (h *harness) build() error {
	h.kstat = filepath.Join(h.work, "kstat")
	out, err := h.command("go", "build", "-o", h.kstat, "./cmd/kstat").CombinedOutput()
	if err != nil {
		h.kstat = ""
		return fmt.Errorf("go build ./cmd/kstat: %v\n%s", err, out)
	}
	return nil
}

// tools finds or installs node_exporter (pinned) and iperf3.
func (h *harness) tools() error {
	var errs []string
	if err := h.findNodeExporter(); err != nil {
		errs = append(errs, err.Error())
	}
	if err := h.findIperf3(); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func (h *harness) findNodeExporter() error {
	if h.cfg.neBinary != "" {
		h.nodeExp = h.cfg.neBinary
		h.neVersion = moduleVersion(h.nodeExp)
		return nil
	}
	bin := filepath.Join(h.cfg.outDir, "bin", "node_exporter-"+h.cfg.neVersion)
	if moduleVersion(bin) != h.cfg.neVersion {
		h.logf("installing node_exporter %s with go install", h.cfg.neVersion)
		gobin := filepath.Join(h.work, "gobin")
		cmd := exec.Command("go", "install", "github.com/prometheus/node_exporter@"+h.cfg.neVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=-buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go install node_exporter@%s failed (no module proxy?): %v\n%s", h.cfg.neVersion, err, lastLines(out, 5))
		}
		if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(gobin, "node_exporter"), bin); err != nil {
			return err
		}
	}
	h.nodeExp = bin
	h.neVersion = moduleVersion(bin)
	return nil
}

// moduleVersion is the main module version stamped in a Go binary, or "".
func moduleVersion(bin string) string {
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == "mod" {
			return f[2]
		}
	}
	return ""
}

func (h *harness) findIperf3() error {
	p, err := exec.LookPath("iperf3")
	if err != nil {
		h.logf("iperf3 missing: installing it with apt-get")
		cmd := exec.Command("apt-get", "install", "-y", "-qq", "iperf3")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("iperf3 is not installed and apt-get install iperf3 failed: %v\n%s", err, lastLines(out, 3))
		}
		if p, err = exec.LookPath("iperf3"); err != nil {
			return fmt.Errorf("iperf3 still missing after apt-get: %v", err)
		}
	}
	h.iperf3 = p
	if out, err := exec.Command(p, "--version").Output(); err == nil {
		h.iperfVer = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	return nil
}

func lastLines(b []byte, n int) string {
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// markdown renders the run: environment, the table, notes and details.
func (h *harness) markdown() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	e := h.env
	fmt.Fprintf(&b, "| run | |\n|---|---|\n")
	fmt.Fprintf(&b, "| date | %s |\n| commit | %s |\n| kernel | %s |\n| CPU | %s |\n", e.date, e.commit, e.kernel, e.cpu)
	fmt.Fprintf(&b, "| load average (1/5/15 min) | start %s, end %s |\n", e.loadStart, e.loadEnd)
	fmt.Fprintf(&b, "| Go | %s |\n| node_exporter | %s |\n| iperf3 | %s |\n", e.goVersion, orNone(h.neVersion), orNone(h.iperfVer))
	fmt.Fprintf(&b, "| harness wall time | %s |\n\n", time.Since(h.started).Round(time.Second))

	b.WriteString("| # | measurement | value | target | status |\n|---|---|---|---|---|\n")
	rows := append([]row(nil), h.rows...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].section < rows[j].section })
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.section, r.what, r.value, dash(r.target), dash(r.status))
	}
	if len(h.notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range h.notes {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(n, "\n", "\n  "))
		}
	}
	for _, d := range h.details {
		b.WriteString("\n" + d + "\n")
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "not found"
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}
