/* Storage types of weights and caches, and conversion of rows to float32.
 *
 * Precision policy (the whole engine): weights stay in the dtype they are
 * stored in (memory-mapped, never copied whole); kernels convert them a row or
 * a block at a time to float32 and do all arithmetic and accumulation in
 * float32. Activations, norms, router math and softmax are float32. */
#ifndef LAGUNA_CORE_DTYPE_H
#define LAGUNA_CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    LG_DTYPE_F32 = 0,
    LG_DTYPE_BF16,
    LG_DTYPE_F16,
    LG_DTYPE_I32, /* integer data (reference files); never a weight type */
    /* Quantised block types, byte-for-byte ggml's layouts (src/quant/quant.h). */
    LG_DTYPE_Q8_0, /* 32 elements: f16 scale + 32 int8 */
    LG_DTYPE_Q4_0, /* 32 elements: f16 scale + 16 bytes of nibbles */
    LG_DTYPE_Q4_K, /* 256 elements: f16 d, dmin, 6-bit sub-block scales/mins, nibbles */
    LG_DTYPE_Q5_K, /* 256 elements: as Q4_K plus one high bit per element */
    LG_DTYPE_Q6_K, /* 256 elements: 6-bit values, int8 sub-block scales, f16 d */
    LG_DTYPE_Q5_0, /* 32 elements: ggml's fallback for Q4_K rows not a multiple of 256 */
    LG_DTYPE_Q5_1, /* 32 elements: ggml's fallback for Q5_K rows not a multiple of 256 */
    /* Q4_K, Q5_K, Q6_K and Q8_0 matrices with rows in groups of 16, rearranged at
     * load for the AVX-512 kernels (quant.h: lg_x16_group): never in a file,
     * made only in memory the model owns; rows only in groups (no per-row
     * access). */
    LG_DTYPE_Q4_K_X16,
    LG_DTYPE_Q6_K_X16,
    LG_DTYPE_Q8_0_X16,
    LG_DTYPE_Q5_K_X16,
    LG_DTYPE_COUNT
} lg_dtype;

/* Name as safetensors writes it ("F32", "BF16", ...); ggml's name for the
 * quantised types ("Q4_K", ...). */
const char *lg_dtype_name(lg_dtype dtype);

/* Elements per block (1 for plain float types). */
int64_t lg_dtype_block_elems(lg_dtype dtype);

/* Bytes of one row of n elements, or 0 when n is not a whole number of blocks. */
size_t lg_dtype_row_bytes(lg_dtype dtype, int64_t n);

/* Converts n elements (a whole number of blocks) starting at src to float32. */
void lg_dtype_to_f32(lg_dtype dtype, const void *src, float *dst, int64_t n);

/* True for the block-quantised types (Q8_0 ... Q5_1). */
int lg_dtype_is_quantized(lg_dtype dtype);

/* Converts (quantises) n float32 values (a whole number of blocks) to dtype,
 * quantised types with ggml's reference quantisers; returns -1 for a dtype
 * that cannot be written this way. */
int lg_dtype_from_f32(lg_dtype dtype, const float *src, void *dst, int64_t n);

static inline float lg_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = {.u = (uint32_t)h << 16};
    return v.f;
}

/* Round to nearest even, NaN kept NaN. */
static inline uint16_t lg_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = {.f = f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}

float lg_f16_to_f32(uint16_t h);
uint16_t lg_f32_to_f16(float f);

#endif
