package collector

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: NameSockstat, Default: true,
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
	sockGauge(SockSocketsUsed, "sockets", "Sockets in use, all families and protocols (sockets: used)"),
	sockGauge(SockTCPInuse, "sockets", "IPv4 TCP sockets in use (TCP: inuse)"),
	sockGauge(SockTCPOrphan, "sockets", "TCP sockets no longer attached to a file (TCP: orphan)"),
	sockGauge(SockTCPTimeWait, "sockets", "TCP sockets in TIME_WAIT (TCP: tw)"),
	sockGauge(SockTCPAlloc, "sockets", "TCP sockets allocated, any state (TCP: alloc)"),
	sockGauge(SockTCPMemPages, "pages", "Pages of socket buffer memory held by TCP (TCP: mem)"),
	sockGauge(SockTCPMemBytes, "bytes", "Socket buffer memory held by TCP (TCP: mem times the page size)"),
	sockGauge(SockUDPInuse, "sockets", "IPv4 UDP sockets in use (UDP: inuse)"),
	sockGauge(SockUDPMemPages, "pages", "Pages of socket buffer memory held by UDP (UDP: mem)"),
	sockGauge(SockUDPMemBytes, "bytes", "Socket buffer memory held by UDP (UDP: mem times the page size)"),
	sockGauge(SockUDPLiteInuse, "sockets", "IPv4 UDP-Lite sockets in use (UDPLITE: inuse)"),
	sockGauge(SockRawInuse, "sockets", "IPv4 raw sockets in use (RAW: inuse)"),
	sockGauge(SockFragInuse, "queues", "IPv4 fragment reassembly queues in use (FRAG: inuse)"),
	sockGauge(SockFragMemoryBytes, "bytes", "Memory held by IPv4 fragment reassembly (FRAG: memory)"),
)

// Sockstat6Table is the table of net/sockstat6/, from /proc/net/sockstat6.
var Sockstat6Table = statsfs.NewTable(
	sockGauge(SockTCPInuse, "sockets", "IPv6 TCP sockets in use (TCP6: inuse)"),
	sockGauge(SockUDPInuse, "sockets", "IPv6 UDP sockets in use (UDP6: inuse)"),
	sockGauge(SockUDPLiteInuse, "sockets", "IPv6 UDP-Lite sockets in use (UDPLITE6: inuse)"),
	sockGauge(SockRawInuse, "sockets", "IPv6 raw sockets in use (RAW6: inuse)"),
	sockGauge(SockFragInuse, "queues", "IPv6 fragment reassembly queues in use (FRAG6: inuse)"),
	sockGauge(SockFragMemoryBytes, "bytes", "Memory held by IPv6 fragment reassembly (FRAG6: memory)"),
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

// parseSockstat reads sockstat text ("PROTO: key value key value ...")
// into vals, the fields' values in fields order, and sets bit i of the
// result for each field found. A value that is not an unsigned 64-bit
// number, a key without a value, a line without "PROTO:", or pages that do
// not fit in 64 bits as bytes make the line count as skipped in the
// *Skipped returned; the line's other pairs are kept.
func parseSockstat(data []byte, fields []sockstatField, pageSize uint64, vals []uint64) (uint64, error) {
	var found uint64
	var sk *Skipped
	for lineNo := 1; len(data) > 0; lineNo++ {
		var line []byte
		line, data = NextLine(data)
		proto, rest := NextField(line)
		if len(proto) == 0 {
			continue
		}
		if len(proto) < 2 || proto[len(proto)-1] != ':' {
			skip(&sk, fmt.Errorf("%w: line %d %q: no \"PROTO:\"", ErrMalformed, lineNo, line))
			continue
		}
		proto = proto[:len(proto)-1]
		var bad error
		for {
			var key, num []byte
			key, rest = NextField(rest)
			if len(key) == 0 {
				break
			}
			num, rest = NextField(rest)
			v, ok := ParseUint(num)
			if !ok {
				if bad == nil {
					bad = fmt.Errorf("%w: line %d: %s %s: %q is not a count", ErrMalformed, lineNo, proto, key, num)
				}
				continue
			}
			for i, f := range fields {
				if f.proto != string(proto) || f.key != string(key) {
					continue
				}
				if f.pages {
					if v > math.MaxUint64/pageSize {
						if bad == nil {
							bad = fmt.Errorf("%w: line %d: %s %s %d pages do not fit in 64 bits as bytes", ErrMalformed, lineNo, proto, key, v)
						}
						continue
					}
					vals[i] = v * pageSize
				} else {
					vals[i] = v
				}
				found |= 1 << i
			}
		}
		if bad != nil {
			skip(&sk, bad)
		}
	}
	return found, partial(sk)
}

// sockstatStore stores what parseSockstat found into c and marks the rest
// absent.
func sockstatStore(c *statsfs.Counters, found uint64, vals []uint64) {
	for i, v := range vals {
		if found&(1<<i) != 0 {
			c.Store(i, v)
		} else {
			c.SetAbsent(i)
		}
	}
}

// Sockstat is the "sockstat" collector: p.Proc/net/sockstat into net/ and
// p.Proc/net/sockstat6 into net/sockstat6/. Without IPv6 (no sockstat6)
// net/sockstat6/ is hidden and that is not an error. A field a file lacks
// is absent.
type Sockstat struct {
	*Refresher
	proc     string
	pageSize uint64
	v4, v6   *statsfs.Counters
	dir6     *statsfs.Source
	buf      []byte
	vals     [len(sockstatFields)]uint64
}

// newSockstat returns the collector for p.
func newSockstat(p Paths) *Sockstat {
	s := &Sockstat{
		proc:     p.Proc,
		pageSize: uint64(os.Getpagesize()),
		v4:       statsfs.NewCounters(SockstatTable),
		v6:       statsfs.NewCounters(Sockstat6Table),
		dir6:     statsfs.NewSource(sockstat6Dir),
	}
	s.Refresher = NewRefresher(NameSockstat, s.read)
	return s
}

// attach adds the values to net/ and net/sockstat6/ under parent.
func (s *Sockstat) attach(parent *statsfs.Source) error {
	net := Child(parent, DirNet)
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

// readFile parses one sockstat file into c.
func (s *Sockstat) readFile(name string, fields []sockstatField, c *statsfs.Counters) error {
	path := filepath.Join(s.proc, "net", name)
	var err error
	if s.buf, err = ReadFile(path, s.buf); err != nil {
		return err
	}
	vals := s.vals[:len(fields)]
	found, err := parseSockstat(s.buf, fields, s.pageSize, vals)
	sockstatStore(c, found, vals)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// read reads both files. A sockstat6 that does not exist hides
// net/sockstat6/; skipped lines of either file are counted.
func (s *Sockstat) read() error {
	err := s.readFile("sockstat", sockstatFields[:], s.v4)
	err6 := s.readFile("sockstat6", sockstat6Fields[:], s.v6)
	if errors.Is(err6, fs.ErrNotExist) {
		s.dir6.SetHidden(true)
		err6 = nil
	} else {
		s.dir6.SetHidden(false)
	}
	return errors.Join(err, err6)
}
