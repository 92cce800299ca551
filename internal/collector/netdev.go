package collector

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/kstat/kstat/statsfs"
)

func init() {
	Register(Info{Name: NameNetdev, Default: true,
		Help: "per-device packets, bytes, errors and drops from /proc/net/dev (and queue lengths from /sys/class/net) into net/dev/"},
		func(cfg Config) (Collector, error) {
			c := newNetdev(cfg.Paths)
			return c, c.attach(cfg.Root)
		})
}

// netdevFields is the number of counters on a /proc/net/dev line: eight
// receive (bytes packets errs drop fifo frame compressed multicast), then
// eight transmit (bytes packets errs drop fifo colls carrier compressed).
const netdevFields = 16

// Positions in a /proc/net/dev line's counters.
const (
	netdevRxBytes   = 0
	netdevRxPackets = 1
	netdevRxErrs    = 2
	netdevRxDrop    = 3
	netdevTxBytes   = 8
	netdevTxPackets = 9
	netdevTxErrs    = 10
	netdevTxDrop    = 11
)

// netdevEntry is one parsed line; name aliases the buffer that was parsed.
// ok is false when the name was read but the counters were not: the
// interface is there, its values are absent.
type netdevEntry struct {
	name []byte
	v    [netdevFields]uint64
	ok   bool
}

// parseNetdev parses /proc/net/dev text, appending one entry per interface
// to out[:0] and returning it; with a reused out it does not allocate when
// every line reads. The two header lines (those with '|') are skipped; an
// interface line is "name:" followed by exactly 16 unsigned 64-bit
// counters. The name ends at the line's last colon (counters hold none),
// so old kernels' alias names such as "ibr10:30" are read whole. A line
// that cannot be read is skipped and counted in the *Skipped it returns;
// when only its counters are bad the interface is kept with ok false.
func parseNetdev(data []byte, out []netdevEntry) ([]netdevEntry, error) {
	out = out[:0]
	var sk *Skipped
	for lineNo := 1; len(data) > 0; lineNo++ {
		var line []byte
		line, data = NextLine(data)
		colon, bar := -1, false
		for i, c := range line {
			if c == '|' {
				bar = true
			}
			if c == ':' {
				colon = i
			}
		}
		if bar {
			continue
		}
		if first, _ := NextField(line); len(first) == 0 {
			continue // a blank line
		}
		if colon < 0 {
			skip(&sk, fmt.Errorf("%w: line %d %q: no \"interface:\"", ErrMalformed, lineNo, line))
			continue
		}
		// The name is right-aligned before the colon; a large counter
		// may follow the colon without a space.
		name := trimBlanks(line[:colon])
		if !validName(name) {
			skip(&sk, fmt.Errorf("%w: line %d %q: bad interface name", ErrMalformed, lineNo, line))
			continue
		}
		out = append(out, netdevEntry{name: name})
		e := &out[len(out)-1]
		if err := netdevCounters(line[colon+1:], &e.v); err != nil {
			skip(&sk, fmt.Errorf("%w: line %d (%s): %w", ErrMalformed, lineNo, name, err))
			e.v = [netdevFields]uint64{}
			continue
		}
		e.ok = true
	}
	return out, partial(sk)
}

// netdevCounters reads exactly netdevFields counters from rest into v.
func netdevCounters(rest []byte, v *[netdevFields]uint64) error {
	for i := range netdevFields + 1 {
		var f []byte
		f, rest = NextField(rest)
		switch {
		case i == netdevFields && len(f) != 0:
			return fmt.Errorf("more than %d counters", netdevFields)
		case i == netdevFields:
		case len(f) == 0:
			return fmt.Errorf("%d counters, want %d", i, netdevFields)
		default:
			n, ok := ParseUint(f)
			if !ok {
				return fmt.Errorf("counter %d %q is not an unsigned 64-bit number", i+1, f)
			}
			v[i] = n
		}
	}
	return nil
}

// trimBlanks drops leading and trailing spaces and tabs.
func trimBlanks(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// validName reports whether name can be a directory of the tree: not
// empty, not "." or "..", no '/' or NUL, at most statsfs.MaxNameLen bytes.
// Spaces and any other bytes are kept as the kernel printed them.
func validName(name []byte) bool {
	if len(name) == 0 || len(name) > statsfs.MaxNameLen || string(name) == "." || string(name) == ".." {
		return false
	}
	for _, c := range name {
		if c == '/' || c == 0 {
			return false
		}
	}
	return true
}

// NetdevTable is the table of each net/dev/<iface>/ source; net/dev/ holds
// its sum over every interface.
var NetdevTable = statsfs.NewTable(
	statsfs.Value{Name: NetdevRxBytes, Help: "Bytes received by the interface", Type: statsfs.U64, Unit: "bytes", Aggr: statsfs.Sum, ReadOnly: true},
	statsfs.Value{Name: NetdevRxPackets, Help: "Packets received by the interface", Type: statsfs.U64, Unit: "packets", Aggr: statsfs.Sum, ReadOnly: true},
	statsfs.Value{Name: NetdevRxErrors, Help: "Receive errors of the interface", Type: statsfs.U64, Unit: "packets", Aggr: statsfs.Sum, ReadOnly: true},
	statsfs.Value{Name: NetdevRxDropped, Help: "Received packets dropped (no buffer, filtered, ...)", Type: statsfs.U64, Unit: "packets", Aggr: statsfs.Sum, ReadOnly: true},
	statsfs.Value{Name: NetdevTxBytes, Help: "Bytes sent by the interface", Type: statsfs.U64, Unit: "bytes", Aggr: statsfs.Sum, ReadOnly: true},
	statsfs.Value{Name: NetdevTxPackets, Help: "Packets sent by the interface", Type: statsfs.U64, Unit: "packets", Aggr: statsfs.Sum, ReadOnly: true},
	statsfs.Value{Name: NetdevTxErrors, Help: "Transmit errors of the interface", Type: statsfs.U64, Unit: "packets", Aggr: statsfs.Sum, ReadOnly: true},
	statsfs.Value{Name: NetdevTxDropped, Help: "Packets dropped on the way out", Type: statsfs.U64, Unit: "packets", Aggr: statsfs.Sum, ReadOnly: true},
	statsfs.Value{Name: NetdevTxQueueLen, Help: "Transmit queue length (/sys/class/net/<iface>/tx_queue_len, a setting re-read at most every 10 s; absent when sysfs does not show the interface)", Type: statsfs.U64, Unit: "packets", Aggr: statsfs.Sum, Flag: statsfs.Floating},
)

// netdevColumns maps NetdevTable's first values to /proc/net/dev counters.
var netdevColumns = [...]int{
	netdevRxBytes, netdevRxPackets, netdevRxErrs, netdevRxDrop,
	netdevTxBytes, netdevTxPackets, netdevTxErrs, netdevTxDrop,
}

// netdevQueueLen is tx_queue_len's index in NetdevTable.
const netdevQueueLen = len(netdevColumns)

// QueueLenMaxAge is how long a read of an interface's tx_queue_len serves:
// it is a setting, not a counter, and opening a sysfs file per interface
// on every read cost more than the rest of the collector's read. A new
// interface's is read at once.
const QueueLenMaxAge = 10 * time.Second

// netdevDev is one interface's source and cells.
type netdevDev struct {
	src   *statsfs.Source
	cells *statsfs.Counters
	qpath string // its tx_queue_len file
	pass  uint64 // the last read that saw it
	// The last read of qpath: when (zero: never), the value, and
	// whether the file was there and held a number.
	qtime time.Time
	qlen  uint64
	qok   bool
}

// Netdev is the "netdev" collector: p.Proc/net/dev and
// p.Sys/class/net/*/tx_queue_len into net/dev/<iface>/ sources that come
// and go with the interfaces, with their sum at net/dev/.
//
// /proc/net/dev lists the interfaces of the reader's network namespace
// (that of the process in whose /proc/<pid> the Proc root points), and
// sysfs those of the namespace that mounted it; give a root pair of the
// same namespace.
type Netdev struct {
	*Refresher
	path, sysNet string
	dir          *statsfs.Source
	buf, qbuf    []byte
	entries      []netdevEntry
	devs         map[string]*netdevDev
	pass         uint64
	now          func() time.Time // for tests of QueueLenMaxAge
}

// newNetdev returns the collector for p.
func newNetdev(p Paths) *Netdev {
	n := &Netdev{
		path:   filepath.Join(p.Proc, "net", "dev"),
		sysNet: filepath.Join(p.Sys, "class", "net"),
		dir:    statsfs.NewSource(netdevDir),
		devs:   map[string]*netdevDev{},
		now:    time.Now,
	}
	n.Refresher = NewRefresher(NameNetdev, n.read)
	return n
}

// attach adds net/dev/ under parent with the sums, and makes a first read
// so the interfaces are there before anyone lists the directory; a failed
// first read is in Status, not returned.
func (n *Netdev) attach(parent *statsfs.Source) error {
	// A hidden, all-zero record of the table in net/dev/ itself: the
	// sums visit it before they list the interfaces, so its refresh
	// brings interfaces that appeared in time for the sum that reads it,
	// and a failed read makes every sum absent rather than a sum of
	// nothing. Zeros change no Sum (every NetdevTable value sums). It is
	// added first so that a look-up by name finds the aggregate.
	refresh := statsfs.PartialFunc(func(int) (uint64, bool) { return 0, n.Refresh() == nil })
	if err := n.dir.AddValues(NetdevTable, refresh, statsfs.HiddenGroup); err != nil {
		return err
	}
	if err := n.dir.AddValues(NetdevTable, nil, 0); err != nil {
		return err
	}
	Child(parent, DirNet).AddSubordinate(n.dir)
	_ = n.Refresh()
	return nil
}

// read parses the file and stores every interface's counters (absent for
// an interface whose line was unreadable, and its tx_queue_len when sysfs
// does not have it), adds sources for new interfaces and revokes and
// removes those that are gone. Skipped lines are counted; a file that
// cannot be read at all fails the read and every value is absent.
func (n *Netdev) read() error {
	var err error
	n.buf, err = ReadFile(n.path, n.buf)
	if err != nil {
		return err
	}
	var sk *Skipped
	n.entries, err = parseNetdev(n.buf, n.entries)
	if err != nil && !errors.As(err, &sk) {
		return fmt.Errorf("%s: %w", n.path, err)
	}
	n.pass++
	for i := range n.entries {
		e := &n.entries[i]
		d := n.devs[string(e.name)]
		if d == nil {
			d = n.add(string(e.name))
		} else if d.pass == n.pass {
			skip(&sk, fmt.Errorf("%w: interface %q listed twice", ErrMalformed, e.name))
			continue
		}
		d.pass = n.pass
		for j, col := range netdevColumns {
			if e.ok {
				d.cells.Store(j, e.v[col])
			} else {
				d.cells.SetAbsent(j)
			}
		}
		if now := n.now(); d.qtime.IsZero() || now.Sub(d.qtime) >= QueueLenMaxAge {
			q, err := n.queueLen(d.qpath)
			d.qtime, d.qlen, d.qok = now, q, err == nil
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				skip(&sk, err)
			}
		}
		if d.qok {
			d.cells.Store(netdevQueueLen, d.qlen)
		} else {
			d.cells.SetAbsent(netdevQueueLen)
		}
	}
	for name, d := range n.devs {
		if d.pass != n.pass {
			n.dir.RemoveSubordinate(d.src)
			d.src.Revoke()
			delete(n.devs, name)
		}
	}
	if sk != nil {
		return fmt.Errorf("%s: %w", n.path, sk)
	}
	return nil
}

func (n *Netdev) add(name string) *netdevDev {
	d := &netdevDev{
		src:   statsfs.NewInstance("device", name),
		cells: statsfs.NewCounters(NetdevTable),
		qpath: filepath.Join(n.sysNet, name, "tx_queue_len"),
	}
	// A new table and record: AddValues cannot fail.
	_ = d.src.AddValues(NetdevTable, n.Record(d.cells), 0)
	n.dir.AddSubordinate(d.src)
	n.devs[name] = d
	return d
}

// queueLen reads a tx_queue_len file; a missing one (the interface just
// went, or sysfs is another namespace's) gives an error wrapping
// fs.ErrNotExist.
func (n *Netdev) queueLen(path string) (uint64, error) {
	var err error
	n.qbuf, err = ReadFile(path, n.qbuf)
	if err != nil {
		return 0, err
	}
	line, _ := NextLine(n.qbuf)
	v, ok := ParseUint(line)
	if !ok {
		return 0, fmt.Errorf("%s: %w: %q is not a number", path, ErrMalformed, line)
	}
	return v, nil
}
