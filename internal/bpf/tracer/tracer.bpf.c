//go:build ignore

// SPDX-License-Identifier: GPL-2.0
//
// tracer counts, per process (thread group), what the kernel does for it:
// process management (sched_process_fork/exec/exit), kernel allocations
// (kmem kmalloc/kfree, kmem_cache_alloc/free) with a map of outstanding
// allocations, and lock contention (lock:contention_begin/end) by lock
// kind. Everything is aggregated here; user space only reads the maps.
//
// All programs are tp_btf (BTF-typed raw tracepoints): no tracefs needed,
// and cheaper than classic tracepoints. Every map is a plain preallocated
// HASH: a full map refuses new entries and the refusal is counted, rather
// than an LRU map silently evicting an entry whose bytes would then be
// charged forever (and the lock programs must never touch an LRU map).

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
enum counter {
	C_PROCS_CREATED,      // per-process entries made
	C_PROCS_REMOVED,      // entries removed at the group's exit
	C_PROCS_DROPPED,      // events lost: the process map was full
	C_ALLOCS_DROPPED,     // allocations not tracked: the map was full
	C_ALLOCS_DROPPED_BYTES,
	C_MISSED_FREES,       // frees of an address not in the map
	C_STALE_ALLOCS,       // address handed out again without a traced free
	C_STACK_ERRORS,       // bpf_get_stackid failed (stack map full or hash clash)
	C_LOCK_UNMATCHED,     // contention_end without a begin
	C_LOCK_DROPPED,       // contention_begin not kept: the wait map was full
	C_EXITS,              // traced thread groups that exited
	C_COUNTERS,
};

// proc is one thread group's tally. gen ties allocations to this entry, so
// that a free after the group's exit never charges a new process that got
// the same pid.
struct proc {
	__u64 gen;
	__u32 ppid;
	__u32 _pad;
	char comm[16];
	__u64 forks;         // new processes made by this group's threads
	__u64 threads;       // new threads made
	__u64 execs;
	__u64 thread_exits;  // threads that exited while the group lived on
	__u64 child_exits;   // child processes that exited
	__u64 kmalloc;
	__u64 kfree;         // frees (kfree and kmem_cache_free) done by this group
	__u64 cache_alloc;
	__u64 cache_free;
	__u64 bytes_req;
	__u64 bytes_alloc;
	__u64 bytes_freed;   // bytes of this group's allocations freed (by anyone)
	__u64 bytes_out;     // bytes of its allocations still outstanding
	__u64 allocs_out;
	__u64 failed;        // allocations that returned NULL
	__u64 lock_count[LOCK_KINDS];
	__u64 lock_wait_ns[LOCK_KINDS];
	__u64 lock_max_ns[LOCK_KINDS];
};

// alloc is one outstanding allocation.
struct alloc {
	__u64 size;      // bytes allocated
	__u64 ts;        // bpf_ktime_get_ns at allocation
	__u64 gen;       // the owner's proc.gen, 0 when no entry was charged
	__u32 tgid;
	__s32 stack_id;  // kernel stack, or negative when not sampled
};

// wait is one task's lock contention in progress.
struct wait {
	__u64 ts;
	__u64 lock;
	__u32 flags;
	__u32 _pad;
};

// settings is written by user space before attaching and when the pid
// filter changes.
struct settings {
	__u32 filter_on;   // 1: only tgids in the filter map are traced
	__u32 stack_every; // capture 1 stack in N allocations (0: none)
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); // set by the loader (--tracer-max-procs)
	__type(key, __u32);
	__type(value, struct proc);
} procs SEC(".maps");

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
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); // tid
	__type(value, struct wait);
} waits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); // tgid
	__type(value, __u8);
} filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct settings);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// scratch builds a new proc off the 512-byte stack.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct proc);
} scratch SEC(".maps");

static __always_inline void count(__u32 c, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &c);
	if (v)
		*v += n;
}

static __always_inline struct settings *get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&settings, &zero);
}

static __always_inline bool traced(__u32 tgid)
{
	struct settings *c = get_config();
	if (!c || !c->filter_on)
		return true;
	return bpf_map_lookup_elem(&filter, &tgid) != NULL;
}

// get_proc returns tgid's entry, making it when create is set. comm and
// ppid come from task, the group's thread the event is about.
static __always_inline struct proc *get_proc(__u32 tgid, struct task_struct *task, bool create)
{
	struct proc *p = bpf_map_lookup_elem(&procs, &tgid);
	if (p || !create)
		return p;
	// An exiting task must not bring back the entry its exit removed.
	if (task->flags & PF_EXITING)
		return NULL;
	__u32 zero = 0;
	struct proc *n = bpf_map_lookup_elem(&scratch, &zero);
	if (!n)
		return NULL;
	__builtin_memset(n, 0, sizeof(*n));
	n->gen = bpf_ktime_get_ns();
	n->ppid = task->real_parent->tgid;
	bpf_probe_read_kernel_str(n->comm, sizeof(n->comm), task->group_leader->comm);
	long err = bpf_map_update_elem(&procs, &tgid, n, BPF_NOEXIST);
	if (err == 0)
		count(C_PROCS_CREATED, 1);
	else if (err != -17) // -EEXIST: another CPU made it first
		count(C_PROCS_DROPPED, 1);
	return bpf_map_lookup_elem(&procs, &tgid);
}

static __always_inline struct proc *current_proc(__u32 tgid)
{
	return get_proc(tgid, bpf_get_current_task_btf(), true);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid;
	if (!traced(ptgid))
		return 0;
	struct proc *p = get_proc(ptgid, parent, true);
	if (!p)
		return 0;
	if (child->pid == child->tgid) {
		__sync_fetch_and_add(&p->forks, 1);
		// The child starts with a clean entry of its own.
		__u32 ctgid = child->tgid;
		if (traced(ctgid))
			get_proc(ctgid, child, true);
	} else {
		__sync_fetch_and_add(&p->threads, 1);
	}
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = task->tgid;
	if (!traced(tgid))
		return 0;
	struct proc *p = get_proc(tgid, task, true);
	if (!p)
		return 0;
	__sync_fetch_and_add(&p->execs, 1);
	bpf_probe_read_kernel_str(p->comm, sizeof(p->comm), task->comm);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *task, bool group_dead)
{
	__u32 tid = task->pid, tgid = task->tgid;
	bpf_map_delete_elem(&waits, &tid);
	if (!group_dead) {
		struct proc *p = bpf_map_lookup_elem(&procs, &tgid);
		if (p)
			__sync_fetch_and_add(&p->thread_exits, 1);
		return 0;
	}
	// The parent counts its child even when only the parent is traced.
	__u32 ptgid = task->real_parent->tgid;
	struct proc *pp = bpf_map_lookup_elem(&procs, &ptgid);
	if (pp)
		__sync_fetch_and_add(&pp->child_exits, 1);
	if (!traced(tgid))
		return 0;
	count(C_EXITS, 1);
	if (bpf_map_delete_elem(&procs, &tgid) == 0)
		count(C_PROCS_REMOVED, 1);
	return 0;
}

// track records an allocation of size bytes at ptr for the current task.
static __always_inline void track(void *ctx, __u64 ptr, __u64 req, __u64 size, bool cache)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!traced(tgid))
		return;
	struct proc *p = current_proc(tgid);
	if (p) {
		__sync_fetch_and_add(cache ? &p->cache_alloc : &p->kmalloc, 1);
		__sync_fetch_and_add(&p->bytes_req, req);
		__sync_fetch_and_add(&p->bytes_alloc, size);
	}
	if (ptr == 0) {
		if (p)
			__sync_fetch_and_add(&p->failed, 1);
		return;
	}
	if (ptr <= 16) // ZERO_SIZE_PTR: kmalloc(0) holds nothing
		return;

	struct alloc *old = bpf_map_lookup_elem(&allocs, &ptr);
	if (old) {
		// Freed on a path without a tracepoint: uncharge the old owner.
		count(C_STALE_ALLOCS, 1);
		__u32 otgid = old->tgid;
		struct proc *op = bpf_map_lookup_elem(&procs, &otgid);
		if (op && op->gen == old->gen) {
			__sync_fetch_and_add(&op->bytes_out, -old->size);
			__sync_fetch_and_add(&op->allocs_out, -1);
		}
		bpf_map_delete_elem(&allocs, &ptr);
	}

	struct alloc a = {
		.size = size,
		.ts = bpf_ktime_get_ns(),
		.tgid = tgid,
		.stack_id = -1,
	};
	struct settings *c = get_config();
	if (c && c->stack_every && bpf_get_prandom_u32() % c->stack_every == 0) {
		a.stack_id = bpf_get_stackid(ctx, &stacks, 0);
		if (a.stack_id < 0)
			count(C_STACK_ERRORS, 1);
	}
	if (p) {
		a.gen = p->gen;
		// Charge before the entry is visible, so a racing free never
		// takes the counts below zero.
		__sync_fetch_and_add(&p->bytes_out, size);
		__sync_fetch_and_add(&p->allocs_out, 1);
	}
	if (bpf_map_update_elem(&allocs, &ptr, &a, BPF_ANY) != 0) {
		count(C_ALLOCS_DROPPED, 1);
		count(C_ALLOCS_DROPPED_BYTES, size);
		if (p) {
			__sync_fetch_and_add(&p->bytes_out, -size);
			__sync_fetch_and_add(&p->allocs_out, -1);
		}
	}
}

// untrack records a free of ptr: a call by the current task, bytes back to
// the allocating group.
static __always_inline void untrack(__u64 ptr, bool cache)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	bool t = traced(tgid);
	if (t) {
		struct proc *p = current_proc(tgid);
		if (p)
			__sync_fetch_and_add(cache ? &p->cache_free : &p->kfree, 1);
	}
	if (ptr <= 16) // kfree(NULL) and ZERO_SIZE_PTR free nothing
		return;
	struct alloc *a = bpf_map_lookup_elem(&allocs, &ptr);
	if (!a) {
		if (t)
			count(C_MISSED_FREES, 1);
		return;
	}
	__u32 otgid = a->tgid;
	__u64 size = a->size, gen = a->gen;
	if (bpf_map_delete_elem(&allocs, &ptr) != 0)
		return; // a racing free of the same address took it
	struct proc *op = bpf_map_lookup_elem(&procs, &otgid);
	if (op && op->gen == gen) {
		__sync_fetch_and_add(&op->bytes_out, -size);
		__sync_fetch_and_add(&op->allocs_out, -1);
		__sync_fetch_and_add(&op->bytes_freed, size);
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
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = id, tgid = id >> 32;
	if (!traced(tgid))
		return 0;
	struct wait *w = bpf_map_lookup_elem(&waits, &tid);
	if (w && w->lock == (__u64)lock) {
		// A mutex that stopped spinning and now sleeps: one contention,
		// timed from the first begin.
		w->flags = flags;
		return 0;
	}
	struct wait n = {.ts = bpf_ktime_get_ns(), .lock = (__u64)lock, .flags = flags};
	if (bpf_map_update_elem(&waits, &tid, &n, BPF_ANY) != 0)
		count(C_LOCK_DROPPED, 1);
	return 0;
}

SEC("tp_btf/contention_end")
int BPF_PROG(on_contention_end, void *lock, int ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = id;
	struct wait *w = bpf_map_lookup_elem(&waits, &tid);
	if (!w || w->lock != (__u64)lock) {
		__u32 tgid = id >> 32;
		if (traced(tgid))
			count(C_LOCK_UNMATCHED, 1);
		return 0;
	}
	__u64 wait = bpf_ktime_get_ns() - w->ts;
	__u32 kind = lock_kind(w->flags);
	bpf_map_delete_elem(&waits, &tid);

	struct proc *p = current_proc(id >> 32);
	if (!p || kind >= LOCK_KINDS)
		return 0;
	__sync_fetch_and_add(&p->lock_count[kind], 1);
	__sync_fetch_and_add(&p->lock_wait_ns[kind], wait);
	if (wait > p->lock_max_ns[kind])
		p->lock_max_ns[kind] = wait; // a lost race keeps a near-maximum
	return 0;
}
