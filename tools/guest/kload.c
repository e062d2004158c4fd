// kload: 4 KiB-style random O_DIRECT reads at a fixed queue depth through io_uring, the
// guest kernel's side of tools/bench/nvme-vs-kernel.sh (the image has no fio). Test-guest
// helper only; not part of sluice.
//
//   kload --dev /dev/nvme0n1 [--qd 1] [--bs 4096] [--secs 5] [--range BYTES] [--cpu N] [--seed N]
//   kload --tsc          the TSC rate (rdtsc against CLOCK_MONOTONIC_RAW over 200 ms)
//
// Keeps --qd reads in flight for --secs seconds (each at a random --bs-aligned offset below
// --range, default the whole device), waits for the last ones, and prints one line:
//
//   KLOAD iops=X ios=N secs=X qd=N bs=N errors=N mean_us=X p50_us=N p99_us=N utime_us=N stime_us=N
//
// Latency is from io_uring_submit to the reap of the completion (1 µs buckets up to 65 ms).
// utime/stime: this process's own CPU (getrusage); interrupt and softirq work the kernel
// does for the reads is not charged to it, so the caller reads /proc/stat as well.
// The random sequence is xorshift64* from --seed, so runs are repeatable.
// Exit 1 on a setup error or when a read fails.
//
// Build (static, for the initramfs): gcc -O2 -static -o kload kload.c -luring
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { MAX_QD = 256, LAT_BUCKETS = 65536 };

static uint32_t latency[LAT_BUCKETS + 1];   // [µs], the last one: 65 ms and more

static uint64_t now_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static uint64_t rng;
static uint64_t next_random(void) {   // xorshift64*
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

// A size with an optional k/m/g suffix; 0 when it does not parse.
static uint64_t parse_size(const char *s) {
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    switch (*end) {
        case 'k': case 'K': v <<= 10; end++; break;
        case 'm': case 'M': v <<= 20; end++; break;
        case 'g': case 'G': v <<= 30; end++; break;
    }
    return *end == 0 ? v : 0;
}

static void usage(void) {
    fprintf(stderr, "usage: kload --dev PATH [--qd N] [--bs BYTES] [--secs S] [--range BYTES] [--cpu N] [--seed N] | kload --tsc\n");
    exit(1);
}

// The TSC rate, so that cycle counts from rdtsc (sluice's busy_cycles) can be set against
// wall time in the same guest: under TCG the guest TSC follows the host's.
static int tsc_rate(void) {
    uint64_t c0 = rdtsc(), t0 = now_ns(CLOCK_MONOTONIC_RAW);
    struct timespec d = { 0, 200000000 };
    nanosleep(&d, NULL);
    uint64_t c1 = rdtsc(), t1 = now_ns(CLOCK_MONOTONIC_RAW);
    printf("KLOAD tsc_hz=%.0f\n", (double)(c1 - c0) * 1e9 / (double)(t1 - t0));
    return 0;
}

int main(int argc, char **argv) {
    const char *dev = NULL;
    unsigned qd = 1, cpu = ~0u;
    uint64_t bs = 4096, range = 0;
    double secs = 5;
    rng = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--tsc") == 0) return tsc_rate();
        if (v == NULL) usage();
        if (strcmp(a, "--dev") == 0) dev = v;
        else if (strcmp(a, "--qd") == 0) qd = (unsigned)atoi(v);
        else if (strcmp(a, "--bs") == 0) bs = parse_size(v);
        else if (strcmp(a, "--secs") == 0) secs = atof(v);
        else if (strcmp(a, "--range") == 0) range = parse_size(v);
        else if (strcmp(a, "--cpu") == 0) cpu = (unsigned)atoi(v);
        else if (strcmp(a, "--seed") == 0) rng = strtoull(v, NULL, 0) | 1;
        else usage();
        i++;
    }
    if (dev == NULL || qd < 1 || qd > MAX_QD || bs < 512 || bs % 512 != 0 || secs <= 0) usage();
    if (cpu != ~0u) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("kload: sched_setaffinity"); return 1; }
    }
    int fd = open(dev, O_RDONLY | O_DIRECT);
    if (fd < 0) { fprintf(stderr, "kload: open %s: %s\n", dev, strerror(errno)); return 1; }
    uint64_t size = 0;
    if (ioctl(fd, BLKGETSIZE64, &size) != 0) {
        struct stat st;
        if (fstat(fd, &st) != 0) { perror("kload: size"); return 1; }
        size = (uint64_t)st.st_size;
    }
    if (range == 0 || range > size) range = size;
    uint64_t blocks = range / bs;
    if (blocks == 0) { fprintf(stderr, "kload: %s has %llu bytes, less than one block of %llu\n", dev, (unsigned long long)size, (unsigned long long)bs); return 1; }

    struct io_uring ring;
    int rc = io_uring_queue_init(qd, &ring, 0);
    if (rc < 0) { fprintf(stderr, "kload: io_uring_queue_init: %s\n", strerror(-rc)); return 1; }
    char *buf;
    if (posix_memalign((void **)&buf, 4096, (size_t)(bs * qd)) != 0) { fprintf(stderr, "kload: no memory\n"); return 1; }
    memset(buf, 0, (size_t)(bs * qd));
    uint64_t issued[MAX_QD];

    uint64_t t0 = now_ns(CLOCK_MONOTONIC), stop = t0 + (uint64_t)(secs * 1e9), ios = 0, errors = 0, lat_sum = 0;
    unsigned inflight = 0;
    int running = 1;
    // Slot i is reused for the next read as soon as its completion is reaped.
    for (unsigned i = 0; i < qd; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_read(sqe, fd, buf + i * bs, (unsigned)bs, (next_random() % blocks) * bs);
        io_uring_sqe_set_data64(sqe, i);
    }
    uint64_t t = now_ns(CLOCK_MONOTONIC);
    for (unsigned i = 0; i < qd; i++) issued[i] = t;
    inflight = qd;
    io_uring_submit(&ring);
    while (inflight > 0) {
        struct io_uring_cqe *cqe;
        rc = io_uring_wait_cqe(&ring, &cqe);
        if (rc < 0) { fprintf(stderr, "kload: io_uring_wait_cqe: %s\n", strerror(-rc)); return 1; }
        t = now_ns(CLOCK_MONOTONIC);
        if (running && t >= stop) running = 0;
        unsigned head, seen = 0, again = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            unsigned slot = (unsigned)io_uring_cqe_get_data64(cqe);
            if (cqe->res != (int)bs) {
                if (errors++ == 0) fprintf(stderr, "kload: read returned %d (%s)\n", cqe->res, cqe->res < 0 ? strerror(-cqe->res) : "short");
            }
            uint64_t us = (t - issued[slot]) / 1000;
            latency[us < LAT_BUCKETS ? us : LAT_BUCKETS]++;
            lat_sum += t - issued[slot];
            ios++;
            seen++;
            inflight--;
            if (running) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                io_uring_prep_read(sqe, fd, buf + slot * bs, (unsigned)bs, (next_random() % blocks) * bs);
                io_uring_sqe_set_data64(sqe, slot);
                issued[slot] = t;
                inflight++;
                again++;
            }
        }
        io_uring_cq_advance(&ring, seen);
        if (again) io_uring_submit(&ring);
    }
    double elapsed = (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    uint64_t p50 = 0, p99 = 0, acc = 0;
    int have50 = 0;
    for (unsigned i = 0; i <= LAT_BUCKETS; i++) {
        acc += latency[i];
        if (!have50 && acc * 2 >= ios) { p50 = i; have50 = 1; }
        if (acc * 100 >= ios * 99) { p99 = i; break; }
    }
    printf("KLOAD iops=%.1f ios=%llu secs=%.3f qd=%u bs=%llu errors=%llu mean_us=%.1f p50_us=%llu p99_us=%llu utime_us=%lld stime_us=%lld\n",
           (double)ios / elapsed, (unsigned long long)ios, elapsed, qd, (unsigned long long)bs,
           (unsigned long long)errors, ios ? (double)lat_sum / (double)ios / 1000.0 : 0.0,
           (unsigned long long)p50, (unsigned long long)p99,
           (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
           (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec);
    io_uring_queue_exit(&ring);
    close(fd);
    return errors ? 1 : 0;
}
