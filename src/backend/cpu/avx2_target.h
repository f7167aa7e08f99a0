/* Compiles the rest of the file that includes it for AVX2 with FMA and F16C
 * whatever the build's -march: for kernels called only when cpuid says the
 * CPU has them. Included first, under defined(__x86_64__) &&
 * defined(__GNUC__); with clang the including file ends the region with
 * `#pragma clang attribute pop` (as with avx512_vnni_target.h). */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC target("avx2,fma,f16c")
#endif
