package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
)

// daemon is one "kstat serve" the harness started.
type daemon struct {
	cmd     *exec.Cmd
	pid     int
	mount   string
	listen  string // host:port of /metrics, "" without the HTTP feature
	logPath string
	exited  chan struct{}
}

var flagRE = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9][a-z0-9-]*)`)

// serveFlags lists the flags "kstat serve --help" documents, which tells
// which features have landed.
func (h *harness) serveFlags() (map[string]bool, error) {
	out, err := exec.Command(h.kstat, "serve", "--help").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("kstat serve --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range flagRE.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	return flags, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startDaemon runs "kstat serve" with its mount in the scratch directory
// and, when the HTTP feature exists, a loopback listener, plus extra
// arguments; it returns once the mount (and /metrics) answer.
func (h *harness) startDaemon(name string, flags map[string]bool, extra ...string) (*daemon, error) {
	if h.kstat == "" {
		return nil, errors.New("kstat did not build")
	}
	d := &daemon{
		mount:   filepath.Join(h.work, name+"-mnt"),
		logPath: filepath.Join(h.cfg.outDir, name+".log"),
		exited:  make(chan struct{}),
	}
	if err := os.MkdirAll(d.mount, 0o755); err != nil {
		return nil, err
	}
	args := []string{"serve", "--mount", d.mount}
	if flags["control-socket"] {
		// Never the default /run/kstat.sock another daemon may hold.
		args = append(args, "--control-socket", filepath.Join(filepath.Dir(d.mount), "kstat.sock"))
	}
	if flags["listen"] {
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		d.listen = addr
		args = append(args, "--listen", addr)
	}
	args = append(args, extra...)
	logf, err := os.Create(d.logPath)
	if err != nil {
		return nil, err
	}
	d.cmd = exec.Command(h.kstat, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	h.logf("   starting %s %s", h.kstat, strings.Join(args, " "))
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	d.pid = d.cmd.Process.Pid
	go func() {
		_ = d.cmd.Wait()
		logf.Close()
		close(d.exited)
	}()
	h.atExit(d.stop)
	if err := d.waitReady(20 * time.Second); err != nil {
		d.stop()
		log, _ := os.ReadFile(d.logPath)
		return nil, fmt.Errorf("%v; daemon log:\n%s", err, lastLines(log, 8))
	}
	return d, nil
}

func (d *daemon) alive() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

func (d *daemon) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	mounted, served := false, d.listen == ""
	for time.Now().Before(deadline) {
		if !d.alive() {
			return fmt.Errorf("kstat serve exited: %v", d.cmd.ProcessState)
		}
		if !mounted {
			mounted = isMountPoint(d.mount)
		}
		if !served {
			if resp, err := http.Get("http://" + d.listen + "/metrics"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				served = resp.StatusCode == http.StatusOK
			}
		}
		if mounted && served {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("kstat serve not ready after %s (mounted %v, /metrics %v)", limit, mounted, served)
}

func isMountPoint(path string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fl := strings.Fields(sc.Text()); len(fl) > 4 && fl[4] == path {
			return true
		}
	}
	return false
}

// stop sends SIGTERM, then SIGKILL after 10 s, and detaches a mount the
// daemon left.
func (d *daemon) stop() {
	if d.alive() {
		_ = syscall.Kill(d.pid, syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(d.pid, syscall.SIGKILL)
			<-d.exited
		}
	}
	if isMountPoint(d.mount) {
		_ = syscall.Unmount(d.mount, syscall.MNT_DETACH)
	}
}

// has reports whether the mount holds the file path.
func (d *daemon) has(path string) bool {
	_, err := os.Stat(filepath.Join(d.mount, path))
	return err == nil
}

// set writes value to a control file of the mount.
func (d *daemon) set(path, value string) error {
	if err := os.WriteFile(filepath.Join(d.mount, path), []byte(value+"\n"), 0); err != nil {
		return fmt.Errorf("writing %q to %s: %w", value, path, err)
	}
	return nil
}

// get reads a file of the mount.
func (d *daemon) get(path string) (string, error) {
	b, err := os.ReadFile(filepath.Join(d.mount, path))
	return strings.TrimSpace(string(b)), err
}

// usage is the daemon's memory and CPU now.
type usage struct {
	rssKB, hwmKB int64
	anonKB       int64 // RssAnon: heap, stacks, runtime
	fileKB       int64 // RssFile: the binary's text and data
	ticks        int64 // utime+stime, in clock ticks
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports here.
const clockTick = 100

func readUsage(pid int) (usage, error) {
	var u usage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "VmRSS":
			u.rssKB, _ = strconv.ParseInt(f[0], 10, 64)
		case "VmHWM":
			u.hwmKB, _ = strconv.ParseInt(f[0], 10, 64)
		case "RssAnon":
			u.anonKB, _ = strconv.ParseInt(f[0], 10, 64)
		case "RssFile":
			u.fileKB, _ = strconv.ParseInt(f[0], 10, 64)
		}
	}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name may hold spaces: fields count from the last ')'.
	rest := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(rest) < 13 {
		return u, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(rest[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(rest[12], 10, 64) // field 15
	u.ticks = ut + st
	return u, nil
}

// progStat is one BPF program with its cumulative statistics.
type progStat struct {
	id       ebpf.ProgramID
	name     string
	typ      ebpf.ProgramType
	runtime  time.Duration
	runCount uint64
}

// fdInfos returns the fields of /proc/PID/fdinfo/* for every open file
// descriptor of the process.
func fdInfos(pid int) ([]map[string]string, error) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		m := map[string]string{}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				m[k] = strings.TrimSpace(v)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// programIDs lists the BPF programs the process pid holds, as program or
// link file descriptors (fdinfo "prog_id").
func programIDs(pid int) (map[ebpf.ProgramID]bool, error) {
	infos, err := fdInfos(pid)
	if err != nil {
		return nil, err
	}
	ids := map[ebpf.ProgramID]bool{}
	for _, m := range infos {
		if n, err := strconv.ParseUint(m["prog_id"], 10, 32); err == nil && n > 0 {
			ids[ebpf.ProgramID(n)] = true
		}
	}
	return ids, nil
}

// heldLinks counts the BPF links the process pid holds, by fdinfo
// link_type ("netfilter", "tracing", "perf_event", ...): a program is
// attached while a link holds it.
func heldLinks(pid int) map[string]int {
	n := map[string]int{}
	infos, _ := fdInfos(pid)
	for _, m := range infos {
		if t, ok := m["link_type"]; ok {
			n[t]++
		}
	}
	return n
}

// daemonPrograms walks every loaded program with ProgramGetNextID and keeps
// those the daemon holds, with their run time and count.
func daemonPrograms(pid int) ([]progStat, error) {
	held, err := programIDs(pid)
	if err != nil {
		return nil, err
	}
	var out []progStat
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("listing BPF programs: %w", err)
		}
		id = next
		if !held[id] {
			continue
		}
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		ps := progStat{id: id, typ: p.Type()}
		if info, err := p.Info(); err == nil {
			ps.name = info.Name
		}
		if st, err := p.Stats(); err == nil {
			ps.runtime, ps.runCount = st.Runtime, st.RunCount
		}
		p.Close()
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}
