package main

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	emptybpf "github.com/kstat/kstat/internal/bpf/empty"
	"github.com/kstat/kstat/internal/netns"
	"github.com/kstat/kstat/internal/netout"
)

// nfVariant is a netfilter program the harness loads and attaches itself
// on the hooks KSTAT uses, in the harness's namespace.
type nfVariant struct {
	name    string
	attach  func() (detach func() error, err error)
	prog    *ebpf.Program
	runtime [2]time.Duration // by load: UDP datagrams, iperf3 bulk
	count   [2]uint64
}

// netfilterVariants measures, in the same run and under the same load,
// the empty netfilter program (the floor), netout as the daemon loads it
// by default and netout without the per-cgroup count
// (--kstat-cgroups=false): one attached at a time, in interleaved rounds
// of two loads (20,000 UDP datagrams over loopback, one write and one
// read each; iperf3 TCP bulk for 2 s), with the daemon's own netout
// detached so that every packet runs only the variant. The kernel's run-time statistics
// must be on (bpfCost turns them on).
func (h *harness) netfilterVariants(sec string) error {
	const rounds = 5
	d := h.daemon
	if d.has("kstat/start") {
		if err := d.set("kstat/start", "0"); err != nil {
			return err
		}
		defer func() {
			if err := d.set("kstat/start", "1"); err != nil {
				h.notef("netfilter variants: restarting KSTAT: %v", err)
			}
		}()
	}
	nsPath := "/run/netns/" + h.netns
	var objs emptybpf.EmptyObjects
	if err := emptybpf.LoadEmptyObjects(&objs, nil); err != nil {
		return fmt.Errorf("loading the empty programs: %w", err)
	}
	defer objs.Close()
	variants := []*nfVariant{{
		name: "empty netfilter program (floor)",
		prog: objs.NfEmpty,
		attach: func() (func() error, error) {
			var links []link.Link
			err := netns.Do(nsPath, func() error {
				for _, pf := range []link.NetfilterProtocolFamily{link.NetfilterProtoIPv4, link.NetfilterProtoIPv6} {
					l, err := link.AttachNetfilter(link.NetfilterOptions{Program: objs.NfEmpty, ProtocolFamily: pf,
						Hook: link.NetfilterInetLocalOut, Priority: netout.Priority})
					if err != nil {
						return err
					}
					links = append(links, l)
				}
				return nil
			})
			detach := func() error {
				for _, l := range links {
					l.Close()
				}
				return nil
			}
			if err != nil {
				detach()
				return nil, err
			}
			return detach, nil
		},
	}}
	for _, v := range []struct {
		name string
		opts netout.Options
	}{{"netout, defaults (per-cgroup count on)", netout.Options{}}, {"netout, --kstat-cgroups=false", netout.Options{NoCgroups: true}}} {
		c, err := netout.Load(v.opts)
		if err != nil {
			return err
		}
		defer c.Close()
		variants = append(variants, &nfVariant{name: v.name, prog: c.Program(), attach: func() (func() error, error) {
			return c.Detach, c.Attach(nsPath)
		}})
	}
	loads := []struct {
		name string
		run  func() error
	}{
		{"UDP 20,000 × 64 B", func() error { return udpLoop(nsPath, 20000) }},
		{"iperf3 TCP bulk 2 s", func() error { _, err := h.iperf(2 * time.Second); return err }},
	}
	for r := 0; r < rounds; r++ {
		for _, v := range variants {
			detach, err := v.attach()
			if err != nil {
				return fmt.Errorf("attaching %s: %w", v.name, err)
			}
			for i, l := range loads {
				before, err := v.prog.Stats()
				if err == nil {
					err = l.run()
				}
				after, serr := v.prog.Stats()
				if err == nil {
					err = serr
				}
				if err != nil {
					detach()
					return fmt.Errorf("%s under %s: %w", v.name, l.name, err)
				}
				v.runtime[i] += after.Runtime - before.Runtime
				v.count[i] += after.RunCount - before.RunCount
			}
			if err := detach(); err != nil {
				return err
			}
		}
	}
	per := func(v *nfVariant, i int) float64 { return float64(v.runtime[i]) / float64(max(v.count[i], 1)) }
	var tbl strings.Builder
	tbl.WriteString("| program | load | packets | run time | ns per packet | × empty |\n|---|---|---|---|---|---|\n")
	for i, l := range loads {
		floor := per(variants[0], i)
		for j, v := range variants {
			ns := per(v, i)
			fmt.Fprintf(&tbl, "| %s | %s | %d | %s | %.0f | %.2f |\n", v.name, l.name, v.count[i], v.runtime[i].Round(time.Microsecond), ns, ns/floor)
			what := fmt.Sprintf("netfilter: %s, ns per packet under %s (%d packets)", v.name, l.name, v.count[i])
			if j == 0 {
				h.measured(sec, what, fmt.Sprintf("%.0f ns", ns), "", true)
			} else {
				h.measured(sec, what, fmt.Sprintf("%.0f ns (%.2f× empty)", ns, ns/floor), "≤ 1.3× empty", ns <= 1.3*floor)
			}
		}
	}
	h.detail(fmt.Sprintf("Netfilter programs on LOCAL_OUT, one attached at a time, %d interleaved rounds of each load (run time ÷ run count)", rounds), tbl.String())
	return nil
}

// udpLoop sends n 64-byte datagrams over IPv4 loopback in the namespace
// at nsPath, reading each back: n packets at LOCAL_OUT.
func udpLoop(nsPath string, n int) error {
	return netns.Do(nsPath, func() error {
		rx, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer rx.Close()
		tx, err := net.Dial("udp4", rx.LocalAddr().String())
		if err != nil {
			return err
		}
		defer tx.Close()
		msg := make([]byte, 64)
		for range n {
			if _, err := tx.Write(msg); err != nil {
				return err
			}
			if _, _, err := rx.ReadFrom(msg); err != nil {
				return err
			}
		}
		return nil
	})
}
