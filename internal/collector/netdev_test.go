package collector

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
)

// netdevOracle parses /proc/net/dev text with the standard library: per
// interface its counters, and whether they were readable. Lines with no
// colon or a bad name are left out.
func netdevOracle(text string) map[string]netdevWant {
	out := map[string]netdevWant{}
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, "|") || strings.Trim(l, " \t") == "" {
			continue
		}
		i := strings.LastIndex(l, ":")
		if i < 0 {
			continue
		}
		name := strings.Trim(l[:i], " \t")
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > statsfs.MaxNameLen {
			continue
		}
		fs := strings.FieldsFunc(l[i+1:], func(r rune) bool { return r == ' ' || r == '\t' })
		var w netdevWant
		w.ok = len(fs) == 16
		for j, f := range fs {
			n, err := strconv.ParseUint(f, 10, 64)
			if err != nil || j >= 16 {
				w.ok = false
				break
			}
			w.v[j] = n
		}
		if !w.ok {
			w.v = [16]uint64{}
		}
		out[name] = w
	}
	return out
}

type netdevWant struct {
	v  [16]uint64
	ok bool
}

func TestParseNetdevFixtures(t *testing.T) {
	for c, devs := range map[string]int{"real": 4, "many-interfaces": 37, "huge": 2} {
		b, err := os.ReadFile(testutil.Fixture(t, "bufstat", c, "proc", "net", "dev"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseNetdev(b, nil)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		want := netdevOracle(string(b))
		if len(got) != devs || len(want) != devs {
			t.Fatalf("%s: %d interfaces, oracle %d, want %d", c, len(got), len(want), devs)
		}
		for _, e := range got {
			if w := want[string(e.name)]; w.v != e.v || !w.ok || !e.ok {
				t.Errorf("%s: %s = %v, want %v", c, e.name, e.v, w.v)
			}
		}
		if n := testing.AllocsPerRun(50, func() { got, _ = parseNetdev(b, got) }); n != 0 {
			t.Errorf("%s: parseNetdev allocates %v times with a reused slice", c, n)
		}
	}
}

// TestParseNetdevErrors: an unreadable line is skipped and counted, with
// its reason, and the good line after it is kept; when only the counters
// are bad the interface stays, without values.
func TestParseNetdevErrors(t *testing.T) {
	zeros := strings.Repeat(" 0", 16)
	good := "    lo:" + strings.Repeat(" 7", 16) + "\n"
	for _, x := range []struct {
		in, want string
		kept     string // the interface kept without values, if any
	}{
		{"  eth0 1 2 3\n", `line 1 "  eth0 1 2 3": no "interface:"`, ""},
		{"  eth0: 1 2 3\n", "line 1 (eth0): 3 counters, want 16", "eth0"},
		{"  eth0:" + zeros + " 0\n", "more than 16 counters", "eth0"},
		{"  eth0:" + strings.Replace(zeros, "0", "x", 1) + "\n", `counter 1 "x" is not`, "eth0"},
		{"  eth0:" + strings.Replace(zeros, "0", "18446744073709551616", 1) + "\n", `counter 1 "18446744073709551616" is not`, "eth0"},
		{"  :" + zeros + "\n", "bad interface name", ""},
		{"  a/b:" + zeros + "\n", "bad interface name", ""},
		{"  ..:" + zeros + "\n", "bad interface name", ""},
	} {
		got, err := parseNetdev([]byte(x.in+good), nil)
		var sk *Skipped
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), x.want) || !errors.As(err, &sk) || sk.Lines != 1 {
			t.Errorf("parseNetdev(%q) = %v, want one skipped line: %q", x.in, err, x.want)
		}
		last := got[len(got)-1]
		if string(last.name) != "lo" || !last.ok || last.v[0] != 7 {
			t.Errorf("parseNetdev(%q) lost the good line after it: %+v", x.in, got)
		}
		if x.kept != "" && (len(got) != 2 || string(got[0].name) != x.kept || got[0].ok) {
			t.Errorf("parseNetdev(%q) = %+v, want %s kept without values", x.in, got, x.kept)
		}
		if x.kept == "" && len(got) != 1 {
			t.Errorf("parseNetdev(%q) = %+v, want only lo", x.in, got)
		}
	}
}

// TestParseNetdevNames: names with colons (old kernels' alias devices),
// spaces and UTF-8 are read whole, and a counter may touch the colon.
func TestParseNetdevNames(t *testing.T) {
	text := "Inter-|   Receive                            |  Transmit\n" +
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
		"ibr10:30:" + strings.Repeat(" 1", 16) + "\n" +
		"  eth0:123456789012345" + strings.Repeat(" 2", 15) + "\n" +
		"my dev:" + strings.Repeat(" 3", 16) + "\n" +
		"  wlän0:" + strings.Repeat(" 4", 16) + "\n"
	got, err := parseNetdev([]byte(text), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range got {
		names = append(names, string(e.name))
		if !e.ok {
			t.Errorf("%s: counters not read", e.name)
		}
	}
	if want := []string{"ibr10:30", "eth0", "my dev", "wlän0"}; strings.Join(names, "|") != strings.Join(want, "|") {
		t.Errorf("names %q, want %q", names, want)
	}
	if got[1].v[0] != 123456789012345 || got[0].v[15] != 1 {
		t.Errorf("counters %v %v", got[0].v, got[1].v)
	}
}

// FuzzParseNetdev checks parseNetdev against the oracle, whatever lines it
// skips: every interface it keeps, with its counters or without.
func FuzzParseNetdev(f *testing.F) {
	for _, c := range []string{"real", "many-interfaces", "truncated", "huge", "overflow"} {
		if b, err := os.ReadFile(testutil.Fixture(f, "bufstat", c, "proc", "net", "dev")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("ibr10:30: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseNetdev(b, nil)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		want := netdevOracle(string(b))
		for _, e := range got {
			if w, ok := want[string(e.name)]; !ok || ((w.v != e.v || w.ok != e.ok) && countName(got, e.name) == 1) {
				t.Fatalf("%q: %v %v, oracle %v", e.name, e.v, e.ok, w)
			}
		}
		for name := range want {
			if countName(got, []byte(name)) == 0 {
				t.Fatalf("oracle has %q, parseNetdev not", name)
			}
		}
	})
}

func countName(es []netdevEntry, name []byte) int {
	n := 0
	for _, e := range es {
		if string(e.name) == string(name) {
			n++
		}
	}
	return n
}

// netdevRead reads value name of net/dev/<dev>/ ("" for the net/dev sums).
func netdevRead(t *testing.T, root *statsfs.Source, dev, name string) uint64 {
	t.Helper()
	path := "net/dev"
	if dev != "" {
		path += "/" + dev
	}
	src := root.Find(path)
	if src == nil {
		t.Fatalf("no %s in the tree", path)
	}
	r, err := src.GetByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if r.Absent {
		t.Fatalf("%s/%s is absent", path, name)
	}
	return r.Uint64()
}

// netdevAbsent reports whether value name of net/dev/<dev>/ is absent.
func netdevAbsent(t *testing.T, root *statsfs.Source, dev, name string) bool {
	t.Helper()
	r, err := root.Find(strings.TrimSuffix("net/dev/"+dev, "/")).GetByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return r.Absent
}

func TestNetdevInterfacesComeAndGo(t *testing.T) {
	dir := t.TempDir()
	proc, sys := filepath.Join(dir, "proc"), filepath.Join(dir, "sys")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(proc, "net"), 0o755))
	must(os.MkdirAll(filepath.Join(sys, "class", "net", "a0"), 0o755))
	must(os.WriteFile(filepath.Join(sys, "class", "net", "a0", "tx_queue_len"), []byte("500\n"), 0o644))
	line := func(name string, base uint64) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%6s:", name)
		for i := range uint64(16) {
			fmt.Fprintf(&b, " %d", base+i)
		}
		return b.String() + "\n"
	}
	writeDev := func(lines ...string) {
		must(os.WriteFile(filepath.Join(proc, "net", "dev"), []byte("Inter-|\n face |\n"+strings.Join(lines, "")), 0o644))
	}
	writeDev(line("a0", 100), line("b0", 200))
	n := newNetdev(Paths{Proc: proc, Sys: sys})
	root := statsfs.NewSource("root")
	must(n.attach(root))
	if got := netdevRead(t, root, "a0", "tx_queue_len"); got != 500 {
		t.Errorf("a0 tx_queue_len %d", got)
	}
	if !netdevAbsent(t, root, "b0", "tx_queue_len") || !netdevAbsent(t, root, "", "tx_queue_len") {
		t.Errorf("b0 has no sysfs entry: its tx_queue_len and the sum should be absent")
	}
	if got := netdevRead(t, root, "", "rx_packets"); got != 101+201 {
		t.Errorf("sum rx_packets %d", got)
	}
	if got := netdevRead(t, root, "b0", "tx_dropped"); got != 211 {
		t.Errorf("b0 tx_dropped %d", got)
	}
	if src := root.Find("net/dev/a0"); src.Label() != "device" {
		t.Errorf("label %q", src.Label())
	}
	b0 := root.Find("net/dev/b0")

	writeDev(line("a0", 1000), line("c0", 3000))
	waitMaxAge()
	if got := netdevRead(t, root, "", "rx_bytes"); got != 1000+3000 {
		t.Errorf("sum rx_bytes after b0 went: %d", got)
	}
	if root.Find("net/dev/b0") != nil || root.Find("net/dev/c0") == nil {
		t.Errorf("b0 should be gone and c0 there: %v", root.Find("net/dev").Subordinates())
	}
	if r, _ := b0.GetByName("rx_bytes"); r.Uint64() != 0 {
		t.Errorf("a removed interface's source still reads %d", r.Uint64())
	}

	// A line whose counters cannot be read: the other interfaces update,
	// c0 stays without values, the sums over it are absent (not a sum of
	// the rest), and the line is counted.
	writeDev(line("a0", 5), "  c0: 1 2\n", "garbage\n", line("ibr10:30", 40))
	waitMaxAge()
	if got := netdevRead(t, root, "a0", "rx_bytes"); got != 5 {
		t.Errorf("a0 rx_bytes beside a malformed line %d, want 5", got)
	}
	if got := netdevRead(t, root, "ibr10:30", "rx_packets"); got != 41 {
		t.Errorf("ibr10:30 rx_packets %d, want 41", got)
	}
	if !netdevAbsent(t, root, "c0", "rx_bytes") || !netdevAbsent(t, root, "", "rx_bytes") {
		t.Errorf("c0's unreadable counters and the sum over them should be absent")
	}
	st := n.Status()
	if st.Err != nil || !errors.Is(st.Skipped, ErrMalformed) || !strings.Contains(st.Skipped.Error(), "(c0)") || st.SkippedLines != 2 {
		t.Errorf("status %+v", st)
	}
	// Without the file, every value and sum is absent.
	must(os.Remove(filepath.Join(proc, "net", "dev")))
	waitMaxAge()
	if !netdevAbsent(t, root, "a0", "rx_bytes") || !netdevAbsent(t, root, "", "rx_packets") || n.Status().Err == nil {
		t.Errorf("without /proc/net/dev: values or sums not absent, status %v", n.Status().Err)
	}
}

// TestNetdevQueueLenMaxAge: tx_queue_len, a setting, is read again only
// after QueueLenMaxAge (the counters at every read), and at once for an
// interface that appears.
func TestNetdevQueueLenMaxAge(t *testing.T) {
	dir := t.TempDir()
	proc, sys := filepath.Join(dir, "proc"), filepath.Join(dir, "sys")
	for _, d := range []string{filepath.Join(proc, "net"), filepath.Join(sys, "class", "net", "a0"), filepath.Join(sys, "class", "net", "b0")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	qlen := func(dev string) string { return filepath.Join(sys, "class", "net", dev, "tx_queue_len") }
	dev := func(lines ...string) {
		write(filepath.Join(proc, "net", "dev"), "Inter-|\n face |\n"+strings.Join(lines, ""))
	}
	write(qlen("a0"), "500\n")
	write(qlen("b0"), "300\n")
	dev("a0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n")
	clock := time.Now()
	n := newNetdev(Paths{Proc: proc, Sys: sys})
	n.now = func() time.Time { return clock }
	root := statsfs.NewSource("root")
	if err := n.attach(root); err != nil {
		t.Fatal(err)
	}
	if got := netdevRead(t, root, "a0", "tx_queue_len"); got != 500 {
		t.Fatalf("a0 tx_queue_len %d, want 500", got)
	}
	write(qlen("a0"), "600\n")
	dev("a0: 2 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", "b0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n")
	clock = clock.Add(QueueLenMaxAge - time.Millisecond)
	waitMaxAge()
	if got := netdevRead(t, root, "a0", "rx_bytes"); got != 2 {
		t.Errorf("a0 rx_bytes %d, want 2: the counters are read every time", got)
	}
	if got := netdevRead(t, root, "a0", "tx_queue_len"); got != 500 {
		t.Errorf("a0 tx_queue_len %d within QueueLenMaxAge, want the 500 read before", got)
	}
	if got := netdevRead(t, root, "b0", "tx_queue_len"); got != 300 {
		t.Errorf("new interface b0's tx_queue_len %d, want 300 at once", got)
	}
	clock = clock.Add(time.Millisecond)
	waitMaxAge()
	if got := netdevRead(t, root, "a0", "tx_queue_len"); got != 600 {
		t.Errorf("a0 tx_queue_len %d after QueueLenMaxAge, want 600", got)
	}
	// A file that goes makes the value absent at its next read.
	if err := os.Remove(qlen("a0")); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(QueueLenMaxAge)
	waitMaxAge()
	if !netdevAbsent(t, root, "a0", "tx_queue_len") {
		t.Errorf("a0 tx_queue_len present without its sysfs file")
	}
}

// TestNetdevNamespaceVeth sends a known number of UDP datagrams over a veth
// pair between two new network namespaces and finds exactly them in
// net/dev/<iface>/ and in the net/dev/ sums.
//
// Each namespace's collector reads the files of a process that lives in it
// (Proc: /proc/<pid>, whose net/dev is that process's namespace) started
// with "ip netns exec", which also mounts a sysfs of the namespace in its
// own mount namespace (Sys: /proc/<pid>/root/sys).
func TestNetNSVeth(t *testing.T) {
	nsA, nsB := testutil.NewNetNS(t), testutil.NewNetNS(t)
	for _, ns := range []*testutil.NetNS{nsA, nsB} {
		// No IPv6: no router solicitations or DAD packets on the veths.
		ns.Exec(t, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	testutil.Run(t, "ip", "-n", nsA.Name, "link", "add", "kbA", "type", "veth", "peer", "name", "kbB", "netns", nsB.Name)
	nsA.Exec(t, "ip", "addr", "add", "10.203.7.1/24", "dev", "kbA")
	nsB.Exec(t, "ip", "addr", "add", "10.203.7.2/24", "dev", "kbB")
	nsB.Exec(t, "ip", "link", "set", "kbB", "txqueuelen", "777")
	macA := strings.TrimSpace(nsA.Exec(t, "cat", "/sys/class/net/kbA/address"))
	macB := strings.TrimSpace(nsB.Exec(t, "cat", "/sys/class/net/kbB/address"))
	// Static neighbours: no ARP packets to count.
	nsA.Exec(t, "ip", "neigh", "replace", "10.203.7.2", "lladdr", macB, "dev", "kbA", "nud", "permanent")
	nsB.Exec(t, "ip", "neigh", "replace", "10.203.7.1", "lladdr", macA, "dev", "kbB", "nud", "permanent")
	nsA.Exec(t, "ip", "link", "set", "kbA", "up")
	nsB.Exec(t, "ip", "link", "set", "kbB", "up")

	paths := func(ns *testutil.NetNS, dev string) Paths {
		cmd := exec.Command("ip", "netns", "exec", ns.Name, "sleep", "600")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		p := Paths{Proc: fmt.Sprintf("/proc/%d", cmd.Process.Pid), Sys: fmt.Sprintf("/proc/%d/root/sys", cmd.Process.Pid)}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(p.Sys, "class", "net", dev)); err == nil {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("ip netns exec %s did not mount the namespace's sysfs", ns.Name)
			}
		}
	}
	rootA, rootB := statsfs.NewSource("a"), statsfs.NewSource("b")
	colA, colB := newNetdev(paths(nsA, "kbA")), newNetdev(paths(nsB, "kbB"))
	if err := colA.attach(rootA); err != nil {
		t.Fatal(err)
	}
	if err := colB.attach(rootB); err != nil {
		t.Fatal(err)
	}
	if err := colB.Status().Err; err != nil {
		t.Fatal(err)
	}
	if got := netdevRead(t, rootB, "kbB", "tx_queue_len"); got != 777 {
		t.Errorf("kbB tx_queue_len = %d, want 777 (set with ip link)", got)
	}
	if rootB.Find("net/dev/kbA") != nil || rootA.Find("net/dev/kbB") != nil {
		t.Fatal("a namespace's collector sees the other namespace's interface")
	}

	var conn *net.UDPConn
	if err := nsB.Do(func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 203, 7, 2), Port: 9999})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	type counts struct{ aTxP, aTxB, bRxP, bRxB, bTxP, sumRxP, sumRxB, sumTxP uint64 }
	read := func() counts {
		waitMaxAge()
		return counts{
			aTxP: netdevRead(t, rootA, "kbA", "tx_packets"), aTxB: netdevRead(t, rootA, "kbA", "tx_bytes"),
			bRxP: netdevRead(t, rootB, "kbB", "rx_packets"), bRxB: netdevRead(t, rootB, "kbB", "rx_bytes"),
			bTxP:   netdevRead(t, rootB, "kbB", "tx_packets"),
			sumRxP: netdevRead(t, rootB, "", "rx_packets"), sumRxB: netdevRead(t, rootB, "", "rx_bytes"),
			sumTxP: netdevRead(t, rootB, "", "tx_packets"),
		}
	}
	before := read()
	const n, payload = 100, 100
	if err := nsA.Do(func() error {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 203, 7, 2), Port: 9999})
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, payload)
		for range n {
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2*payload)
	for i := range n {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if m, _, err := conn.ReadFromUDP(buf); err != nil || m != payload {
			t.Fatalf("datagram %d: %d bytes, %v", i, m, err)
		}
	}
	after := read()

	const frame = 14 + 20 + 8 + payload // Ethernet, IPv4, UDP headers and the payload
	for _, x := range []struct {
		what          string
		before, after uint64
		want          uint64
	}{
		{"kbA tx_packets", before.aTxP, after.aTxP, n},
		{"kbA tx_bytes", before.aTxB, after.aTxB, n * frame},
		{"kbB rx_packets", before.bRxP, after.bRxP, n},
		{"kbB rx_bytes", before.bRxB, after.bRxB, n * frame},
		{"kbB tx_packets", before.bTxP, after.bTxP, 0},
		{"net/dev rx_packets (B)", before.sumRxP, after.sumRxP, n},
		{"net/dev rx_bytes (B)", before.sumRxB, after.sumRxB, n * frame},
		{"net/dev tx_packets (B)", before.sumTxP, after.sumTxP, 0},
	} {
		if d := x.after - x.before; d != x.want {
			t.Errorf("%s went up by %d, want %d", x.what, d, x.want)
		}
	}

	// Deleting the pair removes the sources and their share of the sums.
	nsA.Exec(t, "ip", "link", "del", "kbA")
	waitMaxAge()
	_ = netdevRead(t, rootB, "", "rx_packets") // refreshes
	if rootB.Find("net/dev/kbB") != nil {
		t.Fatal("net/dev/kbB is still there after the veth pair was deleted")
	}
	if got := netdevRead(t, rootB, "", "rx_packets"); got != netdevRead(t, rootB, "lo", "rx_packets") {
		t.Errorf("net/dev rx_packets %d after kbB went, but lo alone has %d", got, netdevRead(t, rootB, "lo", "rx_packets"))
	}
}

// BenchmarkNetdev is one read and parse of this machine's /proc/net/dev
// and tx_queue_len files by the collector.
func BenchmarkNetdev(b *testing.B) {
	n := newNetdev(Paths{Proc: "/proc", Sys: "/sys"})
	b.ReportAllocs()
	for b.Loop() {
		if err := n.read(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNetdevParse is the parse alone, on the many-interfaces fixture
// (37 interfaces).
func BenchmarkNetdevParse(b *testing.B) {
	data, err := os.ReadFile(testutil.Fixture(b, "bufstat", "many-interfaces", "proc", "net", "dev"))
	if err != nil {
		b.Fatal(err)
	}
	var es []netdevEntry
	b.ReportAllocs()
	for b.Loop() {
		if es, err = parseNetdev(data, es); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNetdevProcfs reads /proc/net/dev with github.com/prometheus/procfs,
// for comparison (without the tx_queue_len files).
func BenchmarkNetdevProcfs(b *testing.B) {
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fs.NetDev(); err != nil {
			b.Fatal(err)
		}
	}
}
