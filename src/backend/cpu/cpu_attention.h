/* The inner step of the CPU attention (cpu_attention.c): the query heads
 * that read one KV head against up to a chunk of keys and values, each
 * updating its online softmax (running maximum and sum) and its
 * unnormalised output. A plain C version for one head there, AVX-512 and AVX2
 * ones for several heads in cpu_attention_avx512.c and cpu_attention_avx2.c,
 * chosen once per process. */
#ifndef LAGUNA_BACKEND_CPU_ATTENTION_H
#define LAGUNA_BACKEND_CPU_ATTENTION_H

#include <stdint.h>

/* nh query heads that read the same keys and values (q and out: nh rows of
 * head_dim floats, out the running output; s: nh rows of room for n scores,
 * s_stride apart; run_max, run_sum: nh each). Every head's arithmetic is the
 * same whatever nh and whichever heads share the call (so heads(1, ...) per
 * head gives the same bits): the heads share the loads of each key and value
 * instead of reading the chunk again per head. The AVX2 (AVX-512) one for
 * this head_dim (64, 128 or 256), or NULL. */
typedef void (*lg_attention_heads_fn)(int nh, const float *q, const float *const *key,
                                      const float *const *val, int n, float scale, float *s,
                                      int s_stride, float *out, float *run_max, float *run_sum);
lg_attention_heads_fn lg_attention_heads_avx2(int head_dim);
lg_attention_heads_fn lg_attention_heads_avx512(int head_dim);
/* The rows of the chunk after this one, which an f16 step asks the memory
 * for as it goes: for each key it scores the next chunk's key row of that
 * index, for each value it adds the value row. A decode step's cache comes
 * from memory (the layers' KV pools together are far larger than the
 * caches), and one burst of prefetches for a whole chunk before it mostly
 * found the core's miss buffers full: spread out, the 40-layer XS.2's decode
 * attention took ~20% less time (docs/performance.md). */
typedef struct {
    const uint16_t *const *key, *const *val;
    int n; /* rows listed (0: none) */
} lg_attention_next;

/* The same reading the keys and values straight from an f16 cache (rows of
 * head_dim f16), each converted as it is used: no converted copy of the
 * chunk to write and read back. The same bits (the conversion is exact).
 * next: the following chunk's rows to ask for, or NULL. */
typedef void (*lg_attention_heads_f16_fn)(int nh, const float *q, const uint16_t *const *key,
                                          const uint16_t *const *val, int n, float scale, float *s,
                                          int s_stride, float *out, float *run_max, float *run_sum,
                                          const lg_attention_next *next);
lg_attention_heads_f16_fn lg_attention_heads_f16_avx2(int head_dim);
lg_attention_heads_f16_fn lg_attention_heads_f16_avx512(int head_dim);

/* Converts one head's n = head_dim f16 values to float32, exactly (every f16
 * is a float); the AVX-512 one when head_dim is a multiple of 16, or NULL. */
typedef void (*lg_attention_f16_fn)(const uint16_t *src, float *dst, int n);
lg_attention_f16_fn lg_attention_f16_avx512(int head_dim);
/* The same with AVX2 and F16C, head_dim a multiple of 8. */
lg_attention_f16_fn lg_attention_f16_avx2(int head_dim);

#endif
