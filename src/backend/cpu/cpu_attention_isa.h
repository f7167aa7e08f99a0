/* What the per-ISA attention steps (cpu_attention_avx2.c,
 * cpu_attention_avx512.c) share: the head sizes they take and how they are
 * picked, and the stubs that stand in for them off x86-64. Each file
 * defines f16_row before LG_ATTENTION_ISA_ENTRIES and `heads` (below) before
 * LG_ATTENTION_HEADS_ENTRIES. */
#ifndef LAGUNA_BACKEND_CPU_ATTENTION_ISA_H
#define LAGUNA_BACKEND_CPU_ATTENTION_ISA_H

#include "backend/cpu/cpu_attention.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")
/* v held in a register from here: the compiler otherwise folds a vector load
 * used by several multiply-adds into each of them (float_gemm_tiles.h) */
#define VKEEP(v) __asm__("" : "+v"(v))

/* lg_attention_f16_<isa> (head_dim a multiple of LANES) for vectors of LANES floats. */
#define LG_ATTENTION_ISA_ENTRIES(isa, LANES)                                                       \
    lg_attention_f16_fn lg_attention_f16_##isa(int head_dim) {                                     \
        return head_dim > 0 && head_dim % (LANES) == 0 ? f16_row : NULL;                           \
    }

/* Off x86-64 the ISA's steps are never chosen. */
#define LG_ATTENTION_ISA_STUBS(isa)                                                                \
    lg_attention_f16_fn lg_attention_f16_##isa(int head_dim) {                                     \
        (void)head_dim;                                                                            \
        return NULL;                                                                               \
    }

/* The cache lines of row i of a next-chunk list (lg_attention_next), asked
 * for when i is listed: what the f16 steps call per key and per value. */
static ALWAYS_INLINE void lg_ask_row(const uint16_t *const *rows, int listed, int i, int bytes) {
    if (i < listed)
        for (int b = 0; b < bytes; b += 64)
            __builtin_prefetch((const char *)rows[i] + b);
}

/* What a file that defines `static void heads(F16, G, NV, q, key, val, n,
 * scale, s, s_stride, out, run_max, run_sum, next)` (G query heads, 1..8, of NV
 * vectors of LANES floats, over float32 or (F16) f16 rows; next as
 * lg_attention_next, NULL for float rows) builds on it: any
 * number of heads in groups of up to 8 (G a constant per group), as
 * lg_attention_heads_<isa> and lg_attention_heads_f16_<isa> for head_dim 64,
 * 128 and 256. */
#define LG_ATTENTION_HEADS_CASE(G)                                                                 \
    case G:                                                                                        \
        heads(F16, G, NV, qh, k, v, n, scale, sh, s_stride, oh, mh, rh, h0 ? NULL : next);         \
        break;
#define LG_ATTENTION_HEADS_ENTRY(NAME, F16, T, NV)                                                 \
    static void NAME(int nh, const float *q, const T *const *key, const T *const *val, int n,      \
                     float scale, float *s, int s_stride, float *out, float *run_max,              \
                     float *run_sum LG_ATTENTION_NEXT_PARAM_##F16) {                               \
        head_groups(F16, NV, nh, q, (const void *const *)key, (const void *const *)val, n, scale,  \
                    s, s_stride, out, run_max, run_sum, LG_ATTENTION_NEXT_ARG_##F16);              \
    }
/* the f16 entries take the next chunk's rows, the float ones do not */
#define LG_ATTENTION_NEXT_PARAM_0
#define LG_ATTENTION_NEXT_PARAM_1 , const lg_attention_next *next
#define LG_ATTENTION_NEXT_ARG_0 NULL
#define LG_ATTENTION_NEXT_ARG_1 next
#define LG_ATTENTION_HEADS_ENTRIES(isa, LANES)                                                     \
    static ALWAYS_INLINE void head_groups(const int F16, const int NV, int nh, const float *q,     \
                                          const void *const *k, const void *const *v, int n,       \
                                          float scale, float *s, int s_stride, float *out,         \
                                          float *run_max, float *run_sum,                          \
                                          const lg_attention_next *next) {                         \
        for (int h0 = 0; h0 < nh; h0 += 8) {                                                       \
            const float *qh = q + h0 * (LANES) * NV;                                               \
            float *sh = s + h0 * s_stride, *oh = out + h0 * (LANES) * NV, *mh = run_max + h0,      \
                  *rh = run_sum + h0;                                                              \
            switch (nh - h0 < 8 ? nh - h0 : 8) {                                                   \
                LG_ATTENTION_HEADS_CASE(1) LG_ATTENTION_HEADS_CASE(2) LG_ATTENTION_HEADS_CASE(3)   \
                LG_ATTENTION_HEADS_CASE(4) LG_ATTENTION_HEADS_CASE(5) LG_ATTENTION_HEADS_CASE(6)   \
                LG_ATTENTION_HEADS_CASE(7) LG_ATTENTION_HEADS_CASE(8)                              \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    LG_ATTENTION_HEADS_ENTRY(heads_64, 0, float, 64 / (LANES))                                     \
    LG_ATTENTION_HEADS_ENTRY(heads_128, 0, float, 128 / (LANES))                                   \
    LG_ATTENTION_HEADS_ENTRY(heads_256, 0, float, 256 / (LANES))                                   \
    LG_ATTENTION_HEADS_ENTRY(heads_f16_64, 1, uint16_t, 64 / (LANES))                              \
    LG_ATTENTION_HEADS_ENTRY(heads_f16_128, 1, uint16_t, 128 / (LANES))                            \
    LG_ATTENTION_HEADS_ENTRY(heads_f16_256, 1, uint16_t, 256 / (LANES))                            \
    lg_attention_heads_fn lg_attention_heads_##isa(int head_dim) {                                 \
        return head_dim == 64    ? heads_64                                                        \
               : head_dim == 128 ? heads_128                                                       \
               : head_dim == 256 ? heads_256                                                       \
                                 : NULL;                                                           \
    }                                                                                              \
    lg_attention_heads_f16_fn lg_attention_heads_f16_##isa(int head_dim) {                         \
        return head_dim == 64    ? heads_f16_64                                                    \
               : head_dim == 128 ? heads_f16_128                                                   \
               : head_dim == 256 ? heads_f16_256                                                   \
                                 : NULL;                                                           \
    }

/* Off x86-64 the ISA's many-head steps are never chosen. */
#define LG_ATTENTION_HEADS_STUBS(isa)                                                              \
    lg_attention_heads_fn lg_attention_heads_##isa(int head_dim) {                                 \
        (void)head_dim;                                                                            \
        return NULL;                                                                               \
    }                                                                                              \
    lg_attention_heads_f16_fn lg_attention_heads_f16_##isa(int head_dim) {                         \
        (void)head_dim;                                                                            \
        return NULL;                                                                               \
    }

#endif
