package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// floorFiles are the /proc files kstat's bufstat and telemetry collectors
// and node_exporter's meminfo, netdev, sockstat, interrupts and stat
// collectors have in common.
var floorFiles = []string{"/proc/meminfo", "/proc/net/dev", "/proc/net/sockstat", "/proc/interrupts", "/proc/stat"}

// kstatFiles are the files kstat's scrape reads beyond floorFiles (its
// bufstat and telemetry collectors); a second floor, for context.
// /proc/slabinfo is apart: kstat reads it at most every 2 s.
var kstatFiles = []string{"/proc/net/sockstat6", "/proc/softirqs", "/proc/loadavg", "/proc/uptime"}

// neCollectors are the node_exporter collectors matching kstat's.
var neCollectors = []string{"meminfo", "netdev", "sockstat", "interrupts", "stat"}

// exporter is one /metrics endpoint being scraped.
type exporter struct {
	name   string
	url    string
	client *http.Client
	lat    []time.Duration
	allocs []float64 // go_memstats_alloc_bytes_total at each scrape
	bytes  int
	series int
	// lastDur is each collector's kstat_scrape_collector_duration_seconds
	// in the previous scrape; a changed value means the collector read its
	// file again for this scrape (slabinfo, for one, refreshes only every
	// 2 s).
	lastDur map[string]float64
	fresh   []time.Duration // per scrape: the durations of the collectors that read again
	reads   map[string]int  // per collector: scrapes in which it read again
	readDur map[string][]time.Duration
}

func newExporter(name, addr string) *exporter {
	return &exporter{
		name: name,
		url:  "http://" + addr + "/metrics",
		// Plain text, no gzip: both exporters do the same work, and the
		// latency is the exporter's, not the compressor's.
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1}},
	}
}

// scrape fetches /metrics once and records its latency and the exporter's
// allocation counter.
func (e *exporter) scrape(record bool) error {
	start := time.Now()
	resp, err := e.client.Get(e.url)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", e.url, resp.Status)
	}
	if !record {
		return nil
	}
	e.lat = append(e.lat, d)
	e.bytes = len(body)
	e.series = 0
	alloc := -1.0
	var fresh time.Duration
	if e.lastDur == nil {
		e.lastDur, e.reads, e.readDur = map[string]float64{}, map[string]int{}, map[string][]time.Duration{}
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Bytes()
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		e.series++
		if v, ok := bytes.CutPrefix(l, []byte("go_memstats_alloc_bytes_total ")); ok {
			alloc, _ = strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
		}
		if v, ok := bytes.CutPrefix(l, []byte(`kstat_scrape_collector_duration_seconds{collector="`)); ok {
			name, val, ok := bytes.Cut(v, []byte(`"} `))
			if f, err := strconv.ParseFloat(string(bytes.TrimSpace(val)), 64); ok && err == nil {
				n := string(name)
				if last, seen := e.lastDur[n]; seen && last != f {
					fresh += time.Duration(f * 1e9)
					e.reads[n]++
					e.readDur[n] = append(e.readDur[n], time.Duration(f*1e9))
				}
				e.lastDur[n] = f
			}
		}
	}
	e.allocs = append(e.allocs, alloc)
	if len(e.allocs) > 1 {
		e.fresh = append(e.fresh, fresh)
	}
	return nil
}

// allocPerScrape is the exporter's own allocation counter's growth per
// scrape (background work included), or -1 when it does not export it.
func (e *exporter) allocPerScrape() float64 {
	if len(e.allocs) < 2 || e.allocs[0] < 0 || e.allocs[len(e.allocs)-1] < 0 {
		return -1
	}
	return (e.allocs[len(e.allocs)-1] - e.allocs[0]) / float64(len(e.allocs)-1)
}

// fileSet is a list of files with their names as C strings, made once so
// that reading them allocates nothing.
type fileSet struct {
	names []string
	ptrs  []*byte
}

func newFileSet(names ...string) fileSet {
	fs := fileSet{names: names}
	for _, n := range names {
		p, err := syscall.BytePtrFromString(n)
		if err != nil {
			panic(err)
		}
		fs.ptrs = append(fs.ptrs, p)
	}
	return fs
}

// read reads each file with openat(2), read(2) until EOF and close(2)
// into buf, and nothing else.
func (fs fileSet) read(buf []byte) error {
	for i, p := range fs.ptrs {
		fd, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(p)),
			syscall.O_RDONLY|syscall.O_CLOEXEC, 0, 0, 0)
		if errno != 0 {
			return fmt.Errorf("open %s: %w", fs.names[i], errno)
		}
		for {
			n, err := syscall.Read(int(fd), buf)
			if err != nil {
				syscall.Close(int(fd))
				return fmt.Errorf("read %s: %w", fs.names[i], err)
			}
			if n == 0 {
				break
			}
		}
		syscall.Close(int(fd))
	}
	return nil
}

// atFDCWD is AT_FDCWD, a variable so that it converts to uintptr.
var atFDCWD = -100

// startNodeExporter runs the pinned node_exporter with only the collectors
// matching kstat's, on a loopback port.
func (h *harness) startNodeExporter() (addr string, stop func(), err error) {
	if h.nodeExp == "" {
		return "", nil, errors.New("node_exporter is not installed")
	}
	addr, err = freePort()
	if err != nil {
		return "", nil, err
	}
	args := []string{"--collector.disable-defaults", "--web.listen-address=" + addr}
	for _, c := range neCollectors {
		args = append(args, "--collector."+c)
	}
	logPath := filepath.Join(h.cfg.outDir, "node_exporter.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(h.nodeExp, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	h.logf("   starting %s %s", h.nodeExp, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	stop = func() {
		select {
		case <-exited:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	h.atExit(stop)
	e := newExporter("node_exporter", addr)
	for i := 0; i < 100; i++ {
		if err = e.scrape(false); err == nil {
			return addr, stop, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("node_exporter did not answer: %v", err)
}

// scrapeCost scrapes kstat and node_exporter and reads the floor in turn,
// one round every -scrape-gap, so all three see the same machine.
func (h *harness) scrapeCost() error {
	const sec = "1"
	var ks, ne *exporter
	switch {
	case h.daemon == nil:
		h.notRun(sec, "kstat /metrics", "", "no daemon")
	case h.daemon.listen == "":
		h.notRun(sec, "kstat /metrics", "", "kstat serve has no --listen (HTTP exporter not landed)")
	default:
		ks = newExporter("kstat", h.daemon.listen)
		// The tracer's per-pid series are not part of this comparison:
		// node_exporter has no counterpart.
		if h.daemon.has("tracer/enable") {
			if err := h.daemon.set("tracer/enable", "0"); err != nil {
				h.notef("scrape: %v", err)
			}
			defer func() {
				if err := h.daemon.set("tracer/enable", "1"); err != nil {
					h.notef("scrape: %v", err)
				}
			}()
		}
	}
	if addr, stop, err := h.startNodeExporter(); err != nil {
		h.notRun(sec, "node_exporter /metrics", "", err.Error())
	} else {
		defer stop()
		ne = newExporter("node_exporter", addr)
	}
	var fp *footprint
	if ks != nil {
		var err error
		if fp, err = beginFootprint(h.daemon.pid); err != nil {
			return err
		}
	}

	buf := make([]byte, 256<<10)
	floorSet := newFileSet(floorFiles...)
	wideSet := newFileSet(kstatFiles...)
	slabSet := newFileSet("/proc/slabinfo")
	var floor, wide, slab []time.Duration
	const warm = 10
	for i := 0; i < warm+h.cfg.scrapes; i++ {
		round := time.Now()
		rec := i >= warm
		for _, e := range []*exporter{ks, ne} {
			if e == nil {
				continue
			}
			if err := e.scrape(rec); err != nil {
				return fmt.Errorf("scraping %s: %w", e.name, err)
			}
		}
		start := time.Now()
		if err := floorSet.read(buf); err != nil {
			return err
		}
		mid := time.Now()
		if err := wideSet.read(buf); err != nil {
			return err
		}
		end := time.Now()
		if i%10 == 0 {
			if err := slabSet.read(buf); err != nil {
				return err
			}
			slab = append(slab, time.Since(end))
		}
		if rec {
			floor = append(floor, mid.Sub(start))
			wide = append(wide, end.Sub(mid))
		}
		time.Sleep(time.Until(round.Add(h.cfg.scrapeGap)))
	}
	// Back to back, kstat's collectors serve from their 50 ms cache: what
	// is left is the exposition and HTTP. node_exporter reads /proc each
	// time.
	var b2b []*exporter
	for _, e := range []*exporter{ks, ne} {
		if e == nil {
			continue
		}
		c := newExporter(e.name, strings.TrimSuffix(strings.TrimPrefix(e.url, "http://"), "/metrics"))
		for i := 0; i < 110; i++ {
			if err := c.scrape(i >= 10); err != nil {
				return fmt.Errorf("scraping %s: %w", c.name, err)
			}
		}
		b2b = append(b2b, c)
	}
	// The floor's own allocations, measured apart from the interleaved loop.
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i := 0; i < 100; i++ {
		_ = floorSet.read(buf)
	}
	runtime.ReadMemStats(&m1)
	floorAlloc := float64(m1.TotalAlloc-m0.TotalAlloc) / 100

	fm := median(floor)
	h.measured(sec, fmt.Sprintf("floor: read(2) of %d files, median / p99 (%d rounds)", len(floorFiles), len(floor)),
		fmt.Sprintf("%s / %s, %.0f B allocated", us(fm), us(percentile(floor, 0.99)), floorAlloc), "", true)
	h.measured(sec, fmt.Sprintf("read(2) of the other files kstat reads every scrape (%s), median / p99", strings.Join(kstatFiles, " ")),
		fmt.Sprintf("%s / %s", us(median(wide)), us(percentile(wide, 0.99))), "", true)
	h.measured(sec, fmt.Sprintf("/proc/slabinfo alone (kstat reads it at most every 2 s), median of %d", len(slab)), us(median(slab)), "", true)
	for _, e := range []*exporter{ne, ks} {
		if e == nil {
			continue
		}
		alloc := "n/a"
		if a := e.allocPerScrape(); a >= 0 {
			alloc = fmt.Sprintf("%.0f kB", a/1000)
		}
		h.measured(sec, fmt.Sprintf("%s /metrics median / p99 (%d scrapes); alloc per scrape; body, series", e.name, len(e.lat)),
			fmt.Sprintf("%s / %s; %s; %.0f kB, %d series", us(median(e.lat)), us(percentile(e.lat, 0.99)), alloc, float64(e.bytes)/1000, e.series), "", true)
	}
	if ks != nil && len(ks.reads) > 0 {
		type col struct {
			name  string
			d     time.Duration
			reads int
		}
		var cols []col
		for n, c := range ks.reads {
			cols = append(cols, col{n, median(ks.readDur[n]), c})
		}
		sort.Slice(cols, func(i, j int) bool { return cols[i].d > cols[j].d })
		var top []string
		for _, c := range cols[:min(5, len(cols))] {
			top = append(top, fmt.Sprintf("%s %s in %d%% of scrapes", c.name, us(c.d), c.reads*100/max(1, len(ks.fresh))))
		}
		h.measured(sec, "kstat: its collectors' fresh reads per scrape (kstat_scrape_collector_duration_seconds that changed), median / p99; largest read medians",
			fmt.Sprintf("%s / %s; %s", us(median(ks.fresh)), us(percentile(ks.fresh, 0.99)), strings.Join(top, ", ")), "", true)
	}
	for _, c := range b2b {
		h.measured(sec, fmt.Sprintf("%s /metrics back to back, median / p99 (%d scrapes; kstat's collectors then serve from their 50 ms cache)", c.name, len(c.lat)),
			fmt.Sprintf("%s / %s", us(median(c.lat)), us(percentile(c.lat, 0.99))), "", true)
	}
	if ks != nil && ne != nil {
		r := float64(median(ks.lat)) / float64(median(ne.lat))
		h.measured(sec, "kstat median ÷ node_exporter median", fmt.Sprintf("%.2f×", r), "≤ 0.5×", r <= 0.5)
	}
	if ks != nil {
		r := float64(median(ks.lat)) / float64(fm)
		h.measured(sec, "kstat median ÷ floor median", fmt.Sprintf("%.2f×", r), "≤ 3×", r <= 3)
	}
	if fp != nil {
		cpu, maxRSS, _, window, err := fp.end()
		if err == nil {
			h.measured("5", fmt.Sprintf("daemon CPU while scraped every %s (%s)", h.cfg.scrapeGap, window.Round(time.Second)),
				fmt.Sprintf("%.1f%% of a core, max RSS %s", cpu, mib(maxRSS)), "≤ 30 MB", maxRSS*1024 <= 30e6)
		}
	}
	return nil
}

func sorted(d []time.Duration) []time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

func median(d []time.Duration) time.Duration { return percentile(d, 0.5) }

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := sorted(d)
	i := int(p*float64(len(s)-1) + 0.5)
	return s[min(i, len(s)-1)]
}

// us formats a duration in microseconds.
func us(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/1e3)
}
