#define _GNU_SOURCE
#include "csluice.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/if_tun.h>
#include <numa.h>
#include <hugetlbfs.h>

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif

int sl_pin_self_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

void sl_set_thread_name(const char *name) {
    char buf[16];
    strncpy(buf, name, sizeof(buf) - 1);
    buf[15] = 0;
    pthread_setname_np(pthread_self(), buf);
}

int sl_gettid(void) { return (int)syscall(SYS_gettid); }
int sl_current_cpu(void) { return sched_getcpu(); }

ssize_t sl_recv_with_fds(int sock, void *buf, size_t len, int *fds, int *nfds) {
    int max = *nfds;
    *nfds = 0;
    union {
        char buf[CMSG_SPACE(sizeof(int) * 32)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof(ctl.buf);
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    int got = 0, dropped = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *p = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            if (got < max) fds[got++] = p[i];
            else { close(p[i]); dropped = 1; }
        }
    }
    if ((msg.msg_flags & MSG_CTRUNC) || dropped) {
        for (int i = 0; i < got; i++) close(fds[i]);
        errno = EMSGSIZE;
        return -2;
    }
    *nfds = got;
    return n;
}

ssize_t sl_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds) {
    union {
        char buf[CMSG_SPACE(sizeof(int) * 32)];
        struct cmsghdr align;
    } ctl;
    if (nfds < 0 || nfds > 32) { errno = EINVAL; return -1; }
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds > 0) {
        memset(ctl.buf, 0, sizeof(ctl.buf));
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}

int sl_memfd_create(const char *name, unsigned int flags) { return memfd_create(name, flags); }

unsigned int sl_memfd_hugetlb_flags(size_t page_size) {
    unsigned int shift = 0;
    while (((size_t)1 << shift) < page_size && shift < 63) shift++;
    if (((size_t)1 << shift) != page_size) return 0;
    return MFD_HUGETLB | MFD_CLOEXEC | (shift << MFD_HUGE_SHIFT);
}

unsigned int sl_memfd_cloexec_flag(void) { return MFD_CLOEXEC; }
unsigned int sl_mfd_allow_sealing(void) { return MFD_ALLOW_SEALING; }
int sl_seal_shrink(int fd) { return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0 ? 0 : -errno; }

long sl_huge_default_size(void) { return gethugepagesize(); }

const char *sl_huge_mount_for(long page_size) { return hugetlbfs_find_path_for_size(page_size); }

int sl_numa_node_of_cpu(int cpu) {
    if (numa_available() < 0) return -1;
    return numa_node_of_cpu(cpu);
}

int sl_numa_bind_memory(void *addr, size_t len, int node) {
    if (numa_available() < 0 || node < 0) return -1;
    numa_tonode_memory(addr, len, node);
    return 0;
}

int sl_eventfd(unsigned int initval, int nonblock) {
    return eventfd(initval, EFD_CLOEXEC | (nonblock ? EFD_NONBLOCK : 0));
}

unsigned long sl_tunsetiff(void) { return TUNSETIFF; }

int sl_errno(void) { return errno; }
