//go:build reliability

// Package reliability is kstat's load and fault harness: long runs that
// "go test ./..." does not build (the reliability build tag). Run as root:
//
//	go test -tags reliability -count=1 -v -timeout 30m ./bench/reliability/
//
// Flags (after -args): -duration, -scrapers, -walkers, -writers, -kills.
// docs/RELIABILITY.md records the figures of a run.
package reliability

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/kstat/kstat/internal/netout/nettest"
	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs/fusefs"
)

var (
	duration = flag.Duration("duration", 60*time.Second, "how long the load runs")
	scrapers = flag.Int("scrapers", 100, "concurrent /metrics scrapers")
	walkers  = flag.Int("walkers", 20, "concurrent walkers reading every file of the mount")
	writers  = flag.Int("writers", 4, "concurrent knob writers")
	kills    = flag.Int("kills", 20, "SIGKILLs at random moments")
)

var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "kstat-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "kstat")
	if out, err := exec.Command("go", "build", "-o", binary, "../../cmd/kstat").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building kstat: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a running kstat serve.
type daemon struct {
	cmd   *exec.Cmd
	mount string
	base  string // http://ADDR
	log   *syncBuf
	done  chan struct{}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listenRE = regexp.MustCompile(`msg="HTTP server listening" addr=(\S+)`)

// start starts kstat serve on mount; it does not wait.
func start(t *testing.T, mount string, args ...string) *daemon {
	t.Helper()
	d := &daemon{mount: mount, log: &syncBuf{}, done: make(chan struct{})}
	// The control socket sits beside the mount point, so that a round
	// of TestKills finds the one a killed daemon left.
	sock := filepath.Join(filepath.Dir(mount), "kstat.sock")
	d.cmd = exec.Command(binary, append([]string{"serve", "--mount", mount, "--listen", "127.0.0.1:0", "--control-socket", sock}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = syscall.Kill(d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
		if _, ok := fusefs.MountedAt(mount); ok {
			_ = syscall.Unmount(mount, syscall.MNT_DETACH)
		}
	})
	return d
}

// ready waits until the daemon logs that it is ready.
func (d *daemon) ready(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(d.log.String(), `msg="kstat serve ready"`) {
			d.base = "http://" + listenRE.FindStringSubmatch(d.log.String())[1]
			return
		}
		select {
		case <-d.done:
			t.Fatalf("kstat serve exited:\n%s", d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kstat serve not ready after 30s:\n%s", d.log.String())
		}
	}
}

func (d *daemon) read(rel string) (string, error) {
	b, err := os.ReadFile(filepath.Join(d.mount, rel))
	return string(b), err
}

func (d *daemon) number(t *testing.T, rel string) uint64 {
	t.Helper()
	s, err := d.read(rel)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return v
}

// usage is what /proc says of the daemon's process.
type usage struct{ fds, threads, rssKB int }

func procUsage(pid int) usage {
	var u usage
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		u.fds = len(ents)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			u.rssKB, _ = strconv.Atoi(f[1])
		}
		if len(f) >= 2 && f[0] == "Threads:" {
			u.threads, _ = strconv.Atoi(f[1])
		}
	}
	return u
}

// TestLoad holds -scrapers scrapers of /metrics, -walkers walkers reading
// every file of the mount and -writers knob writers for -duration, while
// TCP traffic runs in a namespace KSTAT counts; it reports errors, the
// growth of fds, goroutines and RSS, and compares KSTAT's TCP counts with
// nftables' and memory/total with /proc/meminfo.
func TestLoad(t *testing.T) {
	testutil.RequireBPF(t, ebpf.Netfilter)
	testutil.RequireCommand(t, "nft")
	ns := testutil.NewNetNS(t)
	nettest.AddCounters(t, ns)
	d := start(t, filepath.Join(t.TempDir(), "mnt"), "--netns", ns.Path, "--kstat-start", "--tracer", "--telemetry-interval", "250ms")
	d.ready(t)
	pid := d.cmd.Process.Pid
	nft0 := nettest.ReadCounters(t, ns)
	k0 := d.number(t, "kstat/ipv4/tcp_packets") + d.number(t, "kstat/ipv6/tcp_packets")
	time.Sleep(2 * time.Second) // let the first scrapes and reads settle
	u0, g0, fds0 := procUsage(pid), d.number(t, "self/goroutines"), fdTargets(pid)

	var (
		stop                             atomic.Bool
		wg                               sync.WaitGroup
		scrapes, scrape503, scrapeErr    atomic.Int64
		reads, readErr, writes, writeErr atomic.Int64
		sends, sendErr                   atomic.Int64
		firstErrMu                       sync.Mutex
		firstErrs                        []string
		maxU                             usage
		maxG                             uint64
	)
	note := func(kind string, err error) {
		firstErrMu.Lock()
		defer firstErrMu.Unlock()
		if len(firstErrs) < 10 {
			firstErrs = append(firstErrs, kind+": "+err.Error())
		}
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *scrapers}}
	for range *scrapers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				resp, err := client.Get(d.base + "/metrics")
				if err != nil {
					scrapeErr.Add(1)
					note("scrape", err)
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case err != nil:
					scrapeErr.Add(1)
					note("scrape body", err)
				case resp.StatusCode == http.StatusServiceUnavailable:
					scrape503.Add(1) // over the in-flight limit: by design
				case resp.StatusCode != http.StatusOK:
					scrapeErr.Add(1)
					note("scrape", fmt.Errorf("status %d", resp.StatusCode))
				default:
					scrapes.Add(1)
				}
			}
		}()
	}
	for range *walkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				_ = filepath.WalkDir(d.mount, func(path string, e fs.DirEntry, err error) error {
					if stop.Load() {
						return filepath.SkipAll
					}
					if err != nil {
						// A pid directory of the tracer may go between
						// the listing and the visit.
						if !errors.Is(err, fs.ErrNotExist) {
							readErr.Add(1)
							note("walk", err)
						}
						return nil
					}
					if e.IsDir() {
						return nil
					}
					_, err = os.ReadFile(path)
					switch {
					case err == nil:
						reads.Add(1)
					case errors.Is(err, fs.ErrNotExist) && strings.Contains(path, "/tracer/"):
					default:
						readErr.Add(1)
						note("read", err)
					}
					return nil
				})
			}
		}()
	}
	knobs := []struct {
		path   string
		values func() string
	}{
		{"kstat/counter", func() string { return strconv.Itoa(1 + rand.IntN(100)) }},
		{"telemetry/log_interval", func() string { return []string{"250ms", "500ms", "1s"}[rand.IntN(3)] }},
		{"tracer/sort", func() string { return []string{"out_bytes", "kmalloc", "forks"}[rand.IntN(3)] }},
		{"self/fuse_opens", func() string { return "0" }},
	}
	for i := range *writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				k := knobs[(i+rand.IntN(len(knobs)))%len(knobs)]
				err := os.WriteFile(filepath.Join(d.mount, k.path), []byte(k.values()+"\n"), 0)
				writes.Add(1)
				if err != nil {
					writeErr.Add(1)
					note("write "+k.path, err)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			err := nettest.SendTCP(ns, []string{"127.0.0.1", "::1"}, nettest.Traffic{Conns: 2, Messages: 5, Size: 100})
			sends.Add(1)
			if err != nil {
				sendErr.Add(1)
				note("traffic", err)
			}
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			time.Sleep(time.Second)
			u := procUsage(pid)
			maxU.fds, maxU.threads, maxU.rssKB = max(maxU.fds, u.fds), max(maxU.threads, u.threads), max(maxU.rssKB, u.rssKB)
			if s, err := d.read("self/goroutines"); err == nil {
				g, _ := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
				maxG = max(maxG, g)
			}
		}
	}()
	began := time.Now()
	time.Sleep(*duration)
	stop.Store(true)
	wg.Wait()
	ran := time.Since(began)

	// Exactness: KSTAT's TCP counts grew as nftables' did, read at one
	// quiet moment; memory/total is /proc/meminfo's.
	var k1 uint64
	nft1 := nettest.Quiet(t, ns, func() {
		k1 = d.number(t, "kstat/ipv4/tcp_packets") + d.number(t, "kstat/ipv6/tcp_packets")
	})
	kstatTCP, nftTCP := k1-k0, nft1.TCPPackets()-nft0.TCPPackets()
	memTotal := d.number(t, "memory/total")
	var procMem uint64
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				procMem, _ = strconv.ParseUint(strings.Fields(v)[0], 10, 64)
				procMem *= 1024
			}
		}
		f.Close()
	}
	time.Sleep(5 * time.Second) // idle: what the load left behind
	client.CloseIdleConnections()
	time.Sleep(time.Second)
	u1, g1, fds1 := procUsage(pid), d.number(t, "self/goroutines"), fdTargets(pid)
	// go-fuse keeps a small pool of splice pipes: count them apart.
	var newFDs []string
	newPipes := 0
	for fd, target := range fds1 {
		switch {
		case fds0[fd] == target:
		case strings.HasPrefix(target, "pipe:"):
			newPipes++
		default:
			newFDs = append(newFDs, fd+"->"+target)
		}
	}

	t.Logf("load for %v: %d scrapers, %d FUSE walkers, %d knob writers, TCP traffic in a namespace", ran.Round(time.Second), *scrapers, *walkers, *writers)
	t.Logf("scrapes: %d ok (%.0f/s), %d answered 503 (over --metrics in-flight limit), %d errors", scrapes.Load(), float64(scrapes.Load())/ran.Seconds(), scrape503.Load(), scrapeErr.Load())
	t.Logf("FUSE reads: %d ok (%.0f/s), %d errors; knob writes: %d, %d errors; traffic rounds: %d, %d errors", reads.Load(), float64(reads.Load())/ran.Seconds(), readErr.Load(), writes.Load(), writeErr.Load(), sends.Load(), sendErr.Load())
	t.Logf("fds: %d before, %d max, %d after (idle); threads: %d, %d, %d; goroutines: %d, %d, %d; RSS: %d, %d, %d KiB",
		u0.fds, maxU.fds, u1.fds, u0.threads, maxU.threads, u1.threads, g0, maxG, g1, u0.rssKB, maxU.rssKB, u1.rssKB)
	t.Logf("KSTAT TCP packets: %d, nftables: %d (exact: %v); memory/total %d, /proc/meminfo %d (exact: %v)", kstatTCP, nftTCP, kstatTCP == nftTCP, memTotal, procMem, memTotal == procMem)
	t.Logf("fds open after the load that were not before: %d pipes (go-fuse's splice pool), others: %v", newPipes, newFDs)
	for _, e := range firstErrs {
		t.Logf("first errors: %s", e)
	}
	if scrapeErr.Load()+readErr.Load()+writeErr.Load()+sendErr.Load() > 0 {
		t.Errorf("errors under load")
	}
	if kstatTCP != nftTCP || memTotal != procMem {
		t.Errorf("counts not exact")
	}
	if len(newFDs) > 2 || newPipes > 16 || g1 > g0+10 {
		t.Errorf("fds or goroutines grew: %d -> %d fds, %d -> %d goroutines", u0.fds, u1.fds, g0, g1)
	}
}

// fdTargets maps the daemon's fds to what they point at.
func fdTargets(pid int) map[string]string {
	m := map[string]string{}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil {
			m[e.Name()] = target
		}
	}
	return m
}

// heldBPF returns the BPF program and link ids the process holds, from
// /proc/PID/fdinfo.
func heldBPF(pid int) (progs, links []uint32) {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fdinfo", pid))
	for _, e := range ents {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				continue
			}
			switch k {
			case "prog_id":
				progs = append(progs, uint32(id))
			case "link_id":
				links = append(links, uint32(id))
			}
		}
	}
	return progs, links
}

// TestKills SIGKILLs the daemon -kills times at random moments (some in
// start-up): each time it stops the process first (SIGSTOP) to list the
// BPF programs and links it holds, kills it, and checks that the kernel
// has freed every one of them; the next start must recover the mount (and
// the control socket the killed daemon left).
func TestKills(t *testing.T) {
	testutil.RequireBPF(t, ebpf.Netfilter)
	ns := testutil.NewNetNS(t)
	mount := filepath.Join(t.TempDir(), "mnt")
	var held, recovered, deadMounts, afterReady int
	var worst time.Duration
	dead := func() bool {
		_, err := os.Stat(mount)
		return errors.Is(err, syscall.ENOTCONN)
	}
	for i := range *kills {
		deadBefore := dead()
		d := start(t, mount, "--netns", ns.Path, "--kstat-start", "--tracer", "--telemetry-interval", "100ms")
		at := time.Duration(rand.IntN(3000)) * time.Millisecond
		time.Sleep(at)
		pid := d.cmd.Process.Pid
		_ = syscall.Kill(pid, syscall.SIGSTOP)
		wasReady := strings.Contains(d.log.String(), `msg="kstat serve ready"`)
		if wasReady {
			afterReady++
		}
		progs, links := heldBPF(pid)
		held += len(progs) + len(links)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-d.done
		switch log := d.log.String(); {
		case strings.Contains(log, "detached a stale statistics mount"):
			recovered++
		case deadBefore && strings.Contains(log, "statistics filesystem mounted"):
			t.Errorf("kill %d: the daemon mounted over a dead mount without recovering it:\n%s", i+1, log)
		}
		// The kernel frees programs and links after an RCU grace period.
		began := time.Now()
		for {
			var left []string
			for _, id := range progs {
				if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
					p.Close()
					left = append(left, fmt.Sprintf("program %d", id))
				}
			}
			for _, id := range links {
				if l, err := link.NewFromID(link.ID(id)); err == nil {
					l.Close()
					left = append(left, fmt.Sprintf("link %d", id))
				}
			}
			if len(left) == 0 {
				break
			}
			if time.Since(began) > 10*time.Second {
				t.Fatalf("kill %d at %v: %v still in the kernel 10s after the SIGKILL", i+1, at, left)
			}
			time.Sleep(20 * time.Millisecond)
		}
		worst = max(worst, time.Since(began))
		if strings.Contains(d.log.String(), "statistics filesystem mounted") {
			// The killed daemon's mount stays, dead, for a later start.
			deadMounts++
			if !dead() {
				t.Errorf("kill %d: the daemon had mounted, yet no dead mount is left", i+1)
			}
		}
		t.Logf("kill %2d at %4dms (ready: %v): held %d programs, %d links; all freed", i+1, at.Milliseconds(), wasReady, len(progs), len(links))
	}
	// The last start recovers the last dead mount and serves.
	deadBefore := dead()
	d := start(t, mount, "--netns", ns.Path, "--kstat-start")
	d.ready(t)
	if _, err := d.read("self/uptime_seconds"); err != nil {
		t.Fatalf("after %d kills the mount does not serve: %v", *kills, err)
	}
	if strings.Contains(d.log.String(), "detached a stale statistics mount") {
		recovered++
	} else if deadBefore {
		t.Errorf("the last start did not recover the dead mount:\n%s", d.log.String())
	}
	_ = syscall.Kill(d.cmd.Process.Pid, syscall.SIGTERM)
	<-d.done
	if _, ok := fusefs.MountedAt(mount); ok {
		t.Errorf("mounted after the last daemon's SIGTERM")
	}
	t.Logf("%d kills (%d after start-up, %d during it): %d BPF programs and links held in all, every one freed (slowest %v); %d dead mounts left, %d recovered by a later start (the last start recovered the last one and served)",
		*kills, afterReady, *kills-afterReady, held, worst.Round(time.Millisecond), deadMounts, recovered)
	if recovered != deadMounts {
		t.Errorf("%d dead mounts, %d recovered", deadMounts, recovered)
	}
}
