/* Thread pool: tasks are claimed from one atomic word that holds the loop's
 * generation and the number of tasks not yet claimed, and the caller waits for
 * the count of finished tasks, never for particular workers. So a worker that
 * the OS has not scheduled (a busy machine) costs nothing: the caller and
 * whoever is running take its share. Between loops workers spin briefly
 * (decoding issues hundreds of short loops per token, and a condition-variable
 * wake-up costs more than many of them), then sleep on a condition variable.
 *
 * Why the word counts what is left rather than the next index: a worker can
 * still be inside drain() of the previous loop while the caller writes the
 * next loop's fn, ctx and n_tasks. Deciding "is a task left?" from the claim
 * word alone means such a worker never reads those fields before a successful
 * compare-exchange, and a compare-exchange against a stale generation fails. */
#include "backend/cpu/threadpool.h"

#include "backend/cpu/cpu_idle.h"
#include "backend/cpu/run_delay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SPIN_ROUNDS 20000 /* polls before sleeping (a few hundred microseconds) */

/* Sitting out. When another program wants one of our cores, short loops
 * (decode: ~50 per token) suffer twice: a worker taken off its core in the
 * middle of a task holds the loop for a time slice, and two of our threads
 * put on the one core left spin-wait for each other. Every WINDOW_NS the
 * caller reads how long each thread of the pool waited on a run queue
 * meanwhile (run_delay.h: ready to run, no CPU; the hypervisor's own
 * hiccups, which stop the whole virtual CPU, do not count). When a thread
 * waited CONTENDED_PCT% of the window or more and the loops were short (at
 * most SHORT_LOOP_NS on average) or the caller spent WAITING_PCT% of the window
 * waiting for workers at their ends, the workers that waited for a CPU (or,
 * when only the caller did, the one that waited most) sit out: they take no
 * tasks and the other threads share the loops; with one worker the caller
 * runs them alone, and the scheduler gives it the free core. Long loops
 * (prefill) keep every thread: their ends are few.
 *
 * When to come back is what makes this safe to leave on. A sit-out lasts one
 * window; at each window's end the caller reads how long this process's CPUs
 * were idle meanwhile (cpu_idle.h): a CPU idle FREE_CPU_PCT% of the window or
 * more is a core nobody wants, and one worker per such core comes back at
 * once; otherwise (the other program still holds it) they stay out another
 * window. So a neighbour's burst of a few ms on an otherwise quiet machine
 * costs one window of running on fewer threads, not the 200 ms+ that a fixed
 * sit-out cost (docs/performance.md). If the contention is back within
 * 3 windows of a return (a neighbour with pauses), the next sit-out lasts at
 * least twice as long as the last, up to SIT_OUT_MAX_NS, before idle is looked
 * at again; where idle cannot be read, that length is all there is.
 * When the caller itself waits for a CPU while the workers sit out, more
 * programs want the cores than there are (every thread of ours gets a share
 * at best): sitting out then only shrinks our share, so the workers come back
 * and nobody sits out for CROWDED_NS (doubled while that repeats, up to
 * CROWDED_MAX_NS). CONTENDED_PCT is 30: a lone worker beside a CPU-bound
 * program waits ~50% of the time, and the kernel's and other tenants' blips
 * on a quiet machine stayed under 8 ms of a 30 ms window (under 25%).
 * Which thread runs a task changes no result. On unless LAGUNA_CPU_SIT_OUT=0. */
#define WINDOW_NS 30000000
#define CONTENDED_PCT 30
#define SHORT_LOOP_NS 4000000
#define WAITING_PCT 25
#define FREE_CPU_PCT 50
#define SIT_OUT_MAX_NS (8 * WINDOW_NS)
#define CROWDED_NS 250000000
#define CROWDED_MAX_NS 2000000000

/* One lane of a contiguous run: tasks [front, back) not yet taken, in one
 * word so that the owner (from the front) and thieves (from the back) agree
 * through one compare-exchange. A cache line each. */
typedef struct {
    _Alignas(64) atomic_uint_least64_t span; /* front << 32 | back */
} lane;

/* What the caller knows of worker i (slot 0, the caller's own, is unused). */
typedef struct {
    _Alignas(64) atomic_int_least64_t sit_out_until; /* monotonic ns; 0: takes part in loops */
    atomic_int tid;                                  /* its kernel thread id, 0 until it runs */
    int delay_fd;       /* the caller's: -2 not opened yet, -1 unreadable */
    int64_t delay_last; /* the caller's: run-queue wait at the window's start */
    int64_t delay_grew; /* the caller's: how much in the last window, -1 unknown */
} worker_slot;

struct lg_threadpool {
    int n_threads;
    lane *lanes; /* n_threads of them, for run_contiguous (under run_lock) */
    int n_lanes; /* in the current contiguous run */
    lg_task_fn lane_fn;
    void *lane_ctx;
    pthread_t *workers;
    worker_slot *slots;
    pthread_mutex_t lock;
    pthread_mutex_t run_lock; /* one loop at a time: callers on several threads take turns */
    pthread_cond_t wake, done_cond;
    pthread_cond_t sit_cond;     /* sitting-out workers wait on it (monotonic clock) */
    atomic_uint_least64_t claim; /* generation << 32 | tasks not yet claimed */
    atomic_int n_done;           /* tasks finished in the current loop */
    atomic_int n_sleeping;
    atomic_int stopping;
    uint32_t generation; /* written by the caller only */
    /* sitting out (under run_lock) */
    bool may_sit_out;          /* unless LAGUNA_CPU_SIT_OUT=0 */
    int n_sitting_out;         /* slots with sit_out_until set, expired or not */
    lg_cpu_idle *cpu_idle;     /* NULL: idle unreadable, sit-outs of fixed length */
    int64_t idle_last;         /* the CPUs' idle ns at the window's start, -1 unknown */
    int64_t window_start;      /* monotonic ns, 0: not started */
    int64_t window_waited;     /* ns the caller waited for workers at loops' ends since */
    int window_loops;          /* loops run since */
    int caller_tid;            /* the thread that read caller_delay_last (callers may change) */
    int64_t caller_delay_last; /* its run-queue wait at the window's start, -1 unknown */
    int64_t sit_out_ns;        /* the least length of the last sitting out */
    int64_t sit_out_min_end;   /* before this, idle is not looked at */
    int64_t returned_at;       /* when workers last came back, 0: never */
    int64_t crowded_until;     /* no sitting out before this (CROWDED_NS) */
    int64_t crowded_ns;        /* the length of the last such pause */
    /* the loop in progress (valid while its generation is in `claim`) */
    lg_task_fn fn;
    void *ctx;
    int n_tasks;
};

typedef struct {
    lg_threadpool *pool;
    int index;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Runs tasks of loop `gen` until none are left; a task counts as claimed
 * only once the compare-exchange succeeds while `gen` is still current. Only
 * then are the loop's fields read: until the claimed task finishes, the caller
 * cannot start another loop, so they belong to `gen`. */
static void drain(lg_threadpool *p, uint32_t gen, int thread) {
    for (;;) {
        uint64_t c = atomic_load_explicit(&p->claim, memory_order_acquire);
        if ((uint32_t)(c >> 32) != gen) return;
        uint32_t left = (uint32_t)c;
        if (left == 0) return;
        if (!atomic_compare_exchange_weak(&p->claim, &c, c - 1)) continue;
        int n_tasks = p->n_tasks; /* read before finishing: the caller may move on after */
        p->fn(p->ctx, n_tasks - (int)left, thread);
        if (atomic_fetch_add(&p->n_done, 1) + 1 == n_tasks) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done_cond);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

static uint32_t current_gen(lg_threadpool *p) {
    return (uint32_t)(atomic_load(&p->claim) >> 32);
}

/* A worker told to sit out waits until its time is up (or the pool stops). */
static void sit_out(lg_threadpool *p, worker_slot *s) {
    pthread_mutex_lock(&p->lock);
    for (;;) {
        int64_t until = atomic_load(&s->sit_out_until);
        if (!until || atomic_load(&p->stopping) || now_ns() >= until) break;
        struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
        pthread_cond_timedwait(&p->sit_cond, &p->lock, &ts);
    }
    pthread_mutex_unlock(&p->lock);
}

static void *worker_main(void *arg) {
    worker_arg a = *(worker_arg *)arg;
    free(arg);
    lg_threadpool *p = a.pool;
    worker_slot *slot = &p->slots[a.index];
    atomic_store(&slot->tid, lg_thread_id());
    uint32_t seen = 0;
    for (;;) {
        for (int i = 0; i < SPIN_ROUNDS && current_gen(p) == seen && !atomic_load(&p->stopping);
             i++)
            cpu_relax();
        if (current_gen(p) == seen && !atomic_load(&p->stopping)) {
            pthread_mutex_lock(&p->lock);
            atomic_fetch_add(&p->n_sleeping, 1);
            while (current_gen(p) == seen && !atomic_load(&p->stopping))
                pthread_cond_wait(&p->wake, &p->lock);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->lock);
        }
        if (atomic_load(&p->stopping)) break;
        seen = current_gen(p);
        if (atomic_load_explicit(&slot->sit_out_until, memory_order_relaxed)) {
            sit_out(p, slot); /* this loop goes on without it */
            continue;
        }
        drain(p, seen, a.index);
    }
    return NULL;
}

lg_threadpool *lg_threadpool_new(int n_threads) {
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    if (n_threads > 512) n_threads = 512;
    lg_threadpool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    const char *sit_env = getenv("LAGUNA_CPU_SIT_OUT");
    p->may_sit_out = !(sit_env && sit_env[0] == '0');
    p->cpu_idle = p->may_sit_out ? lg_cpu_idle_open() : NULL;
    p->idle_last = -1;
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    p->lanes = aligned_alloc(_Alignof(lane), sizeof(lane) * (size_t)n_threads);
    p->slots = aligned_alloc(_Alignof(worker_slot), sizeof(worker_slot) * (size_t)n_threads);
    if (!p->workers || !p->lanes || !p->slots) {
        free(p->workers);
        free(p->lanes);
        free(p->slots);
        free(p);
        return NULL;
    }
    for (int i = 0; i < n_threads; i++) {
        worker_slot *s = &p->slots[i];
        atomic_init(&s->tid, 0);
        atomic_init(&s->sit_out_until, 0);
        s->delay_fd = -2;
        s->delay_last = -1;
        s->delay_grew = -1;
    }
    p->caller_delay_last = -1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cond, NULL);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&p->sit_cond, &monotonic);
    pthread_condattr_destroy(&monotonic);
    for (int i = 1; i < n_threads; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (!a ||
            (*a = (worker_arg){p, i}, pthread_create(&p->workers[i], NULL, worker_main, a)) != 0) {
            free(a);
            p->n_threads = i; /* run with the workers that did start */
            break;
        }
    }
    return p;
}

void lg_threadpool_free(lg_threadpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stopping, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_cond_broadcast(&p->sit_cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 1; i < p->n_threads; i++) {
        pthread_join(p->workers[i], NULL);
        if (p->slots[i].delay_fd >= 0) close(p->slots[i].delay_fd);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->run_lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cond);
    pthread_cond_destroy(&p->sit_cond);
    lg_cpu_idle_close(p->cpu_idle);
    free(p->workers);
    free(p->lanes);
    free(p->slots);
    free(p);
}

int lg_threadpool_size(const lg_threadpool *p) {
    return p->n_threads;
}

int lg_threadpool_sitting_out(lg_threadpool *p) {
    int64_t now = now_ns();
    int n = 0;
    for (int i = 1; i < p->n_threads; i++) {
        int64_t until = atomic_load(&p->slots[i].sit_out_until);
        n += until && now < until;
    }
    return n;
}

/* ---- sitting out (the caller's side, under run_lock) --------------------------- */

/* The run-queue wait of worker i (i > 0) or of the calling thread (i = 0)
 * so far, -1 when it cannot be read. */
static int64_t run_delay_of(lg_threadpool *p, int i) {
    if (i == 0) {
        int fd = lg_run_delay_open(lg_thread_id());
        int64_t d = fd >= 0 ? lg_run_delay_ns(fd) : -1;
        if (fd >= 0) close(fd);
        return d;
    }
    worker_slot *s = &p->slots[i];
    if (s->delay_fd == -2) {
        int tid = atomic_load(&s->tid);
        if (!tid) return -1;
        s->delay_fd = lg_run_delay_open(tid);
    }
    return s->delay_fd >= 0 ? lg_run_delay_ns(s->delay_fd) : -1;
}

/* A window starts: the run-queue waits of the caller and of the workers
 * taking part so far, and the CPUs' idle time if someone sits out. */
static void start_window(lg_threadpool *p, int64_t now) {
    p->window_start = now;
    p->window_waited = 0;
    p->window_loops = 0;
    p->caller_tid = lg_thread_id();
    p->caller_delay_last = run_delay_of(p, 0);
    p->idle_last = p->n_sitting_out && p->cpu_idle ? lg_cpu_idle_ns(p->cpu_idle) : -1;
    for (int i = 1; i < p->n_threads; i++) {
        worker_slot *s = &p->slots[i];
        bool sits = atomic_load_explicit(&s->sit_out_until, memory_order_relaxed) != 0;
        s->delay_last = sits ? -1 : run_delay_of(p, i);
    }
}

/* Workers sitting out: one per CPU that was idle FREE_CPU_PCT% of the
 * window comes back now; the rest stay out another window (or, idle
 * unknown, until their least length is up). */
static void back_to_free_cores(lg_threadpool *p, int64_t now, int64_t span, bool crowded) {
    int64_t idle = p->idle_last >= 0 ? lg_cpu_idle_ns(p->cpu_idle) : -1;
    int64_t free_cpus = p->n_threads;
    if (crowded) { /* see CROWDED_NS */
        bool again = p->crowded_until && now - p->crowded_until < CROWDED_MAX_NS;
        p->crowded_ns = again ? 2 * p->crowded_ns : CROWDED_NS;
        if (p->crowded_ns > CROWDED_MAX_NS) p->crowded_ns = CROWDED_MAX_NS;
        p->crowded_until = now + p->crowded_ns;
    } else if (idle < 0 || now < p->sit_out_min_end) {
        return;
    } else {
        free_cpus = (idle - p->idle_last + span * (100 - FREE_CPU_PCT) / 100) / span;
    }
    bool woke = false;
    for (int i = 1; i < p->n_threads; i++) {
        worker_slot *s = &p->slots[i];
        int64_t until = atomic_load_explicit(&s->sit_out_until, memory_order_relaxed);
        if (!until || until <= now) continue;
        if (free_cpus > 0) {
            free_cpus--;
            atomic_store(&s->sit_out_until, now); /* threads_taking_part takes it back */
            woke = true;
        } else {
            atomic_store(&s->sit_out_until, now + 2 * WINDOW_NS); /* the next window decides */
        }
    }
    if (woke) { /* it sleeps until its old time: wake it */
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->sit_cond);
        pthread_mutex_unlock(&p->lock);
    }
}

/* A window is over: who comes back and who sits out (see WINDOW_NS), then
 * the next. */
static void end_window(lg_threadpool *p, int64_t now) {
    int64_t span = now - p->window_start;
    bool costly = now >= p->crowded_until && (p->window_waited * 100 >= span * WAITING_PCT ||
                                              (int64_t)p->window_loops * SHORT_LOOP_NS >= span);
    int64_t contended = span * CONTENDED_PCT / 100, most_grew = -1;
    int64_t d = run_delay_of(p, 0);
    bool caller_lost = lg_thread_id() == p->caller_tid && p->caller_delay_last >= 0 && d >= 0 &&
                       d - p->caller_delay_last >= contended;
    if (p->n_sitting_out) back_to_free_cores(p, now, span, caller_lost);
    int most = 0;
    for (int i = 1; i < p->n_threads; i++) {
        worker_slot *s = &p->slots[i];
        s->delay_grew = -1;
        if (s->delay_last < 0 || atomic_load_explicit(&s->sit_out_until, memory_order_relaxed))
            continue;
        d = run_delay_of(p, i);
        if (d >= 0) s->delay_grew = d - s->delay_last;
        if (s->delay_grew > most_grew) most_grew = s->delay_grew, most = i;
    }
    bool soon = p->returned_at && now - p->returned_at < 3 * WINDOW_NS;
    for (int i = 1; costly && i < p->n_threads; i++) {
        int64_t grew = p->slots[i].delay_grew;
        if (!(grew >= contended || (caller_lost && i == most && grew >= 0))) continue;
        if (p->n_sitting_out == 0) { /* a new sit-out: its least length */
            p->sit_out_ns = soon ? p->sit_out_ns * 2 : WINDOW_NS;
            if (p->sit_out_ns > SIT_OUT_MAX_NS) p->sit_out_ns = SIT_OUT_MAX_NS;
            p->sit_out_min_end = now + p->sit_out_ns;
        }
        /* with idle readable, the windows' ends renew it until a core is free */
        int64_t until = p->sit_out_min_end > now + WINDOW_NS ? p->sit_out_min_end : now + WINDOW_NS;
        if (p->cpu_idle) until += WINDOW_NS;
        atomic_store(&p->slots[i].sit_out_until, until);
        p->n_sitting_out++;
    }
    start_window(p, now);
}

/* The threads that take part in the next loop, the caller included; a
 * worker whose time is up takes part again, from a fresh window. */
static int threads_taking_part(lg_threadpool *p) {
    if (!p->may_sit_out) return p->n_threads;
    int64_t now = now_ns();
    if (!p->window_start) start_window(p, now);
    p->window_loops++;
    if (now - p->window_start >= WINDOW_NS) end_window(p, now);
    if (p->n_sitting_out == 0) return p->n_threads;
    int n = p->n_threads;
    bool back = false;
    for (int i = 1; i < p->n_threads; i++) {
        int64_t until = atomic_load_explicit(&p->slots[i].sit_out_until, memory_order_relaxed);
        if (!until) continue;
        if (now < until) {
            n--;
        } else {
            atomic_store(&p->slots[i].sit_out_until, 0);
            p->n_sitting_out--;
            back = true;
        }
    }
    if (back) {
        p->returned_at = now;
        start_window(p, now);
    }
    return n;
}

/* ---- loops ------------------------------------------------------------------------ */

/* The caller, its own share done, waits for the workers' last tasks: spins a
 * while, then sleeps; the time counts towards WAITING_PCT. */
static void wait_for_workers(lg_threadpool *p, int n_tasks) {
    int64_t start = p->may_sit_out ? now_ns() : 0;
    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->n_done) < n_tasks; i++)
        cpu_relax();
    if (atomic_load(&p->n_done) < n_tasks) {
        pthread_mutex_lock(&p->lock);
        while (atomic_load(&p->n_done) < n_tasks)
            pthread_cond_wait(&p->done_cond, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
    if (start) p->window_waited += now_ns() - start;
}

/* A loop on the calling thread alone (one thread, one task, or every worker
 * sitting out). */
static void run_here(int n_tasks, lg_task_fn fn, void *ctx) {
    for (int t = 0; t < n_tasks; t++)
        fn(ctx, t, 0);
}

/* The loop itself; the caller holds run_lock. */
static void run_locked(lg_threadpool *p, int n_tasks, lg_task_fn fn, void *ctx) {
    /* every task of the previous loop is done, so no worker reads these now */
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->n_done, 0);
    uint32_t gen = ++p->generation;
    atomic_store_explicit(&p->claim, (uint64_t)gen << 32 | (uint32_t)n_tasks, memory_order_release);
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->lock); /* pairs with the sleepers' check-then-wait */
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
    }
    drain(p, gen, 0);
    if (atomic_load(&p->n_done) < n_tasks) wait_for_workers(p, n_tasks);
}

void lg_threadpool_run(lg_threadpool *p, int n_tasks, lg_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        run_here(n_tasks, fn, ctx);
        return;
    }
    pthread_mutex_lock(&p->run_lock);
    if (threads_taking_part(p) == 1)
        run_here(n_tasks, fn, ctx);
    else
        run_locked(p, n_tasks, fn, ctx);
    pthread_mutex_unlock(&p->run_lock);
}

/* ---- contiguous lanes --------------------------------------------------------- */

static bool take_front(lane *l, uint32_t *task) {
    uint64_t s = atomic_load_explicit(&l->span, memory_order_relaxed);
    for (;;) {
        uint32_t front = (uint32_t)(s >> 32), back = (uint32_t)s;
        if (front >= back) return false;
        if (atomic_compare_exchange_weak(&l->span, &s, (uint64_t)(front + 1) << 32 | back)) {
            *task = front;
            return true;
        }
    }
}

static bool take_back(lane *l, uint32_t *task) {
    uint64_t s = atomic_load_explicit(&l->span, memory_order_relaxed);
    for (;;) {
        uint32_t front = (uint32_t)(s >> 32), back = (uint32_t)s;
        if (front >= back) return false;
        if (atomic_compare_exchange_weak(&l->span, &s, (uint64_t)front << 32 | (back - 1))) {
            *task = back - 1;
            return true;
        }
    }
}

/* Pool task i: lane i front to back, then the other lanes' leftovers from
 * their backs, nearest lane first. */
static void lane_task(void *ctx, int i, int thread) {
    lg_threadpool *p = ctx;
    int n = p->n_lanes;
    uint32_t t;
    while (take_front(&p->lanes[i], &t))
        p->lane_fn(p->lane_ctx, (int)t, thread);
    for (int k = 1; k < n; k++) {
        lane *other = &p->lanes[(i + k) % n];
        while (take_back(other, &t))
            p->lane_fn(p->lane_ctx, (int)t, thread);
    }
}

void lg_threadpool_run_contiguous(lg_threadpool *p, int n_tasks, lg_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        run_here(n_tasks, fn, ctx);
        return;
    }
    pthread_mutex_lock(&p->run_lock);
    int n = threads_taking_part(p); /* one lane each */
    if (n == 1) {
        run_here(n_tasks, fn, ctx);
        pthread_mutex_unlock(&p->run_lock);
        return;
    }
    for (int i = 0; i < n; i++) { /* lane i: [n_tasks * i / n, n_tasks * (i + 1) / n) */
        uint64_t front = (uint64_t)n_tasks * (uint64_t)i / (uint64_t)n;
        uint64_t back = (uint64_t)n_tasks * (uint64_t)(i + 1) / (uint64_t)n;
        atomic_store_explicit(&p->lanes[i].span, front << 32 | back, memory_order_relaxed);
    }
    p->n_lanes = n;
    p->lane_fn = fn;
    p->lane_ctx = ctx;
    run_locked(p, n, lane_task, p); /* its release store publishes the lanes */
    pthread_mutex_unlock(&p->run_lock);
}
