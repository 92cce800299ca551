package netout

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/kstat/kstat/internal/netout/nettest"
	"github.com/kstat/kstat/internal/testutil"
)

var bothFamilies = []string{"127.0.0.1", "::1"}

// setup makes a namespace with nftables counters and a service attached in
// it with the given counter step.
func setup(t *testing.T, steps ...uint64) (*testutil.NetNS, []*Service) {
	t.Helper()
	testutil.RequireBPF(t, ebpf.Netfilter)
	ns := testutil.NewNetNS(t)
	nettest.AddCounters(t, ns)
	var svcs []*Service
	for _, step := range steps {
		c, err := Load(Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		s, err := NewService(c, ns.Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetStep(step); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		svcs = append(svcs, s)
	}
	return ns, svcs
}

// TestCountsMatchNFTables sends TCP, UDP and raw IP over IPv4 and IPv6 in
// a fresh namespace and checks every count against nftables counters on
// the output hook, and the TCP count against the kernel's Tcp OutSegs.
func TestCountsMatchNFTables(t *testing.T) {
	ns, svcs := setup(t, 1, 10)
	one, ten := svcs[0], svcs[1]
	if err := nettest.SendTCP(ns, bothFamilies, nettest.Traffic{Conns: 7, Messages: 9, Size: 100}); err != nil {
		t.Fatal(err)
	}
	if err := nettest.SendUDP(ns, bothFamilies, 13, 200); err != nil {
		t.Fatal(err)
	}
	if err := nettest.SendRaw(ns, bothFamilies, 3); err != nil {
		t.Fatal(err)
	}
	// UDP behind an IPv6 extension header: still UDP for both counters.
	if err := nettest.SendUDPHopByHop(ns, 5, 100); err != nil {
		t.Fatal(err)
	}
	var tot Totals
	var nout1, nout10, outSegs uint64
	nft := nettest.Quiet(t, ns, func() {
		var err error
		if tot, err = one.Totals(); err != nil {
			t.Fatal(err)
		}
		if nout1, err = one.Nout(); err != nil {
			t.Fatal(err)
		}
		if nout10, err = ten.Nout(); err != nil {
			t.Fatal(err)
		}
		outSegs = nettest.OutSegs(t, ns)
	})
	t.Logf("nftables: %v", nft)
	for f := Family(0); f < Families; f++ {
		for p := Proto(0); p < Protos; p++ {
			name := f.String() + "_" + p.String()
			want := nft[name]
			if got := tot[f][p]; got.Packets != want.Packets || got.Bytes != want.Bytes {
				t.Errorf("%s: netout counted %d packets, %d bytes; nftables %d packets, %d bytes",
					name, got.Packets, got.Bytes, want.Packets, want.Bytes)
			}
		}
	}
	tcp := nft.TCPPackets()
	if tcp < 2*7*9*2 {
		t.Fatalf("nftables counted only %d TCP packets: the traffic did not run", tcp)
	}
	if nft["ipv4_udp"].Packets < 13 || nft["ipv6_udp"].Packets < 13+5 || nft["ipv4_other"].Packets < 3 || nft["ipv6_other"].Packets < 3 {
		t.Fatalf("nftables missed the UDP or raw traffic: %v", nft)
	}
	if nout1 != tcp {
		t.Errorf("counter=1: nout %d, nftables TCP packets %d", nout1, tcp)
	}
	if want := tcp - tcp%10; nout10 != want {
		t.Errorf("counter=10: nout %d, want nftables' %d rounded down to %d", nout10, tcp, want)
	}
	// Every write is one small segment (TCP_NODELAY, 100 bytes), so each
	// skb at LOCAL_OUT carries exactly one segment and the kernel's OutSegs
	// (which adds tcp_skb_pcount per transmitted skb) equals the packet
	// count. With large writes TCP builds GSO/TSO super-packets of up to
	// 64 KiB: OutSegs counts the segments such an skb will be cut into,
	// while netfilter sees it once, before segmentation (which on
	// loopback never even happens), so OutSegs would be larger.
	if outSegs != tcp {
		t.Errorf("Tcp OutSegs %d, TCP packets at LOCAL_OUT %d", outSegs, tcp)
	}
}
