package tracer

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/bpf"
	funcsbpf "github.com/kstat/kstat/internal/bpf/funcs"
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
// or kprobes where fentry is missing (internal/bpf/funcs). Close detaches
// them.
type Functions struct {
	Method string // "fentry" or "kprobe"
	names  []string
	spec   *ebpf.CollectionSpec
	counts *ebpf.Map
	sets   []*bpf.Set
}

// AttachFunctions tries fentry, then kprobes, on every function of
// FunctionNames. When neither works for a function it gives up and returns
// an error that starts with "not supported:" and names both reasons.
func AttachFunctions() (*Functions, error) {
	bpf.RemoveMemlock()
	spec, err := funcsbpf.LoadFuncs()
	if err != nil {
		return nil, fmt.Errorf("not supported: reading the funcs BPF object: %w", err)
	}
	m, err := ebpf.NewMap(spec.Maps[funcsbpf.FuncsMapFuncCounts])
	if err != nil {
		return nil, fmt.Errorf("not supported: creating the count map (needs root): %w", err)
	}
	f := &Functions{spec: spec, counts: m}
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

// attach loads a copy of the method's program counting into slot and
// attaches it to the kernel function name.
func (f *Functions) attach(method, name string, slot int) error {
	spec := f.spec.Copy()
	prog := funcsbpf.FuncsProgCountKprobe
	if method == "fentry" {
		prog = funcsbpf.FuncsProgCountFentry
		spec.Programs[prog].AttachTo = name
	}
	if err := spec.Variables[funcsbpf.FuncsVarSlot].Set(uint32(slot)); err != nil {
		return err
	}
	var objs struct {
		P *ebpf.Program `ebpf:"prog"`
	}
	spec.Programs = map[string]*ebpf.ProgramSpec{"prog": spec.Programs[prog]}
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{
		MapReplacements: map[string]*ebpf.Map{funcsbpf.FuncsMapFuncCounts: f.counts},
	}); err != nil {
		return fmt.Errorf("loading: %w", err)
	}
	set := bpf.NewSet(objs.P, nil)
	var (
		l   link.Link
		err error
	)
	if method == "fentry" {
		l, err = link.AttachTracing(link.TracingOptions{Program: objs.P})
	} else {
		l, err = link.Kprobe(name, objs.P, nil)
	}
	if err != nil {
		set.Close()
		return fmt.Errorf("attaching: %w", err)
	}
	set.Keep(l)
	f.sets = append(f.sets, set)
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
	for _, s := range f.sets {
		errs = append(errs, s.Close())
	}
	errs = append(errs, f.counts.Close())
	f.sets = nil
	return errors.Join(errs...)
}
