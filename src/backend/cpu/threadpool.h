/* A fixed pool of worker threads that runs "for task in [0, n)" loops.
 *
 * The caller's thread takes part, so a pool of n threads starts n-1 workers.
 * Tasks are handed out dynamically (an atomic counter), so uneven tasks
 * balance. One loop runs at a time: run() may be called from several threads,
 * which then take turns; it returns when every task of its loop is done.
 * A worker that keeps losing its core to another program in the middle of
 * tasks sits out the loops until a core is free again (threadpool.c says how
 * that is told from a hiccup); the other threads do its share. On by default;
 * LAGUNA_CPU_SIT_OUT=0 turns it off. */
#ifndef LAGUNA_BACKEND_CPU_THREADPOOL_H
#define LAGUNA_BACKEND_CPU_THREADPOOL_H

typedef struct lg_threadpool lg_threadpool;

/* fn(ctx, task, thread): thread is in [0, n_threads) and identifies scratch. */
typedef void (*lg_task_fn)(void *ctx, int task, int thread);

/* n_threads <= 0 means the number of online cores. NULL when out of memory. */
lg_threadpool *lg_threadpool_new(int n_threads);
void lg_threadpool_free(lg_threadpool *pool);
int lg_threadpool_size(const lg_threadpool *pool);
/* How many workers sit out loops now (contention; for tests and reports). */
int lg_threadpool_sitting_out(lg_threadpool *pool);
void lg_threadpool_run(lg_threadpool *pool, int n_tasks, lg_task_fn fn, void *ctx);

/* The same loop, but each thread walks a contiguous stretch of the tasks in
 * order: the tasks are cut into one lane per thread, a lane's taker runs it
 * front to back, and a thread whose lane is done takes tasks one at a time
 * from the back of the others. For loops whose tasks read consecutive memory
 * (the rows of a weight matrix): each core then streams forward through its
 * own range, which the hardware prefetchers follow, where tasks dealt out in
 * turn (lg_threadpool_run) leave every core a gap after each task. Still
 * dynamic: a thread the OS does not run costs nothing, its lane is taken by
 * the others. */
void lg_threadpool_run_contiguous(lg_threadpool *pool, int n_tasks, lg_task_fn fn, void *ctx);

#endif
