//go:build ignore

// SPDX-License-Identifier: GPL-2.0
//
// funcs counts calls of named kernel functions, with an fentry program
// where the kernel allows it and a kprobe otherwise. User space loads one
// copy of a program per function, with the function as the attach target
// and `slot` (a load-time constant) as the function's slot in
// func_counts, which every copy shares.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

// The most functions counted at once.
#define MAX_FUNCS 16

const volatile __u32 slot = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_FUNCS);
	__type(key, __u32);
	__type(value, __u64);
} func_counts SEC(".maps");

// bump adds a call to this copy's slot. Only this copy writes it, and the
// kernel never nests a program in itself on one CPU: no atomics needed.
static __always_inline int bump(void)
{
	__u32 k = slot;
	__u64 *v = bpf_map_lookup_elem(&func_counts, &k);
	if (v)
		*v += 1;
	return 0;
}

SEC("fentry")
int count_fentry(void *ctx)
{
	return bump();
}

SEC("kprobe")
int count_kprobe(void *ctx)
{
	return bump();
}
