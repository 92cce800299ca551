package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchLine is one result line of "go test -bench".
type benchLine struct {
	name    string  // without the -GOMAXPROCS suffix
	nsPerOp float64 // ns/op
	bPerOp  float64 // B/op, -1 when absent
	allocs  float64 // allocs/op, -1 when absent
	extra   string  // other reported metrics, such as "179.1 prog-ns/pkt"
}

var benchLineRE = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$`)

func parseBench(out string) []benchLine {
	var res []benchLine
	for _, l := range strings.Split(out, "\n") {
		m := benchLineRE.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		b := benchLine{name: m[1], bPerOp: -1, allocs: -1}
		b.nsPerOp, _ = strconv.ParseFloat(m[2], 64)
		f := strings.Fields(m[3])
		for i := 1; i < len(f); i++ {
			v, err := strconv.ParseFloat(f[i-1], 64)
			if err != nil {
				continue
			}
			switch f[i] {
			case "B/op":
				b.bPerOp = v
			case "allocs/op":
				b.allocs = v
			default:
				b.extra = strings.TrimSpace(b.extra + " " + f[i-1] + " " + f[i])
			}
			i++
		}
		res = append(res, b)
	}
	return res
}

// medianBench folds repeated runs (-count) of each benchmark into their
// median, in first-seen order.
func medianBench(lines []benchLine) []benchLine {
	var order []string
	runs := map[string][]benchLine{}
	for _, l := range lines {
		if _, ok := runs[l.name]; !ok {
			order = append(order, l.name)
		}
		runs[l.name] = append(runs[l.name], l)
	}
	var out []benchLine
	for _, n := range order {
		r := runs[n]
		sort.Slice(r, func(i, j int) bool { return r[i].nsPerOp < r[j].nsPerOp })
		out = append(out, r[len(r)/2])
	}
	return out
}

var intRE = regexp.MustCompile(`\d+`)

// sourcesIn is the largest number in a benchmark name (its source count),
// and the name with it replaced by N.
func sourcesIn(name string) (int, string) {
	best := -1
	for _, m := range intRE.FindAllString(name, -1) {
		if v, err := strconv.Atoi(m); err == nil && v > best {
			best = v
		}
	}
	if best < 0 {
		return -1, name
	}
	s := strconv.Itoa(best)
	i := strings.LastIndex(name, s)
	return best, name[:i] + "N" + name[i+len(s):]
}

// statsfsAggregates runs statsfs's BenchmarkAggregate* and checks the
// growth with the number of sources and the 100 000-source target.
func (h *harness) statsfsAggregates() error {
	const sec, what, target = "4", "statsfs aggregate over 100 000 sources", "< 2 ms"
	files, _ := filepath.Glob(filepath.Join(h.repo, "statsfs", "*_test.go"))
	found := false
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), "func BenchmarkAggregate") {
			found = true
		}
	}
	if !found {
		h.notRun(sec, what, target, "statsfs has no BenchmarkAggregate* benchmark yet")
		return nil
	}
	out, err := h.command("go", "test", "-run", "^$", "-bench", "^BenchmarkAggregate", "-benchmem", "-count", "3", "./statsfs/").CombinedOutput()
	h.detail("statsfs BenchmarkAggregate* (go test -run '^$' -bench '^BenchmarkAggregate' -benchmem -count 3 ./statsfs/)", "```\n"+strings.TrimSpace(string(out))+"\n```")
	if err != nil {
		return fmt.Errorf("go test -bench BenchmarkAggregate ./statsfs: %v\n%s", err, lastLines(out, 10))
	}
	type point struct {
		n  int
		ns float64
		b  benchLine
	}
	groups := map[string][]point{}
	var order []string
	for _, b := range medianBench(parseBench(string(out))) {
		n, g := sourcesIn(b.name)
		if n <= 0 {
			continue
		}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], point{n, b.nsPerOp, b})
	}
	if len(order) == 0 {
		return errors.New("no BenchmarkAggregate result names a source count")
	}
	for _, g := range order {
		pts := groups[g]
		sort.Slice(pts, func(i, j int) bool { return pts[i].n < pts[j].n })
		var vals []string
		for _, p := range pts {
			alloc := ""
			if p.b.allocs >= 0 {
				alloc = fmt.Sprintf(", %.0f allocs", p.b.allocs)
			}
			vals = append(vals, fmt.Sprintf("%d: %s%s", p.n, durNs(p.ns), alloc))
		}
		h.measured(sec, g+" ns/op by source count", strings.Join(vals, "; "), "", true)
		last := pts[len(pts)-1]
		if len(pts) >= 2 {
			// Linear: the cost per source at the largest count is within
			// 2× of the cost per source at the next one down.
			prev := pts[len(pts)-2]
			per1, per2 := prev.ns/float64(prev.n), last.ns/float64(last.n)
			h.measured(sec, g+" growth: ns per source at "+strconv.Itoa(prev.n)+" → "+strconv.Itoa(last.n),
				fmt.Sprintf("%.1f → %.1f ns", per1, per2), "linear (≤ 2× per source)", per2 <= 2*per1)
		}
		if last.n >= 100000 {
			h.measured(sec, g+" at "+strconv.Itoa(last.n)+" sources", durNs(last.ns), target, last.ns < 2e6)
		}
	}
	return nil
}

func durNs(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	default:
		return fmt.Sprintf("%.0f ns", ns)
	}
}

// valueFile picks a numeric value file of the mount, memory ones first.
func valueFile(mount string) (string, error) {
	var best, any string
	err := filepath.WalkDir(mount, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(mount, p)
		if d.IsDir() {
			if strings.Count(rel, "/") >= 3 || strings.HasPrefix(rel, "tracer/") {
				return fs.SkipDir
			}
			return nil
		}
		if best != "" {
			return fs.SkipAll
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) > 32 {
			return nil
		}
		if _, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err != nil {
			return nil
		}
		if any == "" {
			any = p
		}
		if strings.Contains(strings.ToLower(rel), "mem") {
			best = p
		}
		return nil
	})
	if best == "" {
		best = any
	}
	if best == "" {
		return "", fmt.Errorf("no numeric value file in the mount (%v)", err)
	}
	return best, nil
}

// readOnce opens, reads until EOF and closes path.
func readOnce(path string, buf []byte) error {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	for {
		n, err := syscall.Read(fd, buf)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

// fuseRead compares one value read through the FUSE mount with a read of
// /proc/meminfo, interleaved.
func (h *harness) fuseRead() error {
	const sec = "4"
	if h.daemon == nil || !h.daemon.alive() {
		h.notRun(sec, "FUSE value read", "", "no daemon")
		return nil
	}
	path, err := valueFile(h.daemon.mount)
	if err != nil {
		h.notRun(sec, "FUSE value read", "", err.Error())
		return nil
	}
	floor, err := h.startFuseFloor()
	if err != nil {
		h.notef("fuse: no bare go-fuse floor: %v", err)
	}
	buf := make([]byte, 64<<10)
	var fuse, bare, proc []time.Duration
	timed := func(p string) (time.Duration, error) {
		t := time.Now()
		err := readOnce(p, buf)
		return time.Since(t), err
	}
	for i := 0; i < h.cfg.fuseReads+20; i++ {
		df, err := timed(path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		var db time.Duration
		if floor != "" {
			if db, err = timed(floor); err != nil {
				return fmt.Errorf("reading %s: %w", floor, err)
			}
		}
		dp, err := timed("/proc/meminfo")
		if err != nil {
			return err
		}
		if i >= 20 {
			fuse, proc = append(fuse, df), append(proc, dp)
			if floor != "" {
				bare = append(bare, db)
			}
		}
	}
	rel, _ := filepath.Rel(h.daemon.mount, path)
	mf, mp := median(fuse), median(proc)
	h.measured(sec, fmt.Sprintf("FUSE value read (%s; open+read+close) median / p99 vs /proc/meminfo (%d reads)", rel, len(fuse)),
		fmt.Sprintf("%.1f / %.1f µs vs %.1f / %.1f µs (%.1f×)", float64(mf)/1e3, float64(percentile(fuse, 0.99))/1e3,
			float64(mp)/1e3, float64(percentile(proc, 0.99))/1e3, float64(mf)/math.Max(1, float64(mp))), "≤ 5×", float64(mf) <= 5*float64(mp))
	if len(bare) > 0 {
		mb := median(bare)
		h.measured(sec, "floor: the same read of a bare go-fuse file (one file, text made at open, kstat's open flags and cache timeouts, its own process) median / p99; kstat ÷ it",
			fmt.Sprintf("%.1f / %.1f µs (%.1f× /proc/meminfo); kstat %.2f× it", float64(mb)/1e3, float64(percentile(bare, 0.99))/1e3,
				float64(mb)/math.Max(1, float64(mp)), float64(mf)/math.Max(1, float64(mb))), "", true)
	}
	return nil
}
