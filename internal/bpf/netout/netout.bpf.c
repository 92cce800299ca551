//go:build ignore

// SPDX-License-Identifier: GPL-2.0
//
// netout counts the packets this host sends, by address family (IPv4,
// IPv6) and transport protocol (TCP, UDP, anything else), and (unless
// the loader sets count_cgroups false) by the cgroup v2 of the packet's
// socket. It runs as a
// BPF_PROG_TYPE_NETFILTER program on the NF_INET_LOCAL_OUT hook of both
// families (see README.md for why that hook) and always accepts.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define NF_ACCEPT 1

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_DSTOPTS_ 60

// The most IPv6 extension headers walked before giving up and counting
// the packet as "other".
#define MAX_EXT_HEADERS 6

// The map's slots: family * PROTOS + protocol. The Go side mirrors them.
enum family_slot { FAMILY_IPV4, FAMILY_IPV6, FAMILIES };
enum proto_slot { PROTO_TCP, PROTO_UDP, PROTO_OTHER, PROTOS };

// count_cgroups says whether packets are also counted by the cgroup of
// their socket. Set by the loader before loading (a cilium/ebpf Variable):
// the verifier sees a constant and removes the per-cgroup code when it is
// false, so switching it off costs nothing at run time.
const volatile bool count_cgroups = true;

// counts is one slot's tally on one CPU.
struct counts {
	__u64 packets;
	__u64 bytes; // skb->len at the hook: the IP packet with its headers
};

// The per-CPU cgroup cache's size (a power of 2) and its index bits.
#define CGROUP_SLOTS 64
#define CGROUP_SLOT_SHIFT (64 - 6)

// cgroup_slot is a cgroup's tally on one CPU in the per-CPU cache: tag
// is the cgroup id + 1 (0: a free slot). A slot, once taken, keeps its
// cgroup for the map's life: nothing is ever moved out of it, so a
// reader summing the cache and netout_cgroups sees each packet in exactly
// one place and every sum only grows.
struct cgroup_slot {
	__u64 tag;
	__u64 packets;
	__u64 bytes;
};

// percpu_counts is everything one packet updates on its CPU, in one map
// value: one lookup (inlined by the verifier for a PERCPU_ARRAY) and few
// cache lines per packet, and one read for user space.
struct percpu_counts {
	struct counts slots[FAMILIES * PROTOS];
	// Packets of a cgroup that found its cache slot taken and the hash
	// map full: counted in slots but not per cgroup.
	__u64 cgroups_dropped;
	struct cgroup_slot cgroups[CGROUP_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct percpu_counts);
} netout_counts SEC(".maps");

// cgroup_counts is one cgroup's tally on one CPU.
struct cgroup_counts {
	__u64 packets;
	__u64 bytes;
};

// netout_cgroups counts the packets of a cgroup whose cache slot on the
// CPU is held by another cgroup, by the cgroup v2 id of the socket that
// sent them (the cgroup directory's inode number). Key 0 holds packets
// without a full socket: forwarded, or sent for a time-wait or request
// socket (the kernel's own replies). Bounded: a packet of a new cgroup
// when the map is full is counted in percpu_counts.cgroups_dropped.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024); // set by the loader
	__type(key, __u64);
	__type(value, struct cgroup_counts);
} netout_cgroups SEC(".maps");

extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags,
			       struct bpf_dynptr *ptr__uninit) __ksym;
extern void *bpf_dynptr_slice(const struct bpf_dynptr *ptr, __u32 offset,
			      void *buffer__opt, __u32 buffer__szk) __ksym;

static __always_inline __u32 proto_slot(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return PROTO_TCP;
	case IPPROTO_UDP:
		return PROTO_UDP;
	}
	return PROTO_OTHER;
}

// ipv6_transport returns the transport protocol of the IPv6 packet in p,
// skipping extension headers, or 255 when it cannot tell.
static __always_inline __u8 ipv6_transport(const struct bpf_dynptr *p)
{
	struct ipv6hdr buf6;
	struct ipv6_opt_hdr bufx;
	const struct ipv6hdr *ip6;
	const struct ipv6_opt_hdr *opt;
	__u32 off = sizeof(struct ipv6hdr);
	__u8 next;

	ip6 = bpf_dynptr_slice(p, 0, &buf6, sizeof(buf6));
	if (!ip6)
		return 255;
	next = ip6->nexthdr;
#pragma unroll
	for (int i = 0; i < MAX_EXT_HEADERS; i++) {
		if (next != IPPROTO_HOPOPTS_ && next != IPPROTO_ROUTING_ &&
		    next != IPPROTO_FRAGMENT_ && next != IPPROTO_AH_ &&
		    next != IPPROTO_DSTOPTS_)
			return next;
		opt = bpf_dynptr_slice(p, off, &bufx, sizeof(bufx));
		if (!opt)
			return 255;
		if (next == IPPROTO_FRAGMENT_)
			off += 8;
		else if (next == IPPROTO_AH_)
			off += ((__u32)opt->hdrlen + 2) * 4;
		else
			off += ((__u32)opt->hdrlen + 1) * 8;
		next = opt->nexthdr;
	}
	return 255;
}

// include/linux/net.h
#define SOCK_STREAM_ 1
#define SOCK_DGRAM_ 2

// count_cgroup_hash adds the packet to the cgroup id's tally in
// netout_cgroups.
static __always_inline void count_cgroup_hash(struct percpu_counts *pc, __u64 id, __u32 len)
{
	struct cgroup_counts *c = bpf_map_lookup_elem(&netout_cgroups, &id);
	if (!c) {
		struct cgroup_counts z = {};
		long err = bpf_map_update_elem(&netout_cgroups, &id, &z, BPF_NOEXIST);
		if (err != 0 && err != -17) { // -EEXIST: made meanwhile
			pc->cgroups_dropped++;
			return;
		}
		c = bpf_map_lookup_elem(&netout_cgroups, &id);
		if (!c)
			return;
	}
	c->packets++;
	c->bytes += len;
}

// count_cgroup adds the packet to the cgroup id's tally: in its slot of
// the CPU's cache when the slot is free or already its own (a
// multiplicative hash of the id picks the slot), else in the hash map.
static __always_inline void count_cgroup(struct percpu_counts *pc, __u64 id, __u32 len)
{
	struct cgroup_slot *s = &pc->cgroups[(id * 0x9E3779B97F4A7C15ULL) >> CGROUP_SLOT_SHIFT];
	__u64 tag = s->tag;

	// Taking a free slot is a compare-and-swap: a packet of another
	// cgroup on the same CPU (a softirq interrupting this program) may
	// race for it.
	if (tag == id + 1 || (tag == 0 && __sync_val_compare_and_swap(&s->tag, 0, id + 1) == 0)) {
		s->packets++;
		s->bytes += len;
		return;
	}
	count_cgroup_hash(pc, id, len);
}

SEC("netfilter")
int netout(struct bpf_nf_ctx *ctx)
{
	struct sk_buff *skb = ctx->skb;
	struct sock *sk = skb->sk;
	struct bpf_dynptr pkt;
	struct counts *c;
	__u64 cgroup = 0;
	__u32 key, family;
	__u8 proto = 255;
	bool known = false;

	if (ctx->state->pf == NFPROTO_IPV4)
		family = FAMILY_IPV4;
	else if (ctx->state->pf == NFPROTO_IPV6)
		family = FAMILY_IPV6;
	else
		return NF_ACCEPT;

	// The sending socket gives the cgroup and, for TCP stream and UDP
	// datagram sockets, the transport protocol without reading the
	// packet. Time-wait and request sockets are not struct sock (no
	// cgroup; their packets are parsed), nor are forwarded packets'.
	if (sk) {
		unsigned char state = sk->__sk_common.skc_state;
		if (state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV) {
			if (count_cgroups) {
				struct cgroup *cg = sk->sk_cgrp_data.cgroup;
				if (cg)
					cgroup = cg->kn->id;
			}
			__u16 type = sk->sk_type, p = sk->sk_protocol;
			if ((type == SOCK_STREAM_ && p == IPPROTO_TCP) || (type == SOCK_DGRAM_ && p == IPPROTO_UDP)) {
				proto = p;
				known = true;
			}
		}
	}
	// Otherwise (raw sockets, the kernel's own replies) the IP header
	// says. At LOCAL_OUT skb->data is the network header: offset 0 is the
	// IP header of the packet's own family.
	if (!known && bpf_dynptr_from_skb((struct __sk_buff *)skb, 0, &pkt) == 0) {
		if (family == FAMILY_IPV4) {
			struct iphdr buf4;
			const struct iphdr *ip4;

			ip4 = bpf_dynptr_slice(&pkt, 0, &buf4, sizeof(buf4));
			if (ip4)
				proto = ip4->protocol;
		} else {
			proto = ipv6_transport(&pkt);
		}
	}
	key = family * PROTOS + proto_slot(proto);
	__u32 len = skb->len, zero = 0;
	struct percpu_counts *pc = bpf_map_lookup_elem(&netout_counts, &zero);
	if (!pc)
		return NF_ACCEPT;
	// Per-CPU: no other CPU writes these, no atomics needed.
	c = &pc->slots[key];
	c->packets++;
	c->bytes += len;
	if (count_cgroups)
		count_cgroup(pc, cgroup, len);
	return NF_ACCEPT;
}

char LICENSE[] SEC("license") = "GPL";
