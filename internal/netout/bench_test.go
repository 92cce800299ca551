package netout

import (
	"net"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	emptybpf "github.com/kstat/kstat/internal/bpf/empty"
	"github.com/kstat/kstat/internal/netns"
	"github.com/kstat/kstat/internal/testutil"
)

// BenchmarkProgram sends one UDP datagram over IPv4 loopback per iteration
// in a fresh namespace, with netout or the empty netfilter program on the
// same hooks, and reports the program's own run time per packet from the
// kernel's BPF statistics (kernel.bpf_stats_enabled, switched on with
// BPF_ENABLE_STATS for the benchmark only: the kernel turns it back off
// when the fd closes, so a concurrent user of the sysctl is not disturbed).
// "empty" (internal/bpf/empty, never in the daemon) is the cost of
// entering any netfilter BPF program; netout minus empty is what counting
// costs, and netout minus netout_nocgroups (loaded with
// Options.NoCgroups) what the per-cgroup count costs.
//
//	go test -run '^$' -bench Program -benchtime 200000x ./internal/netout/
func BenchmarkProgram(b *testing.B) {
	for _, name := range []string{"netout", "netout_nocgroups", "empty"} {
		b.Run(name, func(b *testing.B) {
			testutil.RequireBPF(b, ebpf.Netfilter)
			var (
				prog *ebpf.Program
				err  error
			)
			if name != "empty" {
				var c *Counter
				c, err = Load(Options{NoCgroups: name == "netout_nocgroups"})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				prog = c.Program()
			} else {
				var objs emptybpf.EmptyObjects
				err = emptybpf.LoadEmptyObjects(&objs, nil)
				defer objs.Close()
				prog = objs.NfEmpty
			}
			if err != nil {
				b.Fatal(err)
			}
			ns := testutil.NewNetNS(b)
			var links []link.Link
			if err := netns.Do(ns.Path, func() error {
				for _, pf := range []link.NetfilterProtocolFamily{link.NetfilterProtoIPv4, link.NetfilterProtoIPv6} {
					l, err := attachFree(prog, pf)
					if err != nil {
						return err
					}
					links = append(links, l)
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			defer func() {
				for _, l := range links {
					l.Close()
				}
			}()
			stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
			if err != nil {
				b.Fatalf("enabling BPF run-time statistics: %v", err)
			}
			defer stats.Close()
			before, err := prog.Stats()
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			err = ns.Do(func() error {
				rx, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					return err
				}
				defer rx.Close()
				tx, err := net.Dial("udp", rx.LocalAddr().String())
				if err != nil {
					return err
				}
				defer tx.Close()
				msg := make([]byte, 64)
				for i := 0; i < b.N; i++ {
					if _, err := tx.Write(msg); err != nil {
						return err
					}
					if _, _, err := rx.ReadFrom(msg); err != nil {
						return err
					}
				}
				return nil
			})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			after, err := prog.Stats()
			if err != nil {
				b.Fatal(err)
			}
			runs := after.RunCount - before.RunCount
			if runs < uint64(b.N) {
				b.Fatalf("the program ran %d times for %d packets", runs, b.N)
			}
			per := float64(after.Runtime-before.Runtime) / float64(runs)
			b.ReportMetric(per, "prog-ns/pkt")
			b.Logf("%s: %d runs, %.1f ns per packet (BPF stats run time / run count)", name, runs, per)
		})
	}
}
