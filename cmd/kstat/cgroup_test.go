package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kstat/kstat/internal/cgroup"
	"github.com/kstat/kstat/internal/netout/nettest"
	"github.com/kstat/kstat/internal/testutil"
)

// worker is a bash in the test's network namespace, moved into its own
// cgroup v2 group; then, when told to, forks `forks` children
// (each runs /bin/true) and sends `packets` UDP datagrams to a closed port
// of the namespace's loopback, and waits to be ended.
type worker struct {
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	done           chan struct{} // closed when the worker has sent its packets
	group          string        // path below the cgroup2 mount
	forks, packets int
}

func startWorker(t *testing.T, ns *testutil.NetNS, mount, group string, forks, packets int) *worker {
	t.Helper()
	dir := filepath.Join(mount, group)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// One external command per loop turn: bash forks exactly once for it;
	// echo and the /dev/udp redirection are bash's own (no fork).
	script := fmt.Sprintf(`echo $$; read go
for i in%s; do /bin/true; done
for i in%s; do echo x > /dev/udp/127.0.0.1/9; done
echo done; read end`, strings.Repeat(" x", forks), strings.Repeat(" x", packets))
	w := &worker{cmd: exec.Command("ip", "netns", "exec", ns.Name, "/bin/bash", "-c", script), group: group, forks: forks, packets: packets, done: make(chan struct{})}
	var err error
	if w.stdin, err = w.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.stdin.Close()
		w.cmd.Wait() //nolint:errcheck // ended by closing stdin
		if err := os.Remove(dir); err != nil {
			t.Errorf("removing the test's cgroup: %v", err)
		}
	})
	lines := make(chan string, 2)
	go func() {
		b := make([]byte, 64)
		var acc string
		for {
			n, err := out.Read(b)
			acc += string(b[:n])
			for strings.Contains(acc, "\n") {
				line, rest, _ := strings.Cut(acc, "\n")
				lines <- line
				acc = rest
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	// ip netns exec mounts the namespace's own /sys: the cgroup2 mount is
	// not there, so the test moves the shell from here.
	var pid string
	select {
	case pid = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatalf("worker in %s did not start", group)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(pid), 0o644); err != nil {
		t.Fatalf("moving the worker into %s: %v", dir, err)
	}
	go func() { <-lines; close(w.done) }()
	return w
}

// TestCgroupAttribution runs two workers in two cgroup v2 groups the test
// creates, in a network namespace it creates: their exact fork and packet
// counts are under their own group, in the tree (cgroup/<path>/) and in
// /metrics (cgroup label), and the packets add up to what nftables
// counted in the namespace. A second daemon with a budget of one group
// shows the more active one and counts the other as dropped.
func TestCgroupAttribution(t *testing.T) {
	testutil.RequireRoot(t)
	mount, err := cgroup.FindMount("/proc")
	if err != nil {
		t.Fatal(err)
	}
	ns := kstatNS(t)
	d, url := startHTTPDaemon(t, "--tracer", "--netns", ns.Path, "--kstat-start")
	small := startDaemon(t, "--listen=", "--tracer", "--cgroup.max", "1")
	prefix := fmt.Sprintf("kstat-test-%d", os.Getpid())
	nft0 := nettest.ReadCounters(t, ns)
	a := startWorker(t, ns, mount, prefix+"-a", 7, 5)
	b := startWorker(t, ns, mount, prefix+"-b", 13, 9)
	for _, w := range []*worker{a, b} {
		if _, err := io.WriteString(w.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []*worker{a, b} {
		select {
		case <-w.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("worker in %s did not finish", w.group)
		}
	}
	nft := nettest.ReadCounters(t, ns)
	if got := nft["ipv4_udp"].Packets - nft0["ipv4_udp"].Packets; got != uint64(a.packets+b.packets) {
		t.Errorf("nftables counted %d UDP packets, the workers sent %d", got, a.packets+b.packets)
	}
	for _, w := range []*worker{a, b} {
		dir := d.Path("cgroup/" + cgroup.DirName(w.group))
		waitValue(t, dir+"/forks", uint64(w.forks))
		waitValue(t, dir+"/netout_packets", uint64(w.packets))
		_, body := httpDo(t, "GET", url+"/metrics", "")
		for _, want := range []string{
			fmt.Sprintf(`kstat_cgroup_forks_total{cgroup=%q} %d`, w.group, w.forks),
			fmt.Sprintf(`kstat_cgroup_netout_packets_total{cgroup=%q} %d`, w.group, w.packets),
		} {
			if !strings.Contains(body, want+"\n") {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	}
	// Budget of one: one group is shown, every other active one dropped.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ents, _ := os.ReadDir(small.Path("cgroup"))
		var shown []string
		for _, e := range ents {
			if e.IsDir() {
				shown = append(shown, e.Name())
			}
		}
		dropped := kstatRead(t, small.Path("cgroup/groups_dropped"))
		if len(shown) == 1 && dropped >= 2 { // at least a and b besides the shown one, or one of them
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("budget 1: shown %v, groups_dropped %d", shown, dropped)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitValue waits up to 10 s for a value file to read want.
func waitValue(t *testing.T, path string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		got = strings.TrimSpace(string(b))
		if err == nil && got == fmt.Sprint(want) {
			return
		}
		if err != nil {
			got = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s = %s, want %d", path, got, want)
}

// TestKstatCgroupsOff runs the daemon with --kstat-cgroups=false: KSTAT's
// totals still equal nftables' counters in the namespace, the per-cgroup
// packet values (tree and /metrics) and kstat/cgroups_dropped are absent,
// not zero, and feature/kstat-cgroups says off.
func TestKstatCgroupsOff(t *testing.T) {
	testutil.RequireRoot(t)
	mount, err := cgroup.FindMount("/proc")
	if err != nil {
		t.Fatal(err)
	}
	ns := kstatNS(t)
	d, url := startHTTPDaemon(t, "--tracer", "--netns", ns.Path, "--kstat-start", "--kstat-cgroups=false")
	nft0 := nettest.ReadCounters(t, ns)
	udp0 := kstatRead(t, d.Path("kstat/ipv4/udp_packets"))
	w := startWorker(t, ns, mount, fmt.Sprintf("kstat-test-%d-off", os.Getpid()), 3, 11)
	if _, err := io.WriteString(w.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("worker in %s did not finish", w.group)
	}
	nft := nettest.ReadCounters(t, ns)
	sent := nft["ipv4_udp"].Packets - nft0["ipv4_udp"].Packets
	if sent != uint64(w.packets) {
		t.Errorf("nftables counted %d UDP packets, the worker sent %d", sent, w.packets)
	}
	waitValue(t, d.Path("kstat/ipv4/udp_packets"), udp0+sent)
	dir := d.Path("cgroup/" + cgroup.DirName(w.group))
	waitValue(t, dir+"/forks", uint64(w.forks))
	for _, p := range []string{dir + "/netout_packets", dir + "/netout_bytes", d.Path("kstat/cgroups_dropped")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists with --kstat-cgroups=false (%v)", p, err)
		}
	}
	_, body := httpDo(t, "GET", url+"/metrics", "")
	for _, absent := range []string{"kstat_cgroup_netout_packets_total", "kstat_cgroup_netout_bytes_total", "kstat_netout_cgroups_dropped"} {
		if strings.Contains(body, absent) {
			t.Errorf("/metrics has %s with --kstat-cgroups=false", absent)
		}
	}
	if !strings.Contains(body, `kstat_feature_up{feature="kstat-cgroups"} 0`+"\n") {
		t.Error(`/metrics lacks kstat_feature_up{feature="kstat-cgroups"} 0`)
	}
	if b, err := os.ReadFile(d.Path("feature/kstat-cgroups/reason")); err != nil || !strings.HasPrefix(string(b), "off: --kstat-cgroups=false") {
		t.Errorf("feature/kstat-cgroups/reason = %q, %v", b, err)
	}
}
