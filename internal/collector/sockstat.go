package collector

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/prometheus/procfs"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: "sockstat", Default: true,
		Help: "socket use and socket buffer memory from /proc/net/sockstat and sockstat6 into net/"},
		func(cfg Config) (Collector, error) {
			c := newSockstat(cfg.Paths)
			return c, c.attach(cfg.Root)
		})
}

func sockGauge(name, unit, help string) statsfs.Value {
	return statsfs.Value{Name: name, Help: help, Type: statsfs.U64, Unit: unit, Flag: statsfs.Floating}
}

// SockstatTable is the table of net/: socket use from /proc/net/sockstat.
// Socket buffer memory is counted by the kernel in pages; the _bytes values
// are those pages times the page size.
var SockstatTable = statsfs.NewTable(
	sockGauge("sockets_used", "sockets", "Sockets in use, all families and protocols (sockets: used)"),
	sockGauge("tcp_inuse", "sockets", "IPv4 TCP sockets in use (TCP: inuse)"),
	sockGauge("tcp_orphan", "sockets", "TCP sockets no longer attached to a file (TCP: orphan)"),
	sockGauge("tcp_tw", "sockets", "TCP sockets in TIME_WAIT (TCP: tw)"),
	sockGauge("tcp_alloc", "sockets", "TCP sockets allocated, any state (TCP: alloc)"),
	sockGauge("tcp_mem_pages", "pages", "Pages of socket buffer memory held by TCP (TCP: mem)"),
	sockGauge("tcp_mem_bytes", "bytes", "Socket buffer memory held by TCP (TCP: mem times the page size)"),
	sockGauge("udp_inuse", "sockets", "IPv4 UDP sockets in use (UDP: inuse)"),
	sockGauge("udp_mem_pages", "pages", "Pages of socket buffer memory held by UDP (UDP: mem)"),
	sockGauge("udp_mem_bytes", "bytes", "Socket buffer memory held by UDP (UDP: mem times the page size)"),
	sockGauge("udplite_inuse", "sockets", "IPv4 UDP-Lite sockets in use (UDPLITE: inuse)"),
	sockGauge("raw_inuse", "sockets", "IPv4 raw sockets in use (RAW: inuse)"),
	sockGauge("frag_inuse", "queues", "IPv4 fragment reassembly queues in use (FRAG: inuse)"),
	sockGauge("frag_memory_bytes", "bytes", "Memory held by IPv4 fragment reassembly (FRAG: memory)"),
)

// Sockstat6Table is the table of net/sockstat6/, from /proc/net/sockstat6.
var Sockstat6Table = statsfs.NewTable(
	sockGauge("tcp_inuse", "sockets", "IPv6 TCP sockets in use (TCP6: inuse)"),
	sockGauge("udp_inuse", "sockets", "IPv6 UDP sockets in use (UDP6: inuse)"),
	sockGauge("udplite_inuse", "sockets", "IPv6 UDP-Lite sockets in use (UDPLITE6: inuse)"),
	sockGauge("raw_inuse", "sockets", "IPv6 raw sockets in use (RAW6: inuse)"),
	sockGauge("frag_inuse", "queues", "IPv6 fragment reassembly queues in use (FRAG6: inuse)"),
	sockGauge("frag_memory_bytes", "bytes", "Memory held by IPv6 fragment reassembly (FRAG6: memory)"),
)

// sockstatField names one number of a sockstat file: a protocol line and a
// key on it ("inuse", "orphan", "tw", "alloc", "mem", "memory").
type sockstatField struct {
	proto, key string
	pages      bool // multiply by the page size
}

var (
	sockstatFields = [...]sockstatField{
		{"sockets", "used", false},
		{"TCP", "inuse", false}, {"TCP", "orphan", false}, {"TCP", "tw", false}, {"TCP", "alloc", false},
		{"TCP", "mem", false}, {"TCP", "mem", true},
		{"UDP", "inuse", false}, {"UDP", "mem", false}, {"UDP", "mem", true},
		{"UDPLITE", "inuse", false}, {"RAW", "inuse", false},
		{"FRAG", "inuse", false}, {"FRAG", "memory", false},
	}
	sockstat6Fields = [...]sockstatField{
		{"TCP6", "inuse", false}, {"UDP6", "inuse", false}, {"UDPLITE6", "inuse", false},
		{"RAW6", "inuse", false}, {"FRAG6", "inuse", false}, {"FRAG6", "memory", false},
	}
)

// sockstatLookup finds field f in st.
func sockstatLookup(st *procfs.NetSockstat, f sockstatField) (int, bool) {
	if f.proto == "sockets" {
		if st.Used == nil {
			return 0, false
		}
		return *st.Used, true
	}
	for _, p := range st.Protocols {
		if p.Protocol != f.proto {
			continue
		}
		var v *int
		switch f.key {
		case "inuse":
			return p.InUse, true
		case "orphan":
			v = p.Orphan
		case "tw":
			v = p.TW
		case "alloc":
			v = p.Alloc
		case "mem":
			v = p.Mem
		case "memory":
			v = p.Memory
		}
		if v == nil {
			return 0, false
		}
		return *v, true
	}
	return 0, false
}

// sockstatStore stores fields of st into c; it stores nothing and names the
// first field it cannot find or that is negative.
func sockstatStore(st *procfs.NetSockstat, fields []sockstatField, c *statsfs.Counters, pageSize uint64) error {
	vals := make([]uint64, len(fields))
	for i, f := range fields {
		v, ok := sockstatLookup(st, f)
		if !ok {
			return fmt.Errorf("%w: no %q on the %s line", ErrMalformed, f.key, f.proto)
		}
		if v < 0 {
			return fmt.Errorf("%w: %s %s is negative (%d)", ErrMalformed, f.proto, f.key, v)
		}
		vals[i] = uint64(v)
		if f.pages {
			if vals[i] > math.MaxUint64/pageSize {
				return fmt.Errorf("%w: %s %s %d pages do not fit in 64 bits as bytes", ErrMalformed, f.proto, f.key, v)
			}
			vals[i] *= pageSize
		}
	}
	for i, v := range vals {
		c.Store(i, v)
	}
	return nil
}

// Sockstat is the "sockstat" collector: p.Proc/net/sockstat into net/ and
// p.Proc/net/sockstat6 into net/sockstat6/, parsed with
// github.com/prometheus/procfs. Without IPv6 (no sockstat6) net/sockstat6/
// is hidden and that is not an error.
type Sockstat struct {
	*Refresher
	proc     string
	pageSize uint64
	v4, v6   *statsfs.Counters
	dir6     *statsfs.Source
}

// newSockstat returns the collector for p.
func newSockstat(p Paths) *Sockstat {
	s := &Sockstat{
		proc:     p.Proc,
		pageSize: uint64(os.Getpagesize()),
		v4:       statsfs.NewCounters(SockstatTable),
		v6:       statsfs.NewCounters(Sockstat6Table),
		dir6:     statsfs.NewSource("sockstat6"),
	}
	s.Refresher = NewRefresher("sockstat", s.read)
	return s
}

// attach adds the values to net/ and net/sockstat6/ under parent.
func (s *Sockstat) attach(parent *statsfs.Source) error {
	net := Child(parent, "net")
	if err := net.AddValues(SockstatTable, s.Record(s.v4), 0); err != nil {
		return err
	}
	if err := s.dir6.AddValues(Sockstat6Table, s.Record(s.v6), 0); err != nil {
		return err
	}
	net.AddSubordinate(s.dir6)
	_ = s.Refresh() // hides sockstat6/ at once without IPv6
	return nil
}

func (s *Sockstat) read() error {
	pfs, err := procfs.NewFS(s.proc)
	if err != nil {
		return err
	}
	// procfs's errors name the file; sockstatStore's do not.
	st, err := pfs.NetSockstat()
	if err == nil {
		if err = sockstatStore(st, sockstatFields[:], s.v4, s.pageSize); err != nil {
			err = fmt.Errorf("%s: %w", filepath.Join(s.proc, "net", "sockstat"), err)
		}
	}
	st6, err6 := pfs.NetSockstat6()
	if errors.Is(err6, fs.ErrNotExist) {
		s.dir6.SetHidden(true)
		return err
	}
	s.dir6.SetHidden(false)
	if err6 == nil {
		if err6 = sockstatStore(st6, sockstat6Fields[:], s.v6, s.pageSize); err6 != nil {
			err6 = fmt.Errorf("%s: %w", filepath.Join(s.proc, "net", "sockstat6"), err6)
		}
	}
	return errors.Join(err, err6)
}
