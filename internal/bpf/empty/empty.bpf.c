//go:build ignore

// SPDX-License-Identifier: GPL-2.0
//
// Benchmark-only programs that do nothing: attached on the hooks kstat's
// programs use, they measure what entering any BPF program costs there
// (the floor the benchmarks compare kstat's programs with). Never loaded
// by the daemon.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define NF_ACCEPT 1

// nf_empty only accepts: the netfilter BPF hook's own cost.
SEC("netfilter")
int nf_empty(struct bpf_nf_ctx *ctx)
{
	return NF_ACCEPT;
}

// The four kmem hooks of the tracer, empty: the tracer's floor.
SEC("tp_btf/kmalloc")
int BPF_PROG(empty_kmalloc)
{
	return 0;
}

SEC("tp_btf/kmem_cache_alloc")
int BPF_PROG(empty_cache_alloc)
{
	return 0;
}

SEC("tp_btf/kfree")
int BPF_PROG(empty_kfree)
{
	return 0;
}

SEC("tp_btf/kmem_cache_free")
int BPF_PROG(empty_cache_free)
{
	return 0;
}
