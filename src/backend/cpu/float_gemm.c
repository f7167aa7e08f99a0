/* Which float-product kernels serve which instruction set (float_gemm.h). */
#include "backend/cpu/float_gemm.h"

bool lg_fgemm_serves(lg_isa isa, lg_dtype dtype) {
    bool floats = dtype == LG_DTYPE_F32 || dtype == LG_DTYPE_BF16 || dtype == LG_DTYPE_F16;
    return floats && (isa == LG_ISA_AVX2 || isa == LG_ISA_AVX512_VNNI);
}

void lg_fgemm_isa(lg_isa isa, const lg_fgemm_args *a) {
    if (a->n_rows <= 0 || a->n_tokens <= 0) return;
    if (isa == LG_ISA_AVX512_VNNI)
        lg_fgemm_avx512(a);
    else
        lg_fgemm_avx2(a);
}
