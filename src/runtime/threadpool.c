/* Thread pool: between loops workers first spin briefly on the loop counter
 * (decoding issues hundreds of short loops per token, and a condition-variable
 * wake-up costs more than many of them), then sleep on a condition variable.
 * While a loop runs, every thread pulls task indices from an atomic counter. */
#include "runtime/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define SPIN_ROUNDS 20000 /* polls before sleeping (a few tens of microseconds) */

struct lg_threadpool {
    int n_threads;
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    atomic_ulong generation; /* bumped for every loop */
    atomic_int n_busy;       /* workers still inside the current loop */
    atomic_int stopping;
    /* the loop in progress */
    lg_task_fn fn;
    void *ctx;
    int n_tasks;
    atomic_int next_task;
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

static void drain(lg_threadpool *p, int thread) {
    for (;;) {
        int t = atomic_fetch_add(&p->next_task, 1);
        if (t >= p->n_tasks) break;
        p->fn(p->ctx, t, thread);
    }
}

static void *worker_main(void *arg) {
    worker_arg a = *(worker_arg *)arg;
    free(arg);
    lg_threadpool *p = a.pool;
    unsigned long seen = 0;
    for (;;) {
        for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->generation) == seen && !atomic_load(&p->stopping); i++)
            cpu_relax();
        if (atomic_load(&p->generation) == seen && !atomic_load(&p->stopping)) {
            pthread_mutex_lock(&p->lock);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->stopping)) pthread_cond_wait(&p->wake, &p->lock);
            pthread_mutex_unlock(&p->lock);
        }
        if (atomic_load(&p->stopping)) break;
        seen = atomic_load(&p->generation);
        drain(p, a.index);
        if (atomic_fetch_sub(&p->n_busy, 1) == 1) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
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
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
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
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->workers);
    free(p);
}

int lg_threadpool_size(const lg_threadpool *p) { return p->n_threads; }

void lg_threadpool_run(lg_threadpool *p, int n_tasks, lg_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next_task, 0);
    atomic_store(&p->n_busy, p->n_threads - 1);
    pthread_mutex_lock(&p->lock); /* pairs with the sleepers' check-then-wait */
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    drain(p, 0);
    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->n_busy) > 0; i++) cpu_relax();
    if (atomic_load(&p->n_busy) > 0) {
        pthread_mutex_lock(&p->lock);
        while (atomic_load(&p->n_busy) > 0) pthread_cond_wait(&p->done, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
}
