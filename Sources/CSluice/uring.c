#define _GNU_SOURCE
#include "sl_uring.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <sched.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/ioctl.h>

struct sl_uring {
    struct io_uring ring;
};

sl_uring *sl_uring_create(unsigned entries, int *err) {
    sl_uring *r = calloc(1, sizeof *r);
    if (!r) { *err = -ENOMEM; return NULL; }
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 2;
    int rc = io_uring_queue_init_params(entries, &r->ring, &p);
    if (rc < 0) { free(r); *err = rc; return NULL; }
    return r;
}

void sl_uring_destroy(sl_uring *r) {
    if (!r) return;
    io_uring_queue_exit(&r->ring);
    free(r);
}

int sl_uring_register_files(sl_uring *r, int direct, int buffered) {
    int fds[2] = {direct, buffered};
    return io_uring_register_files(&r->ring, fds, 2);
}

int sl_uring_register_eventfd(sl_uring *r, int efd) { return io_uring_register_eventfd(&r->ring, efd); }

int sl_uring_unregister_eventfd(sl_uring *r) { return io_uring_unregister_eventfd(&r->ring); }

int sl_uring_set_worker_cpus(sl_uring *r, const int *cpus, unsigned n) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (unsigned i = 0; i < n; i++) {
        if (cpus[i] >= 0 && cpus[i] < CPU_SETSIZE) CPU_SET(cpus[i], &set);
    }
    return io_uring_register_iowq_aff(&r->ring, sizeof set, &set);
}

// The next free SQE, or NULL when the submission queue is full. Every operation is on
// fixed file 0 and carries `user` back in its completion.
static struct io_uring_sqe *next_sqe(sl_uring *r) { return io_uring_get_sqe(&r->ring); }

static int queued(struct io_uring_sqe *sqe, uint64_t user) {
    sqe->flags |= IOSQE_FIXED_FILE;   // sqe->fd is the index of a registered file
    io_uring_sqe_set_data64(sqe, user);
    return 0;
}

int sl_uring_prep_readv(sl_uring *r, int file, const struct iovec *iov, unsigned n, uint64_t offset, uint64_t user) {
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe) return -EBUSY;
    io_uring_prep_readv(sqe, file, iov, n, offset);
    return queued(sqe, user);
}

int sl_uring_prep_writev(sl_uring *r, int file, const struct iovec *iov, unsigned n, uint64_t offset, uint64_t user) {
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe) return -EBUSY;
    io_uring_prep_writev(sqe, file, iov, n, offset);
    return queued(sqe, user);
}

int sl_uring_prep_fsync(sl_uring *r, uint64_t user) {
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe) return -EBUSY;
    io_uring_prep_fsync(sqe, 0, IORING_FSYNC_DATASYNC);
    return queued(sqe, user);
}

int sl_uring_prep_fallocate(sl_uring *r, int mode, uint64_t offset, uint64_t length, uint64_t user) {
    struct io_uring_sqe *sqe = next_sqe(r);
    if (!sqe) return -EBUSY;
    io_uring_prep_fallocate(sqe, 0, mode, offset, length);
    return queued(sqe, user);
}

int sl_uring_submit(sl_uring *r) { return io_uring_submit(&r->ring); }

unsigned sl_uring_reap(sl_uring *r, uint64_t *users, int32_t *results, unsigned max) {
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&r->ring, head, cqe) {
        if (n == max) break;
        users[n] = io_uring_cqe_get_data64(cqe);
        results[n] = cqe->res;
        n++;
    }
    if (n) io_uring_cq_advance(&r->ring, n);
    return n;
}

int sl_uring_wait(sl_uring *r, uint64_t *user, int32_t *result) {
    struct io_uring_cqe *cqe;
    int rc = io_uring_wait_cqe(&r->ring, &cqe);
    if (rc < 0) return rc;
    *user = io_uring_cqe_get_data64(cqe);
    *result = cqe->res;
    io_uring_cqe_seen(&r->ring, cqe);
    return 0;
}

unsigned sl_uring_ready(sl_uring *r) { return io_uring_cq_ready(&r->ring); }

int sl_falloc_punch_hole(void) { return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE; }
int sl_falloc_zero_range(void) { return FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE; }

int64_t sl_blkdev_size(int fd) {
    uint64_t size = 0;
    if (ioctl(fd, BLKGETSIZE64, &size) != 0) return -errno;
    return (int64_t)size;
}

int sl_blkdev_logical_block_size(int fd) {
    int size = 0;
    if (ioctl(fd, BLKSSZGET, &size) != 0) return -errno;
    return size;
}
int sl_o_direct_flag(void) { return O_DIRECT; }
