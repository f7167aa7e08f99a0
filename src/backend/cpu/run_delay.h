/* How long a thread of this process has waited for a CPU: the kernel's
 * run-queue wait (the second field of /proc/self/task/TID/schedstat, in ns),
 * summed over the thread's life. It grows only while the thread is ready to
 * run and another task holds its core; time the hypervisor takes from the
 * whole virtual CPU, or the thread's own sleeps, do not count. The thread
 * pool reads it to tell a worker that lost its core to another program from
 * a one-off hiccup (threadpool.c). */
#ifndef LAGUNA_BACKEND_CPU_RUN_DELAY_H
#define LAGUNA_BACKEND_CPU_RUN_DELAY_H

#include <stdint.h>

/* The calling thread's kernel id (for lg_run_delay_open on another thread). */
int lg_thread_id(void);

/* A descriptor to read thread `tid`'s wait from, or -1 when this system does
 * not say (no /proc, a kernel without schedstats). Close it with close(). */
int lg_run_delay_open(int tid);

/* The thread's run-queue wait so far in ns, or -1 when it cannot be read. */
int64_t lg_run_delay_ns(int fd);

#endif
