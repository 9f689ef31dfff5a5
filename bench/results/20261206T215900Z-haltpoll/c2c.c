/*
 * How far apart are CPU 0 and CPU 1? Two threads, pinned to CPU 0 and CPU 1, hand one
 * cache line back and forth two million times; the time of a hand-over is the time a
 * written line takes to reach the other CPU. Threads of one physical core share their
 * L1 and hand a line over in well under 15 ns; separate cores behind one L3 take a few
 * tens of ns; cores behind different L3s take more.
 *
 *   gcc -O2 -pthread c2c.c -o /tmp/c2c && /tmp/c2c
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#define N 2000000L

static _Atomic long line __attribute__((aligned(64)));

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* CPU 1 answers each odd value with the next even one. */
static void *answer(void *unused)
{
    (void)unused;
    pin(1);
    for (long i = 0; i < N; i++) {
        while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 1)
            ;
        atomic_store_explicit(&line, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

int main(void)
{
    pthread_t t;
    struct timespec a, b;
    pthread_create(&t, NULL, answer, NULL);
    pin(0);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < N; i++) {
        atomic_store_explicit(&line, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 2)
            ;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    pthread_join(t, NULL);
    double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / N;
    printf("CPU 0 -> CPU 1 -> CPU 0: %.1f ns a round, %.1f ns a hand-over\n", ns, ns / 2);
    return 0;
}
