// Package bufstat is the kernel buffer report: the text the bufstat kernel
// module printed on /dev/bufstat, and the same data as JSON. It is a view:
// it reads the values that the meminfo, netdev, sockstat and slabinfo
// collectors keep in a statsfs tree, and their status for the sections they
// could not fill. It never reads /proc itself.
package bufstat

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/statsfs"
)

// Report is one reading of every section. A part whose collector failed is
// nil and its error says why.
type Report struct {
	GeneratedMillis int64   `json:"generated_unix_ms"`
	Network         Network `json:"network"`
	Block           Block   `json:"block"`
	MM              MM      `json:"mm"`
	Memory          Memory  `json:"memory"`
}

// Network is socket buffer use and per-device statistics.
type Network struct {
	Sockets        *Sockets `json:"sockets,omitempty"`
	SocketsError   string   `json:"sockets_error,omitempty"`
	Devices        []Device `json:"devices,omitempty"`
	Total          *Device  `json:"total,omitempty"` // the net/dev/ sums
	DevicesError   string   `json:"devices_error,omitempty"`
	socketMemBytes uint64
}

// Sockets is /proc/net/sockstat and, when the kernel has IPv6, sockstat6.
type Sockets struct {
	Used    uint64    `json:"used"`
	TCP     TCP       `json:"tcp"`
	UDP     UDP       `json:"udp"`
	UDPLite uint64    `json:"udplite_inuse"`
	Raw     uint64    `json:"raw_inuse"`
	Frag    Frag      `json:"frag"`
	IPv6    *Sockets6 `json:"ipv6,omitempty"`
}

// TCP is the TCP line of sockstat.
type TCP struct {
	InUse    uint64 `json:"inuse"`
	Orphan   uint64 `json:"orphan"`
	TimeWait uint64 `json:"tw"`
	Alloc    uint64 `json:"alloc"`
	MemPages uint64 `json:"mem_pages"`
	MemBytes uint64 `json:"mem_bytes"`
}

// UDP is the UDP line of sockstat.
type UDP struct {
	InUse    uint64 `json:"inuse"`
	MemPages uint64 `json:"mem_pages"`
	MemBytes uint64 `json:"mem_bytes"`
}

// Frag is a FRAG line.
type Frag struct {
	InUse       uint64 `json:"inuse"`
	MemoryBytes uint64 `json:"memory_bytes"`
}

// Sockets6 is sockstat6.
type Sockets6 struct {
	TCP     uint64 `json:"tcp_inuse"`
	UDP     uint64 `json:"udp_inuse"`
	UDPLite uint64 `json:"udplite_inuse"`
	Raw     uint64 `json:"raw_inuse"`
	Frag    Frag   `json:"frag"`
}

// Device is one interface's counters (or their sum).
type Device struct {
	Name       string `json:"name"`
	RxPackets  uint64 `json:"rx_packets"`
	TxPackets  uint64 `json:"tx_packets"`
	RxBytes    uint64 `json:"rx_bytes"`
	TxBytes    uint64 `json:"tx_bytes"`
	RxErrors   uint64 `json:"rx_errors"`
	TxErrors   uint64 `json:"tx_errors"`
	RxDropped  uint64 `json:"rx_dropped"`
	TxDropped  uint64 `json:"tx_dropped"`
	TxQueueLen uint64 `json:"tx_queue_len"`
}

// Block is the page cache and buffers, in bytes.
type Block struct {
	Error     string `json:"error,omitempty"`
	Buffers   uint64 `json:"buffers_bytes"`
	Cached    uint64 `json:"cached_bytes"`
	Dirty     uint64 `json:"dirty_bytes"`
	Writeback uint64 `json:"writeback_bytes"`
}

// MM is slab and page-table memory, in bytes, and the largest slab caches.
type MM struct {
	Error           string       `json:"error,omitempty"`
	Slab            uint64       `json:"slab_bytes"`
	SReclaimable    uint64       `json:"slab_reclaimable_bytes"`
	SUnreclaim      uint64       `json:"slab_unreclaimable_bytes"`
	PageTables      uint64       `json:"page_tables_bytes"`
	SlabCaches      *SlabSummary `json:"slab_caches,omitempty"`
	SlabCachesError string       `json:"slab_caches_error,omitempty"`
}

// SlabSummary is /proc/slabinfo: totals and the top caches, largest first.
type SlabSummary struct {
	Caches        uint64      `json:"caches"`
	ActiveObjects uint64      `json:"active_objects"`
	TotalBytes    uint64      `json:"total_bytes"`
	Top           []SlabCache `json:"top"`
}

// SlabCache is one slab cache.
type SlabCache struct {
	Name          string `json:"name"`
	ActiveObjects uint64 `json:"active_objects"`
	Objects       uint64 `json:"objects"`
	ObjectSize    uint64 `json:"object_size"`
	TotalBytes    uint64 `json:"total_bytes"`
}

// Memory is the overall totals, in bytes, and the kernel buffers' share.
type Memory struct {
	Error     string `json:"error,omitempty"`
	Total     uint64 `json:"total_bytes"`
	Free      uint64 `json:"free_bytes"`
	Available uint64 `json:"available_bytes"`
	// Buffers is buffers + cached + slab + page tables + socket buffers
	// (the last only when sockstat could be read); 0 when meminfo failed.
	Buffers uint64 `json:"kernel_buffers_bytes"`
}

// reader reads values of a tree and remembers the first failure.
type reader struct {
	root *statsfs.Source
	err  error
}

func (r *reader) get(path, name string) uint64 {
	src := r.root.Find(path)
	if src == nil {
		if r.err == nil {
			r.err = fmt.Errorf("no %s/ in the statistics tree", path)
		}
		return 0
	}
	v, err := src.GetByName(name)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("no %s/%s in the statistics tree", path, name)
	}
	return v.Uint64()
}

// failed returns why collector name's data cannot be shown: the tree's own
// problem, the collector's last error, or "" when all is well.
func failed(treeErr error, reg *collector.Registry, name string) string {
	if treeErr != nil {
		return treeErr.Error()
	}
	for _, c := range reg.All() {
		if c.Name() == name {
			if err := c.Status().Err; err != nil {
				return err.Error()
			}
			return ""
		}
	}
	return fmt.Sprintf("the %s collector is off (kstat serve --collector.%s turns it on)", name, name)
}

// Build reads the report from root, where the collectors in reg attached
// their values, at time now. Values are read first (which refreshes the
// collectors), then the collectors' status decides which parts stand.
func Build(root *statsfs.Source, reg *collector.Registry, now time.Time) *Report {
	rep := &Report{GeneratedMillis: now.UnixMilli()}
	rep.Network = buildNetwork(root, reg)
	mem := &reader{root: root}
	b := Block{
		Buffers:   mem.get("block", "buffers"),
		Cached:    mem.get("block", "cached"),
		Dirty:     mem.get("block", "dirty"),
		Writeback: mem.get("block", "writeback"),
	}
	m := MM{
		Slab:         mem.get("mm", "slab"),
		SReclaimable: mem.get("mm", "slab_reclaimable"),
		SUnreclaim:   mem.get("mm", "slab_unreclaimable"),
		PageTables:   mem.get("mm", "page_tables"),
	}
	o := Memory{
		Total:     mem.get("memory", "total"),
		Free:      mem.get("memory", "free"),
		Available: mem.get("memory", "available"),
	}
	if why := failed(mem.err, reg, "meminfo"); why != "" {
		b, m, o = Block{Error: why}, MM{Error: why}, Memory{Error: why}
	} else {
		o.Buffers = addSat(b.Buffers, b.Cached, m.Slab, m.PageTables, rep.Network.socketMemBytes)
	}
	m.SlabCaches, m.SlabCachesError = buildSlab(root, reg)
	rep.Block, rep.MM, rep.Memory = b, m, o
	return rep
}

func buildNetwork(root *statsfs.Source, reg *collector.Registry) Network {
	var n Network
	r := &reader{root: root}
	s := &Sockets{
		Used: r.get("net", "sockets_used"),
		TCP: TCP{
			InUse: r.get("net", "tcp_inuse"), Orphan: r.get("net", "tcp_orphan"),
			TimeWait: r.get("net", "tcp_tw"), Alloc: r.get("net", "tcp_alloc"),
			MemPages: r.get("net", "tcp_mem_pages"), MemBytes: r.get("net", "tcp_mem_bytes"),
		},
		UDP: UDP{
			InUse:    r.get("net", "udp_inuse"),
			MemPages: r.get("net", "udp_mem_pages"), MemBytes: r.get("net", "udp_mem_bytes"),
		},
		UDPLite: r.get("net", "udplite_inuse"),
		Raw:     r.get("net", "raw_inuse"),
		Frag:    Frag{InUse: r.get("net", "frag_inuse"), MemoryBytes: r.get("net", "frag_memory_bytes")},
	}
	if six := root.Find("net/sockstat6"); six != nil && !six.Hidden() {
		s.IPv6 = &Sockets6{
			TCP: r.get("net/sockstat6", "tcp_inuse"), UDP: r.get("net/sockstat6", "udp_inuse"),
			UDPLite: r.get("net/sockstat6", "udplite_inuse"), Raw: r.get("net/sockstat6", "raw_inuse"),
			Frag: Frag{InUse: r.get("net/sockstat6", "frag_inuse"), MemoryBytes: r.get("net/sockstat6", "frag_memory_bytes")},
		}
	}
	if why := failed(r.err, reg, "sockstat"); why != "" {
		n.SocketsError = why
	} else {
		n.Sockets = s
		n.socketMemBytes = addSat(s.TCP.MemBytes, s.UDP.MemBytes, s.fragBytes())
	}

	r = &reader{root: root}
	total := readDevice(r, "net/dev", "total")
	var devs []Device
	if dir := root.Find("net/dev"); dir != nil {
		for _, c := range dir.Subordinates() {
			if !c.Hidden() {
				devs = append(devs, readDevice(r, "net/dev/"+c.Name(), c.Name()))
			}
		}
	}
	if why := failed(r.err, reg, "netdev"); why != "" {
		n.DevicesError = why
		return n
	}
	slices.SortFunc(devs, func(a, b Device) int { return cmp.Compare(a.Name, b.Name) })
	n.Devices, n.Total = devs, &total
	return n
}

func readDevice(r *reader, path, name string) Device {
	return Device{
		Name:       name,
		RxPackets:  r.get(path, "rx_packets"),
		TxPackets:  r.get(path, "tx_packets"),
		RxBytes:    r.get(path, "rx_bytes"),
		TxBytes:    r.get(path, "tx_bytes"),
		RxErrors:   r.get(path, "rx_errors"),
		TxErrors:   r.get(path, "tx_errors"),
		RxDropped:  r.get(path, "rx_dropped"),
		TxDropped:  r.get(path, "tx_dropped"),
		TxQueueLen: r.get(path, "tx_queue_len"),
	}
}

func buildSlab(root *statsfs.Source, reg *collector.Registry) (*SlabSummary, string) {
	r := &reader{root: root}
	s := &SlabSummary{
		Caches:        r.get("mm/slabinfo", "caches"),
		ActiveObjects: r.get("mm/slabinfo", "active_objects"),
		TotalBytes:    r.get("mm/slabinfo", "total_bytes"),
	}
	if dir := root.Find("mm/slabinfo"); dir != nil {
		for _, c := range dir.Subordinates() {
			p := "mm/slabinfo/" + c.Name()
			s.Top = append(s.Top, SlabCache{
				Name:          c.Name(),
				ActiveObjects: r.get(p, "active_objects"),
				Objects:       r.get(p, "objects"),
				ObjectSize:    r.get(p, "object_size"),
				TotalBytes:    r.get(p, "total_bytes"),
			})
		}
	}
	if why := failed(r.err, reg, "slabinfo"); why != "" {
		return nil, why
	}
	slices.SortFunc(s.Top, func(a, b SlabCache) int {
		if c := cmp.Compare(b.TotalBytes, a.TotalBytes); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return s, ""
}

// JSON returns the report as one JSON object and a newline.
func (rep *Report) JSON() []byte {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		// Only plain numbers and strings: cannot happen.
		panic(err)
	}
	return append(b, '\n')
}

// Failed reports whether no section could be read at all.
func (rep *Report) Failed() bool {
	return rep.Network.Sockets == nil && rep.Network.Total == nil &&
		rep.Block.Error != "" && rep.MM.SlabCaches == nil
}

func kb(b uint64) uint64 { return b / 1024 }

// addSat adds without wrapping: a sum past 2^64-1 stays at 2^64-1.
func addSat(vs ...uint64) uint64 {
	var sum uint64
	for _, v := range vs {
		if sum+v < sum {
			return math.MaxUint64
		}
		sum += v
	}
	return sum
}

// fragBytes is the memory of IPv4 and IPv6 fragment reassembly.
func (s *Sockets) fragBytes() uint64 {
	if s.IPv6 == nil {
		return s.Frag.MemoryBytes
	}
	return addSat(s.Frag.MemoryBytes, s.IPv6.Frag.MemoryBytes)
}

// Text returns the report in the layout of the bufstat module's
// /dev/bufstat, with more detail in each section.
func (rep *Report) Text() string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	p("Kernel Buffer Statistics Report\n")
	p("Generated: %d.%03d\n", rep.GeneratedMillis/1000, rep.GeneratedMillis%1000)

	p("\n=== Network Buffer Statistics ===\n")
	n := rep.Network
	if s := n.Sockets; s != nil {
		p("Socket buffer allocation: %d kB (TCP %d pages, UDP %d pages, fragments %d bytes)\n",
			kb(n.socketMemBytes), s.TCP.MemPages, s.UDP.MemPages, s.fragBytes())
		p("Sockets in use: %d\n", s.Used)
		p("  TCP: inuse=%d orphan=%d tw=%d alloc=%d mem=%d pages (%d kB)\n",
			s.TCP.InUse, s.TCP.Orphan, s.TCP.TimeWait, s.TCP.Alloc, s.TCP.MemPages, kb(s.TCP.MemBytes))
		p("  UDP: inuse=%d mem=%d pages (%d kB)\n", s.UDP.InUse, s.UDP.MemPages, kb(s.UDP.MemBytes))
		p("  UDPLITE: inuse=%d\n", s.UDPLite)
		p("  RAW: inuse=%d\n", s.Raw)
		p("  FRAG: inuse=%d memory=%d bytes\n", s.Frag.InUse, s.Frag.MemoryBytes)
		if v6 := s.IPv6; v6 != nil {
			p("  IPv6: TCP6 inuse=%d UDP6 inuse=%d UDPLITE6 inuse=%d RAW6 inuse=%d FRAG6 inuse=%d memory=%d bytes\n",
				v6.TCP, v6.UDP, v6.UDPLite, v6.Raw, v6.Frag.InUse, v6.Frag.MemoryBytes)
		}
	} else {
		p("Socket buffers: section unavailable: %s\n", n.SocketsError)
	}
	p("\nPer-device buffer statistics:\n")
	if n.Total != nil {
		line := func(d Device) {
			p("  %s: rx_buffers=%d tx_buffers=%d rx_bytes=%d tx_bytes=%d rx_errors=%d tx_errors=%d rx_dropped=%d tx_dropped=%d tx_queue_len=%d\n",
				d.Name, d.RxPackets, d.TxPackets, d.RxBytes, d.TxBytes, d.RxErrors, d.TxErrors, d.RxDropped, d.TxDropped, d.TxQueueLen)
		}
		for _, d := range n.Devices {
			line(d)
		}
		t := *n.Total
		t.Name = fmt.Sprintf("all %d devices", len(n.Devices))
		line(t)
	} else {
		p("  section unavailable: %s\n", n.DevicesError)
	}

	p("\n=== Block Buffer Statistics ===\n")
	if b := rep.Block; b.Error == "" {
		p("Buffers: %d kB\n", kb(b.Buffers))
		p("Cached: %d kB\n", kb(b.Cached))
		p("Dirty pages: %d kB\n", kb(b.Dirty))
		p("Writeback pages: %d kB\n", kb(b.Writeback))
	} else {
		p("section unavailable: %s\n", b.Error)
	}

	p("\n=== Memory Management Statistics ===\n")
	m := rep.MM
	if m.Error == "" {
		p("Slab memory: %d kB\n", kb(m.Slab))
		p("  Reclaimable: %d kB\n", kb(m.SReclaimable))
		p("  Unreclaimable: %d kB\n", kb(m.SUnreclaim))
		p("PageTables: %d kB\n", kb(m.PageTables))
	} else {
		p("section unavailable: %s\n", m.Error)
	}
	if s := m.SlabCaches; s != nil {
		p("Slab caches: %d, %d active objects, %d kB in slabs; largest:\n", s.Caches, s.ActiveObjects, kb(s.TotalBytes))
		for _, c := range s.Top {
			p("  %s: active_objs=%d num_objs=%d objsize=%d total=%d kB\n", c.Name, c.ActiveObjects, c.Objects, c.ObjectSize, kb(c.TotalBytes))
		}
	} else {
		p("Slab caches: section unavailable: %s\n", m.SlabCachesError)
	}

	p("\n=== Overall Buffer Usage Summary ===\n")
	if o := rep.Memory; o.Error == "" {
		p("Total memory: %d kB\n", kb(o.Total))
		p("Free memory: %d kB\n", kb(o.Free))
		p("Available memory: %d kB\n", kb(o.Available))
		share := 0.0
		if o.Total > 0 {
			share = 100 * float64(o.Buffers) / float64(o.Total)
		}
		what := "buffers + cached + slab + page tables + socket buffers"
		if n.Sockets == nil {
			what = "buffers + cached + slab + page tables; socket buffers unknown"
		}
		p("Kernel buffers: %d kB (%.1f%% of total; %s)\n", kb(o.Buffers), share, what)
	} else {
		p("section unavailable: %s\n", o.Error)
	}
	return w.String()
}

// JSONLine returns the report as JSON on one line, for a stream of reports.
func (rep *Report) JSONLine() []byte {
	b, err := json.Marshal(rep)
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}
