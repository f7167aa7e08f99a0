/* Streaming safetensors writer: the header is written first from the list of
 * tensors, then their data in the same order, so no tensor needs to be held
 * in memory whole. Writes go to PATH.tmp, renamed to PATH only when complete. */
#ifndef LAGUNA_IO_SAFETENSORS_WRITE_H
#define LAGUNA_IO_SAFETENSORS_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "laguna.h"

typedef struct {
    const char *name;
    lg_dtype dtype; /* F32, BF16, F16 or I32 */
    int n_dims;
    int64_t shape[4];
} lg_st_spec;

typedef struct lg_st_writer lg_st_writer;

laguna_status lg_st_writer_open(const char *path, const lg_st_spec *specs, size_t n, lg_st_writer **out,
                                laguna_error *err);
/* Appends the next bytes of tensor data (any chunking, in spec order). */
laguna_status lg_st_writer_write(lg_st_writer *w, const void *data, size_t bytes, laguna_error *err);
/* Checks every byte was written, flushes and renames into place; frees w. */
laguna_status lg_st_writer_finish(lg_st_writer *w, laguna_error *err);
/* Abandons the file (removes PATH.tmp); frees w. */
void lg_st_writer_abort(lg_st_writer *w);

/* Bytes of a tensor's data. */
size_t lg_st_spec_bytes(const lg_st_spec *s);

#endif
