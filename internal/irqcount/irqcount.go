// Package irqcount loads and attaches the tp_btf programs of
// internal/bpf/irqcount, which count hardware interrupt handler entries per
// IRQ number (irq:irq_handler_entry) and softirq runs per vector
// (irq:softirq_entry), and reads their per-CPU counts.
//
// Every attachment is a link held by a file descriptor of this process:
// Close, or the process's exit, detaches them.
package irqcount

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kstat/kstat/internal/bpf"
	irqbpf "github.com/kstat/kstat/internal/bpf/irqcount"
	"github.com/kstat/kstat/internal/collector"
	"github.com/kstat/kstat/statsfs"
)

// SoftirqNames are the softirq vectors in the kernel's order (enum
// {HI,...,RCU}_SOFTIRQ), as /proc/softirqs names them.
var SoftirqNames = [...]string{"HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU"}

// Counter is the loaded and attached programs with their maps.
type Counter struct {
	objs irqbpf.IrqcountObjects
	set  *bpf.Set

	mu       sync.Mutex
	statsOff func() // releases BPF run-time statistics; nil when off

	read    sync.Mutex // guards the buffers below, reused by every read
	cpus    int        // possible CPUs: values per key
	keys    []uint32
	vals    []uint64 // len(keys) * cpus
	noBatch bool     // the kernel refused BPF_MAP_LOOKUP_BATCH: key by key
}

// batchKeys is how many keys one batch lookup asks for.
const batchKeys = 64

// Load loads both programs and attaches them to their tracepoints. It needs
// CAP_BPF and CAP_PERFMON (or root) and a kernel with BTF and tp_btf
// programs (Linux 5.5 or later); the error says which is missing. While
// attached it holds the kernel's BPF run-time statistics on
// (bpf.EnableStats), for the programs' own cost; without them (no
// CAP_SYS_ADMIN) the run time and runs are absent.
func Load() (*Counter, error) {
	bpf.RemoveMemlock()
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("reading the possible CPUs: %w", err)
	}
	c := &Counter{cpus: cpus, keys: make([]uint32, batchKeys), vals: make([]uint64, batchKeys*cpus)}
	if err := irqbpf.LoadIrqcountObjects(&c.objs, nil); err != nil {
		return nil, loadError("loading the irqcount eBPF programs", err)
	}
	c.set = bpf.NewSet(&c.objs, map[string]*ebpf.Program{
		"irq_handler_entry": c.objs.IrqHandlerEntry,
		"softirq_entry":     c.objs.SoftirqEntry,
	})
	for _, name := range []string{"irq_handler_entry", "softirq_entry"} {
		if err := c.set.Attach(name); err != nil {
			_ = c.set.Close()
			return nil, loadError("attaching the tp_btf program to irq:"+name, err)
		}
	}
	if off, err := bpf.EnableStats(); err == nil {
		c.statsOff = off
	}
	return c, nil
}

// loadError names the missing privilege or kernel feature behind err.
func loadError(what string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%s: missing privilege: needs CAP_BPF and CAP_PERFMON (run as root), "+
			"or the kernel's lockdown forbids it: %w", what, err)
	case errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("%s: the kernel does not support tp_btf tracing programs with BTF "+
			"(Linux 5.5+, CONFIG_DEBUG_INFO_BTF): %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Programs returns the two programs by tracepoint name, for their
// run-time statistics.
func (c *Counter) Programs() map[string]*ebpf.Program { return c.set.Programs() }

// timed reports whether the kernel measures the programs' run time now.
func (c *Counter) timed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statsOff != nil
}

// AddValues adds parent/programs/ with one instance per program
// (irq_handler_entry, softirq_entry) holding its run_seconds, runs and
// recursion_misses from the kernel's program info (bpf.ProgView), read at
// most once per collector.MaxAge by the returned collector (named
// "irqcount_programs"), which the caller adds to its registry.
func (c *Counter) AddValues(parent *statsfs.Source) (*collector.Refresher, error) {
	var view *bpf.ProgView
	r := collector.NewRefresher("irqcount_programs", func() error {
		st, err := bpf.Stats(c.Programs())
		if err != nil {
			return err
		}
		view.Update(st, c.timed())
		return nil
	})
	var err error
	if view, err = bpf.NewProgView(parent, r.Record); err != nil {
		return nil, err
	}
	return r, nil
}

func sum(v []uint64) uint64 {
	var s uint64
	for _, x := range v {
		s += x
	}
	return s
}

// IRQs returns the handler entries counted per IRQ number since Load,
// summed over CPUs. An IRQ with several handlers counts once per handler.
func (c *Counter) IRQs() (map[uint32]uint64, error) {
	out := map[uint32]uint64{}
	err := c.each(c.objs.IrqEntries, func(k uint32, v uint64) { out[k] = v })
	if err != nil {
		return nil, fmt.Errorf("reading the irq_entries map: %w", err)
	}
	return out, nil
}

// each calls fn with every key of the per-CPU map m and its value summed
// over CPUs. It reads batchKeys keys per system call with
// BPF_MAP_LOOKUP_BATCH (Linux 5.6+ for hash maps, 5.7+ for arrays);
// where the kernel refuses it (EINVAL or ENOTSUPP: older kernels, or a
// map type without batch operations) it falls back, for this and every
// later read, to walking the keys one at a time (two system calls per
// key).
func (c *Counter) each(m *ebpf.Map, fn func(k uint32, v uint64)) error {
	c.read.Lock()
	defer c.read.Unlock()
	if !c.noBatch {
		err := c.batch(m, fn)
		if err == nil || !batchUnsupported(err) {
			return err
		}
		c.noBatch = true
	}
	var (
		key  uint32
		vals []uint64
	)
	it := m.Iterate()
	for it.Next(&key, &vals) {
		fn(key, sum(vals))
	}
	return it.Err()
}

// batch is each with batch lookups.
func (c *Counter) batch(m *ebpf.Map, fn func(k uint32, v uint64)) error {
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, c.keys, c.vals, nil)
		for i := range n {
			fn(c.keys[i], sum(c.vals[i*c.cpus:(i+1)*c.cpus]))
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil // the end of the map
		}
		if err != nil {
			return err
		}
	}
}

// enotsupp is the kernel's ENOTSUPP (524), which BPF commands return for
// an operation a map type lacks; x/sys/unix does not name it.
const enotsupp = syscall.Errno(524)

// batchUnsupported reports whether err says the kernel lacks batch
// lookups for the map.
func batchUnsupported(err error) bool {
	return errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EINVAL) || errors.Is(err, enotsupp) || errors.Is(err, unix.EOPNOTSUPP)
}

// IRQCounts is IRQs keyed by the decimal IRQ number, the name of the
// line in /proc/interrupts.
func (c *Counter) IRQCounts() (map[string]uint64, error) {
	irqs, err := c.IRQs()
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(irqs))
	for n, v := range irqs {
		out[strconv.FormatUint(uint64(n), 10)] = v
	}
	return out, nil
}

// Dropped is the number of handler entries not counted because the map of
// IRQ numbers was full.
func (c *Counter) Dropped() (uint64, error) {
	var vals []uint64
	if err := c.objs.IrqDropped.Lookup(uint32(0), &vals); err != nil {
		return 0, fmt.Errorf("reading the irq_dropped map: %w", err)
	}
	return sum(vals), nil
}

// Softirqs returns the runs counted per softirq vector since Load, summed
// over CPUs, in SoftirqNames order.
func (c *Counter) Softirqs() ([len(SoftirqNames)]uint64, error) {
	var out [len(SoftirqNames)]uint64
	err := c.each(c.objs.SoftirqEntries, func(k uint32, v uint64) {
		if int(k) < len(out) {
			out[k] = v
		}
	})
	if err != nil {
		return out, fmt.Errorf("reading the softirq_entries map: %w", err)
	}
	return out, nil
}

// SoftirqCounts is Softirqs keyed by vector name, as /proc/softirqs names
// the lines.
func (c *Counter) SoftirqCounts() (map[string]uint64, error) {
	s, err := c.Softirqs()
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(s))
	for i, v := range s {
		out[SoftirqNames[i]] = v
	}
	return out, nil
}

// Close detaches the programs, frees their maps and releases the
// run-time statistics.
func (c *Counter) Close() error {
	err := c.set.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.statsOff != nil {
		c.statsOff()
		c.statsOff = nil
	}
	return err
}
