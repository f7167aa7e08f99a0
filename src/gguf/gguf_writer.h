/* Streaming GGUF writer (version 3).
 *
 * Usage: lg_gguf_writer_new(dst) creates "dst.tmp"; set the metadata and
 * declare every tensor (name, dtype, ggml-order shape); then write the tensor
 * data in declaration order with lg_gguf_writer_write, in chunks of any size
 * (a tensor may arrive row by row, so memory stays far below the model size);
 * lg_gguf_writer_finish pads, flushes, fsyncs and renames dst.tmp to dst. Any
 * failure (unwritable folder, full disk, a tensor short of bytes) removes
 * dst.tmp and leaves nothing under dst. Metadata and tensor infos are kept in
 * memory until the first data write; the tensor data is never buffered beyond
 * stdio's buffer. Setting "general.alignment" changes the alignment used. */
#ifndef LAGUNA_GGUF_WRITER_H
#define LAGUNA_GGUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "gguf/gguf.h"
#include "laguna.h"

typedef struct lg_gguf_writer lg_gguf_writer;

laguna_status lg_gguf_writer_new(const char *dst_path, lg_gguf_writer **out, laguna_error *err);

/* Metadata. A key may be set once; every call fails after data writing began. */
laguna_status lg_gguf_set_u32(lg_gguf_writer *w, const char *key, uint32_t v, laguna_error *err);
laguna_status lg_gguf_set_i32(lg_gguf_writer *w, const char *key, int32_t v, laguna_error *err);
laguna_status lg_gguf_set_u64(lg_gguf_writer *w, const char *key, uint64_t v, laguna_error *err);
laguna_status lg_gguf_set_f32(lg_gguf_writer *w, const char *key, float v, laguna_error *err);
laguna_status lg_gguf_set_f64(lg_gguf_writer *w, const char *key, double v, laguna_error *err);
laguna_status lg_gguf_set_bool(lg_gguf_writer *w, const char *key, bool v, laguna_error *err);
laguna_status lg_gguf_set_str(lg_gguf_writer *w, const char *key, const char *v, laguna_error *err);
laguna_status lg_gguf_set_str_n(lg_gguf_writer *w, const char *key, const char *v, size_t len,
                                laguna_error *err);
/* An array of n fixed-size elements of elem_type (not STRING / ARRAY), stored
 * little-endian at data as GGUF lays them out (bool: one byte each). */
laguna_status lg_gguf_set_array(lg_gguf_writer *w, const char *key, lg_gguf_type elem_type,
                                const void *data, size_t n, laguna_error *err);
/* An array of n strings; lens may be NULL for NUL-terminated strings. */
laguna_status lg_gguf_set_str_array(lg_gguf_writer *w, const char *key, const char *const *strs,
                                    const size_t *lens, size_t n, laguna_error *err);

/* Copies a key/value read from another GGUF file, value bytes unchanged. */
laguna_status lg_gguf_copy_kv(lg_gguf_writer *w, const lg_gguf_kv *kv, laguna_error *err);

/* Declares the next tensor. ne is in ggml order (ne[0] = row length). */
laguna_status lg_gguf_add_tensor(lg_gguf_writer *w, const char *name, lg_dtype dtype, int n_dims,
                                 const int64_t *ne, laguna_error *err);

/* Appends tensor data; writing past the current tensor's size moves on to the
 * next tensor only at exact boundaries (a chunk may not span two tensors). */
laguna_status lg_gguf_writer_write(lg_gguf_writer *w, const void *data, size_t n,
                                   laguna_error *err);

/* Completes the file and frees the writer, whatever the outcome. */
laguna_status lg_gguf_writer_finish(lg_gguf_writer *w, laguna_error *err);
/* Abandons the file (removes dst.tmp) and frees the writer. */
void lg_gguf_writer_abort(lg_gguf_writer *w);

#endif
