// Package nettest makes outgoing traffic in a test's network namespace and
// counts it independently of kstat: with nftables counters on the output
// hook and with the kernel's own TCP MIB (/proc/net/snmp).
package nettest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/testutil"
)

// Table is the nftables table the counters live in.
const Table = "kstat_test"

// The counter names: family then protocol class, as netout tells them apart.
var counterNames = []string{"ipv4_tcp", "ipv4_udp", "ipv4_other", "ipv6_tcp", "ipv6_udp", "ipv6_other"}

// ruleset counts every packet on the output hook at priority filter (0),
// by family and transport protocol. meta l4proto skips IPv6 extension
// headers as the BPF program does.
const ruleset = `table inet kstat_test {
	counter ipv4_tcp {}
	counter ipv4_udp {}
	counter ipv4_other {}
	counter ipv6_tcp {}
	counter ipv6_udp {}
	counter ipv6_other {}
	chain out {
		type filter hook output priority filter; policy accept;
		meta nfproto ipv4 meta l4proto tcp counter name "ipv4_tcp"
		meta nfproto ipv4 meta l4proto udp counter name "ipv4_udp"
		meta nfproto ipv4 meta l4proto != { tcp, udp } counter name "ipv4_other"
		meta nfproto ipv6 meta l4proto tcp counter name "ipv6_tcp"
		meta nfproto ipv6 meta l4proto udp counter name "ipv6_udp"
		meta nfproto ipv6 meta l4proto != { tcp, udp } counter name "ipv6_other"
	}
}
`

// Count is one nftables counter.
type Count struct {
	Packets uint64
	Bytes   uint64
}

// NFT is the counters read at one moment, by name ("ipv4_tcp", ...).
type NFT map[string]Count

// TCPPackets is the TCP packets of both families.
func (n NFT) TCPPackets() uint64 { return n["ipv4_tcp"].Packets + n["ipv6_tcp"].Packets }

// AddCounters installs the counting table in ns.
func AddCounters(tb testing.TB, ns *testutil.NetNS) {
	tb.Helper()
	testutil.RequireCommand(tb, "nft")
	file := filepath.Join(tb.TempDir(), "kstat_test.nft")
	if err := os.WriteFile(file, []byte(ruleset), 0o644); err != nil {
		tb.Fatal(err)
	}
	ns.Exec(tb, "nft", "-f", file)
}

// ReadCounters reads the table's counters with `nft -j list counters`.
func ReadCounters(tb testing.TB, ns *testutil.NetNS) NFT {
	tb.Helper()
	out := ns.Exec(tb, "nft", "-j", "list", "counters", "table", "inet", Table)
	n, err := ParseCounters([]byte(out))
	if err != nil {
		tb.Fatalf("parsing nft -j output: %v\n%s", err, out)
	}
	return n
}

// ParseCounters reads the JSON of `nft -j list counters`.
func ParseCounters(data []byte) (NFT, error) {
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Packets uint64 `json:"packets"`
				Bytes   uint64 `json:"bytes"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	n := NFT{}
	for _, o := range doc.Nftables {
		if o.Counter != nil {
			n[o.Counter.Name] = Count{o.Counter.Packets, o.Counter.Bytes}
		}
	}
	for _, name := range counterNames {
		if _, ok := n[name]; !ok {
			return nil, fmt.Errorf("no counter %q", name)
		}
	}
	return n, nil
}

// OutSegs reads Tcp: OutSegs from /proc/net/snmp inside ns.
func OutSegs(tb testing.TB, ns *testutil.NetNS) uint64 {
	tb.Helper()
	v, err := ParseOutSegs(strings.NewReader(ns.Exec(tb, "cat", "/proc/net/snmp")))
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// ParseOutSegs finds OutSegs in the Tcp lines of /proc/net/snmp: a line of
// names followed by a line of values.
func ParseOutSegs(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	var names []string
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		if len(fields) != len(names) {
			return 0, fmt.Errorf("/proc/net/snmp: Tcp has %d names and %d values", len(names), len(fields))
		}
		for i, name := range names {
			if name == "OutSegs" {
				return strconv.ParseUint(fields[i], 10, 64)
			}
		}
		return 0, errors.New("/proc/net/snmp: no Tcp OutSegs")
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("/proc/net/snmp: no Tcp lines")
}

// Quiet waits until ns sends nothing more (the last ACKs and FINs of closed
// connections, delayed ACKs), then calls read and returns the nftables
// counters unchanged from just before to just after it: "read at the same
// moment".
func Quiet(tb testing.TB, ns *testutil.NetNS, read func()) NFT {
	tb.Helper()
	for try := 0; try < 50; try++ {
		time.Sleep(100 * time.Millisecond)
		before := ReadCounters(tb, ns)
		read()
		after := ReadCounters(tb, ns)
		if reflect.DeepEqual(before, after) {
			return after
		}
	}
	tb.Fatal("the namespace never stopped sending")
	return nil
}

// Traffic describes the packets SendTCP, SendUDP and SendRaw make.
type Traffic struct {
	Conns    int // TCP connections per address
	Messages int // small writes per connection, each echoed back
	Size     int // bytes per write
}

// SendTCP connects to a listener in ns at each of addrs ("127.0.0.1",
// "::1"), writes small messages with TCP_NODELAY, reads each one back,
// and closes; it returns when both sides have closed.
func SendTCP(ns *testutil.NetNS, addrs []string, tr Traffic) error {
	return ns.Do(func() error {
		for _, addr := range addrs {
			if err := echoRound(addr, tr); err != nil {
				return err
			}
		}
		return nil
	})
}

// echoRound runs on ns's thread: the listener and the client sockets are
// created here, so they belong to the namespace; the server goroutine only
// uses sockets made from them.
func echoRound(addr string, tr Traffic) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return err
	}
	defer ln.Close()
	var wg sync.WaitGroup
	errc := make(chan error, tr.Conns+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < tr.Conns; i++ {
			c, err := ln.Accept()
			if err != nil {
				errc <- err
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if _, err := io.Copy(c, c); err != nil {
					errc <- err
				}
			}()
		}
	}()
	buf := make([]byte, tr.Size)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	got := make([]byte, tr.Size)
	for i := 0; i < tr.Conns; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		// Go sets TCP_NODELAY on every TCP socket; say so anyway: each
		// write must be its own segment.
		if err := c.(*net.TCPConn).SetNoDelay(true); err != nil {
			return err
		}
		for m := 0; m < tr.Messages; m++ {
			if _, err := c.Write(buf); err != nil {
				return err
			}
			if _, err := io.ReadFull(c, got); err != nil {
				return err
			}
		}
		if err := c.Close(); err != nil {
			return err
		}
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// SendUDP sends n datagrams of size bytes to a socket in ns at each of
// addrs and receives them.
func SendUDP(ns *testutil.NetNS, addrs []string, n, size int) error {
	return ns.Do(func() error {
		for _, addr := range addrs {
			rx, err := net.ListenPacket("udp", net.JoinHostPort(addr, "0"))
			if err != nil {
				return err
			}
			tx, err := net.Dial("udp", rx.LocalAddr().String())
			if err != nil {
				rx.Close()
				return err
			}
			buf := make([]byte, size)
			for i := 0; i < n; i++ {
				if _, err := tx.Write(buf); err != nil {
					return err
				}
				if err := rx.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
					return err
				}
				if _, _, err := rx.ReadFrom(buf); err != nil {
					return err
				}
			}
			tx.Close()
			rx.Close()
		}
		return nil
	})
}

// SendUDPHopByHop sends n datagrams over IPv6 loopback in ns, each with a
// hop-by-hop options extension header (a PadN option) between the IPv6 and
// the UDP header, and receives them.
func SendUDPHopByHop(ns *testutil.NetNS, n, size int) error {
	// Next header (the kernel fills it in), length 0 (8 bytes), PadN of 4.
	hbh := string([]byte{0, 0, 1, 4, 0, 0, 0, 0})
	return ns.Do(func() error {
		rx, err := net.ListenPacket("udp", "[::1]:0")
		if err != nil {
			return err
		}
		defer rx.Close()
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.IPPROTO_IPV6, unix.IPV6_HOPOPTS, hbh)
			})
			return errors.Join(err, serr)
		}}
		tx, err := d.Dial("udp", rx.LocalAddr().String())
		if err != nil {
			return fmt.Errorf("UDP socket with IPV6_HOPOPTS: %w", err)
		}
		defer tx.Close()
		buf := make([]byte, size)
		for i := 0; i < n; i++ {
			if _, err := tx.Write(buf); err != nil {
				return err
			}
			if err := rx.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				return err
			}
			if _, _, err := rx.ReadFrom(buf); err != nil {
				return err
			}
		}
		return nil
	})
}

// SendRaw sends n raw IP packets of protocol 253 (reserved for
// experiments, RFC 3692) to each of addrs in ns: packets that are neither
// TCP nor UDP.
func SendRaw(ns *testutil.NetNS, addrs []string, n int) error {
	return ns.Do(func() error {
		for _, addr := range addrs {
			network := "ip4:253"
			if strings.Contains(addr, ":") {
				network = "ip6:253"
			}
			c, err := net.ListenPacket(network, addr)
			if err != nil {
				return err
			}
			dst := &net.IPAddr{IP: net.ParseIP(addr)}
			for i := 0; i < n; i++ {
				if _, err := c.WriteTo([]byte("kstat"), dst); err != nil {
					c.Close()
					return err
				}
			}
			c.Close()
		}
		return nil
	})
}
