//go:build ignore

// SPDX-License-Identifier: GPL-2.0
//
// irqcount counts hardware interrupt handler entries per IRQ number
// (irq:irq_handler_entry) and softirq runs per vector (irq:softirq_entry),
// per CPU. They are the eBPF side of kstat's irq/<n>/ and softirq/<vector>/
// sources, shown beside the kernel's /proc/interrupts and /proc/softirqs
// counts. Both programs are tp_btf, so they need BTF but not tracefs.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

// The most distinct IRQ numbers counted; entries for more go to
// irq_dropped.
#define MAX_IRQS 16384

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_IRQS);
	__type(key, __u32);
	__type(value, __u64);
} irq_entries SEC(".maps");

// irq_dropped counts handler entries not counted because irq_entries was
// full.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} irq_dropped SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NR_SOFTIRQS);
	__type(key, __u32);
	__type(value, __u64);
} softirq_entries SEC(".maps");

static __always_inline void bump(void *map, __u32 key)
{
	__u64 *v = bpf_map_lookup_elem(map, &key);
	if (v)
		*v += 1; // per-CPU slot: only this CPU writes it, hardirqs do not nest
}

// irq_handler_entry runs once per handler (irqaction) an interrupt
// invokes: a shared line with two handlers counts twice.
SEC("tp_btf/irq_handler_entry")
int BPF_PROG(irq_handler_entry, int irq, struct irqaction *action)
{
	__u32 key = irq;
	__u64 one = 1;
	__u64 *v = bpf_map_lookup_elem(&irq_entries, &key);

	if (v) {
		*v += 1;
		return 0;
	}
	// The first entry of this IRQ on any CPU creates the element (with
	// a zero slot on the other CPUs). Another CPU may create it first:
	// then increment the element it made.
	if (bpf_map_update_elem(&irq_entries, &key, &one, BPF_NOEXIST) == 0)
		return 0;
	v = bpf_map_lookup_elem(&irq_entries, &key);
	if (v)
		*v += 1;
	else
		bump(&irq_dropped, 0);
	return 0;
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(softirq_entry, unsigned int vec_nr)
{
	if (vec_nr < NR_SOFTIRQS)
		bump(&softirq_entries, vec_nr);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
