/* The thread pool under stress: more threads than cores, thousands of short
 * loops back to back whose task counts change from loop to loop (the pattern
 * of a forward pass: a big matmul, then a one-task norm, then attention over a
 * few heads). Every task of every loop must run exactly once, with that loop's
 * function and context, and never with an index outside the loop. A worker
 * still finishing the previous loop while the next one is being set up once
 * ran a stale task with the new loop's fields (a crash seen on 16 cores);
 * `make tsan` runs this under ThreadSanitizer. Last, a worker that keeps
 * waiting for a core (the pool confined to one CPU) must be made to sit out,
 * every task still run exactly once, and come back once the core is free. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/cpu/cpu_idle.h"
#include "backend/cpu/run_delay.h"
#include "backend/cpu/threadpool.h"
#include "harness.h"

#define MAX_TASKS 97

typedef struct {
    int loop;
    int n_tasks;
    atomic_int runs[MAX_TASKS];
    atomic_int out_of_range;
    atomic_int wrong_thread;
    int n_threads;
} loop_record;

static void count_task(void *ctx, int task, int thread) {
    loop_record *r = ctx;
    if (task < 0 || task >= r->n_tasks)
        atomic_fetch_add(&r->out_of_range, 1);
    else
        atomic_fetch_add(&r->runs[task], 1);
    if (thread < 0 || thread >= r->n_threads) atomic_fetch_add(&r->wrong_thread, 1);
}

/* The same work through a second function, so a task run with the wrong
 * function shows up as a count in the wrong record. */
static void count_task_other(void *ctx, int task, int thread) {
    count_task(ctx, task, thread);
}

static void stress(int n_threads, int n_loops) {
    lg_threadpool *pool = lg_threadpool_new(n_threads);
    CHECK(pool != NULL);
    if (!pool) return;
    CHECK(lg_threadpool_size(pool) == n_threads);
    /* two records used alternately: a stale task lands in the one not being checked */
    loop_record *rec = calloc(2, sizeof *rec);
    int bad_loops = 0;
    uint32_t x = 12345;
    for (int loop = 0; loop < n_loops; loop++) {
        loop_record *r = &rec[loop & 1];
        x = x * 1103515245u + 12345u;
        int n = 1 + (int)((x >> 16) % MAX_TASKS);
        if (loop % 3 == 1) n = 1 + (int)((x >> 8) % 3); /* short loops between long ones */
        memset(r, 0, sizeof *r);
        r->loop = loop, r->n_tasks = n, r->n_threads = n_threads;
        if (loop % 4 >= 2) /* half the loops in contiguous lanes, mixed with dealt ones */
            lg_threadpool_run_contiguous(pool, n, (loop & 1) ? count_task_other : count_task, r);
        else
            lg_threadpool_run(pool, n, (loop & 1) ? count_task_other : count_task, r);
        int ok = atomic_load(&r->out_of_range) == 0 && atomic_load(&r->wrong_thread) == 0;
        for (int t = 0; t < n; t++)
            ok &= atomic_load(&r->runs[t]) == 1;
        for (int t = n; t < MAX_TASKS; t++)
            ok &= atomic_load(&r->runs[t]) == 0;
        bad_loops += !ok;
    }
    CHECKF(bad_loops == 0, "%d threads: %d of %d loops ran a task not exactly once", n_threads,
           bad_loops, n_loops);
    lg_threadpool_free(pool);
    free(rec);
}

static void test_many_short_loops(void) {
    stress(2, 20000);
    stress(7, 20000);
    stress(16, 20000);
}

static void test_zero_and_single_task_loops(void) {
    lg_threadpool *pool = lg_threadpool_new(4);
    CHECK(pool != NULL);
    if (!pool) return;
    loop_record *r = calloc(1, sizeof *r);
    r->n_threads = 4;
    lg_threadpool_run(pool, 0, count_task, r); /* nothing runs */
    CHECK(atomic_load(&r->runs[0]) == 0);
    r->n_tasks = 1;
    lg_threadpool_run(pool, 1, count_task, r);
    CHECK(atomic_load(&r->runs[0]) == 1 && atomic_load(&r->out_of_range) == 0);
    lg_threadpool_free(pool);
    free(r);
}

/* Contiguous lanes: every task exactly once at every size (fewer tasks than
 * threads included), and on a pool of one thread all of them in order.
 * Which thread runs which lane depends on the scheduler, so on several
 * threads only the counts are checked. */
typedef struct {
    int n_tasks;
    atomic_int runs[4096];
    int order[16][4096];
    atomic_int n_order[16];
} lane_record;

static void lane_count(void *ctx, int task, int thread) {
    lane_record *r = ctx;
    atomic_fetch_add(&r->runs[task], 1);
    r->order[thread][atomic_fetch_add(&r->n_order[thread], 1)] = task;
}

static void test_contiguous_lanes(void) {
    int threads[] = {1, 3, 16};
    lane_record *r = calloc(1, sizeof *r);
    for (int k = 0; k < 3; k++) {
        lg_threadpool *pool = lg_threadpool_new(threads[k]);
        CHECK(pool != NULL);
        if (!pool) continue;
        for (int n = 1; n <= 4096; n = n * 3 + 1) {
            memset(r, 0, sizeof *r);
            r->n_tasks = n;
            lg_threadpool_run_contiguous(pool, n, lane_count, r);
            int once = 1, shape = 1;
            for (int t = 0; t < n; t++)
                once &= atomic_load(&r->runs[t]) == 1;
            for (int th = 0; th < threads[k]; th++) {
                int m = atomic_load(&r->n_order[th]), i = 1;
                while (i < m && r->order[th][i] > r->order[th][i - 1])
                    i++;
                if (threads[k] == 1) shape &= i == m && m == n;
            }
            CHECKF(once && shape,
                   "%d threads, %d tasks: a task not run exactly once or out of order", threads[k],
                   n);
        }
        lg_threadpool_free(pool);
    }
    free(r);
}

/* Sitting out, as `bench/llama_cpp_compare.sh --busy-core` sees it: the
 * pool's worker confined to one CPU beside a thread that spins there, the
 * caller on another CPU. Loops of short tasks (decode's shape) then stall
 * whenever the spinner takes the worker's CPU in the middle of a task; the
 * pool must notice within seconds and run the loops on the caller alone,
 * every task still run once, by default; once the spinner stops, the CPU it
 * held goes idle and the worker must take part again (where idle can be read).
 * With LAGUNA_CPU_SIT_OUT=0 it must never sit out. */
static void busy_task(void *ctx, int task, int thread) {
    loop_record *r = ctx;
    uint32_t x = (uint32_t)task + 1;
    for (int i = 0; i < 20000; i++)
        x = x * 1664525u + 1013904223u;                /* ~25 us */
    if (x == 0) atomic_fetch_add(&r->wrong_thread, 0); /* keeps the loop */
    count_task(ctx, task, thread);
}

static void *spin_until_told(void *arg) {
    atomic_int *stop = arg;
    while (!atomic_load_explicit(stop, memory_order_relaxed)) {
    }
    return NULL;
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Loops on a 2-thread pool whose worker shares CPU `shared` with a spinning
 * thread while the caller runs on `own`, for up to `limit` s; returns whether
 * the worker sat out, counting loops that ran a task not exactly once into
 * *bad. With `came_back`, the spinner then stops and the loops go on for up to
 * `limit` s more until the worker takes part again: *came_back says whether
 * it did, *idle_share how much of that time CPU `shared` was idle (-1 unknown;
 * other programs may have taken it). */
static int loops_until_sitting_out(int shared, int own, double limit, int *bad, int *came_back,
                                   double *idle_share) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(shared, &set);
    CHECK(sched_setaffinity(0, sizeof set, &set) == 0);
    lg_threadpool *pool = lg_threadpool_new(2); /* the worker and the spinner keep this CPU */
    lg_cpu_idle *shared_idle = came_back ? lg_cpu_idle_open() : NULL; /* of `shared` alone */
    int64_t idle_at_free = -1;
    atomic_int stop = 0;
    pthread_t spinner;
    int spinning = pthread_create(&spinner, NULL, spin_until_told, &stop) == 0;
    CPU_ZERO(&set);
    CPU_SET(own, &set);
    CHECK(sched_setaffinity(0, sizeof set, &set) == 0);
    CHECK(pool != NULL && spinning);
    loop_record *r = calloc(1, sizeof *r);
    int sat_out = 0, after = 0, freed = 0;
    double start = seconds_now();
    if (came_back) *came_back = 0;
    for (int loop = 0; pool && seconds_now() - start < limit; loop++) {
        if (!came_back && after >= 200) break;
        if (came_back && sat_out && !freed) { /* the core is free from now on */
            atomic_store(&stop, 1);
            pthread_join(spinner, NULL);
            spinning = 0, freed = 1, start = seconds_now();
            idle_at_free = shared_idle ? lg_cpu_idle_ns(shared_idle) : -1;
        }
        if (freed && lg_threadpool_sitting_out(pool) == 0) {
            *came_back = 1;
            break;
        }
        int n = 8 + loop % 9;
        memset(r, 0, sizeof *r);
        r->n_tasks = n, r->n_threads = 2;
        if (loop & 1)
            lg_threadpool_run_contiguous(pool, n, busy_task, r);
        else
            lg_threadpool_run(pool, n, busy_task, r);
        int ok = atomic_load(&r->out_of_range) == 0 && atomic_load(&r->wrong_thread) == 0;
        for (int t = 0; t < n; t++)
            ok &= atomic_load(&r->runs[t]) == 1;
        *bad += !ok;
        if (lg_threadpool_sitting_out(pool) > 0) sat_out = 1;
        after += sat_out; /* loops more while it sits out */
    }
    if (idle_share) {
        int64_t idle = idle_at_free >= 0 ? lg_cpu_idle_ns(shared_idle) : -1;
        *idle_share =
            idle >= 0 ? 1e-9 * (double)(idle - idle_at_free) / (seconds_now() - start) : -1;
    }
    lg_cpu_idle_close(shared_idle);
    atomic_store(&stop, 1);
    if (spinning) pthread_join(spinner, NULL);
    lg_threadpool_free(pool);
    free(r);
    return sat_out;
}

/* Two CPUs of this process's mask for the sitting-out cases, or 0 with the
 * case marked skipped. */
static int two_cpus(int cpus[2], cpu_set_t *old) {
    int probe = lg_run_delay_open(lg_thread_id());
    if (probe < 0) {
        test_skip("this system does not report run-queue waits (/proc/self/task/*/schedstat)");
        return 0;
    }
    close(probe);
    int n = 0;
    if (sched_getaffinity(0, sizeof *old, old) != 0) CPU_ZERO(old);
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, old)) cpus[n++] = c;
    if (n < 2) test_skip("needs two CPUs");
    return n == 2;
}

static void test_sits_out_a_worker_without_a_core(void) {
    cpu_set_t old;
    int cpus[2], bad = 0;
    if (!two_cpus(cpus, &old)) return;
    unsetenv("LAGUNA_CPU_SIT_OUT");
    CHECKF(loops_until_sitting_out(cpus[1], cpus[0], 10.0, &bad, NULL, NULL),
           "the worker did not sit out within 10 s beside a spinning thread (the default)");
    setenv("LAGUNA_CPU_SIT_OUT", "1", 1);
    CHECKF(loops_until_sitting_out(cpus[1], cpus[0], 10.0, &bad, NULL, NULL),
           "the worker did not sit out within 10 s with LAGUNA_CPU_SIT_OUT=1");
    setenv("LAGUNA_CPU_SIT_OUT", "0", 1);
    CHECKF(!loops_until_sitting_out(cpus[1], cpus[0], 0.5, &bad, NULL, NULL),
           "the worker sat out with LAGUNA_CPU_SIT_OUT=0");
    unsetenv("LAGUNA_CPU_SIT_OUT");
    CHECKF(bad == 0, "%d loops ran a task not exactly once", bad);
    sched_setaffinity(0, sizeof old, &old);
}

/* Once the spinner stops, the worker's CPU goes idle and the worker must
 * take part again within seconds. Another program that keeps that CPU busy
 * all the while (a shared machine) rightly keeps it out: then the case is
 * skipped, not failed. */
static void test_comes_back_when_its_core_is_free(void) {
    cpu_set_t old;
    int cpus[2], bad = 0, came_back = 0;
    double idle_share = -1;
    if (!two_cpus(cpus, &old)) return;
    unsetenv("LAGUNA_CPU_SIT_OUT");
    int sat_out = loops_until_sitting_out(cpus[1], cpus[0], 10.0, &bad, &came_back, &idle_share);
    CHECKF(sat_out, "the worker did not sit out within 10 s beside a spinning thread");
    if (sat_out && !came_back && idle_share >= 0 && idle_share < 0.5)
        test_skip("CPU %d was idle only %.0f%% of the 10 s after the spinner stopped (another "
                  "program's), so the worker rightly stayed out",
                  cpus[1], 100 * idle_share);
    else
        CHECKF(!sat_out || came_back,
               "the worker did not come back within 10 s of its CPU "
               "going free (idle %.0f%% of the time)",
               100 * idle_share);
    CHECKF(bad == 0, "%d loops ran a task not exactly once", bad);
    sched_setaffinity(0, sizeof old, &old);
}

int main(void) {
    RUN(test_many_short_loops);
    RUN(test_contiguous_lanes);
    RUN(test_zero_and_single_task_loops);
    RUN(test_sits_out_a_worker_without_a_core);
    RUN(test_comes_back_when_its_core_is_free);
    return test_summary();
}
