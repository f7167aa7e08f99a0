/* Matrix product y = x W^T for weights in any storage dtype.
 *
 * Work is split into blocks of output rows, one task each. F32, BF16 and F16
 * rows go to the float kernels of the CPU's instruction set (float_gemm.h).
 * Without them (no AVX2) F32 and BF16 rows are read directly with the
 * conversion fused into the compiler's loops below; other dtypes are
 * converted a block of rows at a time into the thread's scratch, so the
 * conversion is paid once per row for all tokens of the batch.
 * Accumulation is float32 with several partial sums.
 *
 * Quantised weights of the types quant_dot.h handles take another path at
 * every batch size: the activation rows are quantised to 8 bits once per
 * product, before the dispatch, and each task runs its block of weight rows
 * against every token through lg_qgemm (int8 tiles: AVX512-VNNI or AVX2,
 * chosen at run time). It beat the dequantise-then-4x4 float path at every
 * batch size measured, 1 to 128 tokens (docs/performance.md); the float path
 * stays for the other types and for when the activation buffer cannot be
 * allocated. With bf16 activations asked for (bf16_dot.h), BF16 weights take
 * the same route: their activation rows rounded to bf16 once per product,
 * the tasks run lg_bf16_dot_gemm. Several
 * independent products can share one dispatch (lg_matmul_many), which matters
 * when decoding: a token's projections and experts are many small products. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/bf16_dot.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/float_gemm.h"
#include "backend/cpu/quant_dot.h"
#include "quant/quant.h"

#define ROWS_PER_TASK 16
/* Quantised products take at least this many weight bytes per task: an
 * expert's down projection at XS.2 shapes has rows of two super-blocks
 * (288-420 bytes), so 16 rows were 5-7 KB and the per-task costs (taking the
 * task, the kernel's set-up) a sizeable share of reading them. */
#define MIN_TASK_BYTES ((size_t)16 << 10)

#define MAX_OPS 64

typedef struct {
    lg_cpu_ctx *k;
    const lg_matmul_op *ops;
    int n_ops;
    int first_task[MAX_OPS + 1]; /* op i owns tasks [first_task[i], first_task[i+1]) */
    int rows_per_task[MAX_OPS];  /* a multiple of ROWS_PER_TASK */
    /* op i's x prepared for its kernels (q8 rows, quant_dot.h; bf16 rows for
     * BF16 weights with bf16 activations, bf16_dot.h), or NULL */
    const uint8_t *act_q8[MAX_OPS];
    size_t act_stride[MAX_OPS];
} matmul_job;

static float dot_f32(const float *a, const float *b, int64_t n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static float dot_bf16(const uint16_t *w, const float *x, int64_t n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) {
        union { uint32_t u; float f; } v = {.u = (uint32_t)w[i] << 16};
        s += v.f * x[i];
    }
    return s;
}

/* Four rows against one x row: x is loaded once for four dot products. */
static void dot4_f32(const float *w0, const float *w1, const float *w2, const float *w3, const float *x, int64_t n,
                     float out[4]) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t i = 0; i < n; i++) {
        s0 += w0[i] * x[i];
        s1 += w1[i] * x[i];
        s2 += w2[i] * x[i];
        s3 += w3[i] * x[i];
    }
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

static void dot4_bf16(const uint16_t *w0, const uint16_t *w1, const uint16_t *w2, const uint16_t *w3, const float *x,
                      int64_t n, float out[4]) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t i = 0; i < n; i++) {
        union { uint32_t u; float f; } a = {.u = (uint32_t)w0[i] << 16}, b = {.u = (uint32_t)w1[i] << 16},
                                       c = {.u = (uint32_t)w2[i] << 16}, d = {.u = (uint32_t)w3[i] << 16};
        s0 += a.f * x[i];
        s1 += b.f * x[i];
        s2 += c.f * x[i];
        s3 += d.f * x[i];
    }
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

/* Four rows against four x rows: 16 dot products from one pass over the
 * weights, which halves the loads per multiply-add compared with dot4. */
#define DOT4X4(NAME, WT, LOAD)                                                                                         \
    static void NAME(const WT *w0, const WT *w1, const WT *w2, const WT *w3, const float *x0, const float *x1,          \
                     const float *x2, const float *x3, int64_t n, float out[16]) {                                     \
        float s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;                                 \
        float s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;                                 \
        _Pragma("omp simd reduction(+ : s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33)") \
        for (int64_t i = 0; i < n; i++) {                                                                              \
            float a = LOAD(w0[i]), b = LOAD(w1[i]), c = LOAD(w2[i]), d = LOAD(w3[i]);                                  \
            s00 += a * x0[i], s01 += a * x1[i], s02 += a * x2[i], s03 += a * x3[i];                                    \
            s10 += b * x0[i], s11 += b * x1[i], s12 += b * x2[i], s13 += b * x3[i];                                    \
            s20 += c * x0[i], s21 += c * x1[i], s22 += c * x2[i], s23 += c * x3[i];                                    \
            s30 += d * x0[i], s31 += d * x1[i], s32 += d * x2[i], s33 += d * x3[i];                                    \
        }                                                                                                              \
        float o[16] = {s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33};               \
        memcpy(out, o, sizeof o);                                                                                      \
    }

static inline float load_f32(float v) { return v; }
static inline float load_bf16(uint16_t h) { return lg_bf16_to_f32(h); }
DOT4X4(dot4x4_f32, float, load_f32)
DOT4X4(dot4x4_bf16, uint16_t, load_bf16)

/* rows r0..r1 of W (each `stride` bytes apart, as F32 or BF16) times every x row */
static void block_product(const lg_matmul_op *j, const uint8_t *rows, size_t stride, int bf16, int64_t r0, int64_t r1) {
    int64_t n = j->w->cols, out_n = j->w->rows;
    int t = 0;
    for (; t + 4 <= j->n_tokens && r1 - r0 >= 4; t += 4) { /* 4 tokens x 4 rows at a time */
        const float *x = j->x + (size_t)t * n;
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
            const uint8_t *p = rows + (size_t)(r - r0) * stride;
            float o[16];
            if (bf16)
                dot4x4_bf16((const uint16_t *)p, (const uint16_t *)(p + stride), (const uint16_t *)(p + 2 * stride),
                            (const uint16_t *)(p + 3 * stride), x, x + n, x + 2 * n, x + 3 * n, n, o);
            else
                dot4x4_f32((const float *)p, (const float *)(p + stride), (const float *)(p + 2 * stride),
                           (const float *)(p + 3 * stride), x, x + n, x + 2 * n, x + 3 * n, n, o);
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++) j->y[(size_t)(t + b) * out_n + r + a] = o[a * 4 + b];
        }
        for (; r < r1; r++) { /* leftover rows */
            const uint8_t *p = rows + (size_t)(r - r0) * stride;
            for (int b = 0; b < 4; b++)
                j->y[(size_t)(t + b) * out_n + r] = bf16 ? dot_bf16((const uint16_t *)p, x + b * n, n) : dot_f32((const float *)p, x + b * n, n);
        }
        if (j->bias)
            for (int b = 0; b < 4; b++)
                for (int64_t q = r0; q < r1; q++) j->y[(size_t)(t + b) * out_n + q] += j->bias[q];
    }
    for (; t < j->n_tokens; t++) {
        const float *x = j->x + (size_t)t * n;
        float *y = j->y + (size_t)t * out_n;
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
            const uint8_t *p = rows + (size_t)(r - r0) * stride;
            float o[4];
            if (bf16)
                dot4_bf16((const uint16_t *)p, (const uint16_t *)(p + stride), (const uint16_t *)(p + 2 * stride),
                          (const uint16_t *)(p + 3 * stride), x, n, o);
            else
                dot4_f32((const float *)p, (const float *)(p + stride), (const float *)(p + 2 * stride),
                         (const float *)(p + 3 * stride), x, n, o);
            memcpy(&y[r], o, sizeof o);
        }
        for (; r < r1; r++) {
            const uint8_t *p = rows + (size_t)(r - r0) * stride;
            y[r] = bf16 ? dot_bf16((const uint16_t *)p, x, n) : dot_f32((const float *)p, x, n);
        }
        if (j->bias)
            for (int64_t q = r0; q < r1; q++) y[q] += j->bias[q];
    }
}

static void matmul_task(void *ctx, int task, int thread) {
    const matmul_job *job = ctx;
    int op = 0;
    while (task >= job->first_task[op + 1]) op++;
    const lg_matmul_op *j = &job->ops[op];
    const lg_matrix *w = j->w;
    int64_t r0 = (int64_t)(task - job->first_task[op]) * job->rows_per_task[op],
            r1 = r0 + job->rows_per_task[op];
    if (r1 > w->rows) r1 = w->rows;
    if (job->act_q8[op] && w->dtype == LG_DTYPE_BF16) { /* bf16 activations */
        lg_bf16_dot_gemm(&(lg_bf16_dot_args){lg_matrix_row(w, r0), w->row_bytes, (int)(r1 - r0),
                                             (const uint16_t *)job->act_q8[op], job->act_stride[op] / 2,
                                             j->n_tokens, w->cols, j->y + r0, (size_t)w->rows,
                                             j->bias ? j->bias + r0 : NULL});
        return;
    }
    if (job->act_q8[op]) {
        lg_qgemm(&(lg_qgemm_args){w->dtype, lg_matrix_row(w, r0), w->row_bytes, (int)(r1 - r0),
                                  job->act_q8[op], job->act_stride[op], j->n_tokens, w->cols,
                                  j->y + r0, (size_t)w->rows, j->bias ? j->bias + r0 : NULL});
        return;
    }
    lg_isa isa = lg_qgemm_isa_best();
    if (lg_fgemm_serves(isa, w->dtype)) {
        lg_fgemm_isa(isa, &(lg_fgemm_args){w->dtype, lg_matrix_row(w, r0), w->row_bytes, (int)(r1 - r0), j->x,
                                          (size_t)w->cols, j->n_tokens, w->cols, j->y + r0, (size_t)w->rows,
                                          j->bias ? j->bias + r0 : NULL});
        return;
    }
    if (w->dtype == LG_DTYPE_F32 || w->dtype == LG_DTYPE_BF16) {
        block_product(j, (const uint8_t *)lg_matrix_row(w, r0), w->row_bytes, w->dtype == LG_DTYPE_BF16, r0, r1);
        return;
    }
    float *buf = job->k->scratch[thread]; /* sized for ROWS_PER_TASK rows of the widest matrix */
    for (int64_t r = r0; r < r1; r++) {
        float *row = buf + (size_t)(r - r0) * w->cols;
        if (lg_x16_base(w->dtype) != w->dtype) /* rows only in groups of 16 */
            lg_x16_dequantize_row(lg_matrix_row(w, r / LG_X16_ROWS * LG_X16_ROWS), lg_x16_base(w->dtype),
                                  (int)(r % LG_X16_ROWS), row, w->cols);
        else
            lg_dtype_to_f32(w->dtype, lg_matrix_row(w, r), row, w->cols);
    }
    block_product(j, (const uint8_t *)buf, (size_t)w->cols * sizeof(float), 0, r0, r1);
}

/* Every product of a supported type takes the 8-bit path, whatever its
 * token count, so a row's result does not depend on the batch it is in.
 * (Builds without vector integer dots once took it only up to 8 tokens;
 * their larger batches are slower now, the price of batch invariance.) */
static bool wants_q8_activations(const lg_matmul_op *op) {
    int block = lg_q8_block(op->w->dtype);
    return op->n_tokens > 0 && block > 0 && op->w->cols % block == 0;
}

/* BF16 weights with bf16 activations (opt-in, bf16_dot.h; the backend's
 * flag is set only where the CPU has the instructions). */
static bool wants_bf16_activations(const lg_cpu_ctx *k, const lg_matmul_op *op) {
    return ((const lg_cpu_backend *)k->base.backend)->bf16_activations && op->n_tokens > 0 &&
           op->w->dtype == LG_DTYPE_BF16;
}

/* Bytes of one of op's activation rows as its kernels want them, or 0 when
 * they take the float rows. */
static size_t prepared_row_bytes(const lg_cpu_ctx *k, const lg_matmul_op *op) {
    if (wants_bf16_activations(k, op)) return lg_bf16_row_bytes(op->w->cols);
    return wants_q8_activations(op) ? lg_q8_row_bytes(op->w->cols, lg_q8_block(op->w->dtype)) : 0;
}

/* The activation rows to quantise for one dispatch: segment i is op
 * seg_op[i]'s x, its rows numbered from first_row[i] in one count over all
 * segments, so that a single loop over the threads quantises them all (an
 * MoE step has hundreds of small ones). */
typedef struct {
    const matmul_job *job;
    lg_isa isa;
    int n_segs;
    int seg_op[MAX_OPS];
    int first_row[MAX_OPS + 1];
} quantize_job;

static void quantize_rows(void *ctx, int r0, int r1) {
    const quantize_job *q = ctx;
    int s = 0;
    while (q->first_row[s + 1] <= r0) s++;
    for (; s < q->n_segs && q->first_row[s] < r1; s++) {
        int i = q->seg_op[s];
        const lg_matmul_op *op = &q->job->ops[i];
        int a = r0 > q->first_row[s] ? r0 - q->first_row[s] : 0,
            b = (r1 < q->first_row[s + 1] ? r1 : q->first_row[s + 1]) - q->first_row[s];
        if (op->w->dtype == LG_DTYPE_BF16) {
            lg_bf16_round_rows(op->x + (size_t)a * op->w->cols, b - a, op->w->cols,
                               (uint8_t *)q->job->act_q8[i] + (size_t)a * q->job->act_stride[i]);
            continue;
        }
        lg_q8_quantize_in(lg_q8_order_for(q->isa, op->w->dtype, op->n_tokens), q->isa, op->w->dtype,
                          op->x + (size_t)a * op->w->cols, b - a, op->w->cols,
                          (uint8_t *)q->job->act_q8[i] + (size_t)a * q->job->act_stride[i]);
    }
}

/* Whether ops p and i (both prepared) may share p's prepared rows. */
static bool same_preparation(lg_isa isa, const lg_matmul_op *p, const lg_matmul_op *i) {
    if (p->x != i->x || p->n_tokens != i->n_tokens || p->w->cols != i->w->cols) return false;
    bool bf16 = i->w->dtype == LG_DTYPE_BF16;
    if ((p->w->dtype == LG_DTYPE_BF16) != bf16) return false;
    return bf16 || (lg_q8_block(p->w->dtype) == lg_q8_block(i->w->dtype) &&
                    lg_q8_order_for(isa, p->w->dtype, i->n_tokens) == lg_q8_order_for(isa, i->w->dtype, i->n_tokens));
}

#define QUANTIZE_ALONE_VALUES ((size_t)64 << 10)

/* Quantises the x rows of the ops that take the 8-bit path into k->act_q8
 * (ops reading the same x in the same block size and order share one copy),
 * spread over the threads. Ops it cannot serve (out of memory) keep act_q8
 * NULL and take the float path. */
static void quantize_activations(lg_cpu_ctx *k, matmul_job *job) {
    size_t need = 0;
    for (int i = 0; i < job->n_ops; i++)
        need += (size_t)job->ops[i].n_tokens * prepared_row_bytes(k, &job->ops[i]);
    if (need == 0) return;
    if (need > k->act_q8_bytes) {
        free(k->act_q8);
        k->act_q8 = aligned_alloc(64, need);
        k->act_q8_bytes = k->act_q8 ? need : 0;
        if (!k->act_q8) return;
    }
    uint8_t *next = k->act_q8;
    quantize_job q = {job, lg_qgemm_isa_best(), 0, {0}, {0}};
    size_t values = 0;
    for (int i = 0; i < job->n_ops; i++) {
        const lg_matmul_op *op = &job->ops[i];
        size_t stride = prepared_row_bytes(k, op);
        if (!stride) continue;
        for (int p = 0; p < i && !job->act_q8[i]; p++)
            if (job->act_q8[p] && same_preparation(q.isa, &job->ops[p], op)) job->act_q8[i] = job->act_q8[p];
        job->act_stride[i] = stride;
        if (job->act_q8[i]) continue;
        job->act_q8[i] = next;
        next += (size_t)op->n_tokens * stride;
        values += (size_t)op->n_tokens * (size_t)op->w->cols;
        q.seg_op[q.n_segs] = i;
        q.first_row[q.n_segs + 1] = q.first_row[q.n_segs] + op->n_tokens;
        q.n_segs++;
    }
    /* a decode step's few rows (an MoE layer's eight copies of one token) on
     * this thread: a hand-off to the pool costs more than quantising them */
    int rows = q.first_row[q.n_segs];
    if (values < QUANTIZE_ALONE_VALUES)
        quantize_rows(&q, 0, rows);
    else
        lg_cpu_for_rows(k, rows, 4, quantize_rows, &q);
}

void lg_cpu_matmul_many(lg_backend_ctx *c, const lg_matmul_op *ops, int n_ops) {
    lg_cpu_ctx *k = (lg_cpu_ctx *)c;
    for (int done = 0; done < n_ops; done += MAX_OPS) { /* in groups of MAX_OPS */
        matmul_job job = {k, ops + done, n_ops - done < MAX_OPS ? n_ops - done : MAX_OPS, {0}, {0}, {0}, {0}};
        quantize_activations(k, &job);
        for (int i = 0; i < job.n_ops; i++) {
            const lg_matrix *w = job.ops[i].w;
            int64_t rows = job.ops[i].n_tokens > 0 ? w->rows : 0;
            int per = ROWS_PER_TASK; /* the float path's scratch holds ROWS_PER_TASK rows */
            while (job.act_q8[i] && (size_t)per * w->row_bytes < MIN_TASK_BYTES && per < rows)
                per += ROWS_PER_TASK;
            job.rows_per_task[i] = per;
            job.first_task[i + 1] = job.first_task[i] + (int)((rows + per - 1) / per);
        }
        lg_threadpool_run_contiguous(k->pool, job.first_task[job.n_ops], matmul_task, &job);
    }
}

void lg_cpu_matmul(lg_cpu_ctx *k, float *y, const float *x, int n_tokens, const lg_matrix *w, const float *bias) {
    lg_matmul_op op = {y, x, n_tokens, w, bias};
    lg_cpu_matmul_many(&k->base, &op, 1);
}
