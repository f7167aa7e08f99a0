/* GGUF reader: maps a file, parses and validates header, metadata and tensor
 * infos (see gguf.h for the layout and the rules checked). Every read goes
 * through a cursor that refuses to pass the end of the mapping; every count
 * read from the file is checked against the bytes left before it sizes an
 * allocation, so a hostile file costs at most memory proportional to itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "io/file_util.h"

struct lg_gguf_file {
    char *path;
    uint8_t *map;
    size_t map_len;
    bool owns_map;
    bool copied; /* map is an anonymous copy, not the page cache */
    uint32_t version;
    size_t alignment;
    lg_gguf_kv *kvs;
    size_t n_kvs;
    lg_gguf_tensor_info *tensors;
    size_t n_tensors;
    lg_gguf_kv **kv_sorted;              /* sorted by key, for lookups */
    lg_gguf_tensor_info **tensor_sorted; /* sorted by name */
};

typedef struct {
    const uint8_t *p, *end;
    const char *path;
    laguna_error *err;
} cursor;

static size_t left(const cursor *c) {
    return (size_t)(c->end - c->p);
}

static laguna_status truncated(cursor *c, const char *what) {
    return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: file ends inside %s (truncated GGUF)", c->path,
                   what);
}

static laguna_status read_bytes(cursor *c, void *dst, size_t n, const char *what) {
    if (left(c) < n) return truncated(c, what);
    memcpy(dst, c->p, n);
    c->p += n;
    return LAGUNA_OK;
}

static laguna_status read_u32(cursor *c, uint32_t *v, const char *what) {
    return read_bytes(c, v, 4, what);
}
static laguna_status read_u64(cursor *c, uint64_t *v, const char *what) {
    return read_bytes(c, v, 8, what);
}

static laguna_status read_str(cursor *c, lg_gguf_str *s, const char *what) {
    laguna_status st = read_u64(c, &s->len, what);
    if (st) return st;
    if (s->len > left(c))
        return lg_fail(c->err, LAGUNA_ERR_FORMAT,
                       "%s: %s has length %llu, past the end of the file", c->path, what,
                       (unsigned long long)s->len);
    s->ptr = (const char *)c->p;
    c->p += s->len;
    return LAGUNA_OK;
}

static char *str_dup(lg_gguf_str s) {
    char *out = malloc(s.len + 1);
    if (!out) return NULL;
    memcpy(out, s.ptr, s.len);
    out[s.len] = 0;
    return out;
}


/* Reads one value of type t (not an array) at the cursor. */
static laguna_status read_scalar(cursor *c, const char *key, lg_gguf_type t) {
    if (t == LG_GGUF_STRING) {
        lg_gguf_str s;
        return read_str(c, &s, key);
    }
    size_t n = lg_gguf_value_size(t);
    if (left(c) < n) return truncated(c, key);
    if (t == LG_GGUF_BOOL && *c->p > 1)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: key '%s': bool value %u is not 0 or 1",
                       c->path, key, *c->p);
    c->p += n;
    return LAGUNA_OK;
}

static laguna_status read_kv(cursor *c, lg_gguf_kv *kv, size_t index) {
    lg_gguf_str key;
    char what[64];
    snprintf(what, sizeof what, "metadata key #%zu", index);
    laguna_status st = read_str(c, &key, what);
    if (st) return st;
    if (key.len == 0)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: metadata key #%zu is empty", c->path, index);
    if (!(kv->key = str_dup(key)))
        return lg_fail(c->err, LAGUNA_ERR_NOMEM, "%s: out of memory", c->path);
    uint32_t type = 0;
    if ((st = read_u32(c, &type, kv->key))) return st;
    if (type >= LG_GGUF_TYPE_COUNT)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: key '%s' has unknown value type %u", c->path,
                       kv->key, type);
    kv->type = kv->elem_type = (lg_gguf_type)type;
    kv->count = 1;
    if (type != LG_GGUF_ARRAY) {
        kv->data = c->p;
        return read_scalar(c, kv->key, kv->type);
    }
    uint32_t et = 0;
    uint64_t count = 0;
    if ((st = read_u32(c, &et, kv->key)) || (st = read_u64(c, &count, kv->key))) return st;
    if (et >= LG_GGUF_TYPE_COUNT)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: array '%s' has unknown element type %u",
                       c->path, kv->key, et);
    if (et == LG_GGUF_ARRAY)
        return lg_fail(c->err, LAGUNA_ERR_UNSUPPORTED,
                       "%s: array '%s' holds arrays (nested arrays are not supported)", c->path,
                       kv->key);
    kv->elem_type = (lg_gguf_type)et;
    kv->count = count;
    kv->data = c->p;
    /* Each element takes at least its fixed size (a string at least its u64 length). */
    size_t min_elem = et == LG_GGUF_STRING ? 8 : lg_gguf_value_size(kv->elem_type);
    if (count > left(c) / min_elem)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT,
                       "%s: array '%s' claims %llu elements, more than the file holds", c->path,
                       kv->key, (unsigned long long)count);
    if (et != LG_GGUF_STRING) {
        if (et == LG_GGUF_BOOL)
            for (uint64_t i = 0; i < count; i++)
                if (c->p[i] > 1)
                    return lg_fail(c->err, LAGUNA_ERR_FORMAT,
                                   "%s: array '%s': bool element %llu is %u", c->path, kv->key,
                                   (unsigned long long)i, c->p[i]);
        c->p += count * min_elem;
        return LAGUNA_OK;
    }
    uint64_t *off = malloc(count ? count * sizeof *off : 1); /* bounded: count <= file size / 8 */
    if (!off) return lg_fail(c->err, LAGUNA_ERR_NOMEM, "%s: out of memory", c->path);
    kv->str_off = off;
    for (uint64_t i = 0; i < count; i++) {
        off[i] = (uint64_t)(c->p - kv->data);
        lg_gguf_str s;
        if ((st = read_str(c, &s, kv->key))) return st;
    }
    return LAGUNA_OK;
}

static laguna_status read_tensor_info(cursor *c, lg_gguf_tensor_info *t, size_t index) {
    lg_gguf_str name;
    char what[64];
    snprintf(what, sizeof what, "tensor info #%zu", index);
    laguna_status st = read_str(c, &name, what);
    if (st) return st;
    if (name.len == 0 || memchr(name.ptr, 0, name.len))
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: tensor #%zu has an empty or malformed name",
                       c->path, index);
    if (!(t->name = str_dup(name)))
        return lg_fail(c->err, LAGUNA_ERR_NOMEM, "%s: out of memory", c->path);
    uint32_t n_dims = 0;
    if ((st = read_u32(c, &n_dims, t->name))) return st;
    if (n_dims < 1 || n_dims > LG_GGUF_MAX_DIMS)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT,
                       "%s: tensor '%s' has %u dimensions (1 to %d allowed)", c->path, t->name,
                       n_dims, LG_GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    for (int d = 0; d < LG_GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (int d = 0; d < t->n_dims; d++) {
        uint64_t ne = 0;
        if ((st = read_u64(c, &ne, t->name))) return st;
        if (ne > (uint64_t)INT64_MAX / 2)
            return lg_fail(c->err, LAGUNA_ERR_FORMAT,
                           "%s: tensor '%s' dimension %d is absurd (%llu)", c->path, t->name, d,
                           (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
    }
    if ((st = read_u32(c, &t->ggml_type, t->name)) || (st = read_u64(c, &t->offset, t->name)))
        return st;
    return LAGUNA_OK;
}

/* Type, shape and byte size of one tensor (its placement is checked later). */
static laguna_status check_tensor(cursor *c, lg_gguf_tensor_info *t) {
    if (!lg_gguf_dtype_from_ggml(t->ggml_type, &t->dtype)) {
        const char *name = lg_gguf_ggml_type_name(t->ggml_type);
        if (name)
            return lg_fail(c->err, LAGUNA_ERR_UNSUPPORTED,
                           "%s: tensor '%s' has type %s, which laguna.c cannot read", c->path,
                           t->name, name);
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: tensor '%s' has unknown type %u", c->path,
                       t->name, t->ggml_type);
    }
    int64_t blk = lg_dtype_block_elems(t->dtype);
    if (t->ne[0] % blk != 0)
        return lg_fail(c->err, LAGUNA_ERR_SHAPE,
                       "%s: tensor '%s': row length %lld is not a multiple of %s's block of %lld",
                       c->path, t->name, (long long)t->ne[0], lg_dtype_name(t->dtype),
                       (long long)blk);
    uint64_t bytes = lg_dtype_row_bytes(t->dtype, t->ne[0]);
    for (int d = 1; d < LG_GGUF_MAX_DIMS; d++) {
        if (t->ne[d] != 0 && bytes > UINT64_MAX / 2 / (uint64_t)t->ne[d])
            return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: tensor '%s' is absurdly large", c->path,
                           t->name);
        bytes *= (uint64_t)t->ne[d];
    }
    if (bytes > SIZE_MAX / 2)
        return lg_fail(c->err, LAGUNA_ERR_FORMAT, "%s: tensor '%s' is absurdly large", c->path,
                       t->name);
    t->n_bytes = (size_t)bytes;
    return LAGUNA_OK;
}

static int cmp_kv(const void *a, const void *b) {
    return strcmp((*(const lg_gguf_kv *const *)a)->key, (*(const lg_gguf_kv *const *)b)->key);
}
static int cmp_tensor(const void *a, const void *b) {
    return strcmp((*(const lg_gguf_tensor_info *const *)a)->name,
                  (*(const lg_gguf_tensor_info *const *)b)->name);
}

/* Builds the sorted views used for lookups and reports duplicates. */
static laguna_status build_indices(lg_gguf_file *f, laguna_error *err) {
    f->kv_sorted = malloc((f->n_kvs ? f->n_kvs : 1) * sizeof *f->kv_sorted);
    f->tensor_sorted = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof *f->tensor_sorted);
    if (!f->kv_sorted || !f->tensor_sorted)
        return lg_fail(err, LAGUNA_ERR_NOMEM, "%s: out of memory", f->path);
    for (size_t i = 0; i < f->n_kvs; i++)
        f->kv_sorted[i] = &f->kvs[i];
    for (size_t i = 0; i < f->n_tensors; i++)
        f->tensor_sorted[i] = &f->tensors[i];
    qsort(f->kv_sorted, f->n_kvs, sizeof *f->kv_sorted, cmp_kv);
    qsort(f->tensor_sorted, f->n_tensors, sizeof *f->tensor_sorted, cmp_tensor);
    for (size_t i = 1; i < f->n_kvs; i++)
        if (!strcmp(f->kv_sorted[i]->key, f->kv_sorted[i - 1]->key))
            return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: metadata key '%s' appears twice", f->path,
                           f->kv_sorted[i]->key);
    for (size_t i = 1; i < f->n_tensors; i++)
        if (!strcmp(f->tensor_sorted[i]->name, f->tensor_sorted[i - 1]->name))
            return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tensor '%s' appears twice", f->path,
                           f->tensor_sorted[i]->name);
    return LAGUNA_OK;
}

static laguna_status read_alignment(lg_gguf_file *f, laguna_error *err) {
    f->alignment = LG_GGUF_DEFAULT_ALIGNMENT;
    const lg_gguf_kv *kv = lg_gguf_find_kv(f, "general.alignment");
    if (!kv) return LAGUNA_OK;
    if (kv->type == LG_GGUF_ARRAY || !lg_gguf_type_is_int(kv->type) || kv->type == LG_GGUF_BOOL)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: general.alignment must be an integer, not %s",
                       f->path, lg_gguf_value_type_name(kv->type));
    int64_t a = lg_gguf_kv_int(kv);
    if (a <= 0 || a > (1 << 30) || (a & (a - 1)) != 0)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: general.alignment = %lld is not a power of two",
                       f->path, (long long)a);
    f->alignment = (size_t)a;
    return LAGUNA_OK;
}

static laguna_status parse(lg_gguf_file *f, laguna_error *err) {
    if (f->map_len == 0)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: empty file, not GGUF", f->path);
    cursor c = {f->map, f->map + f->map_len, f->path, err};
    uint32_t magic = 0;
    uint64_t n_tensors = 0, n_kvs = 0;
    laguna_status st = read_u32(&c, &magic, "the header");
    if (st) return st;
    if (magic != LG_GGUF_MAGIC)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: not a GGUF file (bad magic)", f->path);
    if ((st = read_u32(&c, &f->version, "the header"))) return st;
    if (f->version != 2 && f->version != 3) {
        if (f->version == 1)
            return lg_fail(err, LAGUNA_ERR_UNSUPPORTED,
                           "%s: GGUF version 1 is not supported (2 or 3)", f->path);
        if ((f->version & 0xffff) == 0)
            return lg_fail(
                err, LAGUNA_ERR_UNSUPPORTED,
                "%s: GGUF version %u: a big-endian file? only little-endian is supported", f->path,
                f->version);
        return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "%s: unsupported GGUF version %u (2 or 3)",
                       f->path, f->version);
    }
    if ((st = read_u64(&c, &n_tensors, "the header")) || (st = read_u64(&c, &n_kvs, "the header")))
        return st;
    /* A key/value takes at least 13 bytes, a tensor info at least 32. */
    if (n_kvs > left(&c) / 13)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: absurd metadata count %llu for a %zu-byte file",
                       f->path, (unsigned long long)n_kvs, f->map_len);
    if (n_tensors > left(&c) / 32)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: absurd tensor count %llu for a %zu-byte file",
                       f->path, (unsigned long long)n_tensors, f->map_len);
    f->kvs = calloc(n_kvs ? n_kvs : 1, sizeof *f->kvs);
    f->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *f->tensors);
    if (!f->kvs || !f->tensors) return lg_fail(err, LAGUNA_ERR_NOMEM, "%s: out of memory", f->path);
    for (size_t i = 0; i < n_kvs; i++, f->n_kvs++)
        if ((st = read_kv(&c, &f->kvs[i], i))) {
            f->n_kvs++; /* so close() frees the partly read entry */
            return st;
        }
    for (size_t i = 0; i < n_tensors; i++, f->n_tensors++)
        if ((st = read_tensor_info(&c, &f->tensors[i], i)) ||
            (st = check_tensor(&c, &f->tensors[i]))) {
            f->n_tensors++;
            return st;
        }
    if ((st = build_indices(f, err)) || (st = read_alignment(f, err))) return st;

    size_t header_end = (size_t)(c.p - f->map);
    size_t data_start = (header_end + f->alignment - 1) / f->alignment * f->alignment;
    if (n_tensors > 0 && data_start > f->map_len)
        return lg_fail(err, LAGUNA_ERR_FORMAT,
                       "%s: file ends before the tensor data (truncated GGUF)", f->path);
    size_t data_len = f->map_len > data_start ? f->map_len - data_start : 0;
    /* ggml's rule: tensors follow one another, each padded to the alignment. */
    uint64_t expect = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        lg_gguf_tensor_info *t = &f->tensors[i];
        if (t->offset != expect)
            return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: tensor '%s' has offset %llu, expected %llu",
                           f->path, t->name, (unsigned long long)t->offset,
                           (unsigned long long)expect);
        if (t->offset > data_len || t->n_bytes > data_len - t->offset)
            return lg_fail(
                err, LAGUNA_ERR_FORMAT,
                "%s: tensor '%s' (%zu bytes at offset %llu) runs past the end of the file", f->path,
                t->name, t->n_bytes, (unsigned long long)t->offset);
        t->data = f->map + data_start + t->offset;
        expect += (t->n_bytes + f->alignment - 1) / f->alignment * f->alignment;
    }
    return LAGUNA_OK;
}

laguna_status lg_gguf_open(const char *path, lg_placement place, lg_gguf_file **out, laguna_error *err) {
    *out = NULL;
    lg_gguf_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "%s: out of memory", path);
    }
    void *addr = NULL;
    laguna_status st = lg_map_file(path, place, &addr, &f->map_len, &f->copied, err);
    f->map = addr;
    f->owns_map = true;
    if (!st) st = parse(f, err);
    if (st) {
        lg_gguf_close(f);
        return st;
    }
    *out = f;
    return LAGUNA_OK;
}

void lg_gguf_close(lg_gguf_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_kvs; i++) {
        free(f->kvs[i].key);
        free((void *)f->kvs[i].str_off);
    }
    for (size_t i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    if (f->owns_map && f->map) munmap(f->map, f->map_len);
    free(f->kvs);
    free(f->tensors);
    free(f->kv_sorted);
    free(f->tensor_sorted);
    free(f->path);
    free(f);
}

void *lg_gguf_take_mapping(lg_gguf_file *f, size_t *len) {
    f->owns_map = false;
    *len = f->map_len;
    return f->map;
}

bool lg_gguf_is_copy(const lg_gguf_file *f) {
    return f->copied;
}

const char *lg_gguf_path(const lg_gguf_file *f) {
    return f->path;
}
uint32_t lg_gguf_version(const lg_gguf_file *f) {
    return f->version;
}
size_t lg_gguf_alignment(const lg_gguf_file *f) {
    return f->alignment;
}
size_t lg_gguf_kv_count(const lg_gguf_file *f) {
    return f->n_kvs;
}
const lg_gguf_kv *lg_gguf_kv_at(const lg_gguf_file *f, size_t i) {
    return i < f->n_kvs ? &f->kvs[i] : NULL;
}
size_t lg_gguf_tensor_count(const lg_gguf_file *f) {
    return f->n_tensors;
}
const lg_gguf_tensor_info *lg_gguf_tensor_at(const lg_gguf_file *f, size_t i) {
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const lg_gguf_kv *lg_gguf_find_kv(const lg_gguf_file *f, const char *key) {
    size_t lo = 0, hi = f->n_kvs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(f->kv_sorted[mid]->key, key);
        if (c == 0) return f->kv_sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const lg_gguf_tensor_info *lg_gguf_find_tensor(const lg_gguf_file *f, const char *name) {
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(f->tensor_sorted[mid]->name, name);
        if (c == 0) return f->tensor_sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
