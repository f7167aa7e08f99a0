/* What the per-ISA attention steps (cpu_attention_avx2.c,
 * cpu_attention_avx512.c) share: the head sizes they take and how they are
 * picked, and the stubs that stand in for them off x86-64. Each file
 * defines `static void chunk(int n_vec, ...)` (n_vec: head_dim in vectors
 * of its width) and f16_row before LG_ATTENTION_ISA_ENTRIES. */
#ifndef LAGUNA_BACKEND_CPU_ATTENTION_ISA_H
#define LAGUNA_BACKEND_CPU_ATTENTION_ISA_H

#include "backend/cpu/cpu_attention.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

/* lg_attention_chunk_<isa> (head_dim 64, 128 or 256) and lg_attention_f16_<isa>
 * (head_dim a multiple of LANES) for vectors of LANES floats. */
#define LG_ATTENTION_ISA_ENTRIES(isa, LANES)                                                                  \
    static void chunk_64(const float *q, const float *const *key, const float *const *val, int n, float scale, \
                         float *s, float *out, float *run_max, float *run_sum) {                                \
        chunk(64 / (LANES), q, key, val, n, scale, s, out, run_max, run_sum);                                   \
    }                                                                                                           \
    static void chunk_128(const float *q, const float *const *key, const float *const *val, int n, float scale, \
                          float *s, float *out, float *run_max, float *run_sum) {                               \
        chunk(128 / (LANES), q, key, val, n, scale, s, out, run_max, run_sum);                                  \
    }                                                                                                           \
    static void chunk_256(const float *q, const float *const *key, const float *const *val, int n, float scale, \
                          float *s, float *out, float *run_max, float *run_sum) {                               \
        chunk(256 / (LANES), q, key, val, n, scale, s, out, run_max, run_sum);                                  \
    }                                                                                                           \
    lg_attention_chunk_fn lg_attention_chunk_##isa(int head_dim) {                                             \
        return head_dim == 64 ? chunk_64 : head_dim == 128 ? chunk_128 : head_dim == 256 ? chunk_256 : NULL;   \
    }                                                                                                           \
    lg_attention_f16_fn lg_attention_f16_##isa(int head_dim) {                                                 \
        return head_dim > 0 && head_dim % (LANES) == 0 ? f16_row : NULL;                                        \
    }

/* Off x86-64 the ISA's steps are never chosen. */
#define LG_ATTENTION_ISA_STUBS(isa)                                                                           \
    lg_attention_f16_fn lg_attention_f16_##isa(int head_dim) {                                                 \
        (void)head_dim;                                                                                         \
        return NULL;                                                                                            \
    }                                                                                                           \
    lg_attention_chunk_fn lg_attention_chunk_##isa(int head_dim) {                                             \
        (void)head_dim;                                                                                         \
        return NULL;                                                                                            \
    }

#endif
