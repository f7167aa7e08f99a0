/* A named collection of tensors backed by memory-mapped files.
 *
 * The model loader asks a source for tensors by their Hugging Face name
 * ("model.layers.3.self_attn.q_proj.weight"), whatever file format they came
 * from: safetensors folders fill one directly; a GGUF reader fills one by
 * translating its own names. The source owns the mappings; tensors borrow. */
#ifndef LAGUNA_IO_TENSOR_SOURCE_H
#define LAGUNA_IO_TENSOR_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "laguna.h"

#define LG_MAX_DIMS 4

typedef struct {
    char *name;
    lg_dtype dtype;
    int n_dims;
    int64_t shape[LG_MAX_DIMS]; /* row-major, outermost first: [out, in] for weights */
    const void *data;
    size_t n_bytes;
    const char *file;           /* for messages */
} lg_tensor;

typedef struct lg_tensor_source lg_tensor_source;

lg_tensor_source *lg_tensor_source_new(void);
void lg_tensor_source_free(lg_tensor_source *src);

/* Keeps a mapping alive for the source's lifetime (unmapped on free). */
int lg_tensor_source_keep_mapping(lg_tensor_source *src, void *addr, size_t len);
/* Keeps a heap block alive for the source's lifetime (freed on free). */
int lg_tensor_source_keep_block(lg_tensor_source *src, void *block);

/* Adds a tensor (the name is copied). Fails on a duplicate name. */
laguna_status lg_tensor_source_add(lg_tensor_source *src, const lg_tensor *t, laguna_error *err);
const lg_tensor *lg_tensor_source_find(const lg_tensor_source *src, const char *name);
size_t lg_tensor_source_count(const lg_tensor_source *src);
const lg_tensor *lg_tensor_source_at(const lg_tensor_source *src, size_t i);

/* How weight files reach memory: mapped (page cache, shared, any size) or
 * copied into anonymous huge-page memory (faster kernels, costs RAM); AUTO
 * copies when the files take under half of the available memory. */
typedef enum { LG_LOAD_AUTO = 0, LG_LOAD_MMAP, LG_LOAD_COPY } lg_load_mode;

/* Whether weights of total_bytes should be copied under this mode. */
bool lg_load_mode_copies(lg_load_mode mode, uint64_t total_bytes);

/* Loads every safetensors file of a checkpoint folder: model.safetensors, or
 * the shards listed by model.safetensors.index.json. */
laguna_status lg_tensor_source_open_safetensors_dir(const char *dir, lg_load_mode mode, lg_tensor_source **out,
                                                    laguna_error *err);
/* Loads one safetensors file into an existing source (mapped; copied when copy). */
laguna_status lg_tensor_source_add_safetensors_file(lg_tensor_source *src, const char *path, bool copy,
                                                    laguna_error *err);

#endif
