package netout

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	bpfnetout "github.com/kstat/kstat/internal/bpf/netout"
	"github.com/kstat/kstat/internal/netout/nettest"
	"github.com/kstat/kstat/internal/testutil"
)

var small = nettest.Traffic{Conns: 3, Messages: 5, Size: 64}

// quietNout waits for ns to stop sending and returns nftables' counters and
// s's nout read between two equal nftables readings.
func quietNout(t *testing.T, ns *testutil.NetNS, s *Service) (nettest.NFT, uint64) {
	t.Helper()
	var n uint64
	nft := nettest.Quiet(t, ns, func() {
		var err error
		if n, err = s.Nout(); err != nil {
			t.Fatal(err)
		}
	})
	return nft, n
}

// TestStepChangeAndClear follows the published value through a counter
// change and a clear, against nftables' TCP count.
func TestStepChangeAndClear(t *testing.T) {
	ns, svcs := setup(t, 10)
	s := svcs[0]
	if err := nettest.SendTCP(ns, bothFamilies, small); err != nil {
		t.Fatal(err)
	}
	nft, nout := quietNout(t, ns, s)
	t1 := nft.TCPPackets()
	if nout != t1-t1%10 {
		t.Fatalf("counter=10: nout %d, nftables %d", nout, t1)
	}
	if err := s.SetStep(7); err != nil {
		t.Fatal(err)
	}
	if err := nettest.SendTCP(ns, bothFamilies, small); err != nil {
		t.Fatal(err)
	}
	nft, nout = quietNout(t, ns, s)
	t2 := nft.TCPPackets()
	// The remainder under 10 carries over and is published in sevens.
	rest := t1%10 + (t2 - t1)
	if want := t1 - t1%10 + rest - rest%7; nout != want {
		t.Fatalf("counter 10 then 7: nout %d, want %d (nftables %d then %d)", nout, want, t1, t2)
	}
	if err := s.ClearNout(); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Nout(); n != 0 {
		t.Fatalf("nout %d after clear", n)
	}
	if err := nettest.SendTCP(ns, bothFamilies, small); err != nil {
		t.Fatal(err)
	}
	nft, nout = quietNout(t, ns, s)
	d := nft.TCPPackets() - t2
	if nout != d-d%7 {
		t.Fatalf("after clear: nout %d, want %d TCP packets rounded down to 7s", nout, d)
	}
	for _, bad := range []uint64{0, MaxStep + 1} {
		if err := s.SetStep(bad); err == nil {
			t.Errorf("SetStep(%d) accepted", bad)
		}
	}
	if s.Step() != 7 {
		t.Errorf("counter %d after rejected settings, want 7", s.Step())
	}
}

// linksOf lists the IDs of the links in the kernel that run program id.
func linksOf(t *testing.T, id ebpf.ProgramID) []link.ID {
	t.Helper()
	var ids []link.ID
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil {
			continue // gone meanwhile
		}
		if info.Program == id {
			ids = append(ids, it.ID)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestStopDetaches checks that stop removes both links from the kernel and
// stops counting, and that a restart keeps the published total.
func TestStopDetaches(t *testing.T) {
	ns, svcs := setup(t, 1)
	s := svcs[0]
	id, err := s.Counter().ProgramID()
	if err != nil {
		t.Fatal(err)
	}
	if got := linksOf(t, id); len(got) != 2 {
		t.Fatalf("started: %d links run program %d, want 2 (IPv4 and IPv6)", len(got), id)
	}
	if err := nettest.SendTCP(ns, bothFamilies, small); err != nil {
		t.Fatal(err)
	}
	nft, before := quietNout(t, ns, s)
	if before != nft.TCPPackets() || before == 0 {
		t.Fatalf("nout %d, nftables %d", before, nft.TCPPackets())
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := linksOf(t, id); len(got) != 0 {
		t.Fatalf("stopped: links %v still run program %d", got, id)
	}
	if err := nettest.SendTCP(ns, bothFamilies, small); err != nil {
		t.Fatal(err)
	}
	nftStopped, stopped := quietNout(t, ns, s)
	if stopped != before {
		t.Fatalf("stopped service counted: nout %d -> %d", before, stopped)
	}
	if nftStopped.TCPPackets() == nft.TCPPackets() {
		t.Fatal("no traffic while stopped: the check proves nothing")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := nettest.SendTCP(ns, bothFamilies, small); err != nil {
		t.Fatal(err)
	}
	nftAgain, again := quietNout(t, ns, s)
	if want := before + nftAgain.TCPPackets() - nftStopped.TCPPackets(); again != want {
		t.Fatalf("restarted: nout %d, want %d kept plus the new packets = %d", again, before, want)
	}
}

// TestCapabilities drops capabilities on a throw-away thread: Load must
// name the missing one, and the kernel itself must refuse the program
// without CAP_PERFMON (so the check asks for no more than is needed).
func TestCapabilities(t *testing.T) {
	testutil.RequireBPF(t, ebpf.Netfilter)
	type result struct{ ours, kernel error }
	drop := func(caps ...uint) result {
		done := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies with its capabilities
			hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
			var data [2]unix.CapUserData
			if err := unix.Capget(&hdr, &data[0]); err != nil {
				done <- result{err, err}
				return
			}
			for _, c := range caps {
				data[c/32].Effective &^= 1 << (c % 32)
			}
			if err := unix.Capset(&hdr, &data[0]); err != nil {
				done <- result{err, err}
				return
			}
			var r result
			if c, err := Load(Options{}); err == nil {
				c.Close()
			} else {
				r.ours = err
			}
			spec, err := bpfnetout.LoadNetout()
			if err != nil {
				r.kernel = err
			} else {
				var objs struct {
					Prog *ebpf.Program `ebpf:"netout"`
				}
				r.kernel = spec.LoadAndAssign(&objs, nil)
				if r.kernel == nil {
					objs.Prog.Close()
				}
			}
			done <- r
		}()
		return <-done
	}
	r := drop(unix.CAP_SYS_ADMIN, unix.CAP_PERFMON)
	if r.ours == nil || !strings.Contains(r.ours.Error(), "CAP_PERFMON") {
		t.Errorf("Load without CAP_PERFMON: %v, want an error naming CAP_PERFMON", r.ours)
	}
	if !errors.Is(r.kernel, unix.EPERM) && !errors.Is(r.kernel, unix.EACCES) {
		t.Errorf("the kernel loaded the program without CAP_PERFMON (err %v): the check asks too much", r.kernel)
	}
	r = drop(unix.CAP_NET_ADMIN)
	if r.ours == nil || !strings.Contains(r.ours.Error(), "CAP_NET_ADMIN") {
		t.Errorf("Load without CAP_NET_ADMIN: %v, want an error naming CAP_NET_ADMIN", r.ours)
	}
	r = drop(unix.CAP_SYS_ADMIN, unix.CAP_BPF)
	if r.ours == nil || !strings.Contains(r.ours.Error(), "CAP_BPF") {
		t.Errorf("Load without CAP_BPF: %v, want an error naming CAP_BPF", r.ours)
	}
	if r.kernel == nil {
		t.Error("the kernel loaded the program without CAP_BPF")
	}
	if c, err := Load(Options{}); err != nil {
		t.Errorf("Load with every capability: %v", err)
	} else {
		c.Close()
	}
}

// TestErrorsNameTheKernelFeature checks the messages for a kernel without
// netfilter BPF programs or links, which this machine cannot produce.
func TestErrorsNameTheKernelFeature(t *testing.T) {
	for _, err := range []error{
		attachError(link.NetfilterProtoIPv4, unix.EOPNOTSUPP),
		attachError(link.NetfilterProtoIPv6, unix.EINVAL),
		loadError(ebpf.ErrNotSupported),
	} {
		if !strings.Contains(err.Error(), "6.4") || !strings.Contains(err.Error(), "kernel") {
			t.Errorf("%q does not name the kernel feature and version", err)
		}
	}
	if err := attachError(link.NetfilterProtoIPv4, unix.EPERM); !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Errorf("%q does not name CAP_NET_ADMIN", err)
	}
	if err := loadError(unix.EPERM); !strings.Contains(err.Error(), "CAP_PERFMON") {
		t.Errorf("%q does not name the capabilities", err)
	}
}
