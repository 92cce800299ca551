package main

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/kstat/kstat/internal/netout/nettest"
	"github.com/kstat/kstat/internal/testutil"
)

var kstatAddrs = []string{"127.0.0.1", "::1"}

var kstatTraffic = nettest.Traffic{Conns: 4, Messages: 6, Size: 80}

// kstatNS makes a namespace with the nftables counters that the KSTAT tests
// compare with.
func kstatNS(t *testing.T) *testutil.NetNS {
	t.Helper()
	testutil.RequireBPF(t, ebpf.Netfilter)
	ns := testutil.NewNetNS(t)
	nettest.AddCounters(t, ns)
	return ns
}

// kstatRead reads a number file of the mount.
func kstatRead(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(strings.TrimSuffix(string(b), "\n"), 10, 64)
	if err != nil {
		t.Fatalf("%s: %q: %v", path, b, err)
	}
	return v
}

// kstatWrite writes text to a file of the mount and returns the error.
func kstatWrite(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}

func kstatMustWrite(t *testing.T, path, text string) {
	t.Helper()
	if err := kstatWrite(path, text); err != nil {
		t.Fatalf("writing %q to %s: %v", text, path, err)
	}
}

// kstatFDs lists the netfilter BPF programs and netfilter links that
// process pid holds, from /proc/PID/fdinfo.
func kstatFDs(t *testing.T, pid int) (progs []ebpf.ProgramID, links []link.ID) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		var progID, linkID uint64
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			switch k {
			case "prog_id":
				progID = n
			case "link_id":
				linkID = n
			}
		}
		f.Close()
		if progID == 0 {
			continue
		}
		// A link's fdinfo names its program too: keep only netfilter ones
		// (other daemon features hold tracing programs and links).
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(progID))
		if err != nil {
			continue
		}
		netfilter := p.Type() == ebpf.Netfilter
		p.Close()
		switch {
		case !netfilter:
		case linkID != 0:
			links = append(links, link.ID(linkID))
		default:
			progs = append(progs, ebpf.ProgramID(progID))
		}
	}
	return progs, links
}

// kstatLinksOf lists the kernel's links that run program id.
func kstatLinksOf(t *testing.T, id ebpf.ProgramID) []link.ID {
	t.Helper()
	var ids []link.ID
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		if info, err := it.Link.Info(); err == nil && info.Program == id {
			ids = append(ids, it.ID)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// kstatDaemonProg returns the daemon's one netfilter program.
func kstatDaemonProg(t *testing.T, d *testDaemon) ebpf.ProgramID {
	t.Helper()
	progs, _ := kstatFDs(t, d.cmd.Process.Pid)
	if len(progs) != 1 {
		t.Fatalf("the daemon holds %d netfilter programs (%v), want 1", len(progs), progs)
	}
	return progs[0]
}

// kstatQuiet waits for ns to stop sending and reads the mount's counts
// between two equal nftables readings.
func kstatQuiet(t *testing.T, ns *testutil.NetNS, d *testDaemon) (nettest.NFT, map[string]uint64) {
	t.Helper()
	got := map[string]uint64{}
	nft := nettest.Quiet(t, ns, func() {
		got["outsegs"] = nettest.OutSegs(t, ns)
		got["nout"] = kstatRead(t, d.Path("kstat/nout"))
		for _, fam := range []string{"ipv4", "ipv6"} {
			for _, p := range []string{"tcp", "udp", "other"} {
				for _, u := range []string{"packets", "bytes"} {
					name := fam + "/" + p + "_" + u
					got[name] = kstatRead(t, d.Path("kstat/"+name))
				}
			}
		}
	})
	return nft, got
}

// TestKstatDaemon drives the seed's interface through a daemon counting in
// a namespace the test made, against nftables counters on the output hook.
func TestKstatDaemon(t *testing.T) {
	ns := kstatNS(t)
	d := startDaemon(t, "--netns", ns.Path)
	waitForFile(t, d.Path("kstat/nout"), 10*time.Second, d.done)
	id := kstatDaemonProg(t, d)

	// Loaded is not started: nothing attached, nothing counted.
	if v := kstatRead(t, d.Path("kstat/start")); v != 0 {
		t.Fatalf("start %d at launch without --kstat-start", v)
	}
	if v := kstatRead(t, d.Path("kstat/counter")); v != 10 {
		t.Fatalf("counter %d at launch, want 10", v)
	}
	if l := kstatLinksOf(t, id); len(l) != 0 {
		t.Fatalf("not started, yet links %v run the program", l)
	}
	if err := nettest.SendTCP(ns, kstatAddrs, kstatTraffic); err != nil {
		t.Fatal(err)
	}
	nft0, got := kstatQuiet(t, ns, d)
	outSegs0 := got["outsegs"]
	if nft0.TCPPackets() == 0 || got["nout"] != 0 || got["ipv4/tcp_packets"] != 0 {
		t.Fatalf("before start: nftables %d TCP packets, kstat %v", nft0.TCPPackets(), got)
	}

	// counter=1: every count equals nftables' (the counters were not
	// zero at start: compare the growth).
	kstatMustWrite(t, d.Path("kstat/counter"), "1")
	kstatMustWrite(t, d.Path("kstat/start"), "1")
	if l := kstatLinksOf(t, id); len(l) != 2 {
		t.Fatalf("started: %d links run the program, want 2", len(l))
	}
	if err := nettest.SendTCP(ns, kstatAddrs, kstatTraffic); err != nil {
		t.Fatal(err)
	}
	if err := nettest.SendUDP(ns, kstatAddrs, 11, 300); err != nil {
		t.Fatal(err)
	}
	nft1, got := kstatQuiet(t, ns, d)
	for name, c := range nft1 {
		fam, proto, _ := strings.Cut(name, "_")
		key := fam + "/" + proto
		if p, b := got[key+"_packets"], got[key+"_bytes"]; p != c.Packets-nft0[name].Packets || b != c.Bytes-nft0[name].Bytes {
			t.Errorf("%s: kstat %d packets %d bytes, nftables %d packets %d bytes since start",
				key, p, b, c.Packets-nft0[name].Packets, c.Bytes-nft0[name].Bytes)
		}
	}
	tcp1 := nft1.TCPPackets() - nft0.TCPPackets()
	if got["nout"] != tcp1 || tcp1 < 2*4*6*2 {
		t.Errorf("counter=1: nout %d, nftables %d TCP packets since start", got["nout"], tcp1)
	}
	// Small TCP_NODELAY writes: one segment per packet, so the kernel's
	// Tcp OutSegs grows as nout (GSO would make one packet many segments).
	if d := got["outsegs"] - outSegs0; d != got["nout"] {
		t.Errorf("counter=1: Tcp OutSegs grew by %d, nout is %d", d, got["nout"])
	}
	if nft1["ipv4_udp"].Packets-nft0["ipv4_udp"].Packets != 11 {
		t.Errorf("nftables saw %d IPv4 UDP packets, want the 11 sent", nft1["ipv4_udp"].Packets-nft0["ipv4_udp"].Packets)
	}

	// counter=10 after a clear: nout is nftables' growth rounded down.
	kstatMustWrite(t, d.Path("kstat/counter"), "10")
	kstatMustWrite(t, d.Path("kstat/nout"), "0")
	if v := kstatRead(t, d.Path("kstat/nout")); v != 0 {
		t.Fatalf("nout %d after clearing", v)
	}
	if err := nettest.SendTCP(ns, kstatAddrs, kstatTraffic); err != nil {
		t.Fatal(err)
	}
	nft2, got := kstatQuiet(t, ns, d)
	tcp2 := nft2.TCPPackets() - nft1.TCPPackets()
	if want := tcp2 - tcp2%10; got["nout"] != want {
		t.Errorf("counter=10: nout %d, want nftables' %d rounded down to %d", got["nout"], tcp2, want)
	}

	// Bad input: EINVAL, old value kept; read-only counts: EACCES.
	for file, bad := range map[string][]string{
		"kstat/counter": {"0", "-1", "abc", "4294967297", "1.5", "1e3"},
		"kstat/start":   {"2", "-1", "yes", "10"},
		"kstat/nout":    {"5", "-1", "x"},
	} {
		old := kstatRead(t, d.Path(file))
		for _, text := range bad {
			if err := kstatWrite(d.Path(file), text); !errors.Is(err, syscall.EINVAL) {
				t.Errorf("writing %q to %s: %v, want EINVAL", text, file, err)
			}
		}
		if v := kstatRead(t, d.Path(file)); v != old {
			t.Errorf("%s is %d after rejected writes, was %d", file, v, old)
		}
	}
	kstatMustWrite(t, d.Path("kstat/counter"), "4294967296")
	kstatMustWrite(t, d.Path("kstat/counter"), "10")
	for _, file := range []string{"kstat/ipv4/tcp_packets", "kstat/ipv6/udp_bytes"} {
		if err := kstatWrite(d.Path(file), "0"); !errors.Is(err, syscall.EACCES) {
			t.Errorf("writing 0 to read-only %s: %v, want EACCES", file, err)
		}
	}

	// Stop detaches and stops counting; a restart keeps the total.
	kstatMustWrite(t, d.Path("kstat/start"), "0")
	if l := kstatLinksOf(t, id); len(l) != 0 {
		t.Fatalf("stopped, yet links %v run the program", l)
	}
	if err := nettest.SendTCP(ns, kstatAddrs, kstatTraffic); err != nil {
		t.Fatal(err)
	}
	nft3, stopped := kstatQuiet(t, ns, d)
	if stopped["nout"] != got["nout"] || stopped["ipv4/tcp_packets"] != got["ipv4/tcp_packets"] {
		t.Errorf("stopped, yet counted: %v -> %v", got, stopped)
	}
	kstatMustWrite(t, d.Path("kstat/start"), "1")
	if err := nettest.SendTCP(ns, kstatAddrs, kstatTraffic); err != nil {
		t.Fatal(err)
	}
	nft4, again := kstatQuiet(t, ns, d)
	counted := tcp2 + nft4.TCPPackets() - nft3.TCPPackets()
	if want := counted - counted%10; again["nout"] != want {
		t.Errorf("restarted: nout %d, want %d (kept) + new, rounded down to %d", again["nout"], got["nout"], want)
	}

	// kstat tcp reads the same mount.
	out, stderr, err := runKstat(t, "tcp", "--mount", d.Mount)
	if err != nil {
		t.Fatalf("kstat tcp: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, fmt.Sprintf("nout     %d packets", again["nout"])) ||
		!regexp.MustCompile(fmt.Sprintf(`(?m)^ipv4 +tcp +%d +%d$`, again["ipv4/tcp_packets"], again["ipv4/tcp_bytes"])).MatchString(out) {
		t.Errorf("kstat tcp printed\n%s\nwant nout %d and the IPv4 TCP counts %d/%d",
			out, again["nout"], again["ipv4/tcp_packets"], again["ipv4/tcp_bytes"])
	}
	out, stderr, err = runKstat(t, "tcp", "--mount", d.Mount, "--watch", "--interval", "200ms", "--duration", "1100ms")
	if err != nil {
		t.Fatalf("kstat tcp --watch: %v\n%s", err, stderr)
	}
	lines := regexp.MustCompile(fmt.Sprintf(`(?m)^\d\d:\d\d:\d\d +%d +%d +0\.0$`, again["nout"], again["ipv4/tcp_packets"]+again["ipv6/tcp_packets"])).FindAllString(out, -1)
	if len(lines) < 3 {
		t.Errorf("kstat tcp --watch printed\n%s\nwant at least 3 lines of nout %d with a rate of 0", out, again["nout"])
	}
}

// TestKstatTCPStandalone runs "kstat tcp" without a daemon: it loads its
// own program in the namespace and counts until interrupted (--duration 0).
func TestKstatTCPStandalone(t *testing.T) {
	ns := kstatNS(t)
	bin := kstatBinary(t)
	cmd := exec.Command(bin, "tcp", "--mount", filepath.Join(t.TempDir(), "none"), "--netns", ns.Path,
		"--duration", "0", "--counter", "1")
	var out, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var werr error
	go func() {
		werr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // when the test failed before its SIGINT
		<-done
	})
	// Wait until it holds its two links.
	deadline := time.Now().Add(3 * time.Second)
	for {
		if _, links := kstatFDs(t, cmd.Process.Pid); len(links) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kstat tcp did not attach within 3s: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := nettest.ReadCounters(t, ns)
	if err := nettest.SendTCP(ns, kstatAddrs, kstatTraffic); err != nil {
		t.Fatal(err)
	}
	after := nettest.Quiet(t, ns, func() {})
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-done
	if werr != nil {
		t.Fatalf("kstat tcp: %v\n%s", werr, stderr.String())
	}
	tcp := after.TCPPackets() - before.TCPPackets()
	v4 := after["ipv4_tcp"].Packets - before["ipv4_tcp"].Packets
	if !strings.Contains(out.String(), fmt.Sprintf("nout     %d packets", tcp)) ||
		!regexp.MustCompile(fmt.Sprintf(`(?m)^ipv4 +tcp +%d `, v4)).MatchString(out.String()) {
		t.Errorf("kstat tcp printed\n%s\nwant nout %d and %d IPv4 TCP packets (nftables)", out.String(), tcp, v4)
	}
}

// TestKstatNoLeftovers checks that however the daemon ends (SIGTERM,
// SIGINT, SIGKILL), its netfilter program and links leave the kernel.
func TestKstatNoLeftovers(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			ns := kstatNS(t)
			d := startDaemon(t, "--netns", ns.Path, "--kstat-start")
			waitForFile(t, d.Path("kstat/nout"), 10*time.Second, d.done)
			id := kstatDaemonProg(t, d)
			_, links := kstatFDs(t, d.cmd.Process.Pid)
			if len(links) != 2 || len(kstatLinksOf(t, id)) != 2 {
				t.Fatalf("--kstat-start: the daemon holds links %v, the kernel has %v for program %d; want 2",
					links, kstatLinksOf(t, id), id)
			}
			d.Signal(t, sig)
			_ = d.Wait(t, 15*time.Second)
			// The kernel frees a program and its links once the last
			// fd is gone; that can lag the exit by an RCU grace period.
			deadline := time.Now().Add(5 * time.Second)
			for {
				var left []string
				if p, err := ebpf.NewProgramFromID(id); err == nil {
					p.Close()
					left = append(left, fmt.Sprintf("program %d", id))
				}
				for _, l := range links {
					if ln, err := link.NewFromID(l); err == nil {
						ln.Close()
						left = append(left, fmt.Sprintf("link %d", l))
					}
				}
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after %v: %v still in the kernel", sig, left)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestKstatWithoutCapability starts the daemon without CAP_NET_ADMIN:
// the KSTAT feature says what is missing (in the log and in
// feature/kstat/) and the rest of the daemon runs; with --kstat-start,
// which asks for it, the daemon exits non-zero naming the capability.
func TestKstatWithoutCapability(t *testing.T) {
	testutil.RequireFUSE(t)
	testutil.RequireCommand(t, "setpriv")
	drop := []string{"--inh-caps", "-net_admin", "--bounding-set", "-net_admin", "--", kstatBinary(t), "serve"}
	mount := filepath.Join(t.TempDir(), "mnt")
	cmd := exec.Command("setpriv", append(drop, "--mount", mount, "--listen", "127.0.0.1:0", "--control-socket", "")...)
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("kstat serve stderr:\n%s", stderr.String())
		}
	})
	waitForFile(t, filepath.Join(mount, "self", "uptime_seconds"), 30*time.Second, done)
	if _, err := os.Stat(filepath.Join(mount, "kstat", "nout")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("kstat/nout without CAP_NET_ADMIN: %v, want no such file", err)
	}
	if log := stderr.String(); !strings.Contains(log, "CAP_NET_ADMIN") || !strings.Contains(log, "feature=kstat") {
		t.Errorf("the daemon's log does not say that kstat lacks CAP_NET_ADMIN:\n%s", log)
	}
	if up := readText(t, filepath.Join(mount, "feature", "kstat", "up")); up != "0\n" {
		t.Errorf("feature/kstat/up = %q, want 0", up)
	}
	if reason := readText(t, filepath.Join(mount, "feature", "kstat", "reason")); !strings.Contains(reason, "CAP_NET_ADMIN") {
		t.Errorf("feature/kstat/reason = %q, want it to name CAP_NET_ADMIN", reason)
	}

	out, err := exec.Command("setpriv", append(drop, "--mount", filepath.Join(t.TempDir(), "mnt"), "--listen", "", "--control-socket", "", "--kstat-start")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "kstat: kstat: ") || !strings.Contains(string(out), "CAP_NET_ADMIN") {
		t.Errorf("--kstat-start without CAP_NET_ADMIN: %v, want a non-zero exit naming CAP_NET_ADMIN:\n%s", err, out)
	}
}

// TestKstatHTTP sets KSTAT's knobs through the HTTP API and reads the
// counts from /metrics, against the mount.
func TestKstatHTTP(t *testing.T) {
	ns := kstatNS(t)
	d, base, _ := startWriterDaemon(t, "--netns", ns.Path)
	waitForFile(t, d.Path("kstat/nout"), 10*time.Second, d.done)
	for _, bad := range []string{"0", "abc", "4294967297"} {
		if code, body := httpDo(t, http.MethodPut, base+"/api/v1/knobs/kstat/counter", bad); code != http.StatusBadRequest {
			t.Errorf("PUT counter %q: %d %s, want 400", bad, code, body)
		}
	}
	if code, body := httpDo(t, http.MethodPut, base+"/api/v1/knobs/kstat/counter", "1"); code/100 != 2 {
		t.Fatalf("PUT counter 1: %d %s", code, body)
	}
	if code, body := httpDo(t, http.MethodPut, base+"/api/v1/knobs/kstat/start", "1"); code/100 != 2 {
		t.Fatalf("PUT start 1: %d %s", code, body)
	}
	if v := kstatRead(t, d.Path("kstat/counter")); v != 1 {
		t.Errorf("counter %d in the mount after PUT 1", v)
	}
	if l := kstatLinksOf(t, kstatDaemonProg(t, d)); len(l) != 2 {
		t.Fatalf("after PUT start 1: %d links, want 2", len(l))
	}
	if err := nettest.SendTCP(ns, kstatAddrs, kstatTraffic); err != nil {
		t.Fatal(err)
	}
	nft, got := kstatQuiet(t, ns, d)
	if got["nout"] != nft.TCPPackets() {
		t.Errorf("nout %d, nftables %d TCP packets", got["nout"], nft.TCPPackets())
	}
	_, metrics := httpDo(t, http.MethodGet, base+"/metrics", "")
	for name, want := range map[string]uint64{
		"kstat_netout_nout_packets_total":               got["nout"],
		`kstat_netout_tcp_packets_total{family="ipv6"}`: got["ipv6/tcp_packets"],
		`kstat_netout_tcp_bytes_total{family="ipv4"}`:   got["ipv4/tcp_bytes"],
	} {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `() (\S+)$`).FindStringSubmatch(metrics)
		if m == nil {
			t.Errorf("/metrics has no %s", name)
			continue
		}
		if v, err := strconv.ParseFloat(m[2], 64); err != nil || uint64(v) != want {
			t.Errorf("/metrics %s = %s, the mount says %d", name, m[2], want)
		}
	}
}
