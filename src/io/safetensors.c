/* Safetensors reader: validates a file's header and adds its tensors to a
 * tensor source, and opens a checkpoint folder (single file or sharded with
 * model.safetensors.index.json).
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON mapping names
 * to {dtype, shape, data_offsets: [begin, end]} relative to the byte after the
 * header, then the data. Every offset, size and overlap is checked before any
 * tensor is handed out. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "core/error.h"
#include "io/file_util.h"
#include "io/tensor_source.h"

#define MAX_HEADER_BYTES (100u << 20)
#define MAX_INDEX_BYTES (64u << 20)

static int parse_dtype(const char *s, lg_dtype *out) {
    if (!strcmp(s, "F32")) *out = LG_DTYPE_F32;
    else if (!strcmp(s, "BF16")) *out = LG_DTYPE_BF16;
    else if (!strcmp(s, "F16")) *out = LG_DTYPE_F16;
    else if (!strcmp(s, "I32")) *out = LG_DTYPE_I32;
    else return -1;
    return 0;
}

typedef struct {
    uint64_t begin, end;
    const char *name;
} extent;

static int by_begin(const void *a, const void *b) {
    const extent *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* Parses one header entry into t (data pointer relative to `data`). */
static laguna_status parse_entry(const cJSON *e, const char *path, const uint8_t *data, uint64_t data_len,
                                 lg_tensor *t, extent *ext, laguna_error *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tensor '%s': entry is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tensor '%s': needs dtype, shape and data_offsets [begin, end]", path, name);
    if (parse_dtype(dt->valuestring, &t->dtype))
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "%s: tensor '%s': unsupported dtype '%s' (F32, BF16, F16, I32)", path, name,
                       dt->valuestring);
    int nd = cJSON_GetArraySize(shape);
    if (nd > LG_MAX_DIMS) return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tensor '%s': %d dimensions (at most %d)", path, name, nd, LG_MAX_DIMS);
    t->n_dims = nd;
    uint64_t elems = 1;
    for (int i = 0; i < nd; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 9.0e15 || d->valuedouble != (double)(int64_t)d->valuedouble)
            return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tensor '%s': bad shape entry", path, name);
        t->shape[i] = (int64_t)d->valuedouble;
        if (t->shape[i] && elems > UINT64_MAX / (uint64_t)t->shape[i])
            return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tensor '%s': shape too large", path, name);
        elems *= (uint64_t)t->shape[i];
    }
    double b = cJSON_GetArrayItem(offs, 0)->valuedouble, en = cJSON_GetArrayItem(offs, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) || b < 0 ||
        en < b || en > 9.0e18 || b != floor(b) || en != floor(en)) /* byte offsets are whole numbers */
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tensor '%s': bad data_offsets", path, name);
    ext->begin = (uint64_t)b;
    ext->end = (uint64_t)en;
    ext->name = name;
    if (ext->end > data_len)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tensor '%s': data_offsets end %" PRIu64 " is past the end of the data (%" PRIu64 " bytes; truncated file?)",
                       path, name, ext->end, data_len);
    uint64_t esize = lg_dtype_row_bytes(t->dtype, 1);
    /* the message names elements and their size: their product may not fit 64 bits */
    if (elems > UINT64_MAX / esize || elems * esize != ext->end - ext->begin)
        return lg_fail(err, LAGUNA_ERR_FORMAT,
                       "%s: tensor '%s': %" PRIu64 " bytes in the file but its shape and dtype need %" PRIu64
                       " elements of %" PRIu64 " bytes",
                       path, name, ext->end - ext->begin, elems, esize);
    t->data = data + ext->begin;
    t->n_bytes = (size_t)(ext->end - ext->begin);
    t->file = path;
    return LAGUNA_OK;
}

/* Tensors whose data is not aligned to their element size are copied so kernels
 * can read them as arrays (the format pads headers to 8 bytes, so this is rare). */
static laguna_status align_data(lg_tensor_source *src, lg_tensor *t, laguna_error *err) {
    size_t a = lg_dtype_row_bytes(t->dtype, 1);
    if (t->n_bytes == 0 || ((uintptr_t)t->data % a) == 0) return LAGUNA_OK;
    void *copy = malloc(t->n_bytes);
    if (!copy || lg_tensor_source_keep_block(src, copy)) {
        free(copy);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory copying tensor '%s'", t->name);
    }
    memcpy(copy, t->data, t->n_bytes);
    t->data = copy;
    return LAGUNA_OK;
}

static laguna_status add_header_tensors(lg_tensor_source *src, const char *path, const cJSON *root,
                                        const uint8_t *data, uint64_t data_len, laguna_error *err) {
    int n = cJSON_GetArraySize(root);
    extent *exts = calloc((size_t)(n > 0 ? n : 1), sizeof *exts);
    if (!exts) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    laguna_status st = LAGUNA_OK;
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) continue;
        lg_tensor t = {0};
        t.name = e->string;
        if ((st = parse_entry(e, path, data, data_len, &t, &exts[k], err))) break;
        if ((st = align_data(src, &t, err))) break;
        if ((st = lg_tensor_source_add(src, &t, err))) break;
        k++;
    }
    if (!st) {
        qsort(exts, (size_t)k, sizeof *exts, by_begin);
        for (int i = 1; i < k; i++)
            if (exts[i].begin < exts[i - 1].end && exts[i].begin != exts[i].end) {
                st = lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", path, exts[i - 1].name, exts[i].name);
                break;
            }
    }
    free(exts);
    return st;
}

laguna_status lg_tensor_source_add_safetensors_file(lg_tensor_source *src, const char *path, lg_placement place,
                                                    laguna_error *err) {
    void *addr;
    size_t len;
    bool copy;
    laguna_status st = lg_map_file(path, place, &addr, &len, &copy, err);
    if (st) return st;
    if (len < 8) {
        if (addr) munmap(addr, len);
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file", path, len);
    }
    if (lg_tensor_source_keep_mapping(src, addr, len, copy)) {
        munmap(addr, len);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    char *owned_path = strdup(path); /* tensors name their file in messages */
    if (!owned_path || lg_tensor_source_keep_block(src, owned_path)) {
        free(owned_path);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    path = owned_path;
    const uint8_t *bytes = addr;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | bytes[i];
    if (hlen > MAX_HEADER_BYTES)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: header length %" PRIu64 " is larger than the %u allowed", path, hlen, MAX_HEADER_BYTES);
    if (hlen > len - 8)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: header length %" PRIu64 " runs past the end of the file (%zu bytes; truncated?)",
                       path, hlen, len);
    cJSON *root = cJSON_ParseWithLength((const char *)bytes + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: header is not valid JSON", path);
    }
    st = add_header_tensors(src, path, root, bytes + 8 + hlen, len - 8 - hlen, err);
    cJSON_Delete(root);
    return st;
}

/* Shards listed in the index, each loaded once; every indexed tensor must then
 * be present (a shard that lacks what the index promises is an error). */
static uint64_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static laguna_status open_sharded(lg_tensor_source *src, const char *dir, const char *index_path, lg_load_mode mode,
                                  laguna_error *err) {
    char *text;
    laguna_status st = lg_read_file(index_path, MAX_INDEX_BYTES, &text, NULL, err);
    if (st) return st;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: not valid JSON with a 'weight_map' object", index_path);
    }
    cJSON *loaded = cJSON_CreateObject(); /* set of shard names already read */
    const cJSON *e;
    uint64_t total = 0;
    cJSON_ArrayForEach(e, map) { /* sizes first, to choose how to load */
        if (!cJSON_IsString(e) || cJSON_GetObjectItemCaseSensitive(loaded, e->valuestring)) continue;
        char *shard = lg_path_join(dir, e->valuestring);
        if (shard) total += file_size(shard);
        free(shard);
        cJSON_AddTrueToObject(loaded, e->valuestring);
    }
    lg_placement place = lg_load_mode_placement(mode, total);
    cJSON_Delete(loaded);
    loaded = cJSON_CreateObject();
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !strcmp(e->valuestring, "..")) {
            st = lg_fail(err, LAGUNA_ERR_FORMAT, "%s: weight_map['%s'] must be a file name in the folder", index_path, e->string);
            break;
        }
        if (cJSON_GetObjectItemCaseSensitive(loaded, e->valuestring)) continue;
        char *shard = lg_path_join(dir, e->valuestring);
        if (!shard) {
            st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
            break;
        }
        if (!lg_file_exists(shard))
            st = lg_fail(err, LAGUNA_ERR_IO, "%s: shard '%s' named in %s is missing", shard, e->valuestring, "model.safetensors.index.json");
        else
            st = lg_tensor_source_add_safetensors_file(src, shard, place, err);
        free(shard);
        if (st) break;
        cJSON_AddTrueToObject(loaded, e->valuestring);
    }
    if (!st) {
        cJSON_ArrayForEach(e, map) {
            const lg_tensor *t = lg_tensor_source_find(src, e->string);
            if (!t) {
                st = lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tensor '%s' is not in its shard '%s'", index_path, e->string, e->valuestring);
                break;
            }
        }
    }
    cJSON_Delete(loaded);
    cJSON_Delete(root);
    return st;
}

laguna_status lg_tensor_source_open_safetensors_dir(const char *dir, lg_load_mode mode, lg_tensor_source **out,
                                                    laguna_error *err) {
    *out = NULL;
    lg_tensor_source *src = lg_tensor_source_new();
    char *single = lg_path_join(dir, "model.safetensors");
    char *index = lg_path_join(dir, "model.safetensors.index.json");
    laguna_status st;
    if (!src || !single || !index) st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    else if (lg_file_exists(index)) st = open_sharded(src, dir, index, mode, err);
    else if (lg_file_exists(single)) st = lg_tensor_source_add_safetensors_file(src, single, lg_load_mode_placement(mode, file_size(single)), err);
    else st = lg_fail(err, LAGUNA_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
    free(single);
    free(index);
    if (st) {
        lg_tensor_source_free(src);
        return st;
    }
    *out = src;
    return LAGUNA_OK;
}
