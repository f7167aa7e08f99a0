/* The CPU backend: host memory, a thread pool shared by every context of
 * the backend (its run() takes one loop at a time, so contexts on several
 * threads take turns loop by loop), per-context scratch, and the ops table. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend/cpu/bf16_dot.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/quant_dot.h"
#include "core/argmax.h"
#include "quant/quant.h"

#define MATMUL_ROWS_PER_TASK 16 /* must cover cpu_matmul.c's ROWS_PER_TASK */
#define LAZY_BYTES (2u << 20)   /* buffers from this size are mapped, so untouched pages cost no memory */

size_t lg_cpu_scratch_floats(const lg_ctx_sizes *s) {
    size_t matmul = (size_t)MATMUL_ROWS_PER_TASK * (size_t)s->widest_row;
    size_t attention = lg_cpu_attention_scratch_floats(s->head_dim);
    return matmul > attention ? matmul : attention;
}

typedef struct {
    lg_rows_fn fn;
    void *ctx;
    int n_rows, n_blocks;
} rows_job;

static void rows_task(void *ctx, int task, int thread) {
    (void)thread;
    const rows_job *j = ctx;
    int r0 = (int)((int64_t)j->n_rows * task / j->n_blocks),
        r1 = (int)((int64_t)j->n_rows * (task + 1) / j->n_blocks);
    if (r1 > r0) j->fn(j->ctx, r0, r1);
}

/* Four blocks per thread, so a thread that the OS holds back costs a
 * quarter of its share rather than all of it. */
void lg_cpu_for_rows(lg_cpu_ctx *k, int n_rows, int min_rows, lg_rows_fn fn, void *ctx) {
    if (n_rows <= 0) return;
    int blocks = 4 * k->n_threads;
    if (min_rows < 1) min_rows = 1;
    if (blocks > n_rows / min_rows) blocks = n_rows / min_rows;
    if (k->n_threads == 1 || n_rows < 2 * min_rows || blocks < 2) {
        fn(ctx, 0, n_rows);
        return;
    }
    rows_job j = {fn, ctx, n_rows, blocks};
    lg_threadpool_run(k->pool, blocks, rows_task, &j);
}

static void *cpu_alloc(lg_backend *be, size_t bytes) {
    (void)be;
    if (bytes >= LAZY_BYTES) {
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
        /* 2 MiB pages where the kernel has them (THP "madvise" mode asks for
         * this): a decode step reads one head's 256-byte slice of every cached
         * row, rows 2 KB apart across the whole KV pool, and on 4 KiB pages
         * nearly every other row cost a TLB miss. The pool hands out its
         * pages from the lowest address up, so what is touched stays dense. */
        madvise(p, bytes, MADV_HUGEPAGE);
#endif
        return p;
    }
    return calloc(1, bytes ? bytes : 1);
}

static void cpu_free(lg_backend *be, void *buf, size_t bytes) {
    (void)be;
    if (!buf) return;
    if (bytes >= LAZY_BYTES) munmap(buf, bytes);
    else free(buf);
}

static const void *cpu_adopt_weights(lg_backend *be, const void *host, size_t bytes) {
    (void)be, (void)bytes;
    return host;
}

typedef struct {
    uint8_t *data, *scratch; /* a group's bytes per task */
    lg_dtype base;
    int64_t groups, cols;
    size_t group_bytes;
    int n_tasks;
} regroup_job;

static void regroup_task(void *ctx, int task, int thread) {
    (void)thread;
    const regroup_job *j = ctx;
    int64_t g0 = j->groups * task / j->n_tasks, g1 = j->groups * (task + 1) / j->n_tasks;
    for (int64_t g = g0; g < g1; g++)
        lg_x16_regroup(j->data + (size_t)g * j->group_bytes, j->base, j->cols, true,
                       j->scratch + (size_t)task * j->group_bytes);
}

/* Q4_K, Q5_K, Q6_K and Q8_0 into 16-row groups when the AVX-512 kernels run (quant.h), over the
 * threads at memory speed. Without memory for the tasks' copies of a group
 * the matrix stays as the file has it (the kernels take either, with the
 * same results). */
static lg_dtype cpu_rearrange_weights(lg_backend *be, lg_dtype dtype, void *data, int64_t rows, int64_t cols) {
    lg_dtype layout = lg_qgemm_layout_for(dtype, rows);
    if (layout == dtype) return dtype; /* no other layout, or already in it: never twice */
    /* layout_for's rearrangements: Q4_K, Q5_K, Q6_K, Q8_0 -> their 16-row groups */
    size_t group_bytes = LG_X16_ROWS * lg_dtype_row_bytes(dtype, cols);
    regroup_job j = {data, NULL, dtype, rows / LG_X16_ROWS, cols, group_bytes, 0};
    j.n_tasks = (int)((size_t)j.groups * group_bytes >> 20) + 1; /* ~1 MiB a task */
    int threads = lg_threadpool_size(((lg_cpu_backend *)be)->pool);
    if (j.n_tasks > j.groups) j.n_tasks = (int)j.groups;
    if (j.n_tasks > 4 * threads) j.n_tasks = 4 * threads;
    if (!(j.scratch = malloc(group_bytes * (size_t)j.n_tasks))) return dtype;
    lg_threadpool_run(((lg_cpu_backend *)be)->pool, j.n_tasks, regroup_task, &j);
    free(j.scratch);
    return layout;
}

static bool cpu_use_bf16_activations(lg_backend *be) {
    if (!lg_bf16_dot_available()) return false;
    ((lg_cpu_backend *)be)->bf16_activations = true;
    return true;
}

static void cpu_ctx_free(lg_backend_ctx *c) {
    lg_cpu_ctx *k = (lg_cpu_ctx *)c;
    if (!k) return;
    lg_cpu_profile_report(k);
    if (k->scratch)
        for (int i = 0; i < k->n_threads; i++) free(k->scratch[i]);
    free(k->scratch);
    free(k->act_q8);
    free(k->ops);
    free(k);
}

static lg_backend_ctx *cpu_ctx_new(lg_backend *be, const lg_ctx_sizes *sizes) {
    lg_cpu_ctx *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->base.backend = be;
    k->pool = ((lg_cpu_backend *)be)->pool;
    k->n_threads = lg_threadpool_size(k->pool);
    k->scratch_floats = lg_cpu_scratch_floats(sizes);
    k->scratch = calloc((size_t)k->n_threads, sizeof *k->scratch);
    k->ops = malloc(sizeof *k->ops * 2 * (size_t)(sizes->n_experts + 1));
    if (!k->scratch || !k->ops) {
        cpu_ctx_free(&k->base);
        return NULL;
    }
    for (int i = 0; i < k->n_threads; i++)
        if (!(k->scratch[i] = aligned_alloc(64, (k->scratch_floats * sizeof(float) + 63) / 64 * 64))) {
            cpu_ctx_free(&k->base);
            return NULL;
        }
    return &k->base;
}

static void cpu_copy(lg_backend_ctx *c, void *dst, const void *src, size_t bytes) {
    (void)c;
    memmove(dst, src, bytes);
}

/* The greedy token of each row, in host memory where the logits already are. */
static void cpu_argmax_rows(lg_backend_ctx *c, int32_t *host_out, const float *logits, int n_rows,
                            int n_cols) {
    (void)c;
    lg_argmax_rows_f32(host_out, logits, n_rows, n_cols);
}

static void cpu_destroy(lg_backend *be) {
    lg_cpu_backend *b = (lg_cpu_backend *)be;
    lg_threadpool_free(b->pool);
    free(b);
}

static const lg_backend_ops cpu_ops = {
    .name = "cpu",
    .host_memory = true,
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .adopt_weights = cpu_adopt_weights,
    .rearrange_weights = cpu_rearrange_weights,
    .use_bf16_activations = cpu_use_bf16_activations,
    .ctx_new = cpu_ctx_new,
    .ctx_free = cpu_ctx_free,
    .to_host = cpu_copy,
    .copy = cpu_copy,
    .embed = lg_cpu_embed,
    .rmsnorm = lg_cpu_rmsnorm,
    .rope = lg_cpu_rope,
    .matmul_many = lg_cpu_matmul_many,
    .kv_write = lg_cpu_kv_write,
    .attention = lg_cpu_attention,
    .output_gate = lg_cpu_output_gate,
    .silu_mul = lg_cpu_silu_mul,
    .router = lg_cpu_router,
    .moe_group = lg_cpu_moe_group,
    .moe_experts = lg_cpu_moe_experts,
    .moe_combine = lg_cpu_moe_combine,
    .add = lg_cpu_add,
    .gather_rows = lg_cpu_gather_rows,
    .argmax_rows = cpu_argmax_rows,
};

static lg_backend_ops cpu_profiled_ops;

lg_backend *lg_cpu_backend_new(int n_threads) {
    lg_cpu_backend *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->pool = lg_threadpool_new(n_threads);
    if (!b->pool) {
        free(b);
        return NULL;
    }
    const char *profile = getenv("LAGUNA_CPU_PROFILE");
    b->base.ops = &cpu_ops;
    if (profile && *profile && strcmp(profile, "0")) {
        cpu_profiled_ops = cpu_ops; /* the same table every time: a benign repeated write */
        lg_cpu_profile_wrap(&cpu_profiled_ops);
        b->base.ops = &cpu_profiled_ops;
    }
    b->base.n_threads = lg_threadpool_size(b->pool);
    lg_qgemm_set_prefetch_ahead(lg_qgemm_prefetch_for_threads(b->base.n_threads));
    return &b->base;
}
