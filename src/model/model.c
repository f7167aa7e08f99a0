/* laguna_model_open/free: read config.json, map the weights, bind and check
 * them, and fill the summary the public API reports. */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "gguf/gguf_laguna.h"
#include "io/file_util.h"
#include "model/model_synth.h"
#include "parallel/group.h"

#include <sys/stat.h>

#define MAX_CONFIG_BYTES (4u << 20)

void lg_model_count_params(const lg_config *c, int64_t *total, int64_t *active) {
    int64_t h = c->hidden_size, hd = c->head_dim, kv = c->n_kv_heads;
    int64_t t = (int64_t)c->vocab_size * h * (c->tie_word_embeddings ? 1 : 2) + h; /* + final norm */
    int64_t a = t;
    for (int l = 0; l < c->n_layers; l++) {
        int64_t q = c->n_heads[l] * hd;
        int64_t gate_rows = c->gate_mode == LG_GATE_NONE ? 0 : c->gate_mode == LG_GATE_PER_ELEMENT ? q : c->n_heads[l];
        int64_t attn = q * h * 2 + kv * hd * h * 2 + gate_rows * h + 2 * hd + 2 * h;
        t += attn;
        a += attn;
        if (c->mlp_kind[l] == LG_MLP_DENSE) {
            t += 3 * h * c->intermediate_size;
            a += 3 * h * c->intermediate_size;
        } else {
            int64_t expert = 3 * h * c->moe_intermediate_size;
            int64_t fixed = (int64_t)c->n_experts * h + c->n_experts + 3 * h * c->shared_expert_intermediate_size;
            t += fixed + expert * c->n_experts;
            a += fixed + expert * c->n_experts_per_token;
        }
    }
    *total = t;
    *active = a;
}

static void fill_info(laguna_model *m) {
    const lg_config *c = &m->cfg;
    laguna_model_info *i = &m->info;
    i->vocab_size = c->vocab_size;
    i->hidden_size = c->hidden_size;
    i->n_layers = c->n_layers;
    i->n_kv_heads = c->n_kv_heads;
    i->head_dim = c->head_dim;
    i->n_experts = c->n_experts;
    i->n_experts_per_token = c->n_experts_per_token;
    i->sliding_window = lg_config_has_sliding(c) ? c->sliding_window : 0;
    i->max_position_embeddings = c->max_position_embeddings;
    i->bos_token_id = c->bos_token_id;
    i->n_eos_token_ids = c->n_eos;
    i->eos_token_ids = c->eos_token_ids;
    lg_model_count_params(c, &i->n_params_total, &i->n_params_active);
    lg_tensor_memory mem = lg_tensor_source_memory(m->tensors);
    i->weights_load = mem.copied_bytes && !mem.mapped_bytes ? LAGUNA_LOAD_COPY : LAGUNA_LOAD_MMAP;
    i->weights_bytes = mem.copied_bytes + mem.mapped_bytes;
    i->weights_huge_bytes = mem.huge_bytes;
}

/* A Hugging Face folder: config.json plus safetensors. */
static laguna_status open_folder(const char *dir, lg_load_mode mode, lg_config *cfg, lg_tensor_source **tensors,
                                 laguna_error *err) {
    char *config_path = lg_path_join(dir, "config.json");
    if (!config_path) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    char *text = NULL;
    laguna_status st = lg_read_file(config_path, MAX_CONFIG_BYTES, &text, NULL, err);
    if (!st) st = lg_config_parse(text, config_path, cfg, err);
    free(text);
    free(config_path);
    if (st) return st;
    if ((st = lg_tensor_source_open_safetensors_dir(dir, mode, tensors, err))) lg_config_free(cfg);
    return st;
}

typedef struct {
    void (*fn)(void *user, double fraction);
    void *user;
} load_progress;

/* Copies of the checkpoint's files into memory, one file at a time (each
 * shard from 0 to 1 again: the total is not known until all are open). */
static void report_reading(void *user, uint64_t done, uint64_t total) {
    load_progress *p = user;
    if (total) p->fn(p->user, (double)done / (double)total);
}

/* A device backend holds every weight in its own memory: say up front how
 * much the model needs when it cannot fit, rather than failing halfway. */
static laguna_status check_device_room(lg_backend *be, const lg_tensor_source *tensors, const char *path,
                                       laguna_error *err) {
    if (!be->ops->memory_free) return LAGUNA_OK;
    uint64_t need = 0;
    for (size_t i = 0; i < lg_tensor_source_count(tensors); i++) need += lg_tensor_source_at(tensors, i)->n_bytes;
    uint64_t have = be->ops->memory_free(be);
    if (need <= have) return LAGUNA_OK;
    return lg_fail(err, LAGUNA_ERR_NOMEM, "%s: the weights need %.2f GiB of %s memory and %.2f GiB are free", path,
                   need / 1073741824.0, be->ops->name, have / 1073741824.0);
}

static laguna_status open_one(const char *path, const laguna_model_options *options, bool file_layout,
                              laguna_model **out, laguna_error *err);

/* Several devices: the model is opened on the CPU (mapped, for GPUs: only
 * each rank's slices are copied, to its GPU) in the file's layout (the
 * ranks' slices are views by rows and columns, which the CPU's 16-row groups
 * are not) and split by parallel/group.c. */
static laguna_status open_split(const char *path, const laguna_model_options *options, laguna_model **out,
                                laguna_error *err) {
    if (options->device && strcmp(options->device, "cpu"))
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "give one device or a list of devices, not both ('%s' and '%s')",
                       options->device, options->devices);
    laguna_model_options one = *options;
    one.devices = NULL;
    one.device = "cpu";
    one.bf16_activations = 0; /* the ranks' backends run float activations */
    if (strncmp(options->devices, "cpu:", 4)) one.load_mode = LAGUNA_LOAD_MMAP;
    laguna_status st = open_one(path, &one, true, out, err);
    if (!st) st = lg_group_new(*out, options->devices, options->n_threads, &(*out)->group, err);
    if (st) {
        laguna_model_free(*out);
        *out = NULL;
    }
    return st;
}

laguna_status laguna_model_open(const char *path, const laguna_model_options *options, laguna_model **out,
                                laguna_error *err) {
    *out = NULL;
    if (options && options->devices) return open_split(path, options, out, err);
    return open_one(path, options, false, out, err);
}

static laguna_status open_one(const char *path, const laguna_model_options *options, bool file_layout,
                              laguna_model **out, laguna_error *err) {
    *out = NULL;
    if (!path) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "no model folder or GGUF file given");
    lg_load_mode mode = options ? (lg_load_mode)options->load_mode : LG_LOAD_AUTO;
    lg_config cfg;
    lg_tensor_source *tensors = NULL;
    struct stat st_path;
    laguna_status st;
    /* reading into memory (copy mode) is reported file by file, then placing the weights */
    load_progress lp = {options ? options->progress : NULL, options ? options->progress_user : NULL};
    if (lp.fn) lg_map_file_set_progress(report_reading, &lp);
    if (stat(path, &st_path) == 0 && S_ISREG(st_path.st_mode))
        st = lg_gguf_open_laguna(path, lg_load_mode_placement(mode, (uint64_t)st_path.st_size), &cfg, &tensors, err);
    else
        st = open_folder(path, mode, &cfg, &tensors, err);
    lg_map_file_set_progress(NULL, NULL);
    if (st) return st;
    return lg_model_open_source(&cfg, tensors, path, 0, file_layout, options, out, err);
}

laguna_status lg_model_open_source(lg_config *cfg, lg_tensor_source *tensors, const char *source, uint64_t synth_seed,
                                   bool file_layout, const laguna_model_options *options, laguna_model **out,
                                   laguna_error *err) {
    *out = NULL;
    laguna_model *m = calloc(1, sizeof *m);
    if (!m) {
        lg_config_free(cfg);
        lg_tensor_source_free(tensors);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    laguna_status st =
        lg_backend_create(options ? options->device : NULL, options ? options->n_threads : 0, &m->backend, err);
    if (!st && options && options->bf16_activations && m->backend->ops->use_bf16_activations)
        m->info.bf16_activations = m->backend->ops->use_bf16_activations(m->backend);
    if (!st) st = lg_backend_check_top_k(m->backend, cfg->n_experts_per_token, err);
    if (!st) st = check_device_room(m->backend, tensors, source, err);
    if (st) { /* the model does not own them yet */
        lg_config_free(cfg);
        lg_tensor_source_free(tensors);
    } else {
        m->progress = options ? options->progress : NULL;
        m->progress_user = options ? options->progress_user : NULL;
        m->synth_seed = synth_seed;
        m->file_layout = file_layout;
        st = lg_model_bind(m, cfg, tensors, source, err);
        lg_model_synth_finish(m);
    }
    if (st) {
        laguna_model_free(m);
        return st;
    }
    fill_info(m);
    *out = m;
    return LAGUNA_OK;
}

void laguna_model_free(laguna_model *m) {
    if (!m) return;
    lg_group_free(m->group); /* its ranks view this model's weights */
    lg_model_unbind(m);
    lg_backend_destroy(m->backend); /* after the weights it may hold */
    free(m);
}

const laguna_model_info *laguna_model_get_info(const laguna_model *m) { return &m->info; }

static uint64_t matrix_bytes(const lg_matrix *m) { return (uint64_t)m->rows * m->row_bytes; }

static uint64_t mlp_bytes(const lg_mlp_weights *w) {
    return matrix_bytes(&w->gate) + matrix_bytes(&w->up) + matrix_bytes(&w->down);
}

uint64_t lg_model_decode_bytes(const laguna_model *m) {
    const lg_config *c = &m->cfg;
    uint64_t b = matrix_bytes(&m->lm_head) + m->embed_tokens.row_bytes;
    for (int li = 0; li < c->n_layers; li++) {
        const lg_layer *l = &m->layers[li];
        b += matrix_bytes(&l->q_proj) + matrix_bytes(&l->k_proj) + matrix_bytes(&l->v_proj) + matrix_bytes(&l->o_proj);
        if (l->gate_mode != LG_GATE_NONE) b += matrix_bytes(&l->g_proj);
        if (l->mlp_kind == LG_MLP_DENSE) {
            b += mlp_bytes(&l->dense);
            continue;
        }
        b += matrix_bytes(&l->router) + (uint64_t)c->n_experts_per_token * mlp_bytes(&l->experts[0]);
        if (l->has_shared_expert) b += mlp_bytes(&l->shared_expert);
    }
    return b;
}
