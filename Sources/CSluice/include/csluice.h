// CSluice: the few things Swift cannot say cleanly. Prefix `sl_`.
//
// Everything on the hot path is `static inline` so the Clang importer lets the
// Swift optimiser inline it; out-of-line helpers live in csluice.c.
#ifndef CSLUICE_H
#define CSLUICE_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

// ---------------------------------------------------------------------------
// CPU: pause, timestamp counter, prefetch.

static inline void sl_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#endif
}

static inline uint64_t sl_rdtsc(void) {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    uint64_t v; __asm__ volatile("mrs %0, cntvct_el0" : "=r"(v)); return v;
#endif
}

#include <sched.h>
/// Spin politely: pause, and after many turns let a preempted peer run.
static inline void sl_spin_wait(uint32_t *turns) {
    if (++*turns < 256) { sl_pause(); } else { *turns = 0; sched_yield(); }
}

static inline void sl_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
static inline void sl_prefetch_w(const void *p) { __builtin_prefetch(p, 1, 3); }

// ---------------------------------------------------------------------------
// Atomics on raw memory (guest rings, shared-memory counters, our own rings).
// Swift's `Atomic` must live inside a Swift value; these work on any aligned
// address, including memory shared with a guest or with sluice-stat.

static inline uint16_t sl_load_acquire_u16(const void *p) { return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE); }
static inline uint16_t sl_load_relaxed_u16(const void *p) { return __atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED); }
static inline void sl_store_release_u16(void *p, uint16_t v) { __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE); }
static inline void sl_store_relaxed_u16(void *p, uint16_t v) { __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELAXED); }

static inline uint32_t sl_load_acquire_u32(const void *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE); }
static inline uint32_t sl_load_relaxed_u32(const void *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED); }
static inline void sl_store_release_u32(void *p, uint32_t v) { __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE); }
static inline void sl_store_relaxed_u32(void *p, uint32_t v) { __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELAXED); }
static inline bool sl_cas_u32(void *p, uint32_t *expected, uint32_t desired) {
    return __atomic_compare_exchange_n((uint32_t *)p, expected, desired, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline uint32_t sl_fetch_add_u32(void *p, uint32_t v) { return __atomic_fetch_add((uint32_t *)p, v, __ATOMIC_ACQ_REL); }

static inline uint64_t sl_load_acquire_u64(const void *p) { return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE); }
static inline uint64_t sl_load_relaxed_u64(const void *p) { return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED); }
static inline void sl_store_release_u64(void *p, uint64_t v) { __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE); }
static inline void sl_store_relaxed_u64(void *p, uint64_t v) { __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELAXED); }
static inline uint64_t sl_fetch_add_u64(void *p, uint64_t v) { return __atomic_fetch_add((uint64_t *)p, v, __ATOMIC_ACQ_REL); }
static inline bool sl_cas_u64(void *p, uint64_t *expected, uint64_t desired) {
    return __atomic_compare_exchange_n((uint64_t *)p, expected, desired, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/// Single-writer counter bump: a relaxed load and store, no locked instruction.
static inline void sl_counter_add(void *p, uint64_t v) {
    uint64_t *c = (uint64_t *)p;
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static inline void sl_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
static inline void sl_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
/* Full barrier (store→load order). On x86 a locked add to the stack is enough and
 * cheaper than MFENCE (which also orders non-temporal and WC accesses we never use). */
static inline void sl_fence_seq_cst(void) {
#if defined(__x86_64__)
    __asm__ __volatile__("lock addl $0, -128(%%rsp)" ::: "memory", "cc");
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}
static inline void sl_compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }

// ---------------------------------------------------------------------------
// Threads and cores.

/// Pin the calling thread to one CPU. Returns 0 or an errno value.
int sl_pin_self_to_cpu(int cpu);
/// Name the calling thread (15 chars max, truncated).
void sl_set_thread_name(const char *name);
/// The kernel's thread id of the caller.
int sl_gettid(void);
/// The CPU the caller runs on now.
int sl_current_cpu(void);

// ---------------------------------------------------------------------------
// Unix sockets with fd passing (SCM_RIGHTS).

/// recvmsg into buf; up to *nfds fds are stored into fds, *nfds is set to the
/// number received. Flags: MSG_CTRUNC is reported by returning -2 after closing
/// whatever fds did arrive. Returns bytes read, 0 on EOF, -1 with errno.
ssize_t sl_recv_with_fds(int sock, void *buf, size_t len, int *fds, int *nfds);
/// sendmsg buf with nfds fds attached. Returns bytes written or -1 with errno.
ssize_t sl_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);

// ---------------------------------------------------------------------------
// Memory.

int sl_memfd_create(const char *name, unsigned int flags);
/// MFD_HUGETLB | MFD_CLOEXEC (and the page-size bits for `page_size`), 0 if unknown.
unsigned int sl_memfd_hugetlb_flags(size_t page_size);
unsigned int sl_memfd_cloexec_flag(void);
unsigned int sl_mfd_allow_sealing(void);
/// Seal `fd` (a memfd made with MFD_ALLOW_SEALING) against shrinking: 0 or -errno.
int sl_seal_shrink(int fd);

/// libhugetlbfs: the default huge page size, or -1 when none is configured.
long sl_huge_default_size(void);
/// libhugetlbfs: a mounted hugetlbfs path for the given page size, or NULL.
const char *sl_huge_mount_for(long page_size);
/// libnuma: -1 when NUMA is not available, else the node of the CPU.
int sl_numa_node_of_cpu(int cpu);
/// libnuma: bind [addr, addr+len) to a node (best effort). 0 on success.
int sl_numa_bind_memory(void *addr, size_t len, int node);

// ---------------------------------------------------------------------------
// ioctl and misc constants Swift cannot import from macros.

int sl_eventfd(unsigned int initval, int nonblock);
unsigned long sl_tunsetiff(void);
int sl_errno(void);

// Host ports (tap, AF_PACKET rings).
#include "sl_hostio.h"
// io_uring (blk file backend).
#include "sl_uring.h"
// Device registers (NVMe BAR0).
#include "sl_mmio.h"
// VFIO container/group/device ioctls (NVMe over vfio-pci).
#include "sl_vfio.h"

#endif
