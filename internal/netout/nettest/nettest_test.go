package nettest

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestParseCountersFixture(t *testing.T) {
	data, err := os.ReadFile("testdata/nft-counters.json")
	if err != nil {
		t.Fatal(err)
	}
	n, err := ParseCounters(data)
	if err != nil {
		t.Fatal(err)
	}
	want := NFT{
		"ipv4_tcp": {2, 100}, "ipv4_udp": {0, 0}, "ipv4_other": {0, 0},
		"ipv6_tcp": {0, 0}, "ipv6_udp": {1, 49}, "ipv6_other": {1, 97},
	}
	for name, c := range want {
		if n[name] != c {
			t.Errorf("%s: %+v, want %+v", name, n[name], c)
		}
	}
	if n.TCPPackets() != 2 {
		t.Errorf("TCPPackets %d, want 2", n.TCPPackets())
	}
	if _, err := ParseCounters([]byte(`{"nftables":[{"counter":{"name":"ipv4_tcp","packets":1,"bytes":2}}]}`)); err == nil {
		t.Error("a listing without the other counters was accepted")
	}
}

func TestParseOutSegsFixture(t *testing.T) {
	f, err := os.Open("testdata/snmp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := ParseOutSegs(f)
	if err != nil || v != 2 {
		t.Fatalf("OutSegs %d, %v; want 2", v, err)
	}
	for _, bad := range []string{
		"",
		"Tcp: OutSegs\n",
		"Tcp: A OutSegs\nTcp: 1\n",
		"Tcp: A B\nTcp: 1 2\n",
		"Tcp: OutSegs\nTcp: x\n",
	} {
		if _, err := ParseOutSegs(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseCounters(f *testing.F) {
	if data, err := os.ReadFile("testdata/nft-counters.json"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"nftables":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := ParseCounters(data)
		if err == nil && len(n) < len(counterNames) {
			t.Fatalf("accepted %d counters", len(n))
		}
	})
}

func FuzzParseOutSegs(f *testing.F) {
	if data, err := os.ReadFile("testdata/snmp"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("Tcp: OutSegs\nTcp: 7\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseOutSegs(bytes.NewReader(data))
		if err == nil && !bytes.Contains(data, []byte("OutSegs")) {
			t.Fatalf("found OutSegs %d in a text without it", v)
		}
	})
}
