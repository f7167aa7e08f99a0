/* `laguna quantize`: a Laguna checkpoint (Hugging Face folder or GGUF) ->
 * a GGUF with llama.cpp's per-tensor type mix.
 *
 * Streams tensor by tensor and, inside a tensor, a few megabytes of rows at
 * a time: peak memory is the chunk buffers plus the metadata (tokenizer),
 * far below the model size; source weights stay memory-mapped. */
#ifndef LAGUNA_GGUF_QUANTIZE_H
#define LAGUNA_GGUF_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "io/tensor_source.h"
#include "model/config.h"
#include "laguna.h"

/* The file types of llama-quantize that laguna.c writes, valued as
 * llama.cpp's LLAMA_FTYPE (general.file_type). */
typedef enum {
    LG_FTYPE_F32 = 0,
    LG_FTYPE_Q8_0 = 7,
    LG_FTYPE_Q4_K_M = 15,
    LG_FTYPE_Q5_K_M = 17,
    LG_FTYPE_Q6_K = 18,
    LG_FTYPE_BF16 = 32,
} lg_ftype;

/* "q8_0", "q4_k_m", "q5_k_m", "q6_k", "bf16", "f32" (case-insensitive). */
int lg_ftype_parse(const char *name, lg_ftype *out);
const char *lg_ftype_name(lg_ftype ftype);

/* What a tensor becomes. gguf_name and shape (ggml order, ne[0] = row
 * length) identify it; n_layers and n_experts are the model's. Follows
 * llama.cpp's llama_tensor_get_type for these file types (see the .c file);
 * *fallback is set when the row length forced a smaller-block type. */
lg_dtype lg_ftype_tensor_type(lg_ftype ftype, const char *gguf_name, int n_dims, const int64_t *ne,
                              int n_layers, int n_experts, int tied_embeddings, int *fallback);

typedef struct {
    lg_ftype ftype;
    int n_threads; /* <= 0: all online cores */
    /* Called after every chunk: bytes of source weights processed so far and
     * in all, and the tensor being written (GGUF name). */
    void (*progress)(void *user, uint64_t done, uint64_t total, const char *tensor);
    void *user;
    /* For sources whose tensors have no data (data == NULL): writes bytes
     * [offset, offset + n) of tensor t's source data into dst. */
    void (*generate)(void *user, const lg_tensor *t, size_t offset, void *dst, size_t n);
    void *generate_user;
    /* lg_quantize_source only: a folder whose tokenizer.json (and
     * tokenizer_config.json) to write into the GGUF; NULL = none. */
    const char *tokenizer_dir;
} lg_quantize_options;

typedef struct {
    size_t n_tensors;
    size_t n_fallbacks; /* tensors that fell back to a smaller-block type */
    uint64_t src_bytes; /* weights read */
    uint64_t dst_bytes; /* tensor data written */
    size_t count_by_type[LG_DTYPE_COUNT];
} lg_quantize_stats;

/* src: a checkpoint folder (config.json, safetensors, tokenizer files) or a
 * .gguf file; dst is written through dst.tmp and renamed on success.
 * stats may be NULL. */
laguna_status lg_quantize_model(const char *src, const char *dst, const lg_quantize_options *opt,
                                lg_quantize_stats *stats, laguna_error *err);

/* The same from a config and a tensor source already in hand (the tokenizer
 * of opt->tokenizer_dir, if any); `name` becomes general.name. Tensors without data are
 * produced by opt->generate. */
laguna_status lg_quantize_source(const lg_config *cfg, const lg_tensor_source *src, const char *name, const char *dst,
                                 const lg_quantize_options *opt, lg_quantize_stats *stats, laguna_error *err);

#endif
