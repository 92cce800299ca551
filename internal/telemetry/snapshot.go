// Package telemetry samples kstat's statistics tree into timestamped
// snapshots (uptime, memory, interrupts, context switches, forks, tasks,
// load, softirqs) with per-second rates from the previous snapshot, keeps
// the last N in a ring, and appends them to a JSON-lines log. It re-creates
// the telemetry kernel module's /proc/telemetry ring and its user-space
// JSON logger, reading only the tree (system/, memory/, irq/, softirq/),
// never /proc.
package telemetry

import (
	"fmt"
	"strings"
	"time"

	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/statsfs"
)

// Snapshot is the tree's telemetry values at one moment.
type Snapshot struct {
	Seq  uint64    `json:"seq"`  // 1 for the first snapshot of a sampler
	Time time.Time `json:"time"` // when the snapshot was taken
	// Interval is the time since the previous snapshot, which Rates divide
	// by; 0 for the first.
	Interval float64 `json:"interval_seconds"`

	UptimeSeconds   float64    `json:"uptime_seconds"`
	Memory          *Memory    `json:"memory"` // nil when the tree has no memory/
	ContextSwitches uint64     `json:"context_switches"`
	Forks           uint64     `json:"forks"`
	Interrupts      uint64     `json:"interrupts"` // serviced since boot (/proc/stat intr)
	Softirqs        uint64     `json:"softirqs"`
	ProcsRunning    uint64     `json:"procs_running"`
	ProcsBlocked    uint64     `json:"procs_blocked"`
	Load            [3]float64 `json:"load"` // 1, 5 and 15 minutes
	IRQs            []Line     `json:"irqs"` // irq/<line>/, in tree order
	SoftirqVectors  []Line     `json:"softirq_vectors"`
	// Rates are per second since the previous snapshot; nil for the first.
	Rates *Rates `json:"rates,omitempty"`
	// Missing names the tree paths the snapshot wanted and did not find,
	// such as "memory" when the meminfo collector did not start, and the
	// values that were unavailable ("memory/available" on a kernel without
	// MemAvailable); those read 0 here.
	Missing []string `json:"missing,omitempty"`
}

// Memory is memory/'s totals, in bytes.
type Memory struct {
	Total     uint64 `json:"total_bytes"`
	Free      uint64 `json:"free_bytes"`
	Available uint64 `json:"available_bytes"`
}

// Line is one IRQ line or softirq vector.
type Line struct {
	Name  string `json:"name"`
	Count uint64 `json:"count"` // the kernel's count since boot
	// BPF is the eBPF count of handler entries since kstat attached, when
	// the programs run.
	BPF  *uint64 `json:"bpf_entries,omitempty"`
	Desc string  `json:"description,omitempty"`
	// Rate is Count's per-second rate since the previous snapshot, when
	// the line was there and its count did not go back.
	Rate *float64 `json:"rate,omitempty"`
}

// Rates are per-second rates of the cumulative values.
type Rates struct {
	ContextSwitches float64 `json:"context_switches"`
	Forks           float64 `json:"forks"`
	Interrupts      float64 `json:"interrupts"`
	Softirqs        float64 `json:"softirqs"`
}

// Paths are the subtrees a snapshot reads.
var Paths = []string{collector.DirSystem, collector.DirMemory, collector.DirIRQ, collector.DirSoftirq}

// roots are the visible sources at Paths below root.
func roots(root *statsfs.Source) []*statsfs.Source {
	var out []*statsfs.Source
	for _, p := range Paths {
		if s := root.FindVisible(p); s != nil {
			out = append(out, s)
		}
	}
	return out
}

// reader reads values of the tree from a pass, noting what is missing.
type reader struct {
	pass    *statsfs.Pass
	missing []string
}

func (r *reader) source(root *statsfs.Source, path string) *statsfs.Source {
	s := root.FindVisible(path)
	if s == nil {
		r.missing = append(r.missing, path)
		return nil
	}
	return s
}

// value reads the value name of s; false when s has none.
func (r *reader) value(s *statsfs.Source, name string) (statsfs.ValueRef, statsfs.Reading, bool) {
	v, err := s.LookupName(name)
	if err != nil {
		return v, statsfs.Reading{}, false
	}
	return v, r.pass.Read(v), true
}

func (r *reader) get(s *statsfs.Source, path, name string) statsfs.Reading {
	if s == nil {
		return statsfs.Reading{}
	}
	_, v, ok := r.value(s, name)
	if !ok || v.Absent {
		r.missing = append(r.missing, path+"/"+name)
	}
	return v
}

// lines reads every visible instance under path.
func (r *reader) lines(root *statsfs.Source, path string) []Line {
	parent := r.source(root, path)
	if parent == nil {
		return nil
	}
	var out []Line
	for _, s := range parent.Subordinates() {
		if s.Hidden() {
			continue
		}
		l := Line{Name: s.Name(), Count: r.get(s, path+"/"+s.Name(), collector.LineCount).Uint64()}
		if _, v, ok := r.value(s, collector.LineBPFEntries); ok {
			n := v.Uint64()
			l.BPF = &n
		}
		if d, v, ok := r.value(s, collector.LineDescription); ok {
			l.Desc = strings.TrimSpace(d.Value().Text(v))
		}
		out = append(out, l)
	}
	return out
}

// Take reads a snapshot from root, numbered seq, with rates from prev
// (nil for none), in one pass over Paths.
func Take(root *statsfs.Source, seq uint64, now time.Time, prev *Snapshot) Snapshot {
	var p statsfs.Pass
	p.Take(roots(root)...)
	return take(&p, root, seq, now, prev)
}

// take is Take from a pass that read Paths.
func take(p *statsfs.Pass, root *statsfs.Source, seq uint64, now time.Time, prev *Snapshot) Snapshot {
	r := reader{pass: p}
	s := Snapshot{Seq: seq, Time: now}
	sys := r.source(root, collector.DirSystem)
	s.UptimeSeconds = r.get(sys, collector.DirSystem, collector.SystemUptimeSeconds).Float64()
	s.ContextSwitches = r.get(sys, collector.DirSystem, collector.SystemContextSwitches).Uint64()
	s.Forks = r.get(sys, collector.DirSystem, collector.SystemForks).Uint64()
	s.Interrupts = r.get(sys, collector.DirSystem, collector.SystemInterrupts).Uint64()
	s.Softirqs = r.get(sys, collector.DirSystem, collector.SystemSoftirqs).Uint64()
	s.ProcsRunning = r.get(sys, collector.DirSystem, collector.SystemProcsRunning).Uint64()
	s.ProcsBlocked = r.get(sys, collector.DirSystem, collector.SystemProcsBlocked).Uint64()
	for i, name := range []string{collector.SystemLoad1, collector.SystemLoad5, collector.SystemLoad15} {
		s.Load[i] = r.get(sys, collector.DirSystem, name).Float64()
	}
	if mem := r.source(root, collector.DirMemory); mem != nil {
		s.Memory = &Memory{
			Total:     r.get(mem, collector.DirMemory, collector.MemoryTotal).Uint64(),
			Free:      r.get(mem, collector.DirMemory, collector.MemoryFree).Uint64(),
			Available: r.get(mem, collector.DirMemory, collector.MemoryAvailable).Uint64(),
		}
	}
	s.IRQs = r.lines(root, collector.DirIRQ)
	s.SoftirqVectors = r.lines(root, collector.DirSoftirq)
	s.Missing = r.missing
	if prev != nil {
		s.rates(prev)
	}
	return s
}

// rates fills Interval and the rates from prev.
func (s *Snapshot) rates(prev *Snapshot) {
	dt := s.Time.Sub(prev.Time).Seconds()
	if dt <= 0 {
		return
	}
	s.Interval = dt
	rate := func(cur, old uint64) float64 {
		if cur < old {
			return 0 // the counter went back (a reset); no rate
		}
		return float64(cur-old) / dt
	}
	s.Rates = &Rates{
		ContextSwitches: rate(s.ContextSwitches, prev.ContextSwitches),
		Forks:           rate(s.Forks, prev.Forks),
		Interrupts:      rate(s.Interrupts, prev.Interrupts),
		Softirqs:        rate(s.Softirqs, prev.Softirqs),
	}
	lineRates(s.IRQs, prev.IRQs, dt)
	lineRates(s.SoftirqVectors, prev.SoftirqVectors, dt)
}

func lineRates(cur, prev []Line, dt float64) {
	old := make(map[string]uint64, len(prev))
	for _, l := range prev {
		old[l.Name] = l.Count
	}
	for i := range cur {
		if o, ok := old[cur[i].Name]; ok && cur[i].Count >= o {
			r := float64(cur[i].Count-o) / dt
			cur[i].Rate = &r
		}
	}
}

// Text is the snapshot as one readable block, ending in a newline. Lines
// whose count is 0 are left out and counted.
func (s *Snapshot) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "snapshot %d at %s", s.Seq, s.Time.UTC().Format("2006-01-02T15:04:05.000Z"))
	if s.Interval > 0 {
		fmt.Fprintf(&b, ", %.3fs after the previous", s.Interval)
	}
	b.WriteString("\n")
	row := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "  %-17s "+format+"\n", append([]any{name}, args...)...)
	}
	var rt Rates
	if s.Rates != nil {
		rt = *s.Rates
	}
	withRate := func(v uint64, r float64) string {
		if s.Rates == nil {
			return fmt.Sprint(v)
		}
		return fmt.Sprintf("%d (%.1f/s)", v, r)
	}
	row("uptime", "%.2f s", s.UptimeSeconds)
	if m := s.Memory; m != nil {
		row("memory", "total %s, free %s, available %s", mib(m.Total), mib(m.Free), mib(m.Available))
	} else {
		row("memory", "unavailable: the tree has no memory/ (the meminfo collector did not start)")
	}
	row("context switches", "%s", withRate(s.ContextSwitches, rt.ContextSwitches))
	row("forks", "%s", withRate(s.Forks, rt.Forks))
	row("tasks", "%d running, %d blocked", s.ProcsRunning, s.ProcsBlocked)
	row("load", "%.2f %.2f %.2f", s.Load[0], s.Load[1], s.Load[2])
	row("interrupts", "%s", withRate(s.Interrupts, rt.Interrupts))
	writeLines(&b, "irq", s.IRQs)
	row("softirqs", "%s", withRate(s.Softirqs, rt.Softirqs))
	writeLines(&b, "softirq", s.SoftirqVectors)
	if len(s.Missing) > 0 {
		row("missing", "%s", strings.Join(s.Missing, ", "))
	}
	return b.String()
}

func writeLines(b *strings.Builder, kind string, lines []Line) {
	zero := 0
	for _, l := range lines {
		if l.Count == 0 && (l.BPF == nil || *l.BPF == 0) {
			zero++
			continue
		}
		fmt.Fprintf(b, "    %-7s %-8s %12d", kind, l.Name, l.Count)
		if l.Rate != nil {
			fmt.Fprintf(b, " %9.1f/s", *l.Rate)
		}
		if l.BPF != nil {
			fmt.Fprintf(b, "  ebpf %d", *l.BPF)
		}
		if l.Desc != "" {
			fmt.Fprintf(b, "  %s", l.Desc)
		}
		b.WriteString("\n")
	}
	if zero > 0 {
		fmt.Fprintf(b, "    (%d %s lines at 0 not shown)\n", zero, kind)
	}
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
