/* A weight matrix as kernels see it: row-major [rows, cols] in a storage
 * dtype, rows row_bytes apart. Borrowed memory (usually memory-mapped). */
#ifndef LAGUNA_KERNELS_MATRIX_H
#define LAGUNA_KERNELS_MATRIX_H

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

#endif
