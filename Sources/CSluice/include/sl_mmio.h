// Device registers (a PCI BAR mapped through VFIO, or a test model's memory): every
// access is a volatile load or store of the register's width, never merged or split by
// the compiler; writes are ordered after earlier stores to memory the device reads
// (queue entries), as a doorbell needs.
#ifndef SL_MMIO_H
#define SL_MMIO_H

#include <stdint.h>

static inline uint32_t sl_mmio_read32(const void *p) { return *(const volatile uint32_t *)p; }

/// Two 32-bit reads, low half first (64-bit registers such as CAP).
static inline uint64_t sl_mmio_read64(const void *p) {
    uint64_t lo = *(const volatile uint32_t *)p;
    uint64_t hi = *((const volatile uint32_t *)p + 1);
    return lo | hi << 32;
}

static inline void sl_mmio_write32(void *p, uint32_t v) {
    __atomic_thread_fence(__ATOMIC_RELEASE);
    *(volatile uint32_t *)p = v;
}

/// Low half, then high half (ASQ, ACQ).
static inline void sl_mmio_write64(void *p, uint64_t v) {
    __atomic_thread_fence(__ATOMIC_RELEASE);
    *(volatile uint32_t *)p = (uint32_t)v;
    *((volatile uint32_t *)p + 1) = (uint32_t)(v >> 32);
}

#endif
