package tracer

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/ksym"
)

// LeakOptions select outstanding allocations for a leak report.
type LeakOptions struct {
	Pids      []uint32      // only these allocating thread groups (empty: all)
	OlderThan time.Duration // only allocations at least this old
	Top       int           // at most this many stacks (0: all)
}

// LeakStack is the outstanding allocations made from one kernel stack.
type LeakStack struct {
	StackID int32    `json:"stack_id"` // negative: allocations whose stack was not captured
	Count   uint64   `json:"count"`    // allocations
	Bytes   uint64   `json:"bytes"`    // bytes allocated
	Frames  []string `json:"frames"`   // function+offset, innermost first
	Pids    []uint32 `json:"pids"`     // allocating thread groups, ascending
}

// monotonicNs is bpf_ktime_get_ns's clock now.
func monotonicNs() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// Leaks groups outstanding allocations by kernel stack, most bytes first,
// symbolized with syms. The tracing machinery's own frames (the BPF
// program and bpf_trace_run) are left out.
func (t *Tracer) Leaks(syms *ksym.Table, opts LeakOptions) ([]LeakStack, error) {
	allocs, err := t.Allocs()
	if err != nil {
		return nil, err
	}
	want := map[uint32]bool{}
	for _, p := range opts.Pids {
		want[p] = true
	}
	now := monotonicNs()
	minAge := uint64(opts.OlderThan.Nanoseconds())
	groups := map[int32]*LeakStack{}
	pids := map[int32]map[uint32]bool{}
	for _, a := range allocs {
		if len(want) > 0 && !want[a.Pid] {
			continue
		}
		if a.TimeNs > now || now-a.TimeNs < minAge {
			continue
		}
		id := a.StackID
		if id < 0 {
			id = -1
		}
		g := groups[id]
		if g == nil {
			g = &LeakStack{StackID: id}
			groups[id] = g
			pids[id] = map[uint32]bool{}
		}
		w := uint64(max(a.Weight, 1)) // sampled: each tracked allocation stands for Weight
		g.Count += w
		g.Bytes += a.Size * w
		pids[id][a.Pid] = true
	}
	out := make([]LeakStack, 0, len(groups))
	for id, g := range groups {
		for p := range pids[id] {
			g.Pids = append(g.Pids, p)
		}
		sort.Slice(g.Pids, func(i, j int) bool { return g.Pids[i] < g.Pids[j] })
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		return out[i].StackID < out[j].StackID
	})
	if opts.Top > 0 && len(out) > opts.Top {
		out = out[:opts.Top]
	}
	for i := range out {
		if out[i].StackID < 0 {
			continue
		}
		frames, err := t.Stack(out[i].StackID)
		if err != nil {
			out[i].Frames = []string{fmt.Sprintf("[stack %d lost: %v]", out[i].StackID, err)}
			continue
		}
		out[i].Frames = symbolize(syms, frames)
	}
	return out, nil
}

// symbolize names frames, dropping the leading frames of the BPF program
// and the tracepoint glue that called it.
func symbolize(syms *ksym.Table, frames []uint64) []string {
	out := make([]string, 0, len(frames))
	lead := true
	for _, pc := range frames {
		s, _, ok := syms.Lookup(pc)
		if lead && (!ok || strings.HasPrefix(s.Name, "bpf_prog_") || strings.HasPrefix(s.Name, "bpf_trace_run") ||
			strings.HasPrefix(s.Name, "__bpf_trace_") || strings.HasPrefix(s.Name, "__traceiter_")) {
			continue
		}
		lead = false
		out = append(out, syms.Format(pc))
	}
	return out
}

// FormatLeaks prints stacks as bcc's memleak does: a line of bytes and
// allocations, then the frames indented.
func FormatLeaks(stacks []LeakStack) string {
	var b strings.Builder
	for _, s := range stacks {
		fmt.Fprintf(&b, "%d bytes in %d allocations from stack (pids %s)\n", s.Bytes, s.Count, joinPids(s.Pids))
		if s.StackID < 0 {
			b.WriteString("\t[stack not sampled]\n")
		}
		for _, f := range s.Frames {
			fmt.Fprintf(&b, "\t%s\n", f)
		}
	}
	return b.String()
}

func joinPids(pids []uint32) string {
	const most = 8
	parts := make([]string, 0, most+1)
	for i, p := range pids {
		if i == most {
			parts = append(parts, fmt.Sprintf("+%d more", len(pids)-most))
			break
		}
		parts = append(parts, fmt.Sprint(p))
	}
	return strings.Join(parts, ",")
}
