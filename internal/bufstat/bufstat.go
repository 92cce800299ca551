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
	"strconv"
	"strings"
	"time"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/statsfs"
)

// Report is one reading of every section. A part whose collector failed is
// nil and its error says why. A value the kernel does not provide, or whose
// line could not be read, is a nil Num: the text says "unavailable" and the
// JSON leaves it out.
type Report struct {
	GeneratedMillis int64   `json:"generated_unix_ms"`
	Network         Network `json:"network"`
	Block           Block   `json:"block"`
	MM              MM      `json:"mm"`
	Memory          Memory  `json:"memory"`
	// Skipped names, per collector whose last read skipped lines it
	// could not parse, how many and why ("netdev: ..."); the values of
	// those lines are unavailable.
	Skipped []string `json:"skipped_lines,omitempty"`
}

// Network is socket buffer use and per-device statistics.
type Network struct {
	Sockets      *Sockets `json:"sockets,omitempty"`
	SocketsError string   `json:"sockets_error,omitempty"`
	Devices      []Device `json:"devices,omitempty"`
	Total        *Device  `json:"total,omitempty"` // the net/dev/ sums
	DevicesError string   `json:"devices_error,omitempty"`
}

// Sockets is /proc/net/sockstat and, when the kernel has IPv6, sockstat6.
type Sockets struct {
	Used    Num       `json:"used,omitempty"`
	TCP     TCP       `json:"tcp"`
	UDP     UDP       `json:"udp"`
	UDPLite Num       `json:"udplite_inuse,omitempty"`
	Raw     Num       `json:"raw_inuse,omitempty"`
	Frag    Frag      `json:"frag"`
	IPv6    *Sockets6 `json:"ipv6,omitempty"`
}

// TCP is the TCP line of sockstat.
type TCP struct {
	InUse    Num `json:"inuse,omitempty"`
	Orphan   Num `json:"orphan,omitempty"`
	TimeWait Num `json:"tw,omitempty"`
	Alloc    Num `json:"alloc,omitempty"`
	MemPages Num `json:"mem_pages,omitempty"`
	MemBytes Num `json:"mem_bytes,omitempty"`
}

// UDP is the UDP line of sockstat.
type UDP struct {
	InUse    Num `json:"inuse,omitempty"`
	MemPages Num `json:"mem_pages,omitempty"`
	MemBytes Num `json:"mem_bytes,omitempty"`
}

// Frag is a FRAG line.
type Frag struct {
	InUse       Num `json:"inuse,omitempty"`
	MemoryBytes Num `json:"memory_bytes,omitempty"`
}

// Sockets6 is sockstat6.
type Sockets6 struct {
	TCP     Num  `json:"tcp_inuse,omitempty"`
	UDP     Num  `json:"udp_inuse,omitempty"`
	UDPLite Num  `json:"udplite_inuse,omitempty"`
	Raw     Num  `json:"raw_inuse,omitempty"`
	Frag    Frag `json:"frag"`
}

// Device is one interface's counters (or their sum).
type Device struct {
	Name       string `json:"name"`
	RxPackets  Num    `json:"rx_packets,omitempty"`
	TxPackets  Num    `json:"tx_packets,omitempty"`
	RxBytes    Num    `json:"rx_bytes,omitempty"`
	TxBytes    Num    `json:"tx_bytes,omitempty"`
	RxErrors   Num    `json:"rx_errors,omitempty"`
	TxErrors   Num    `json:"tx_errors,omitempty"`
	RxDropped  Num    `json:"rx_dropped,omitempty"`
	TxDropped  Num    `json:"tx_dropped,omitempty"`
	TxQueueLen Num    `json:"tx_queue_len,omitempty"`
}

// Block is the page cache and buffers, in bytes.
type Block struct {
	Error     string `json:"error,omitempty"`
	Buffers   Num    `json:"buffers_bytes,omitempty"`
	Cached    Num    `json:"cached_bytes,omitempty"`
	Dirty     Num    `json:"dirty_bytes,omitempty"`
	Writeback Num    `json:"writeback_bytes,omitempty"`
}

// MM is slab and page-table memory, in bytes, and the largest slab caches.
type MM struct {
	Error           string       `json:"error,omitempty"`
	Slab            Num          `json:"slab_bytes,omitempty"`
	SReclaimable    Num          `json:"slab_reclaimable_bytes,omitempty"`
	SUnreclaim      Num          `json:"slab_unreclaimable_bytes,omitempty"`
	PageTables      Num          `json:"page_tables_bytes,omitempty"`
	SlabCaches      *SlabSummary `json:"slab_caches,omitempty"`
	SlabCachesError string       `json:"slab_caches_error,omitempty"`
}

// SlabSummary is /proc/slabinfo: totals and the top caches, largest first.
type SlabSummary struct {
	Caches        Num         `json:"caches,omitempty"`
	ActiveObjects Num         `json:"active_objects,omitempty"`
	TotalBytes    Num         `json:"total_bytes,omitempty"`
	Top           []SlabCache `json:"top"`
}

// SlabCache is one slab cache.
type SlabCache struct {
	Name          string `json:"name"`
	ActiveObjects Num    `json:"active_objects,omitempty"`
	Objects       Num    `json:"objects,omitempty"`
	ObjectSize    Num    `json:"object_size,omitempty"`
	TotalBytes    Num    `json:"total_bytes,omitempty"`
}

// Memory is the overall totals, in bytes, and the kernel buffers' share.
type Memory struct {
	Error     string `json:"error,omitempty"`
	Total     Num    `json:"total_bytes,omitempty"`
	Free      Num    `json:"free_bytes,omitempty"`
	Available Num    `json:"available_bytes,omitempty"`
	// Buffers is buffers + cached + slab + page tables + socket buffers
	// (the last only when sockstat could be read); unavailable when one of
	// the others is.
	Buffers Num `json:"kernel_buffers_bytes,omitempty"`
}

// Num is one number of the report, nil when it is unavailable.
type Num = *uint64

// unavailable is the text of an absent Num.
const unavailable = statsfs.Unavailable

// num prints v in decimal, or "unavailable".
func num(v Num) string {
	if v == nil {
		return unavailable
	}
	return strconv.FormatUint(*v, 10)
}

// kbText prints a byte count v as "N kB", or "unavailable".
func kbText(v Num) string {
	if v == nil {
		return unavailable
	}
	return strconv.FormatUint(*v/1024, 10) + " kB"
}

// ControlName is the control file at the tree's root through which the
// daemon serves the report.
const ControlName = "bufstat"

// reader reads values of a tree and remembers the first failure.
type reader struct {
	root *statsfs.Source
	err  error
}

// get reads value name of source path: nil when it is absent.
func (r *reader) get(path, name string) Num {
	src := r.root.Find(path)
	if src == nil {
		if r.err == nil {
			r.err = fmt.Errorf("no %s/ in the statistics tree", path)
		}
		return nil
	}
	v, err := src.GetByName(name)
	if err != nil {
		if r.err == nil {
			r.err = fmt.Errorf("no %s/%s in the statistics tree", path, name)
		}
		return nil
	}
	if v.Absent {
		return nil
	}
	n := v.Uint64()
	return &n
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
		Buffers:   mem.get(collector.DirBlock, collector.BlockBuffers),
		Cached:    mem.get(collector.DirBlock, collector.BlockCached),
		Dirty:     mem.get(collector.DirBlock, collector.BlockDirty),
		Writeback: mem.get(collector.DirBlock, collector.BlockWriteback),
	}
	m := MM{
		Slab:         mem.get(collector.DirMM, collector.MMSlab),
		SReclaimable: mem.get(collector.DirMM, collector.MMSlabReclaimable),
		SUnreclaim:   mem.get(collector.DirMM, collector.MMSlabUnreclaimable),
		PageTables:   mem.get(collector.DirMM, collector.MMPageTables),
	}
	o := Memory{
		Total:     mem.get(collector.DirMemory, collector.MemoryTotal),
		Free:      mem.get(collector.DirMemory, collector.MemoryFree),
		Available: mem.get(collector.DirMemory, collector.MemoryAvailable),
	}
	if why := failed(mem.err, reg, collector.NameMeminfo); why != "" {
		b, m, o = Block{Error: why}, MM{Error: why}, Memory{Error: why}
	} else {
		parts := []Num{b.Buffers, b.Cached, m.Slab, m.PageTables}
		if rep.Network.Sockets != nil {
			parts = append(parts, rep.Network.Sockets.memBytes())
		}
		o.Buffers = addSat(parts...)
	}
	m.SlabCaches, m.SlabCachesError = buildSlab(root, reg)
	rep.Block, rep.MM, rep.Memory = b, m, o
	for _, name := range []string{collector.NameSockstat, collector.NameNetdev, collector.NameMeminfo, collector.NameSlabinfo} {
		for _, c := range reg.All() {
			if st := c.Status(); c.Name() == name && st.Err == nil && st.Skipped != nil {
				rep.Skipped = append(rep.Skipped, name+": "+st.Skipped.Error())
			}
		}
	}
	return rep
}

func buildNetwork(root *statsfs.Source, reg *collector.Registry) Network {
	var n Network
	r := &reader{root: root}
	s := &Sockets{
		Used: r.get(collector.DirNet, collector.SockSocketsUsed),
		TCP: TCP{
			InUse: r.get(collector.DirNet, collector.SockTCPInuse), Orphan: r.get(collector.DirNet, collector.SockTCPOrphan),
			TimeWait: r.get(collector.DirNet, collector.SockTCPTimeWait), Alloc: r.get(collector.DirNet, collector.SockTCPAlloc),
			MemPages: r.get(collector.DirNet, collector.SockTCPMemPages), MemBytes: r.get(collector.DirNet, collector.SockTCPMemBytes),
		},
		UDP: UDP{
			InUse:    r.get(collector.DirNet, collector.SockUDPInuse),
			MemPages: r.get(collector.DirNet, collector.SockUDPMemPages), MemBytes: r.get(collector.DirNet, collector.SockUDPMemBytes),
		},
		UDPLite: r.get(collector.DirNet, collector.SockUDPLiteInuse),
		Raw:     r.get(collector.DirNet, collector.SockRawInuse),
		Frag:    Frag{InUse: r.get(collector.DirNet, collector.SockFragInuse), MemoryBytes: r.get(collector.DirNet, collector.SockFragMemoryBytes)},
	}
	if six := root.Find(collector.DirSockstat6); six != nil && !six.Hidden() {
		s.IPv6 = &Sockets6{
			TCP: r.get(collector.DirSockstat6, collector.SockTCPInuse), UDP: r.get(collector.DirSockstat6, collector.SockUDPInuse),
			UDPLite: r.get(collector.DirSockstat6, collector.SockUDPLiteInuse), Raw: r.get(collector.DirSockstat6, collector.SockRawInuse),
			Frag: Frag{InUse: r.get(collector.DirSockstat6, collector.SockFragInuse), MemoryBytes: r.get(collector.DirSockstat6, collector.SockFragMemoryBytes)},
		}
	}
	if why := failed(r.err, reg, collector.NameSockstat); why != "" {
		n.SocketsError = why
	} else {
		n.Sockets = s
	}

	r = &reader{root: root}
	total := readDevice(r, collector.DirNetDev, "total")
	var devs []Device
	if dir := root.Find(collector.DirNetDev); dir != nil {
		for _, c := range dir.Subordinates() {
			if !c.Hidden() {
				devs = append(devs, readDevice(r, collector.DirNetDev+"/"+c.Name(), c.Name()))
			}
		}
	}
	if why := failed(r.err, reg, collector.NameNetdev); why != "" {
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
		RxPackets:  r.get(path, collector.NetdevRxPackets),
		TxPackets:  r.get(path, collector.NetdevTxPackets),
		RxBytes:    r.get(path, collector.NetdevRxBytes),
		TxBytes:    r.get(path, collector.NetdevTxBytes),
		RxErrors:   r.get(path, collector.NetdevRxErrors),
		TxErrors:   r.get(path, collector.NetdevTxErrors),
		RxDropped:  r.get(path, collector.NetdevRxDropped),
		TxDropped:  r.get(path, collector.NetdevTxDropped),
		TxQueueLen: r.get(path, collector.NetdevTxQueueLen),
	}
}

func buildSlab(root *statsfs.Source, reg *collector.Registry) (*SlabSummary, string) {
	r := &reader{root: root}
	s := &SlabSummary{
		Caches:        r.get(collector.DirSlabinfo, collector.SlabCaches),
		ActiveObjects: r.get(collector.DirSlabinfo, collector.SlabActiveObjects),
		TotalBytes:    r.get(collector.DirSlabinfo, collector.SlabTotalBytes),
	}
	if dir := root.Find(collector.DirSlabinfo); dir != nil {
		for _, c := range dir.Subordinates() {
			p := collector.DirSlabinfo + "/" + c.Name()
			s.Top = append(s.Top, SlabCache{
				Name:          c.Name(),
				ActiveObjects: r.get(p, collector.SlabActiveObjects),
				Objects:       r.get(p, collector.SlabObjects),
				ObjectSize:    r.get(p, collector.SlabObjectSize),
				TotalBytes:    r.get(p, collector.SlabTotalBytes),
			})
		}
	}
	if why := failed(r.err, reg, collector.NameSlabinfo); why != "" {
		return nil, why
	}
	slices.SortFunc(s.Top, func(a, b SlabCache) int {
		if c := cmpNum(b.TotalBytes, a.TotalBytes); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	s.Top = s.Top[:min(len(s.Top), collector.SlabinfoTop)]
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

// cmpNum compares a and b, an unavailable value below every number.
func cmpNum(a, b Num) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return cmp.Compare(*a, *b)
}

// addSat adds without wrapping: a sum past 2^64-1 stays at 2^64-1. A sum
// with an unavailable part is unavailable.
func addSat(vs ...Num) Num {
	var sum uint64
	for _, v := range vs {
		if v == nil {
			return nil
		}
		if sum+*v < sum {
			sum = math.MaxUint64
			return &sum
		}
		sum += *v
	}
	return &sum
}

// memBytes is the socket buffer memory: TCP, UDP and fragments.
func (s *Sockets) memBytes() Num {
	return addSat(s.TCP.MemBytes, s.UDP.MemBytes, s.fragBytes())
}

// MarshalJSON adds to the sockstat numbers the totals the text report
// shows: the socket buffer memory (TCP, UDP and fragments, in bytes) and
// the fragment memory of both families. They are computed, so a JSON
// reader need not know how.
func (s Sockets) MarshalJSON() ([]byte, error) {
	type plain Sockets
	return json.Marshal(struct {
		plain
		BufferBytes Num `json:"buffer_bytes,omitempty"`
		FragBytes   Num `json:"frag_memory_bytes,omitempty"`
	}{plain(s), s.memBytes(), s.fragBytes()})
}

// fragBytes is the memory of IPv4 and IPv6 fragment reassembly.
func (s *Sockets) fragBytes() Num {
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
		p("Socket buffer allocation: %s (TCP %s pages, UDP %s pages, fragments %s bytes)\n",
			kbText(s.memBytes()), num(s.TCP.MemPages), num(s.UDP.MemPages), num(s.fragBytes()))
		p("Sockets in use: %s\n", num(s.Used))
		p("  TCP: inuse=%s orphan=%s tw=%s alloc=%s mem=%s pages (%s)\n",
			num(s.TCP.InUse), num(s.TCP.Orphan), num(s.TCP.TimeWait), num(s.TCP.Alloc), num(s.TCP.MemPages), kbText(s.TCP.MemBytes))
		p("  UDP: inuse=%s mem=%s pages (%s)\n", num(s.UDP.InUse), num(s.UDP.MemPages), kbText(s.UDP.MemBytes))
		p("  UDPLITE: inuse=%s\n", num(s.UDPLite))
		p("  RAW: inuse=%s\n", num(s.Raw))
		p("  FRAG: inuse=%s memory=%s bytes\n", num(s.Frag.InUse), num(s.Frag.MemoryBytes))
		if v6 := s.IPv6; v6 != nil {
			p("  IPv6: TCP6 inuse=%s UDP6 inuse=%s UDPLITE6 inuse=%s RAW6 inuse=%s FRAG6 inuse=%s memory=%s bytes\n",
				num(v6.TCP), num(v6.UDP), num(v6.UDPLite), num(v6.Raw), num(v6.Frag.InUse), num(v6.Frag.MemoryBytes))
		}
	} else {
		p("Socket buffers: section unavailable: %s\n", n.SocketsError)
	}
	p("\nPer-device buffer statistics:\n")
	if n.Total != nil {
		line := func(d Device) {
			p("  %s: rx_buffers=%s tx_buffers=%s rx_bytes=%s tx_bytes=%s rx_errors=%s tx_errors=%s rx_dropped=%s tx_dropped=%s tx_queue_len=%s\n",
				d.Name, num(d.RxPackets), num(d.TxPackets), num(d.RxBytes), num(d.TxBytes), num(d.RxErrors), num(d.TxErrors), num(d.RxDropped), num(d.TxDropped), num(d.TxQueueLen))
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
		p("Buffers: %s\n", kbText(b.Buffers))
		p("Cached: %s\n", kbText(b.Cached))
		p("Dirty pages: %s\n", kbText(b.Dirty))
		p("Writeback pages: %s\n", kbText(b.Writeback))
	} else {
		p("section unavailable: %s\n", b.Error)
	}

	p("\n=== Memory Management Statistics ===\n")
	m := rep.MM
	if m.Error == "" {
		p("Slab memory: %s\n", kbText(m.Slab))
		p("  Reclaimable: %s\n", kbText(m.SReclaimable))
		p("  Unreclaimable: %s\n", kbText(m.SUnreclaim))
		p("PageTables: %s\n", kbText(m.PageTables))
	} else {
		p("section unavailable: %s\n", m.Error)
	}
	if s := m.SlabCaches; s != nil {
		if s.Caches == nil {
			p("Slab caches: totals unavailable (a line of /proc/slabinfo could not be read); largest:\n")
		} else {
			p("Slab caches: %s, %s active objects, %s in slabs; largest:\n", num(s.Caches), num(s.ActiveObjects), kbText(s.TotalBytes))
		}
		for _, c := range s.Top {
			p("  %s: active_objs=%s num_objs=%s objsize=%s total=%s\n", c.Name, num(c.ActiveObjects), num(c.Objects), num(c.ObjectSize), kbText(c.TotalBytes))
		}
	} else {
		p("Slab caches: section unavailable: %s\n", m.SlabCachesError)
	}

	p("\n=== Overall Buffer Usage Summary ===\n")
	if o := rep.Memory; o.Error == "" {
		p("Total memory: %s\n", kbText(o.Total))
		p("Free memory: %s\n", kbText(o.Free))
		p("Available memory: %s\n", kbText(o.Available))
		what := "buffers + cached + slab + page tables + socket buffers"
		if n.Sockets == nil {
			what = "buffers + cached + slab + page tables; socket buffers unknown"
		}
		switch {
		case o.Buffers == nil:
			p("Kernel buffers: unavailable (%s)\n", what)
		case o.Total == nil:
			p("Kernel buffers: %s (%s)\n", kbText(o.Buffers), what)
		default:
			share := 0.0
			if *o.Total > 0 {
				share = 100 * float64(*o.Buffers) / float64(*o.Total)
			}
			p("Kernel buffers: %s (%.1f%% of total; %s)\n", kbText(o.Buffers), share, what)
		}
	} else {
		p("section unavailable: %s\n", o.Error)
	}
	if len(rep.Skipped) > 0 {
		p("\n=== Skipped Input ===\n")
		for _, s := range rep.Skipped {
			p("%s\n", s)
		}
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
