/* The tile loops of the float products (float_gemm.h), written once for any
 * vector width. The file that includes it (one per instruction set, its
 * target pragma in force) defines first:
 *   vec, LANES                  the float vector type and its lanes
 *   vzero(), vloadx(p)          zeros; LANES floats from p
 *   vfmadd(a, b, c)             a * b + c
 *   vload_f32/bf16/f16(p)       LANES weights from p, as floats
 *   hsum(v)                     the lanes of v summed
 *   VKEEP(v)                    v held in a register from here (see tile())
 *   TILE_ROWS, TILE_TOKENS      the tile (registers: rows x tokens + tokens + 1)
 *   TILE_ROWS_ONE               the tile's rows for one token: enough independent
 *                               chains of multiply-adds to hide their latency
 *   FGEMM_ENTRY                 the name of the lg_fgemm_args entry point
 * Accumulation: one vector per (row, token) over the whole row, then hsum;
 * a last part-vector (n % LANES) from zero-padded copies. */
#ifndef LAGUNA_BACKEND_CPU_FLOAT_GEMM_TILES_H
#define LAGUNA_BACKEND_CPU_FLOAT_GEMM_TILES_H

#include <stdbool.h>
#include <string.h>

#include "backend/cpu/float_gemm.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

enum { KIND_F32, KIND_BF16, KIND_F16 };

static ALWAYS_INLINE size_t kind_bytes(int kind) {
    return kind == KIND_F32 ? 4 : 2;
}

static ALWAYS_INLINE vec load_w(int kind, const uint8_t *row, int64_t k) {
    return kind == KIND_F32    ? vload_f32((const float *)row + k)
           : kind == KIND_BF16 ? vload_bf16((const uint16_t *)row + k)
                               : vload_f16((const uint16_t *)row + k);
}

/* R rows (w, ws bytes apart) times T tokens (x, xs floats apart):
 * y[t * ys + r]. ask_next: on the first pass over a matrix's rows, which
 * streams them from memory (later passes find them in the cache), each step
 * asks for its share of the next R rows, so that they are in the cache when
 * their turn comes (rows are one stretch of memory; asking for each row's
 * own bytes further on touched rows already read). */
static ALWAYS_INLINE void tile(int kind, int R, int T, const uint8_t *w, size_t ws, const float *x,
                               size_t xs, int64_t n, float *y, size_t ys, const float *bias,
                               bool ask_next) {
    vec acc[TILE_ROWS_ONE > TILE_ROWS ? TILE_ROWS_ONE : TILE_ROWS][TILE_TOKENS];
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
    for (int t = 0; t < T; t++)
        acc[r][t] = vzero();
    int64_t whole = n - n % LANES, k = 0;
    const size_t share = (size_t)R * LANES * kind_bytes(kind); /* bytes a step reads */
    const uint8_t *next = w + (size_t)R * ws;
    for (; k < whole; k += LANES) {
        if (ask_next)
            for (size_t o = 0; o < share; o += 64)
                __builtin_prefetch(next + (size_t)k / LANES * share + o);
        vec xv[TILE_TOKENS];
        UNROLL
        for (int t = 0; t < T; t++) {
            xv[t] = vloadx(x + (size_t)t * xs + k);
            /* otherwise the compiler folds the load into each of the row's
             * multiply-adds: R times the loads, the step bound by them */
            VKEEP(xv[t]);
        }
        UNROLL
        for (int r = 0; r < R; r++) {
            const uint8_t *row = w + (size_t)r * ws;
            vec wv = load_w(kind, row, k);
            UNROLL
            for (int t = 0; t < T; t++)
                acc[r][t] = vfmadd(wv, xv[t], acc[r][t]);
        }
    }
    if (k < n) { /* the last part-vector, zeros after it */
        _Alignas(64) float xt[TILE_TOKENS][LANES];
        _Alignas(64) uint8_t wt[TILE_ROWS_ONE > TILE_ROWS ? TILE_ROWS_ONE : TILE_ROWS][LANES * 4];
        size_t tail = (size_t)(n - k);
        memset(xt, 0, sizeof xt);
        memset(wt, 0, sizeof wt);
        UNROLL
        for (int t = 0; t < T; t++)
            memcpy(xt[t], x + (size_t)t * xs + k, tail * sizeof(float));
        UNROLL
        for (int r = 0; r < R; r++) {
            memcpy(wt[r], w + (size_t)r * ws + (size_t)k * kind_bytes(kind),
                   tail * kind_bytes(kind));
            vec wv = load_w(kind, wt[r], 0);
            UNROLL
            for (int t = 0; t < T; t++)
                acc[r][t] = vfmadd(wv, vloadx(xt[t]), acc[r][t]);
        }
    }
    UNROLL
    for (int r = 0; r < R; r++)
        UNROLL
    for (int t = 0; t < T; t++)
        y[(size_t)t * ys + r] = hsum(acc[r][t]) + (bias ? bias[r] : 0.0f);
}

/* Every row of the product against T tokens: tiles of TILE_ROWS rows
 * (TILE_ROWS_ONE for one token), the last rows one at a time (the same
 * instructions per output). */
static ALWAYS_INLINE void rows_pass(int kind, int T, const lg_fgemm_args *a, int t0, bool ask_next) {
    const float *x = a->x + (size_t)t0 * a->x_stride;
    float *y = a->y + (size_t)t0 * a->y_stride;
    const int rows = T == 1 ? TILE_ROWS_ONE : TILE_ROWS;
    int r = 0;
    for (; r + rows <= a->n_rows; r += rows)
        tile(kind, rows, T, a->w + (size_t)r * a->w_stride, a->w_stride, x, a->x_stride, a->n,
             y + r, a->y_stride, a->bias ? a->bias + r : NULL, ask_next);
    for (; r < a->n_rows; r++)
        tile(kind, 1, T, a->w + (size_t)r * a->w_stride, a->w_stride, x, a->x_stride, a->n, y + r,
             a->y_stride, a->bias ? a->bias + r : NULL, ask_next);
}

#define FGEMM_KIND_CASE(T)                                                                         \
    case T:                                                                                        \
        if (kind == KIND_F32)                                                                      \
            rows_pass(KIND_F32, T, a, t0, t0 == 0);                                                  \
        else if (kind == KIND_BF16)                                                                \
            rows_pass(KIND_BF16, T, a, t0, t0 == 0);                                                 \
        else                                                                                       \
            rows_pass(KIND_F16, T, a, t0, t0 == 0);                                                  \
        break;

/* Token tiles in order; within each, every row (the tile's activations stay
 * in the cache while the rows go by). */
void FGEMM_ENTRY(const lg_fgemm_args *a) {
    int kind = a->dtype == LG_DTYPE_F32    ? KIND_F32
               : a->dtype == LG_DTYPE_BF16 ? KIND_BF16
                                           : KIND_F16;
    for (int t0 = 0; t0 < a->n_tokens; t0 += TILE_TOKENS) {
        int nt = a->n_tokens - t0 < TILE_TOKENS ? a->n_tokens - t0 : TILE_TOKENS;
        switch (nt) { FGEMM_TOKEN_CASES }
    }
}

#endif
