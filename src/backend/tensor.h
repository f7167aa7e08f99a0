/* Weights as backends see them: a row-major matrix [rows, cols] in a storage
 * dtype, rows row_bytes apart, in memory the backend can read (for the CPU
 * the mmap or the huge-page copy itself; for a GPU its own allocation). */
#ifndef LAGUNA_BACKEND_TENSOR_H
#define LAGUNA_BACKEND_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"

typedef struct {
    lg_dtype dtype;
    int64_t rows, cols;
    size_t row_bytes;
    const uint8_t *data;
} lg_matrix;

static inline const void *lg_matrix_row(const lg_matrix *m, int64_t r) {
    return m->data + (size_t)r * m->row_bytes;
}

/* A SwiGLU MLP: down(silu(gate x) * up x). */
typedef struct {
    lg_matrix gate, up, down;
} lg_swiglu_weights;

#endif
