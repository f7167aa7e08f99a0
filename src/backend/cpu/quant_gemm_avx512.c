/* What the AVX-512 quantised products share: how far ahead they ask for
 * their weights, and the order the Q8_0 kernel reads activations in. The
 * products themselves are sixteen rows at a time (quant_gemm_x16_avx512.c
 * for Q4_K, Q5_K and Q6_K, quant_gemm_x16_q8_0_avx512.c for Q8_0): the
 * per-row kernels that were here went as each type moved there
 * (docs/performance.md). Compiled for AVX-512 whatever the build's -march,
 * called only when cpuid says the CPU has it (quant_dot.c). */
#if defined(__x86_64__) && defined(__GNUC__)
#include "backend/cpu/avx512_vnni_target.h"
#include <immintrin.h>
#include <stdatomic.h>
#include <stddef.h>

#include "backend/cpu/quant_dot.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* How far ahead the AVX-512 products ask for their weights (the sixteen-row
 * kernels: each step asks for its share of what lies that far on): a task's
 * rows are contiguous (and the next task of a lane follows them), so this
 * runs ahead of the stream by more than the hardware prefetchers do
 * and keeps loads in flight while the core computes. Past the end of a
 * matrix it touches at most prefetch_bytes of whatever follows. How far to
 * ask is a core's share of the memory bandwidth times the loaded DRAM
 * latency, so it falls as more threads stream at once: the CPU backend sets
 * it by its thread count (lg_qgemm_set_prefetch_ahead; docs/performance.md,
 * "CPU: one-token products prefetch 16 KB ahead"). On the 2-core Zen 5 VM,
 * 16 KB decoded 7-10% faster than 4 KB with 1 and 2 threads (4 KB had been
 * 10% faster than 2 KB on the first EPYC VM); on the GPU machine's 16-core
 * Xeon, 16 KB matched 4 KB at 4 and 8 threads and was 5% slower at 16. One
 * value for the process (a hint: a context with another thread count
 * changes it for all); read relaxed once per pass. */
static _Atomic size_t prefetch_bytes = LG_QGEMM_PREFETCH_FEW_THREADS;

void lg_qgemm_set_prefetch_ahead(size_t bytes) {
    atomic_store_explicit(&prefetch_bytes, bytes, memory_order_relaxed);
}

size_t lg_qgemm_prefetch_distance(void) {
    return atomic_load_explicit(&prefetch_bytes, memory_order_relaxed);
}

/* ---- Q8_0 ---------------------------------------------------------------------- */

/* The Q8_0 products are quant_gemm_x16_q8_0_avx512.c's, sixteen rows at a
 * time. Their activations come in "Q8_0 lane order" (quant_dot.h): each
 * pair of 32-element blocks with int32 lane 2g holding elements 4g..4g+3 of
 * the first block and lane 2g + 1 those of the second, every value stored
 * + 128 as an unsigned byte (vpdpbusd's unsigned operand); a last odd block
 * stays in element order, + 128. */
/* dword 2g <- g, 2g + 1 <- 8 + g: a pair of blocks from element order into
 * pair lanes (vpermd on one vector holding both blocks) */
static ALWAYS_INLINE __m512i q8_to_pair_lanes(void) {
    return _mm512_set_epi32(15, 7, 14, 6, 13, 5, 12, 4, 11, 3, 10, 2, 9, 1, 8, 0);
}

/* The order the Q8_0 kernels read a q8 row's values in (quant_dot.h), in
 * place: each whole pair of blocks into pair lanes, every byte + 128. */
void lg_q8_0_lane_order_avx512(uint8_t *q, int64_t n) {
    const __m512i index = q8_to_pair_lanes();
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    int64_t o = 0;
    for (; o + 64 <= n; o += 64) {
        __m512i v = _mm512_permutexvar_epi32(index, _mm512_loadu_si512(q + o));
        _mm512_storeu_si512(q + o, _mm512_xor_si512(v, bias));
    }
    for (; o < n; o++)
        q[o] ^= 0x80;
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
#else /* not x86-64: never chosen */
#include "backend/cpu/quant_dot.h"
void lg_qgemm_set_prefetch_ahead(size_t bytes) {
    (void)bytes;
}
void lg_q8_0_lane_order_avx512(uint8_t *q, int64_t n) {
    (void)q, (void)n;
}
size_t lg_qgemm_prefetch_distance(void) {
    return 0;
}
#endif
