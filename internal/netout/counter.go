// Package netout counts the packets this host sends with the netfilter BPF
// program of internal/bpf/netout, and publishes the outgoing TCP count the
// way the KSTAT kernel module did: in steps of a settable counter.
//
// Counter loads the program and attaches or detaches it; Service adds the
// seed's start/stop and counter semantics on top.
package netout

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/bpf"
	bpfnetout "github.com/kstat/kstat/internal/bpf/netout"
	"github.com/kstat/kstat/internal/netns"
)

// Family is an address family the program tells apart.
type Family int

// The families, in the order of the BPF map's slots.
const (
	IPv4 Family = iota
	IPv6
	Families
)

// String returns "ipv4" or "ipv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return familyIPv4
	case IPv6:
		return familyIPv6
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

// Proto is a transport protocol class the program tells apart.
type Proto int

// The protocol classes, in the order of the BPF map's slots.
const (
	TCP Proto = iota
	UDP
	Other
	Protos
)

// String returns "tcp", "udp" or "other".
func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case Other:
		return "other"
	}
	return fmt.Sprintf("Proto(%d)", int(p))
}

// Counts is a tally of packets and their bytes (the whole IP packet, as
// skb->len at the hook, which is also what an nftables counter adds).
type Counts struct {
	Packets uint64
	Bytes   uint64
}

// Totals holds the counts of every family and protocol.
type Totals [Families][Protos]Counts

// TCPPackets is the number of TCP packets of both families.
func (t *Totals) TCPPackets() uint64 { return t[IPv4][TCP].Packets + t[IPv6][TCP].Packets }

// Priority is the hook priority the program is attached at first: the
// last one a netfilter BPF link may take (NF_IP_PRI_LAST itself is refused
// with ERANGE). Every output firewall chain (iptables' filter at 0,
// security at 50, nftables chains at any ordinary priority, SELinux at
// 225) runs first, so a packet that one of them drops is not counted: the
// count is of packets that really leave the IP layer.
//
// The kernel gives each BPF hook of a family and hook its own priority
// (EBUSY for a second one), so when another kstat (or any netfilter BPF
// program) holds Priority, Attach tries the next lower ones, down to
// Priority-PrioritySpan+1; all of them still run after every firewall.
const Priority = math.MaxInt32 - 1

// PrioritySpan is how many priorities Attach tries.
const PrioritySpan = 256

// Counter is the loaded program and its map, attached or not. Its methods
// are safe for concurrent use.
type Counter struct {
	objs    bpfnetout.NetoutObjects
	prog    *ebpf.Program
	m       *ebpf.Map
	cgroups bool // counting per cgroup

	mu  sync.Mutex // guards set's links
	set *bpf.Set
}

// Options are the load-time settings of the program.
type Options struct {
	// NoCgroups leaves out the per-cgroup count: the program does not
	// read the socket's cgroup nor touch the cgroup cache and map (the
	// verifier removes that code), and Cgroups reports ErrNoCgroups.
	NoCgroups bool
}

// ErrNoCgroups is Cgroups' and CgroupsDropped's error when the program
// was loaded without the per-cgroup count.
var ErrNoCgroups = errors.New("netout was loaded without the per-cgroup count")

// Load checks the privileges and loads the program and its map without
// attaching them. The error names what is missing: capabilities or kernel
// support.
func Load(opts Options) (*Counter, error) {
	if err := checkCapabilities(); err != nil {
		return nil, err
	}
	bpf.RemoveMemlock()
	spec, err := bpfnetout.LoadNetout()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded netout BPF object: %w", err)
	}
	spec.Maps[bpfnetout.NetoutMapNetoutCgroups].MaxEntries = MaxCgroups
	if err := spec.Variables[bpfnetout.NetoutVarCountCgroups].Set(!opts.NoCgroups); err != nil {
		return nil, fmt.Errorf("setting netout's count_cgroups: %w", err)
	}
	c := &Counter{cgroups: !opts.NoCgroups}
	if err := spec.LoadAndAssign(&c.objs, nil); err != nil {
		return nil, loadError(err)
	}
	c.prog, c.m = c.objs.Netout, c.objs.NetoutCounts
	c.set = bpf.NewSet(&c.objs, map[string]*ebpf.Program{"netout": c.prog})
	return c, nil
}

// MaxCgroups is how many cgroups the per-cgroup hash map holds (beyond
// the per-CPU cache's slots); packets of further cgroups are counted in
// CgroupsDropped.
const MaxCgroups = 1024

// CountsCgroups reports whether the program counts per cgroup.
func (c *Counter) CountsCgroups() bool { return c.cgroups }

// Cgroups sums the per-CPU per-cgroup counts, by the cgroup v2 id of the
// sending socket (the cgroup directory's inode number). Key 0 holds the
// packets without a full socket: forwarded ones, and the kernel's replies
// for time-wait and request sockets. A cgroup's packets are in its slot
// of a CPU's cache or, when another cgroup holds that slot, in the hash
// map; a slot never changes hands, so the sum of both counts each packet
// once and never falls.
func (c *Counter) Cgroups() (map[uint64]Counts, error) {
	if !c.cgroups {
		return nil, ErrNoCgroups
	}
	per, err := c.lookup()
	if err != nil {
		return nil, err
	}
	out := map[uint64]Counts{}
	for i := range per {
		for _, s := range per[i].Cgroups {
			if s.Tag == 0 {
				continue
			}
			t := out[s.Tag-1]
			t.Packets += s.Packets
			t.Bytes += s.Bytes
			out[s.Tag-1] = t
		}
	}
	var (
		key   uint64
		perCG []bpfnetout.NetoutCgroupCounts
	)
	it := c.objs.NetoutCgroups.Iterate()
	for it.Next(&key, &perCG) {
		t := out[key]
		for _, v := range perCG {
			t.Packets += v.Packets
			t.Bytes += v.Bytes
		}
		out[key] = t
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading netout per-cgroup counts: %w", err)
	}
	return out, nil
}

// CgroupsDropped is the number of packets not counted per cgroup because
// the per-cgroup map was full (they are in the family/protocol counts).
func (c *Counter) CgroupsDropped() (uint64, error) {
	if !c.cgroups {
		return 0, ErrNoCgroups
	}
	_, d, err := c.ReadAll()
	return d, err
}

// loadError explains a failed program load.
func loadError(err error) error {
	switch {
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("kernel does not support netfilter BPF programs (BPF_PROG_TYPE_NETFILTER, Linux 6.4+ with CONFIG_NETFILTER_BPF_LINK): %w", err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("loading the netfilter BPF program was refused: it needs root, or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN: %w", err)
	}
	return fmt.Errorf("loading the netfilter BPF program: %w", err)
}

// checkCapabilities names the capabilities the calling thread lacks.
func checkCapabilities() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading this process's capabilities: %w", err)
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	var missing []string
	// CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON (kernels before
	// 5.8 had only it).
	admin := has(unix.CAP_SYS_ADMIN)
	if !admin && !has(unix.CAP_BPF) {
		missing = append(missing, "CAP_BPF")
	}
	// The program reads struct sk_buff and nf_hook_state through BTF
	// pointers, which the verifier allows only with CAP_PERFMON.
	if !admin && !has(unix.CAP_PERFMON) {
		missing = append(missing, "CAP_PERFMON")
	}
	if !has(unix.CAP_NET_ADMIN) {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	if len(missing) > 0 {
		return fmt.Errorf("counting outgoing packets needs root, or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN; missing %v", missing)
	}
	return nil
}

// ProgramID is the kernel's ID of the loaded program.
func (c *Counter) ProgramID() (ebpf.ProgramID, error) {
	info, err := c.prog.Info()
	if err != nil {
		return 0, err
	}
	id, ok := info.ID()
	if !ok {
		return 0, errors.New("kernel does not report BPF program IDs")
	}
	return id, nil
}

// Program is the loaded program, for its run-time statistics.
func (c *Counter) Program() *ebpf.Program { return c.prog }

// Attach links the program to NF_INET_LOCAL_OUT of IPv4 and IPv6 in the
// network namespace at nsPath (a /run/netns/NAME or /proc/PID/ns/net file),
// or in the calling process's namespace when nsPath is "". Attaching an
// attached counter does nothing.
func (c *Counter) Attach(nsPath string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.set.Attached() {
		return nil
	}
	attach := func() error {
		for _, pf := range []link.NetfilterProtocolFamily{link.NetfilterProtoIPv4, link.NetfilterProtoIPv6} {
			l, err := attachFree(c.prog, pf)
			if err != nil {
				return attachError(pf, err)
			}
			c.set.Keep(l)
		}
		return nil
	}
	var err error
	if nsPath == "" {
		err = attach()
	} else {
		err = netns.Do(nsPath, attach)
	}
	if err != nil {
		_ = c.set.Detach()
	}
	return err
}

// attachFree attaches prog to pf's LOCAL_OUT at the highest free priority
// from Priority down.
func attachFree(prog *ebpf.Program, pf link.NetfilterProtocolFamily) (link.Link, error) {
	var err error
	for prio := int32(Priority); prio > Priority-PrioritySpan; prio-- {
		var l link.Link
		l, err = link.AttachNetfilter(link.NetfilterOptions{
			Program:        prog,
			ProtocolFamily: pf,
			Hook:           link.NetfilterInetLocalOut,
			Priority:       prio,
		})
		if !errors.Is(err, unix.EBUSY) {
			return l, err
		}
	}
	return nil, fmt.Errorf("every priority from %d down to %d is taken by another netfilter BPF program: %w",
		int32(Priority), int32(Priority-PrioritySpan+1), err)
}

// attachError explains a failed AttachNetfilter.
func attachError(pf link.NetfilterProtocolFamily, err error) error {
	fam := "IPv4"
	if pf == link.NetfilterProtoIPv6 {
		fam = "IPv6"
	}
	switch {
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("attaching to %s LOCAL_OUT: kernel lacks netfilter BPF links (Linux 6.4+, CONFIG_NETFILTER_BPF_LINK, and %s netfilter): %w", fam, fam, err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("attaching to %s LOCAL_OUT needs CAP_NET_ADMIN (root): %w", fam, err)
	}
	return fmt.Errorf("attaching to %s LOCAL_OUT: %w", fam, err)
}

// Attached reports whether the program is linked to its hooks.
func (c *Counter) Attached() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set.Attached()
}

// Detach closes the links: the hooks are gone when it returns. The map
// keeps its counts.
func (c *Counter) Detach() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set.Detach()
}

// lookup reads the program's per-CPU counts: every CPU's value of the
// map's one slot, in one system call.
func (c *Counter) lookup() ([]bpfnetout.NetoutPercpuCounts, error) {
	var per []bpfnetout.NetoutPercpuCounts
	if err := c.m.Lookup(uint32(0), &per); err != nil {
		return nil, fmt.Errorf("reading netout counts: %w", err)
	}
	return per, nil
}

// Read sums the per-CPU counts of every slot.
func (c *Counter) Read() (Totals, error) {
	t, _, err := c.ReadAll()
	return t, err
}

// ReadAll is Read and CgroupsDropped (0 without the per-cgroup count)
// from one read of the map.
func (c *Counter) ReadAll() (t Totals, cgroupsDropped uint64, err error) {
	per, err := c.lookup()
	if err != nil {
		return Totals{}, 0, err
	}
	for i := range per {
		cgroupsDropped += per[i].CgroupsDropped
		for f := Family(0); f < Families; f++ {
			for p := Proto(0); p < Protos; p++ {
				v := per[i].Slots[int(f)*int(Protos)+int(p)]
				t[f][p].Packets += v.Packets
				t[f][p].Bytes += v.Bytes
			}
		}
	}
	return t, cgroupsDropped, nil
}

// Close detaches the program and unloads it and its map.
func (c *Counter) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set.Close()
}
