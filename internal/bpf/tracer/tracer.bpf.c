//go:build ignore

// SPDX-License-Identifier: GPL-2.0
//
// tracer counts, per process (thread group), what the kernel does for it:
// process management (sched_process_fork/exec/exit), kernel allocations
// (kmem kmalloc/kfree, kmem_cache_alloc/free) and lock contention
// (lock:contention_begin/end) by lock kind. See README.md.
//
// The hot path (the four kmem programs) is kept near the cost of an empty
// program:
//   - per-process counters live in a PERCPU_HASH: no shared cache line, no
//     atomics. Every field has exactly one writer program, and the kernel
//     never runs a tracing program nested in itself on one CPU (it counts a
//     recursion miss instead), so plain increments are exact; user space
//     sums the CPUs;
//   - outstanding allocations are tracked for a deterministic sample of
//     addresses: those whose hash is at most sample_thresh (1 in
//     sample_every). A free of an unsampled address touches no map. Each
//     tracked allocation carries its weight (sample_every when it was
//     made), and the outstanding counters add size × weight: a
//     Horvitz-Thompson estimate that stays unbiased when the sampling
//     changes. sample_every 1 tracks every address exactly;
//   - stacks and timestamps are taken only for tracked allocations; no
//     random numbers, no division.
//
// All programs are tp_btf (BTF-typed raw tracepoints). The settings are
// global variables that user space writes through the memory-mapped data
// section (cilium/ebpf Variables).

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

// include/linux/sched.h
#define PF_EXITING 0x00000004

// include/trace/events/lock.h
#define LCB_F_SPIN (1U << 0)
#define LCB_F_READ (1U << 1)
#define LCB_F_WRITE (1U << 2)
#define LCB_F_RT (1U << 3)
#define LCB_F_PERCPU (1U << 4)
#define LCB_F_MUTEX (1U << 5)

#define EEXIST_ 17

// Lock kinds, classified from the flags as perf lock does. The Go side
// mirrors the order.
enum lock_kind {
	LOCK_MUTEX,
	LOCK_RWSEM_READ,
	LOCK_RWSEM_WRITE,
	LOCK_SPINLOCK,
	LOCK_RWLOCK,
	LOCK_SEMAPHORE,
	LOCK_RTMUTEX,
	LOCK_PERCPU_RWSEM,
	LOCK_KINDS,
};

// Global counters (a PERCPU_ARRAY slot each), mirrored by the Go side.
// They count rare events, from several programs: atomic adds.
enum counter {
	C_PROCS_CREATED,      // per-process entries made
	C_PROCS_REMOVED,      // entries removed at the group's exit
	C_PROCS_DROPPED,      // events lost: the process map was full
	C_ALLOCS_DROPPED,     // sampled allocations not tracked: the map was full
	C_ALLOCS_DROPPED_BYTES,
	C_MISSED_FREES,       // frees of a sampled address not in the map
	C_STALE_ALLOCS,       // sampled address handed out again without a traced free
	C_STACK_ERRORS,       // bpf_get_stackid failed (stack map full or hash clash)
	C_LOCK_UNMATCHED,     // contention_end without a begin
	C_LOCK_DROPPED,       // contention_begin not kept: no task storage
	C_EXITS,              // traced thread groups that exited
	C_ALLOCS_TRACKED,     // entries added to allocs
	C_ALLOCS_UNTRACKED,   // entries removed from allocs (freed or stale)
	C_CGROUPS_DROPPED,    // process events not counted per cgroup: map full
	C_COUNTERS,
};

// counts is one thread group's tally on one CPU. Each field is written by
// one program only (named in the comment); user space sums the CPUs and
// combines the fields. The outstanding fields are weighted (× the
// allocation's sampling weight).
struct counts {
	__u64 forks;         // on_fork: new processes made by this group
	__u64 threads;       // on_fork: new threads made
	__u64 execs;         // on_exec
	__u64 thread_exits;  // on_exit: threads that exited while the group lived on
	__u64 child_exits;   // on_exit: child processes that exited
	__u64 kmalloc;       // on_kmalloc: calls
	__u64 km_req;        //   bytes requested
	__u64 km_alloc;      //   bytes allocated
	__u64 km_failed;     //   NULL returned
	__u64 km_out_bytes;  //   weighted bytes of tracked allocations made
	__u64 km_out_allocs; //   weighted tracked allocations made
	__u64 km_stale_bytes;  // weighted bytes of this group's entries found stale by on_kmalloc
	__u64 km_stale_allocs;
	__u64 cache_alloc;   // on_cache_alloc: the same for kmem_cache_alloc
	__u64 ca_req;
	__u64 ca_alloc;
	__u64 ca_failed;
	__u64 ca_out_bytes;
	__u64 ca_out_allocs;
	__u64 ca_stale_bytes;
	__u64 ca_stale_allocs;
	__u64 kfree;         // on_kfree: calls by this group
	__u64 kf_bytes;      //   weighted bytes of this group's allocations freed by kfree (by anyone)
	__u64 kf_allocs;
	__u64 cache_free;    // on_cache_free: the same for kmem_cache_free
	__u64 cf_bytes;
	__u64 cf_allocs;
	__u64 lock_count[LOCK_KINDS];   // on_contention_end
	__u64 lock_wait_ns[LOCK_KINDS];
	__u64 lock_max_ns[LOCK_KINDS];
};

// info is what a thread group is, written when its entry is made and at
// exec. gen ties allocations to this entry, so that a free after the
// group's exit never charges a new process that got the same pid.
struct info {
	__u64 gen;
	__u64 cgroup;  // cgroup v2 id (the cgroup directory's inode number)
	__u32 ppid;
	__u32 _pad;
	char comm[16];
};

// alloc is one tracked (sampled) allocation.
struct alloc {
	__u64 size;      // bytes allocated
	__u64 ts;        // bpf_ktime_get_ns at allocation
	__u64 gen;       // the owner's info.gen, 0 when no entry was charged
	__u32 tgid;
	__s32 stack_id;  // kernel stack, or negative when not captured
	__u32 weight;    // sample_every when it was made
	__u32 _pad;
};

// wait is one task's lock contention in progress (task storage).
struct wait {
	__u64 ts;
	__u64 lock;
	__u32 flags;
	__u32 _pad;
};

// cgroup_counts is one cgroup's process events, kept when its processes
// have exited.
struct cgroup_counts {
	__u64 forks;
	__u64 threads;
	__u64 execs;
	__u64 exits;
};

// Settings, written by user space at any time.
volatile __u32 filter_on = 0;           // 1: only tgids in the filter map are traced
volatile __u64 sample_thresh = ~0ULL;   // track allocations whose address hash is <= this
volatile __u64 free_thresh = ~0ULL;     // look up frees whose hash is <= this (max of sample_thresh)
volatile __u64 stack_thresh = 0;        // capture stacks of tracked ones whose hash is <= this; 0: none
volatile __u32 sample_weight = 1;       // the weight of an allocation tracked now (sample_every)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096); // set by the loader (--tracer-max-procs)
	__type(key, __u32);
	__type(value, struct counts);
} procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); // set by the loader, as procs
	__type(key, __u32);
	__type(value, struct info);
} infos SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); // set by the loader (--tracer-max-allocs)
	__type(key, __u64);
	__type(value, struct alloc);
} allocs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 8192);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 127 * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct wait);
} waits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); // tgid
	__type(value, __u8);
} filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024); // set by the loader
	__type(key, __u64); // cgroup v2 id
	__type(value, struct cgroup_counts);
} cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// scratch is a zeroed counts, the initial value of a new entry (too big
// for the 512-byte stack). Nothing writes it.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counts);
} scratch SEC(".maps");

static __always_inline void count(__u32 c, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &c);
	if (v)
		__sync_fetch_and_add(v, n);
}

static __always_inline bool traced(__u32 tgid)
{
	if (!filter_on)
		return true;
	return bpf_map_lookup_elem(&filter, &tgid) != NULL;
}

// addr_hash mixes an address (splitmix64's finalizer) so that any stride
// of slab addresses samples like independent coin flips.
static __always_inline __u64 addr_hash(__u64 x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static __always_inline __u64 task_cgroup(struct task_struct *task)
{
	return BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
}

// get_counts returns this CPU's slot of tgid's entry, making the entry
// (and its info) when there is none. task is the group's thread the event
// is about: comm, ppid and cgroup come from it.
static __always_inline struct counts *get_counts(__u32 tgid, struct task_struct *task)
{
	struct counts *p = bpf_map_lookup_elem(&procs, &tgid);
	if (p)
		return p;
	// An exiting task must not bring back the entry its exit removed.
	if (task->flags & PF_EXITING)
		return NULL;
	struct info in = {
		.gen = bpf_ktime_get_ns(),
		.cgroup = task_cgroup(task),
		.ppid = task->real_parent->tgid,
	};
	bpf_probe_read_kernel_str(in.comm, sizeof(in.comm), task->group_leader->comm);
	long err = bpf_map_update_elem(&infos, &tgid, &in, BPF_NOEXIST);
	if (err != 0 && err != -EEXIST_) {
		count(C_PROCS_DROPPED, 1);
		return NULL;
	}
	__u32 zero = 0;
	struct counts *z = bpf_map_lookup_elem(&scratch, &zero);
	if (!z)
		return NULL;
	err = bpf_map_update_elem(&procs, &tgid, z, BPF_NOEXIST);
	if (err == 0)
		count(C_PROCS_CREATED, 1);
	else if (err != -EEXIST_) { // -EEXIST: another CPU made it first
		count(C_PROCS_DROPPED, 1);
		bpf_map_delete_elem(&infos, &tgid);
		return NULL;
	}
	return bpf_map_lookup_elem(&procs, &tgid);
}

// cgroup_event returns the cgroup's process-event tally, making it.
static __always_inline struct cgroup_counts *cgroup_event(__u64 id)
{
	struct cgroup_counts *c = bpf_map_lookup_elem(&cgroups, &id);
	if (c)
		return c;
	struct cgroup_counts z = {};
	long err = bpf_map_update_elem(&cgroups, &id, &z, BPF_NOEXIST);
	if (err != 0 && err != -EEXIST_) {
		count(C_CGROUPS_DROPPED, 1);
		return NULL;
	}
	return bpf_map_lookup_elem(&cgroups, &id);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid;
	if (!traced(ptgid))
		return 0;
	// The fork is the parent's: counted in the parent's cgroup.
	struct cgroup_counts *cg = cgroup_event(bpf_get_current_cgroup_id());
	bool proc = child->pid == child->tgid;
	if (cg)
		__sync_fetch_and_add(proc ? &cg->forks : &cg->threads, 1);
	struct counts *p = get_counts(ptgid, parent);
	if (!p)
		return 0;
	if (proc) {
		p->forks++;
		// The child starts with a clean entry of its own (its cgroup
		// may differ: clone3 CLONE_INTO_CGROUP).
		__u32 ctgid = child->tgid;
		if (traced(ctgid))
			get_counts(ctgid, child);
	} else {
		p->threads++;
	}
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = task->tgid;
	if (!traced(tgid))
		return 0;
	__u64 cgid = bpf_get_current_cgroup_id();
	struct cgroup_counts *cg = cgroup_event(cgid);
	if (cg)
		__sync_fetch_and_add(&cg->execs, 1);
	struct counts *p = get_counts(tgid, task);
	if (!p)
		return 0;
	p->execs++;
	struct info *in = bpf_map_lookup_elem(&infos, &tgid);
	if (in) {
		// A process moved to another cgroup is seen there from its
		// next exec on.
		in->cgroup = cgid;
		bpf_probe_read_kernel_str(in->comm, sizeof(in->comm), task->comm);
	}
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *task, bool group_dead)
{
	__u32 tgid = task->tgid;
	if (!group_dead) {
		struct counts *p = bpf_map_lookup_elem(&procs, &tgid);
		if (p)
			p->thread_exits++;
		return 0;
	}
	// The parent counts its child even when only the parent is traced.
	__u32 ptgid = task->real_parent->tgid;
	struct counts *pp = bpf_map_lookup_elem(&procs, &ptgid);
	if (pp)
		pp->child_exits++;
	if (!traced(tgid))
		return 0;
	count(C_EXITS, 1);
	struct cgroup_counts *cg = cgroup_event(bpf_get_current_cgroup_id());
	if (cg)
		__sync_fetch_and_add(&cg->exits, 1);
	if (bpf_map_delete_elem(&procs, &tgid) == 0)
		count(C_PROCS_REMOVED, 1);
	bpf_map_delete_elem(&infos, &tgid);
	return 0;
}

// charge is where an allocation program adds its tallies: the kmalloc
// fields or the kmem_cache_alloc ones, so that each has one writer.
struct charge {
	__u64 *calls, *req, *alloc, *failed, *out_bytes, *out_allocs;
};

// uncharge_stale takes a stale entry's weighted bytes off its owner, in
// the fields of the program that found it.
static __always_inline void uncharge_stale(struct alloc *old, bool cache)
{
	__u32 otgid = old->tgid;
	struct info *oi = bpf_map_lookup_elem(&infos, &otgid);
	if (!oi || oi->gen != old->gen)
		return;
	struct counts *op = bpf_map_lookup_elem(&procs, &otgid);
	if (!op)
		return;
	__u64 w = old->weight;
	if (cache) {
		op->ca_stale_bytes += old->size * w;
		op->ca_stale_allocs += w;
	} else {
		op->km_stale_bytes += old->size * w;
		op->km_stale_allocs += w;
	}
}

// track records an allocation of size bytes at ptr for the current task.
static __always_inline void track(void *ctx, __u64 ptr, __u64 req, __u64 size, bool cache)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!traced(tgid))
		return;
	struct counts *p = get_counts(tgid, bpf_get_current_task_btf());
	if (p) {
		if (cache) {
			p->cache_alloc++;
			p->ca_req += req;
			p->ca_alloc += size;
		} else {
			p->kmalloc++;
			p->km_req += req;
			p->km_alloc += size;
		}
	}
	if (ptr == 0) {
		if (p) {
			if (cache)
				p->ca_failed++;
			else
				p->km_failed++;
		}
		return;
	}
	if (ptr <= 16) // ZERO_SIZE_PTR: kmalloc(0) holds nothing
		return;
	__u64 h = addr_hash(ptr);
	if (h > sample_thresh)
		return;

	__u32 w = sample_weight;
	struct alloc a = {
		.size = size,
		.ts = bpf_ktime_get_ns(),
		.tgid = tgid,
		.stack_id = -1,
		.weight = w,
	};
	__u64 st = stack_thresh;
	if (st && h <= st) {
		a.stack_id = bpf_get_stackid(ctx, &stacks, 0);
		if (a.stack_id < 0)
			count(C_STACK_ERRORS, 1);
	}
	if (p) {
		struct info *in = bpf_map_lookup_elem(&infos, &tgid);
		if (in)
			a.gen = in->gen;
	}
	long err = bpf_map_update_elem(&allocs, &ptr, &a, BPF_NOEXIST);
	if (err == -EEXIST_) {
		// The address was freed on a path without a tracepoint:
		// uncharge the old owner and take the entry over.
		struct alloc *old = bpf_map_lookup_elem(&allocs, &ptr);
		if (old) {
			count(C_STALE_ALLOCS, 1);
			uncharge_stale(old, cache);
			*old = a;
			err = 0;
		}
	} else if (err == 0) {
		count(C_ALLOCS_TRACKED, 1);
	}
	if (err != 0) {
		count(C_ALLOCS_DROPPED, 1);
		count(C_ALLOCS_DROPPED_BYTES, size);
		return;
	}
	if (p && a.gen) {
		if (cache) {
			p->ca_out_bytes += size * w;
			p->ca_out_allocs += w;
		} else {
			p->km_out_bytes += size * w;
			p->km_out_allocs += w;
		}
	}
}

// untrack records a free of ptr: a call by the current task, and, for a
// tracked address, its weighted bytes back to the allocating group.
static __always_inline void untrack(__u64 ptr, bool cache)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	bool t = traced(tgid);
	if (t) {
		struct counts *p = get_counts(tgid, bpf_get_current_task_btf());
		if (p) {
			if (cache)
				p->cache_free++;
			else
				p->kfree++;
		}
	}
	if (ptr <= 16) // kfree(NULL) and ZERO_SIZE_PTR free nothing
		return;
	if (addr_hash(ptr) > free_thresh)
		return;
	struct alloc *a = bpf_map_lookup_elem(&allocs, &ptr);
	if (!a) {
		if (t)
			count(C_MISSED_FREES, 1);
		return;
	}
	__u32 otgid = a->tgid;
	__u64 size = a->size, gen = a->gen, w = a->weight;
	if (bpf_map_delete_elem(&allocs, &ptr) != 0)
		return; // a racing free of the same address took it
	count(C_ALLOCS_UNTRACKED, 1);
	if (!gen)
		return;
	struct info *oi = bpf_map_lookup_elem(&infos, &otgid);
	if (!oi || oi->gen != gen)
		return;
	struct counts *op = bpf_map_lookup_elem(&procs, &otgid);
	if (!op)
		return;
	if (cache) {
		op->cf_bytes += size * w;
		op->cf_allocs += w;
	} else {
		op->kf_bytes += size * w;
		op->kf_allocs += w;
	}
}

SEC("tp_btf/kmalloc")
int BPF_PROG(on_kmalloc, unsigned long call_site, const void *ptr, size_t bytes_req,
	     size_t bytes_alloc, gfp_t gfp_flags, int node)
{
	track(ctx, (__u64)ptr, bytes_req, bytes_alloc, false);
	return 0;
}

SEC("tp_btf/kmem_cache_alloc")
int BPF_PROG(on_cache_alloc, unsigned long call_site, const void *ptr, struct kmem_cache *s,
	     gfp_t gfp_flags, int node)
{
	track(ctx, (__u64)ptr, s->object_size, s->size, true);
	return 0;
}

SEC("tp_btf/kfree")
int BPF_PROG(on_kfree, unsigned long call_site, const void *ptr)
{
	untrack((__u64)ptr, false);
	return 0;
}

SEC("tp_btf/kmem_cache_free")
int BPF_PROG(on_cache_free, unsigned long call_site, const void *ptr, const struct kmem_cache *s)
{
	untrack((__u64)ptr, true);
	return 0;
}

static __always_inline __u32 lock_kind(__u32 f)
{
	if (f & LCB_F_MUTEX)
		return LOCK_MUTEX;
	if (f & LCB_F_PERCPU)
		return LOCK_PERCPU_RWSEM;
	if (f & LCB_F_RT)
		return LOCK_RTMUTEX;
	if (f & LCB_F_SPIN)
		return (f & (LCB_F_READ | LCB_F_WRITE)) ? LOCK_RWLOCK : LOCK_SPINLOCK;
	if (f & LCB_F_READ)
		return LOCK_RWSEM_READ;
	if (f & LCB_F_WRITE)
		return LOCK_RWSEM_WRITE;
	return LOCK_SEMAPHORE;
}

SEC("tp_btf/contention_begin")
int BPF_PROG(on_contention_begin, void *lock, unsigned int flags)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!traced(tgid))
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct wait *w = bpf_task_storage_get(&waits, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!w) {
		count(C_LOCK_DROPPED, 1);
		return 0;
	}
	if (w->ts && w->lock == (__u64)lock) {
		// A mutex that stopped spinning and now sleeps: one contention,
		// timed from the first begin.
		w->flags = flags;
		return 0;
	}
	w->ts = bpf_ktime_get_ns();
	w->lock = (__u64)lock;
	w->flags = flags;
	return 0;
}

SEC("tp_btf/contention_end")
int BPF_PROG(on_contention_end, void *lock, int ret)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct task_struct *task = bpf_get_current_task_btf();
	struct wait *w = bpf_task_storage_get(&waits, task, 0, 0);
	if (!w || !w->ts || w->lock != (__u64)lock) {
		if (traced(tgid))
			count(C_LOCK_UNMATCHED, 1);
		return 0;
	}
	__u64 wait = bpf_ktime_get_ns() - w->ts;
	__u32 kind = lock_kind(w->flags);
	w->ts = 0;
	w->lock = 0;

	struct counts *p = get_counts(tgid, task);
	if (!p || kind >= LOCK_KINDS)
		return 0;
	p->lock_count[kind]++;
	p->lock_wait_ns[kind] += wait;
	if (wait > p->lock_max_ns[kind])
		p->lock_max_ns[kind] = wait;
	return 0;
}
