package export

import (
	"bytes"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/collector"
)

// processCollector exports the process_* metrics of client_golang's
// process collector (the same names, help texts and types, which
// TestProcessCollectorMatchesClientGolang checks) from fewer reads. That
// collector parses the whole of /proc/stat on every scrape for the boot
// time, /proc/self/limits for two limits and /proc/self/net/netstat into
// maps, and cost /metrics more than kstat's own families; this one reads
// the boot time once, takes the limits from getrlimit(2), and reads
// /proc/self/stat and /proc/self/net/netstat into a buffer it reuses. A part it cannot read is left out, as client_golang's does
// without ReportErrors.
type processCollector struct {
	cpu, openFDs, maxFDs, vsize, maxVsize, rss, start, rx, tx *prometheus.Desc
	proc                                                      string // normally /proc
	pageSize                                                  float64

	mu       sync.Mutex // guards below
	bootTime float64    // /proc/stat's btime; 0 until read
	buf      []byte
	dirents  []byte
}

// userHZ is the kernel's USER_HZ, the unit of /proc/self/stat's times
// (100 on every Linux architecture Go runs on).
const userHZ = 100

func newProcessCollector(proc string) *processCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &processCollector{
		cpu:      d("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."),
		openFDs:  d("process_open_fds", "Number of open file descriptors."),
		maxFDs:   d("process_max_fds", "Maximum number of open file descriptors."),
		vsize:    d("process_virtual_memory_bytes", "Virtual memory size in bytes."),
		maxVsize: d("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes."),
		rss:      d("process_resident_memory_bytes", "Resident memory size in bytes."),
		start:    d("process_start_time_seconds", "Start time of the process since unix epoch in seconds."),
		rx:       d("process_network_receive_bytes_total", "Number of bytes received by the process over the network."),
		tx:       d("process_network_transmit_bytes_total", "Number of bytes sent by the process over the network."),
		proc:     proc,
		pageSize: float64(os.Getpagesize()),
	}
}

// Describe sends the descriptors.
func (c *processCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.cpu, c.openFDs, c.maxFDs, c.vsize, c.maxVsize, c.rss, c.start, c.rx, c.tx} {
		ch <- d
	}
}

// Collect reads the process's files and sends what it could read.
func (c *processCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	if st, ok := c.stat(); ok {
		counter(c.cpu, float64(st.utime+st.stime)/userHZ)
		gauge(c.vsize, float64(st.vsize))
		gauge(c.rss, float64(st.rss)*c.pageSize)
		if c.bootTime == 0 {
			c.bootTime = c.readBootTime()
		}
		if c.bootTime > 0 {
			gauge(c.start, c.bootTime+float64(st.starttime)/userHZ)
		}
	}
	if n, ok := c.countFDs(); ok {
		gauge(c.openFDs, float64(n))
	}
	var nofile, as unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile) == nil && unix.Getrlimit(unix.RLIMIT_AS, &as) == nil {
		gauge(c.maxFDs, float64(nofile.Cur))
		gauge(c.maxVsize, float64(as.Cur))
	}
	if in, out, ok := c.netstat(); ok {
		counter(c.rx, float64(in))
		counter(c.tx, float64(out))
	}
}

// procStat is what Collect uses of /proc/self/stat.
type procStat struct{ utime, stime, starttime, vsize, rss uint64 }

// stat reads /proc/self/stat: the fields after the command name (which
// ends at the line's last ')'), the state being field 3.
func (c *processCollector) stat() (procStat, bool) {
	var err error
	if c.buf, err = collector.ReadFile(c.proc+"/self/stat", c.buf); err != nil {
		return procStat{}, false
	}
	i := bytes.LastIndexByte(c.buf, ')')
	if i < 0 {
		return procStat{}, false
	}
	var st procStat
	rest := c.buf[i+1:]
	for n := 3; n <= 24; n++ {
		var f []byte
		f, rest = collector.NextField(rest)
		var p *uint64
		switch n {
		case 14:
			p = &st.utime
		case 15:
			p = &st.stime
		case 22:
			p = &st.starttime
		case 23:
			p = &st.vsize
		case 24:
			p = &st.rss
		default:
			continue
		}
		v, ok := collector.ParseUint(f)
		if !ok {
			return procStat{}, false
		}
		*p = v
	}
	return st, true
}

// readBootTime returns /proc/stat's btime, or 0.
func (c *processCollector) readBootTime() float64 {
	b, err := collector.ReadFile(c.proc+"/stat", nil)
	if err != nil {
		return 0
	}
	for len(b) > 0 {
		var line []byte
		line, b = collector.NextLine(b)
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			if t, ok := collector.ParseUint(bytes.TrimSpace(v)); ok {
				return float64(t)
			}
		}
	}
	return 0
}

// countFDs counts the process's descriptors: the size of /proc/self/fd
// since Linux 6.2, its entries before (its own descriptor among them, as
// client_golang counts).
func (c *processCollector) countFDs() (int, bool) {
	var st unix.Stat_t
	if err := unix.Stat(c.proc+"/self/fd", &st); err == nil && st.Size > 0 {
		return int(st.Size), true
	}
	fd, err := unix.Open(c.proc+"/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	if c.dirents == nil {
		c.dirents = make([]byte, 8192)
	}
	count := 0
	for {
		n, err := unix.Getdents(fd, c.dirents)
		if err != nil {
			return 0, false
		}
		if n <= 0 {
			return count, true
		}
		// linux_dirent64: ino (8), off (8), reclen (2), type (1), name.
		for b := c.dirents[:n]; len(b) >= 19; {
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 19 || reclen > len(b) {
				return 0, false
			}
			name := b[19:reclen]
			if j := bytes.IndexByte(name, 0); j >= 0 {
				name = name[:j]
			}
			if string(name) != "." && string(name) != ".." {
				count++
			}
			b = b[reclen:]
		}
	}
}

// netstat returns the IpExt InOctets and OutOctets of
// /proc/self/net/netstat (the process's network namespace's).
func (c *processCollector) netstat() (in, out uint64, ok bool) {
	var err error
	if c.buf, err = collector.ReadFile(c.proc+"/self/net/netstat", c.buf); err != nil {
		return 0, 0, false
	}
	prefix := []byte("IpExt:")
	for b := c.buf; len(b) > 0; {
		var names, values []byte
		names, b = collector.NextLine(b)
		if !bytes.HasPrefix(names, prefix) {
			continue
		}
		values, _ = collector.NextLine(b)
		if !bytes.HasPrefix(values, prefix) {
			return 0, 0, false
		}
		names, values = names[len(prefix):], values[len(prefix):]
		haveIn, haveOut := false, false
		for {
			var n, v []byte
			n, names = collector.NextField(names)
			v, values = collector.NextField(values)
			if len(n) == 0 || len(v) == 0 {
				break
			}
			switch string(n) {
			case "InOctets":
				in, haveIn = collector.ParseUint(v)
			case "OutOctets":
				out, haveOut = collector.ParseUint(v)
			}
		}
		return in, out, haveIn && haveOut
	}
	return 0, 0, false
}
