package netout

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/testutil"
)

// TestCgroupCounts sends UDP from sockets made while this process was in
// two cgroups the test creates: each cgroup counts exactly its own
// socket's packets and bytes (the socket keeps the cgroup it was made in;
// the independent count is the number of datagrams sent, each with a
// 20-byte IPv4 and an 8-byte UDP header).
func TestCgroupCounts(t *testing.T) {
	testutil.RequireBPF(t, ebpf.Netfilter)
	ns := testutil.NewNetNS(t)
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Attach(ns.Path); err != nil {
		t.Fatal(err)
	}
	home := testutil.SelfCgroup(t)
	a, b := testutil.NewCgroup(t), testutil.NewCgroup(t)
	goHome := func() {
		if err := os.WriteFile(filepath.Join(home, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			t.Fatalf("moving back to %s: %v", home, err)
		}
	}
	t.Cleanup(goHome)

	var rx, txA, txB int
	var to unix.Sockaddr
	socket := func() int {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	if err := ns.Do(func() error {
		rx = socket()
		if err := unix.Bind(rx, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			return err
		}
		var err error
		to, err = unix.Getsockname(rx)
		if err != nil {
			return err
		}
		a.Enter(t, os.Getpid())
		txA = socket()
		b.Enter(t, os.Getpid())
		txB = socket()
		goHome()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const nA, nB, size = 17, 29, 100
	buf := make([]byte, size)
	for i := range nA + nB {
		fd := txA
		if i >= nA {
			fd = txB
		}
		if err := unix.Sendto(fd, buf, 0, to); err != nil {
			t.Fatal(err)
		}
		if _, _, err := unix.Recvfrom(rx, buf, 0); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Cgroups()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("per cgroup: %v (a=%d b=%d)", got, a.ID, b.ID)
	for _, w := range []struct {
		id uint64
		n  uint64
	}{{a.ID, nA}, {b.ID, nB}} {
		if g := got[w.id]; g.Packets != w.n || g.Bytes != w.n*(20+8+size) {
			t.Errorf("cgroup %d: %d packets, %d bytes; sent %d datagrams of %d bytes", w.id, g.Packets, g.Bytes, w.n, 20+8+size)
		}
	}
	if d, err := c.CgroupsDropped(); err != nil || d != 0 {
		t.Errorf("dropped %d (%v) with two cgroups", d, err)
	}
}
