/* The float products (float_gemm.h) with AVX2, FMA and F16C: 8 lanes, tiles
 * of 4 rows x 3 tokens (12 accumulators, 3 activation vectors and a weight
 * vector: all 16 registers; 4 x 2 read bf16 weights 25-30% slower), 8 rows
 * for one token. Compiled for AVX2 whatever the build's
 * -march, called only when cpuid says the CPU has it. */
#if defined(__x86_64__) && defined(__GNUC__)
#include "backend/cpu/avx2_target.h"
#include <immintrin.h>
#include <stdint.h>

typedef __m256 vec;
#define LANES 8
#define TILE_ROWS 4
#define TILE_ROWS_ONE 8
#define TILE_TOKENS 3
#define VKEEP(v) __asm__("" : "+x"(v))
#define FGEMM_ENTRY lg_fgemm_avx2

static inline __attribute__((always_inline)) vec vzero(void) {
    return _mm256_setzero_ps();
}
static inline __attribute__((always_inline)) vec vloadx(const float *p) {
    return _mm256_loadu_ps(p);
}
static inline __attribute__((always_inline)) vec vfmadd(vec a, vec b, vec c) {
    return _mm256_fmadd_ps(a, b, c);
}
static inline __attribute__((always_inline)) vec vload_f32(const float *p) {
    return _mm256_loadu_ps(p);
}
/* bf16 is the top half of a float32 */
static inline __attribute__((always_inline)) vec vload_bf16(const uint16_t *p) {
    __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}
static inline __attribute__((always_inline)) vec vload_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
static inline __attribute__((always_inline)) float hsum(vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

#define FGEMM_TOKEN_CASES FGEMM_KIND_CASE(1) FGEMM_KIND_CASE(2) FGEMM_KIND_CASE(3)
#include "backend/cpu/float_gemm_tiles.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else /* not x86-64: never chosen */
#include "backend/cpu/float_gemm.h"
void lg_fgemm_avx2(const lg_fgemm_args *a) {
    (void)a;
}
#endif
