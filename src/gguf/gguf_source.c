/* GGUF tensors -> an lg_tensor_source with Hugging Face names and torch
 * shapes, so the model loader reads a GGUF as it reads a safetensors folder.
 *
 * GGUF dims are ggml's ne[], innermost first: torch [out, in] is ne = {in,
 * out}, so shapes are reversed. llama.cpp stacks each layer's routed experts
 * into one 3-D tensor ne = {in, out, n_experts}; expert e's [out, in] matrix
 * is the e-th slice, which we expose under its HF name as a view (row blocks
 * of quantised types never straddle experts because rows are whole blocks).
 * Tensors this mapping does not know keep their GGUF name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/error.h"
#include "gguf/gguf_laguna.h"

static laguna_status add_view(lg_tensor_source *src, const lg_gguf_tensor_info *t, const char *name,
                              int n_dims, const int64_t *shape, const void *data, size_t n_bytes,
                              const char *file, laguna_error *err) {
    lg_tensor v = {.name = (char *)name,
                   .dtype = t->dtype,
                   .n_dims = n_dims,
                   .data = data,
                   .n_bytes = n_bytes,
                   .file = file};
    for (int d = 0; d < n_dims; d++)
        v.shape[d] = shape[d];
    return lg_tensor_source_add(src, &v, err);
}

static laguna_status add_tensor(lg_tensor_source *src, const lg_gguf_tensor_info *t,
                                const char *file, laguna_error *err) {
    char name[256];
    int64_t shape[LG_MAX_DIMS];
    for (int d = 0; d < t->n_dims; d++)
        shape[d] = t->ne[t->n_dims - 1 - d]; /* torch order */
    int kind = lg_gguf_name_to_hf(t->name, 0, name, sizeof name);
    if (kind < 0)
        return add_view(src, t, t->name, t->n_dims, shape, t->data, t->n_bytes, file, err);
    if (kind == 0) return add_view(src, t, name, t->n_dims, shape, t->data, t->n_bytes, file, err);
    if (t->n_dims != 3)
        return lg_fail(err, LAGUNA_ERR_SHAPE,
                       "%s: merged expert tensor '%s' has %d dimensions, expected 3", file, t->name,
                       t->n_dims);
    int64_t n_experts = t->ne[2];
    size_t slice = n_experts > 0 ? t->n_bytes / (size_t)n_experts : 0;
    for (int64_t e = 0; e < n_experts; e++) {
        lg_gguf_name_to_hf(t->name, (int)e, name, sizeof name);
        laguna_status st = add_view(src, t, name, 2, shape + 1,
                                    (const uint8_t *)t->data + (size_t)e * slice, slice, file, err);
        if (st) return st;
    }
    return LAGUNA_OK;
}

laguna_status lg_gguf_laguna_tensor_source(lg_gguf_file *f, const lg_config *cfg,
                                           lg_tensor_source **out, laguna_error *err) {
    (void)cfg;
    *out = NULL;
    lg_tensor_source *src = lg_tensor_source_new();
    if (!src) return lg_fail(err, LAGUNA_ERR_NOMEM, "%s: out of memory", lg_gguf_path(f));
    laguna_status st = LAGUNA_OK;
    /* The tensors' `file` strings must outlive the lg_gguf_file: keep a copy. */
    char *file = strdup(lg_gguf_path(f));
    if (!file || lg_tensor_source_keep_block(src, file)) {
        free(file);
        st = lg_fail(err, LAGUNA_ERR_NOMEM, "%s: out of memory", lg_gguf_path(f));
    }
    for (size_t i = 0; i < lg_gguf_tensor_count(f) && !st; i++)
        st = add_tensor(src, lg_gguf_tensor_at(f, i), file, err);
    if (!st) {
        size_t len;
        void *map = lg_gguf_take_mapping(f, &len);
        if (map && lg_tensor_source_keep_mapping(src, map, len, lg_gguf_is_copy(f))) {
            munmap(map, len);
            st = lg_fail(err, LAGUNA_ERR_NOMEM, "%s: out of memory", lg_gguf_path(f));
        }
    }
    if (st) {
        lg_tensor_source_free(src);
        return st;
    }
    *out = src;
    return LAGUNA_OK;
}

laguna_status lg_gguf_open_laguna(const char *path, lg_placement place, lg_config *cfg,
                                  lg_tensor_source **src, laguna_error *err) {
    *src = NULL;
    memset(cfg, 0, sizeof *cfg);
    lg_gguf_file *f;
    laguna_status st = lg_gguf_open(path, place, &f, err);
    if (st) return st;
    st = lg_gguf_read_laguna_config(f, cfg, err);
    if (!st) st = lg_gguf_laguna_tensor_source(f, cfg, src, err);
    if (st) lg_config_free(cfg);
    lg_gguf_close(f);
    return st;
}
