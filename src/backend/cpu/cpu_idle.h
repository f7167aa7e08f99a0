/* How long the CPUs this process may run on have been idle: the idle and
 * iowait columns of their lines in /proc/stat, summed, in ns (the kernel
 * keeps them to the microsecond and prints them in 10 ms ticks). The thread
 * pool reads it while a worker sits out: a CPU that stays idle beside the
 * caller means the program that took the worker's core has gone, so the
 * worker comes back (threadpool.c). Other containers on the same kernel
 * count as busy, as they should: they take cores too. */
#ifndef LAGUNA_BACKEND_CPU_CPU_IDLE_H
#define LAGUNA_BACKEND_CPU_CPU_IDLE_H

#include <stdint.h>

typedef struct lg_cpu_idle lg_cpu_idle;

/* A reader for the CPUs in this thread's affinity mask now, or NULL when
 * this system does not say (no /proc/stat) or out of memory. */
lg_cpu_idle *lg_cpu_idle_open(void);
void lg_cpu_idle_close(lg_cpu_idle *r);

/* Idle time so far summed over those CPUs, in ns; -1 when unreadable. */
int64_t lg_cpu_idle_ns(lg_cpu_idle *r);

#endif
