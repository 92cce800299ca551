package tracer

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// FunctionNames are the kernel functions the original kprobe tracer
// counted: locks, allocations, process creation and exit. Each entry lists
// the names the function has had; the first one the kernel has is used.
var FunctionNames = [][]string{
	{"mutex_lock"}, {"mutex_unlock"}, {"down"}, {"up"},
	{"__kmalloc_noprof", "__kmalloc"}, {"kfree"},
	{"kernel_clone", "_do_fork"}, {"do_exit"},
}

// Functions counts calls of named kernel functions with fentry programs,
// or kprobes where fentry is missing. Close detaches them.
type Functions struct {
	Method string // "fentry" or "kprobe"
	names  []string
	counts *ebpf.Map
	links  []link.Link
	progs  []*ebpf.Program
}

// countInsns adds one to slot i of a per-CPU array.
func countInsns(m *ebpf.Map, i int) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, -4, int64(i), asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	}
}

// AttachFunctions tries fentry, then kprobes, on every function of
// FunctionNames. When neither works for a function it gives up and returns
// an error that starts with "not supported:" and names both reasons.
func AttachFunctions() (*Functions, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: uint32(len(FunctionNames))})
	if err != nil {
		return nil, fmt.Errorf("not supported: creating the count map (needs root): %w", err)
	}
	f := &Functions{counts: m}
	for i, alts := range FunctionNames {
		var reasons []string
		ok := false
		for _, method := range []string{"fentry", "kprobe"} {
			if f.Method != "" && method != f.Method {
				continue
			}
			if method == "kprobe" {
				// Without the perf kprobe PMU, kprobes go through
				// tracefs's kprobe_events.
				if err := EnsureTracefs(); err != nil {
					reasons = append(reasons, "kprobe: "+err.Error())
					continue
				}
			}
			for _, name := range alts {
				err := f.attach(method, name, i)
				if err == nil {
					f.Method, ok = method, true
					f.names = append(f.names, name)
					break
				}
				reasons = append(reasons, fmt.Sprintf("%s %s: %s", method, name, explain(method, err)))
			}
			if ok {
				break
			}
		}
		if !ok {
			f.Close()
			return nil, fmt.Errorf("not supported: %s", strings.Join(reasons, "; "))
		}
	}
	return f, nil
}

// explain says in a few words why method failed, keeping the error.
func explain(method string, err error) string {
	switch {
	case method == "fentry" && errors.Is(err, unix.EPERM):
		return "operation not permitted (kernel lockdown, or no CAP_BPF and CAP_PERFMON privilege)"
	case method == "kprobe" && errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf("kernel without kprobe support (no perf kprobe PMU, no tracefs kprobe_events): %v", err)
	}
	return err.Error()
}

func (f *Functions) attach(method, name string, slot int) error {
	spec := &ebpf.ProgramSpec{
		Name:         "kstat_count",
		Instructions: countInsns(f.counts, slot),
		License:      "GPL",
	}
	if method == "fentry" {
		spec.Type, spec.AttachType, spec.AttachTo = ebpf.Tracing, ebpf.AttachTraceFEntry, name
	} else {
		spec.Type = ebpf.Kprobe
	}
	p, err := ebpf.NewProgram(spec)
	if err != nil {
		return fmt.Errorf("loading: %w", err)
	}
	var l link.Link
	if method == "fentry" {
		l, err = link.AttachTracing(link.TracingOptions{Program: p})
	} else {
		l, err = link.Kprobe(name, p, nil)
	}
	if err != nil {
		p.Close()
		return fmt.Errorf("attaching: %w", err)
	}
	f.progs = append(f.progs, p)
	f.links = append(f.links, l)
	return nil
}

// Counts returns the calls counted per function name.
func (f *Functions) Counts() (map[string]uint64, error) {
	out := make(map[string]uint64, len(f.names))
	for i, name := range f.names {
		var per []uint64
		if err := f.counts.Lookup(uint32(i), &per); err != nil {
			return nil, err
		}
		for _, v := range per {
			out[name] += v
		}
	}
	return out, nil
}

// Close detaches and unloads everything.
func (f *Functions) Close() error {
	var errs []error
	for _, l := range f.links {
		errs = append(errs, l.Close())
	}
	for _, p := range f.progs {
		errs = append(errs, p.Close())
	}
	errs = append(errs, f.counts.Close())
	f.links, f.progs = nil, nil
	return errors.Join(errs...)
}
