// io_uring for the blk file backend: a thin wrapper over liburing (whose helpers are
// static inline and use C atomics the Swift importer does not take). One ring per blk
// queue; the owning worker prepares, submits and reaps; the control thread creates,
// drains (worker paused) and destroys.
#ifndef SL_URING_H
#define SL_URING_H

#include <stdint.h>
#include <sys/uio.h>

typedef struct sl_uring sl_uring;

/// A ring with `entries` submission slots (rounded up to a power of two) and twice
/// as many completion slots. NULL with *err = -errno on failure.
sl_uring *sl_uring_create(unsigned entries, int *err);
void sl_uring_destroy(sl_uring *ring);
/// Register the disk as fixed files: 0 (`direct`, O_DIRECT where possible) and 1
/// (`buffered`, the fallback for requests O_DIRECT refuses). 0 or -errno.
int sl_uring_register_files(sl_uring *ring, int direct, int buffered);
/// Completions also signal `efd` (event mode). 0 or -errno.
int sl_uring_register_eventfd(sl_uring *ring, int efd);
/// Completions stop signalling the eventfd (polling modes). 0 or -errno.
int sl_uring_unregister_eventfd(sl_uring *ring);
/// Run the ring's kernel worker threads (io-wq: requests that cannot complete inline)
/// on these CPUs, not on the polling worker's own core. 0 or -errno.
int sl_uring_set_worker_cpus(sl_uring *ring, const int *cpus, unsigned n);

/// Queue one operation on fixed file `file` (reads and writes) or 0 (the rest); `user`
/// comes back with its completion. 0, or -EBUSY when the submission queue is full.
int sl_uring_prep_readv(sl_uring *ring, int file, const struct iovec *iov, unsigned n, uint64_t offset, uint64_t user);
int sl_uring_prep_writev(sl_uring *ring, int file, const struct iovec *iov, unsigned n, uint64_t offset, uint64_t user);
/// fdatasync of the file.
int sl_uring_prep_fsync(sl_uring *ring, uint64_t user);
int sl_uring_prep_fallocate(sl_uring *ring, int mode, uint64_t offset, uint64_t length, uint64_t user);

/// Submit what was prepared. Number submitted or -errno.
int sl_uring_submit(sl_uring *ring);
/// Take up to `max` completions without waiting. Returns how many.
unsigned sl_uring_reap(sl_uring *ring, uint64_t *users, int32_t *results, unsigned max);
/// Wait for one completion (control thread, draining). 0 or -errno.
int sl_uring_wait(sl_uring *ring, uint64_t *user, int32_t *result);
/// Completions ready to reap.
unsigned sl_uring_ready(sl_uring *ring);

/// fallocate modes (for Swift).
/// O_DIRECT (a GNU flag the importer does not see).
int sl_o_direct_flag(void);
int sl_falloc_punch_hole(void);
int sl_falloc_zero_range(void);
/// Size in bytes of the block device `fd`, or -errno.
int64_t sl_blkdev_size(int fd);
/// Logical sector size of block device `fd`, or -errno.
int sl_blkdev_logical_block_size(int fd);

#endif
