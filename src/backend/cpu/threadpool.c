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

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SPIN_ROUNDS 20000 /* polls before sleeping (a few tens of microseconds) */
/* Contention: when the caller, its own share done, waits longer than
 * STALL_NS and longer than that share took, a worker was most likely
 * descheduled in the middle of a task (another program wants its core) and
 * will hold the loop up to a time slice, again and again. After a second
 * such wait within STALL_AGAIN_NS, loops run on the caller alone for
 * SOLO_NS before the workers are tried again. A quiet machine does not wait
 * that long twice so soon (stealing leaves at most one task to wait for; a
 * lone hiccup of the OS is not contention), so it stays parallel. Which
 * thread runs a task changes no result. Off unless LAGUNA_CPU_SOLO=1: on this
 * project's VM the hypervisor's own hiccups trigger it often enough on a
 * quiet machine to cost 5-15% of decode (docs/performance.md). */
#define STALL_NS 300000
#define STALL_AGAIN_NS 20000000
#define SOLO_NS 200000000

/* One lane of a contiguous run: tasks [front, back) not yet taken, in one
 * word so that the owner (from the front) and thieves (from the back) agree
 * through one compare-exchange. A cache line each. */
typedef struct {
    _Alignas(64) atomic_uint_least64_t span; /* front << 32 | back */
} lane;

struct lg_threadpool {
    int n_threads;
    lane *lanes; /* n_threads of them, for run_contiguous (under run_lock) */
    lg_task_fn lane_fn;
    void *lane_ctx;
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_mutex_t run_lock;    /* one loop at a time: callers on several threads take turns */
    pthread_cond_t wake, done_cond;
    atomic_uint_least64_t claim; /* generation << 32 | tasks not yet claimed */
    atomic_int n_done;           /* tasks finished in the current loop */
    atomic_int n_sleeping;
    atomic_int stopping;
    uint32_t generation;         /* written by the caller only */
    int64_t solo_until;          /* monotonic ns: loops run on the caller alone until then (under run_lock) */
    int64_t last_stall;          /* when the caller last waited that long */
    bool may_go_solo;            /* LAGUNA_CPU_SOLO=1 only */
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

static uint32_t current_gen(lg_threadpool *p) { return (uint32_t)(atomic_load(&p->claim) >> 32); }

static void *worker_main(void *arg) {
    worker_arg a = *(worker_arg *)arg;
    free(arg);
    lg_threadpool *p = a.pool;
    uint32_t seen = 0;
    for (;;) {
        for (int i = 0; i < SPIN_ROUNDS && current_gen(p) == seen && !atomic_load(&p->stopping); i++) cpu_relax();
        if (current_gen(p) == seen && !atomic_load(&p->stopping)) {
            pthread_mutex_lock(&p->lock);
            atomic_fetch_add(&p->n_sleeping, 1);
            while (current_gen(p) == seen && !atomic_load(&p->stopping)) pthread_cond_wait(&p->wake, &p->lock);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->lock);
        }
        if (atomic_load(&p->stopping)) break;
        seen = current_gen(p);
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
    const char *solo_env = getenv("LAGUNA_CPU_SOLO");
    p->may_go_solo = solo_env && solo_env[0] == '1';
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    p->lanes = aligned_alloc(_Alignof(lane), sizeof(lane) * (size_t)n_threads);
    if (!p->workers || !p->lanes) {
        free(p->workers);
        free(p->lanes);
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cond, NULL);
    for (int i = 1; i < n_threads; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (!a || (*a = (worker_arg){p, i}, pthread_create(&p->workers[i], NULL, worker_main, a)) != 0) {
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
    pthread_mutex_unlock(&p->lock);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->run_lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cond);
    free(p->workers);
    free(p->lanes);
    free(p);
}

int lg_threadpool_size(const lg_threadpool *p) { return p->n_threads; }

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The loop itself; the caller holds run_lock. */
static void run_locked(lg_threadpool *p, int n_tasks, lg_task_fn fn, void *ctx) {
    int64_t t0 = now_ns();
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
    int64_t t1 = now_ns();
    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->n_done) < n_tasks; i++) cpu_relax();
    if (atomic_load(&p->n_done) < n_tasks) {
        pthread_mutex_lock(&p->lock);
        while (atomic_load(&p->n_done) < n_tasks) pthread_cond_wait(&p->done_cond, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
    int64_t t2 = now_ns();
    if (t2 - t1 > STALL_NS && t2 - t1 > t1 - t0 && p->may_go_solo) {
        if (p->last_stall && t2 - p->last_stall < STALL_AGAIN_NS) p->solo_until = t2 + SOLO_NS;
        p->last_stall = t2;
    }
}

/* Whether loops run on the caller alone now (see STALL_NS); under run_lock. */
static bool solo(lg_threadpool *p) { return p->solo_until && now_ns() < p->solo_until; }

void lg_threadpool_run(lg_threadpool *p, int n_tasks, lg_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->run_lock);
    if (solo(p))
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
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
    uint32_t t;
    while (take_front(&p->lanes[i], &t)) p->lane_fn(p->lane_ctx, (int)t, thread);
    for (int k = 1; k < p->n_threads; k++) {
        lane *other = &p->lanes[(i + k) % p->n_threads];
        while (take_back(other, &t)) p->lane_fn(p->lane_ctx, (int)t, thread);
    }
}

void lg_threadpool_run_contiguous(lg_threadpool *p, int n_tasks, lg_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->run_lock);
    if (solo(p)) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        pthread_mutex_unlock(&p->run_lock);
        return;
    }
    int n = p->n_threads;
    for (int i = 0; i < n; i++) { /* lane i: [n_tasks * i / n, n_tasks * (i + 1) / n) */
        uint64_t front = (uint64_t)n_tasks * (uint64_t)i / (uint64_t)n;
        uint64_t back = (uint64_t)n_tasks * (uint64_t)(i + 1) / (uint64_t)n;
        atomic_store_explicit(&p->lanes[i].span, front << 32 | back, memory_order_relaxed);
    }
    p->lane_fn = fn;
    p->lane_ctx = ctx;
    run_locked(p, n, lane_task, p); /* its release store publishes the lanes */
    pthread_mutex_unlock(&p->run_lock);
}
