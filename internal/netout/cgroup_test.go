package netout

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	bpfnetout "github.com/kstat/kstat/internal/bpf/netout"
	"github.com/kstat/kstat/internal/netout/nettest"
	"github.com/kstat/kstat/internal/testutil"
	"github.com/kstat/kstat/statsfs"
)

// cgroupSlots is the per-CPU cache's size in netout.bpf.c (CGROUP_SLOTS).
const cgroupSlots = 64

// TestCgroupCounts sends UDP from sockets made while this process was in
// more cgroups the test creates than a CPU's cache has slots, all from
// one CPU: each cgroup counts exactly its own socket's packets and bytes,
// whether the cache or the hash map holds it (the socket keeps the cgroup
// it was made in; the independent count is the number of datagrams sent,
// each with a 20-byte IPv4 and an 8-byte UDP header).
func TestCgroupCounts(t *testing.T) {
	testutil.RequireBPF(t, ebpf.Netfilter)
	ns := testutil.NewNetNS(t)
	c, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Attach(ns.Path); err != nil {
		t.Fatal(err)
	}
	home := testutil.SelfCgroup(t)
	goHome := func() {
		if err := os.WriteFile(filepath.Join(home, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			t.Fatalf("moving back to %s: %v", home, err)
		}
	}
	t.Cleanup(goHome)
	const groups, size = cgroupSlots + 16, 100
	cgs := make([]*testutil.Cgroup, groups)
	for i := range cgs {
		cgs[i] = testutil.NewCgroup(t)
	}
	socket := func() int {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	sent := func(i int) uint64 { return uint64(i%7 + 1) }
	if err := ns.Do(func() error {
		// One CPU sends everything, so more cgroups than its cache has
		// slots meet on it and some must go to the hash map.
		var one unix.CPUSet
		one.Set(0)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			return err
		}
		rx := socket()
		if err := unix.Bind(rx, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			return err
		}
		to, err := unix.Getsockname(rx)
		if err != nil {
			return err
		}
		tx := make([]int, groups)
		for i, cg := range cgs {
			cg.Enter(t, os.Getpid())
			tx[i] = socket()
		}
		goHome()
		buf := make([]byte, size)
		for i, fd := range tx {
			for range sent(i) {
				if err := unix.Sendto(fd, buf, 0, to); err != nil {
					return err
				}
				if _, _, err := unix.Recvfrom(rx, buf, 0); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Cgroups()
	if err != nil {
		t.Fatal(err)
	}
	for i, cg := range cgs {
		if g, n := got[cg.ID], sent(i); g.Packets != n || g.Bytes != n*(20+8+size) {
			t.Errorf("cgroup %d: %d packets, %d bytes; sent %d datagrams of %d bytes", cg.ID, g.Packets, g.Bytes, n, 20+8+size)
		}
	}
	var inHash int
	var key uint64
	var per []bpfnetout.NetoutCgroupCounts
	it := c.objs.NetoutCgroups.Iterate()
	for it.Next(&key, &per) {
		inHash++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if inHash < groups-cgroupSlots {
		t.Errorf("%d cgroups in the hash map: %d cgroups on one CPU with %d cache slots should have put at least %d there",
			inHash, groups, cgroupSlots, groups-cgroupSlots)
	}
	if d, err := c.CgroupsDropped(); err != nil || d != 0 {
		t.Errorf("dropped %d (%v) with %d cgroups", d, err, groups)
	}
}

// TestNoCgroups loads the program without the per-cgroup count: its
// totals still equal nftables' counters on the same hook, and the
// per-cgroup counts and their drop counter are absent, not zero.
func TestNoCgroups(t *testing.T) {
	testutil.RequireBPF(t, ebpf.Netfilter)
	ns := testutil.NewNetNS(t)
	nettest.AddCounters(t, ns)
	c, err := Load(Options{NoCgroups: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	s, err := NewService(c, ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	src := statsfs.NewSource("kstat")
	if err := s.AddValues(src); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := nettest.SendTCP(ns, bothFamilies, nettest.Traffic{Conns: 3, Messages: 5, Size: 100}); err != nil {
		t.Fatal(err)
	}
	if err := nettest.SendUDP(ns, bothFamilies, 11, 200); err != nil {
		t.Fatal(err)
	}
	if err := nettest.SendRaw(ns, bothFamilies, 2); err != nil {
		t.Fatal(err)
	}
	var tot Totals
	nft := nettest.Quiet(t, ns, func() {
		if tot, err = s.Totals(); err != nil {
			t.Fatal(err)
		}
	})
	for f := Family(0); f < Families; f++ {
		for p := Proto(0); p < Protos; p++ {
			name := f.String() + "_" + p.String()
			if got, want := tot[f][p], nft[name]; got.Packets != want.Packets || got.Bytes != want.Bytes {
				t.Errorf("%s: netout counted %d packets, %d bytes; nftables %d packets, %d bytes",
					name, got.Packets, got.Bytes, want.Packets, want.Bytes)
			}
		}
	}
	if nft.TCPPackets() == 0 || nft["ipv4_udp"].Packets < 11 {
		t.Fatalf("nftables saw no traffic: %v", nft)
	}
	if m, err := c.Cgroups(); !errors.Is(err, ErrNoCgroups) || m != nil {
		t.Errorf("Cgroups() = %v, %v; want nil, ErrNoCgroups", m, err)
	}
	if _, err := c.CgroupsDropped(); !errors.Is(err, ErrNoCgroups) {
		t.Errorf("CgroupsDropped() error %v, want ErrNoCgroups", err)
	}
	if _, err := src.LookupName("cgroups_dropped"); err == nil {
		t.Error("kstat/cgroups_dropped exists without the per-cgroup count")
	}
	if _, err := src.Subordinate("ipv4").LookupName("tcp_packets"); err != nil {
		t.Errorf("kstat/ipv4/tcp_packets: %v", err)
	}
}
