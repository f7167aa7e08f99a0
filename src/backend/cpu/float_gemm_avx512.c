/* The float products (float_gemm.h) with AVX-512: 16 lanes, tiles of 4 rows
 * x 6 tokens (24 accumulators, 6 activation vectors and a weight vector of
 * the 32 registers; 10 loads per 24 multiply-adds), 8 rows for one token
 * (one chain of multiply-adds per row: 4 would wait on their latency: a
 * router's product, from the cache, took twice as long). Compiled for AVX-512
 * whatever the build's -march, called only when cpuid says the CPU has it. */
#if defined(__x86_64__) && defined(__GNUC__)
#include "backend/cpu/avx512_vnni_target.h"
#include <immintrin.h>
#include <stdint.h>

typedef __m512 vec;
#define LANES 16
#define TILE_ROWS 4
#define TILE_ROWS_ONE 8
#define TILE_TOKENS 6
#define VKEEP(v) __asm__("" : "+v"(v))
#define FGEMM_ENTRY lg_fgemm_avx512

static inline __attribute__((always_inline)) vec vzero(void) {
    return _mm512_setzero_ps();
}
static inline __attribute__((always_inline)) vec vloadx(const float *p) {
    return _mm512_loadu_ps(p);
}
static inline __attribute__((always_inline)) vec vfmadd(vec a, vec b, vec c) {
    return _mm512_fmadd_ps(a, b, c);
}
static inline __attribute__((always_inline)) vec vload_f32(const float *p) {
    return _mm512_loadu_ps(p);
}
/* bf16 is the top half of a float32 */
static inline __attribute__((always_inline)) vec vload_bf16(const uint16_t *p) {
    __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
static inline __attribute__((always_inline)) vec vload_f16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
static inline __attribute__((always_inline)) float hsum(vec v) {
    return _mm512_reduce_add_ps(v);
}

#define FGEMM_TOKEN_CASES                                                                          \
    FGEMM_KIND_CASE(1)                                                                             \
    FGEMM_KIND_CASE(2)                                                                             \
    FGEMM_KIND_CASE(3)                                                                             \
    FGEMM_KIND_CASE(4) FGEMM_KIND_CASE(5) FGEMM_KIND_CASE(6)
#include "backend/cpu/float_gemm_tiles.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else /* not x86-64: never chosen */
#include "backend/cpu/float_gemm.h"
void lg_fgemm_avx512(const lg_fgemm_args *a) {
    (void)a;
}
#endif
