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
#include "io/file_util.h"
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

/* Keeps a mapping alive for the source's lifetime (unmapped on free);
 * `copied`: anonymous memory holding a copy of a file, not the file mapped. */
int lg_tensor_source_keep_mapping(lg_tensor_source *src, void *addr, size_t len, bool copied);

/* Where the source's bytes live: totals of its mapped and copied files, and
 * how much of them the kernel backs with huge pages now (0 if unknown). */
typedef struct {
    uint64_t mapped_bytes, copied_bytes, huge_bytes;
} lg_tensor_memory;
lg_tensor_memory lg_tensor_source_memory(const lg_tensor_source *src);
/* Whether [p, p + bytes) lies in anonymous memory the source keeps (a copied
 * file, generated weights): memory the model may rearrange in place. */
bool lg_tensor_source_owns(const lg_tensor_source *src, const void *p, size_t bytes);
/* Makes that memory writable (copies are read-only once read) or read-only
 * again; 0, or -1 when the system refused. */
int lg_tensor_source_set_writable(lg_tensor_source *src, bool writable);
/* Keeps a heap block alive for the source's lifetime (freed on free). */
int lg_tensor_source_keep_block(lg_tensor_source *src, void *block);

/* Adds a tensor (the name is copied). Fails on a duplicate name. */
laguna_status lg_tensor_source_add(lg_tensor_source *src, const lg_tensor *t, laguna_error *err);
const lg_tensor *lg_tensor_source_find(const lg_tensor_source *src, const char *name);
/* Records that a tensor's bytes now have another dtype (rearranged in place
 * in memory the source owns). */
void lg_tensor_source_set_dtype(lg_tensor_source *src, const char *name, lg_dtype dtype);
size_t lg_tensor_source_count(const lg_tensor_source *src);
const lg_tensor *lg_tensor_source_at(const lg_tensor_source *src, size_t i);

/* How weight files reach memory: mapped (page cache, shared, any size) or
 * copied into anonymous huge-page memory (kernels 2-3x faster, costs RAM);
 * AUTO copies when the files fit in the available memory with headroom to
 * spare (lg_load_copy_fits). */
typedef enum { LG_LOAD_AUTO = 0, LG_LOAD_MMAP, LG_LOAD_COPY } lg_load_mode;

/* Memory AUTO keeps free beside a copy: 10% of the machine's memory, at least
 * 2 GiB. It is for what the load cannot see yet: the KV cache and activations
 * of the contexts to come (a few hundred MB for a 4K-token session of XS.2),
 * the rest of the process, and other programs' growth. A copy is anonymous
 * memory that cannot be dropped under pressure (with no swap the kernel
 * kills a process instead), whereas mapped pages can be re-read: when in
 * doubt, map. */
uint64_t lg_load_headroom_bytes(uint64_t total_memory_bytes);
/* Whether a copy of total_bytes fits: available - headroom >= total_bytes.
 * MemAvailable counts the page cache the kernel can reclaim, which includes
 * the file's own cached pages: the copy drops those as it reads. */
bool lg_load_copy_fits(uint64_t total_bytes, uint64_t available_bytes, uint64_t total_memory_bytes);
/* Where weights of total_bytes go under this mode: COPY copies, MMAP maps,
 * AUTO copies if they fit (asking /proc/meminfo; unknown memory = map) and
 * then backs off to mapping if memory runs short during the copy. */
lg_placement lg_load_mode_placement(lg_load_mode mode, uint64_t total_bytes);

/* Loads every safetensors file of a checkpoint folder: model.safetensors, or
 * the shards listed by model.safetensors.index.json. */
laguna_status lg_tensor_source_open_safetensors_dir(const char *dir, lg_load_mode mode, lg_tensor_source **out,
                                                    laguna_error *err);
/* Loads one safetensors file into an existing source (mapped, or copied: see lg_map_file). */
laguna_status lg_tensor_source_add_safetensors_file(lg_tensor_source *src, const char *path, lg_placement place,
                                                    laguna_error *err);

#endif
