/* Random checkpoints: the tensor list a config implies, filled with uniform
 * noise of small scale (norm weights near 1), streamed shard by shard.
 * Values are reproducible from the seed and the tensor's name. */
#include "synth/synth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "io/file_util.h"
#include "io/safetensors_write.h"
#include "synth/presets.h"

typedef struct {
    lg_st_spec *specs;
    char **names;
    size_t n, cap;
} tensor_list;

static int add(tensor_list *l, lg_dtype dtype, int64_t d0, int64_t d1, const char *fmt, int a, int b) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 256;
        lg_st_spec *s = realloc(l->specs, nc * sizeof *s);
        if (!s) return -1;
        l->specs = s;
        char **nm = realloc(l->names, nc * sizeof *nm);
        if (!nm) return -1;
        l->names = nm;
        l->cap = nc;
    }
    char name[160];
    snprintf(name, sizeof name, fmt, a, b);
    l->names[l->n] = strdup(name);
    if (!l->names[l->n]) return -1;
    l->specs[l->n] = (lg_st_spec){l->names[l->n], dtype, d1 ? 2 : 1, {d0, d1}};
    l->n++;
    return 0;
}

static void free_list(tensor_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    free(l->specs);
}

/* Every tensor a checkpoint of this config holds, in the order written. */
static int build_list(const lg_config *c, lg_dtype dt, tensor_list *l) {
    int64_t H = c->hidden_size, hd = c->head_dim, kv = (int64_t)c->n_kv_heads * hd;
    int r = add(l, dt, c->vocab_size, H, "model.embed_tokens.weight", 0, 0);
    if (!c->tie_word_embeddings) r |= add(l, dt, c->vocab_size, H, "lm_head.weight", 0, 0);
    r |= add(l, dt, H, 0, "model.norm.weight", 0, 0);
    for (int i = 0; i < c->n_layers && !r; i++) {
        int64_t q = (int64_t)c->n_heads[i] * hd;
        int64_t g = c->gate_mode == LG_GATE_PER_ELEMENT ? q : c->n_heads[i];
        r |= add(l, dt, H, 0, "model.layers.%d.input_layernorm.weight", i, 0);
        r |= add(l, dt, H, 0, "model.layers.%d.post_attention_layernorm.weight", i, 0);
        r |= add(l, dt, q, H, "model.layers.%d.self_attn.q_proj.weight", i, 0);
        r |= add(l, dt, kv, H, "model.layers.%d.self_attn.k_proj.weight", i, 0);
        r |= add(l, dt, kv, H, "model.layers.%d.self_attn.v_proj.weight", i, 0);
        r |= add(l, dt, H, q, "model.layers.%d.self_attn.o_proj.weight", i, 0);
        r |= add(l, dt, hd, 0, "model.layers.%d.self_attn.q_norm.weight", i, 0);
        r |= add(l, dt, hd, 0, "model.layers.%d.self_attn.k_norm.weight", i, 0);
        if (c->gate_mode != LG_GATE_NONE) r |= add(l, dt, g, H, "model.layers.%d.self_attn.g_proj.weight", i, 0);
        if (c->mlp_kind[i] == LG_MLP_DENSE) {
            int64_t I = c->intermediate_size;
            r |= add(l, dt, I, H, "model.layers.%d.mlp.gate_proj.weight", i, 0);
            r |= add(l, dt, I, H, "model.layers.%d.mlp.up_proj.weight", i, 0);
            r |= add(l, dt, H, I, "model.layers.%d.mlp.down_proj.weight", i, 0);
            continue;
        }
        int64_t I = c->moe_intermediate_size, S = c->shared_expert_intermediate_size;
        r |= add(l, dt, c->n_experts, H, "model.layers.%d.mlp.gate.weight", i, 0);
        r |= add(l, dt, c->n_experts, 0, "model.layers.%d.mlp.experts.e_score_correction_bias", i, 0);
        for (int e = 0; e < c->n_experts && !r; e++) {
            r |= add(l, dt, I, H, "model.layers.%d.mlp.experts.%d.gate_proj.weight", i, e);
            r |= add(l, dt, I, H, "model.layers.%d.mlp.experts.%d.up_proj.weight", i, e);
            r |= add(l, dt, H, I, "model.layers.%d.mlp.experts.%d.down_proj.weight", i, e);
        }
        if (S > 0) {
            r |= add(l, dt, S, H, "model.layers.%d.mlp.shared_expert.gate_proj.weight", i, 0);
            r |= add(l, dt, S, H, "model.layers.%d.mlp.shared_expert.up_proj.weight", i, 0);
            r |= add(l, dt, H, S, "model.layers.%d.mlp.shared_expert.down_proj.weight", i, 0);
        }
    }
    return r;
}

static uint64_t mix(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

#define STEP 0x9e3779b97f4a7c15ull

/* Uniform noise with standard deviation `std` around `mean`, stored as dtype.
 * Element i of a tensor is a function of the tensor's start state and i
 * alone (a counter-based generator), so any range can be produced directly. */
static void fill(void *dst, lg_dtype dt, size_t n, uint64_t *state, float mean, float std) {
    float a = std * 1.7320508f; /* uniform on [-a, a] has this std */
    for (size_t i = 0; i < n; i++) {
        *state += STEP;
        float u = (float)(mix(*state) >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
        float v = mean + (2 * u - 1) * a;
        if (dt == LG_DTYPE_F32) ((float *)dst)[i] = v;
        else if (dt == LG_DTYPE_BF16) ((uint16_t *)dst)[i] = lg_f32_to_bf16(v);
        else ((uint16_t *)dst)[i] = lg_f32_to_f16(v);
    }
}

void lg_synth_noise(const char *name, uint64_t seed, float *mean, float *std, uint64_t *state) {
    bool is_norm = strstr(name, "norm") != NULL, is_bias = strstr(name, "bias") != NULL;
    *mean = is_norm ? 1.0f : 0.0f;
    *std = is_norm ? 0.05f : is_bias ? 0.01f : 0.02f;
    *state = seed;
    for (const char *p = name; *p; p++) *state = mix(*state ^ (unsigned char)*p);
}

void lg_synth_generate(uint64_t seed, const lg_tensor *t, size_t offset, void *dst, size_t n_bytes) {
    float mean, std;
    uint64_t state;
    lg_synth_noise(t->name, seed, &mean, &std, &state);
    size_t esize = lg_dtype_row_bytes(t->dtype, 1);
    state += STEP * (uint64_t)(offset / esize);
    fill(dst, t->dtype, n_bytes / esize, &state, mean, std);
}

static laguna_status write_tensor(lg_st_writer *w, const lg_st_spec *s, uint64_t seed, void *buf, size_t buf_elems,
                                  laguna_error *err) {
    size_t n = 1;
    for (int d = 0; d < s->n_dims; d++) n *= (size_t)s->shape[d];
    float mean, std;
    uint64_t state;
    lg_synth_noise(s->name, seed, &mean, &std, &state);
    size_t esize = lg_dtype_row_bytes(s->dtype, 1);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < buf_elems ? n - done : buf_elems;
        fill(buf, s->dtype, k, &state, mean, std);
        laguna_status st = lg_st_writer_write(w, buf, k * esize, err);
        if (st) return st;
        done += k;
    }
    return LAGUNA_OK;
}

static laguna_status write_text(const char *dir, const char *name, const char *text, laguna_error *err) {
    char *path = lg_path_join(dir, name);
    if (!path) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    FILE *f = fopen(path, "w");
    laguna_status st = LAGUNA_OK;
    if (!f || fputs(text, f) < 0 || fputc('\n', f) == EOF) st = lg_fail(err, LAGUNA_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    if (f && fclose(f) != 0 && !st) st = lg_fail(err, LAGUNA_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    free(path);
    return st;
}

static laguna_status write_generation_config(const char *dir, const lg_config *c, laguna_error *err) {
    cJSON *o = cJSON_CreateObject();
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(o, "bos_token_id", c->bos_token_id);
    cJSON *eos = cJSON_AddArrayToObject(o, "eos_token_id");
    for (int i = 0; i < c->n_eos; i++) cJSON_AddItemToArray(eos, cJSON_CreateNumber(c->eos_token_ids[i]));
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    laguna_status st = write_text(dir, "generation_config.json", text, err);
    free(text);
    return st;
}

laguna_status lg_synth_write_config(const lg_config *cfg, const char *dir, laguna_error *err) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return lg_fail(err, LAGUNA_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    char *config = lg_config_to_json(cfg);
    if (!config) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    laguna_status st = write_text(dir, "config.json", config, err);
    free(config);
    return st ? st : write_generation_config(dir, cfg, err);
}

laguna_status lg_synth_write(const lg_config *cfg, const char *dir, const lg_synth_options *opt, laguna_error *err) {
    if (opt->dtype != LG_DTYPE_F32 && opt->dtype != LG_DTYPE_BF16 && opt->dtype != LG_DTYPE_F16)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "synth writes F32, BF16 or F16 weights");
    laguna_status st = lg_synth_write_config(cfg, dir, err);
    if (st) return st;

    tensor_list l = {0};
    if (build_list(cfg, opt->dtype, &l)) {
        free_list(&l);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    uint64_t total = 0;
    for (size_t i = 0; i < l.n; i++) total += lg_st_spec_bytes(&l.specs[i]);
    /* shard boundaries: greedy, each shard up to max_shard_bytes (at least one tensor) */
    size_t n_shards = 0, *first = calloc(l.n + 1, sizeof *first);
    size_t buf_elems = 1 << 20;
    void *buf = malloc(buf_elems * 4);
    cJSON *index = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(index, "weight_map");
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(index, "metadata"), "total_size", (double)total);
    if (!first || !buf || !map) st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    for (size_t i = 0, acc = 0; i < l.n && !st; i++) {
        size_t b = lg_st_spec_bytes(&l.specs[i]);
        if (i == 0 || (opt->max_shard_bytes && acc + b > opt->max_shard_bytes && acc > 0)) {
            first[n_shards++] = i;
            acc = 0;
        }
        acc += b;
    }
    first[n_shards] = l.n;
    uint64_t done = 0;
    for (size_t s = 0; s < n_shards && !st; s++) {
        char name[64];
        if (opt->max_shard_bytes && n_shards > 1)
            snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, n_shards);
        else
            snprintf(name, sizeof name, "model.safetensors");
        char *path = lg_path_join(dir, name);
        lg_st_writer *w = NULL;
        st = path ? lg_st_writer_open(path, l.specs + first[s], first[s + 1] - first[s], &w, err)
                  : lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
        for (size_t i = first[s]; i < first[s + 1] && !st; i++) {
            st = write_tensor(w, &l.specs[i], opt->seed, buf, buf_elems, err);
            cJSON_AddStringToObject(map, l.specs[i].name, name);
            done += lg_st_spec_bytes(&l.specs[i]);
            if (!st && opt->progress) opt->progress(opt->user, done, total);
        }
        if (w) st = st ? (lg_st_writer_abort(w), st) : lg_st_writer_finish(w, err);
        free(path);
    }
    if (!st && opt->max_shard_bytes && n_shards > 1) {
        char *text = cJSON_Print(index);
        st = text ? write_text(dir, "model.safetensors.index.json", text, err) : lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
        free(text);
    }
    if (!st && !(opt->max_shard_bytes && n_shards > 1)) { /* a stale index would shadow model.safetensors */
        char *stale = lg_path_join(dir, "model.safetensors.index.json");
        if (stale) remove(stale);
        free(stale);
    }
    cJSON_Delete(index);
    free(first);
    free(buf);
    free_list(&l);
    return st;
}

laguna_status lg_synth_tensor_source(const lg_config *cfg, lg_dtype dtype, lg_tensor_source **out, laguna_error *err) {
    *out = NULL;
    tensor_list l = {0};
    lg_tensor_source *src = lg_tensor_source_new();
    laguna_status st = src && !build_list(cfg, dtype, &l) ? LAGUNA_OK : lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < l.n && !st; i++) {
        lg_tensor t = {.name = (char *)l.specs[i].name, .dtype = dtype, .n_dims = l.specs[i].n_dims, .data = NULL,
                       .n_bytes = lg_st_spec_bytes(&l.specs[i]), .file = "synthetic"};
        memcpy(t.shape, l.specs[i].shape, sizeof t.shape);
        st = lg_tensor_source_add(src, &t, err);
    }
    free_list(&l);
    if (st) {
        lg_tensor_source_free(src);
        return st;
    }
    *out = src;
    return LAGUNA_OK;
}
