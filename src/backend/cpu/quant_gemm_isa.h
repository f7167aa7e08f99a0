/* What the per-ISA quantised-product files (quant_gemm_avx2.c,
 * quant_gemm_avx512.c) share: one copy of a row kernel per token count, so
 * that each count's loops are unrolled with constant bounds. */
#ifndef LAGUNA_BACKEND_CPU_QUANT_GEMM_ISA_H
#define LAGUNA_BACKEND_CPU_QUANT_GEMM_ISA_H

/* static void NAME(row, x, xs, nt, n, y, ys): CALL(nt) with nt a constant
 * 1 .. 8 (8 for more: callers pass at most their TILE = 8 tokens). */
#define PER_COUNT(NAME, CALL)                                                                      \
    static void NAME(const uint8_t *row, const uint8_t *x, size_t xs, int nt, int64_t n, float *y, \
                     size_t ys) {                                                                  \
        switch (nt) {                                                                              \
        case 1:                                                                                    \
            CALL(1);                                                                               \
            break;                                                                                 \
        case 2:                                                                                    \
            CALL(2);                                                                               \
            break;                                                                                 \
        case 3:                                                                                    \
            CALL(3);                                                                               \
            break;                                                                                 \
        case 4:                                                                                    \
            CALL(4);                                                                               \
            break;                                                                                 \
        case 5:                                                                                    \
            CALL(5);                                                                               \
            break;                                                                                 \
        case 6:                                                                                    \
            CALL(6);                                                                               \
            break;                                                                                 \
        case 7:                                                                                    \
            CALL(7);                                                                               \
            break;                                                                                 \
        default:                                                                                   \
            CALL(8);                                                                               \
            break;                                                                                 \
        }                                                                                          \
    }

/* switch (nt) { LG_COUNT_CASES_1_TO_8(CASE) }: CASE(1) .. CASE(7), and CASE(8)
 * for any other count (8 or more: the callers' passes are at most 8). */
#define LG_COUNT_CASES_1_TO_8(CASE)                                                                \
    CASE(1)                                                                                        \
    CASE(2)                                                                                        \
    CASE(3)                                                                                        \
    CASE(4)                                                                                        \
    CASE(5)                                                                                        \
    CASE(6)                                                                                        \
    CASE(7)                                                                                        \
    default:                                                                                       \
        CASE(8)

#endif
