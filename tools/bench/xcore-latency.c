/*
 * xcore-latency: how long one cache line takes to go from one CPU to another and back.
 *
 *   cc -O2 -pthread -o xcore-latency tools/bench/xcore-latency.c
 *   ./xcore-latency [CPU_A CPU_B [MILLISECONDS]]      (default 0 1 300)
 *
 * Two threads pinned to CPU_A and CPU_B take turns incrementing one shared 64-bit word;
 * each turn moves the line to the other CPU. Prints the median TSC cycles of a round
 * trip (A→B→A) over MILLISECONDS, split in 10 slices. The p2p benchmark runs it before
 * every sample: on a shared VM this number moves by 2–3× as the hypervisor places the
 * two vCPUs, and every virtio ring access between the generator and the DUT is such
 * a transfer, so it explains most of the sample-to-sample spread.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <x86intrin.h>

static _Alignas(64) volatile uint64_t word;
static _Alignas(64) volatile int stop;

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (pthread_setaffinity_np(pthread_self(), sizeof s, &s) != 0) {
        fprintf(stderr, "xcore-latency: cannot pin to cpu %d\n", cpu);
        exit(1);
    }
}

static void *responder(void *arg) {
    pin(*(int *)arg);
    while (!stop) {
        uint64_t v = word;
        if (v & 1) word = v + 1;   /* odd: the initiator's turn is done, hand it back */
    }
    return NULL;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int a = argc > 2 ? atoi(argv[1]) : 0;
    int b = argc > 2 ? atoi(argv[2]) : 1;
    double ms = argc > 3 ? atof(argv[3]) : 300;
    pthread_t t;
    if (pthread_create(&t, NULL, responder, &b) != 0) return 1;
    pin(a);
    double slice[10];
    for (int s = 0; s < 10; s++) {
        double end = now_ms() + ms / 10;
        uint64_t n = 0, c0 = __rdtsc();
        do {
            for (int k = 0; k < 64; k++) {
                uint64_t v = word;
                word = v + 1;                 /* odd: the responder's turn */
                while (word == v + 1) {}
            }
            n += 64;
        } while (now_ms() < end);
        slice[s] = (double)(__rdtsc() - c0) / n;
    }
    stop = 1;
    pthread_join(t, NULL);
    qsort(slice, 10, sizeof slice[0], cmp);
    printf("%.0f\n", (slice[4] + slice[5]) / 2);
    return 0;
}
