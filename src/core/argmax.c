/* The greedy choice over a row of logits (see argmax.h).
 *
 * The plain scan carries its answer from one element to the next (x[best]
 * is read back each step), about 8 cycles an element: ~0.3 ms of a decoded
 * token's 100k-entry vocabulary on this project's AVX2 machine, 1% of the
 * step. With AVX2 eight lanes scan side by side, each keeping its own first
 * largest value, and the lanes are then merged as argmax.h says: the same
 * index. */
#include "core/argmax.h"

#include <math.h>
#include <stddef.h>

static int32_t argmax_plain(const float *x, int n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Lane l keeps the first of its elements (l, l + 8, ...) that is greater
 * than all before it (strict >: NaN never wins, a tie keeps the earlier);
 * the lanes start from -inf at index 0, which a row of -inf leaves alone. */
__attribute__((target("avx2"))) static int32_t argmax_avx2(const float *x, int n) {
    __m256 best = _mm256_set1_ps(-INFINITY);
    __m256i at = _mm256_setzero_si256(), idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i eight = _mm256_set1_epi32(8);
    int i = 0;
    for (; i + 8 <= n; i += 8, idx = _mm256_add_epi32(idx, eight)) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 gt = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
        best = _mm256_blendv_ps(best, v, gt);
        at = _mm256_blendv_epi8(at, idx, _mm256_castps_si256(gt));
    }
    float bv[8];
    int32_t bi[8];
    _mm256_storeu_ps(bv, best);
    _mm256_storeu_si256((__m256i *)bi, at);
    float m = bv[0];
    int32_t r = bi[0];
    for (int l = 1; l < 8; l++) /* the greater value, or on equal values the lower index */
        if (bv[l] > m || (bv[l] == m && bi[l] < r)) m = bv[l], r = bi[l];
    for (; i < n; i++) /* the last n % 8, after every index above */
        if (x[i] > m) m = x[i], r = i;
    return r;
}

static int has_avx2(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    return cached;
}
#endif

int32_t lg_argmax_f32(const float *x, int n) {
    if (isnan(x[0])) return 0; /* nothing compares greater than it */
#if defined(__x86_64__) && defined(__GNUC__)
    if (n >= 64 && has_avx2()) return argmax_avx2(x, n);
#endif
    return argmax_plain(x, n);
}

void lg_argmax_rows_f32(int32_t *out, const float *rows, int n_rows, int n_cols) {
    for (int r = 0; r < n_rows; r++)
        out[r] = lg_argmax_f32(rows + (size_t)r * (size_t)n_cols, n_cols);
}
