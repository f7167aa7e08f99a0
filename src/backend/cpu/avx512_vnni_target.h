/* Compiles the rest of the file that includes it for AVX-512 with VNNI (and
 * AVX2, FMA, F16C) whatever the build's -march: for kernels called only when
 * cpuid says the CPU has them (quant_dot.c). Included first, under
 * defined(__x86_64__) && defined(__GNUC__); with clang the including file ends
 * the region with `#pragma clang attribute pop`. */
#if defined(__clang__)
#pragma clang attribute push(                                                                      \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c"))),        \
    apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")
#endif
