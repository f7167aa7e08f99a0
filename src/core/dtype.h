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
    LG_DTYPE_COUNT
} lg_dtype;

/* Name as safetensors writes it ("F32", "BF16", ...). */
const char *lg_dtype_name(lg_dtype dtype);

/* Elements per block (1 for plain float types). */
int64_t lg_dtype_block_elems(lg_dtype dtype);

/* Bytes of one row of n elements, or 0 when n is not a whole number of blocks. */
size_t lg_dtype_row_bytes(lg_dtype dtype, int64_t n);

/* Converts n elements (a whole number of blocks) starting at src to float32. */
void lg_dtype_to_f32(lg_dtype dtype, const void *src, float *dst, int64_t n);

/* Converts (quantises) n float32 values to dtype; returns -1 for a dtype that
 * cannot be written this way. */
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
