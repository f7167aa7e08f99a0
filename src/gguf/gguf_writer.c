/* Streaming GGUF writer (see gguf_writer.h): metadata and tensor infos are
 * serialised into a memory buffer, written when the first tensor byte
 * arrives, then tensor data goes straight to the temporary file. The writer
 * remembers its first failure; every later call returns an error and finish
 * removes the temporary file. */
#include "gguf/gguf_writer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

typedef struct {
    char *name;
    lg_dtype dtype;
    int n_dims;
    int64_t ne[LG_GGUF_MAX_DIMS];
    uint64_t n_bytes, offset;
} tensor_decl;

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buffer;

struct lg_gguf_writer {
    char *dst, *tmp;
    FILE *fp;
    buffer kv;
    uint64_t n_kv;
    char **keys;
    size_t n_keys, cap_keys;
    tensor_decl *tensors;
    size_t n_tensors, cap_tensors;
    uint64_t alignment, data_size;
    bool started, failed;
    laguna_error first_error; /* repeated by every call after a failure */
    size_t cur;               /* tensor being written */
    uint64_t cur_written;     /* bytes of it so far */
};

static int buf_put(buffer *b, const void *p, size_t n) {
    if (n == 0) return 0;
    if (n > SIZE_MAX - b->len) return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) {
            if (cap > SIZE_MAX / 2) return -1;
            cap *= 2;
        }
        uint8_t *np = realloc(b->p, cap);
        if (!np) return -1;
        b->p = np, b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static int buf_str(buffer *b, const char *s, size_t len) {
    uint64_t n = len;
    return buf_put(b, &n, 8) || buf_put(b, s, len);
}

/* Records the writer's failure and fills err. */
__attribute__((format(printf, 4, 5))) static laguna_status
fail(lg_gguf_writer *w, laguna_error *err, laguna_status code, const char *fmt, ...) {
    char msg[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->failed = true;
    lg_fail(&w->first_error, code, "%s", msg);
    return lg_fail(err, code, "%s", msg);
}

/* The first failure again, for calls made after it. */
static laguna_status failed_before(const lg_gguf_writer *w, laguna_error *err) {
    if (err) *err = w->first_error;
    return w->first_error.code;
}

laguna_status lg_gguf_writer_new(const char *dst_path, lg_gguf_writer **out, laguna_error *err) {
    *out = NULL;
    lg_gguf_writer *w = calloc(1, sizeof *w);
    size_t n = strlen(dst_path);
    if (!w || !(w->dst = strdup(dst_path)) || !(w->tmp = malloc(n + 5))) {
        if (w) free(w->dst);
        free(w);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "%s: out of memory", dst_path);
    }
    memcpy(w->tmp, dst_path, n);
    memcpy(w->tmp + n, ".tmp", 5);
    w->alignment = LG_GGUF_DEFAULT_ALIGNMENT;
    w->fp = fopen(w->tmp, "wb");
    if (!w->fp) {
        laguna_status st =
            lg_fail(err, LAGUNA_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
        free(w->tmp), free(w->dst), free(w);
        return st;
    }
    *out = w;
    return LAGUNA_OK;
}

/* Checks a new key and writes its name and type into the metadata buffer. */
static laguna_status begin_kv(lg_gguf_writer *w, const char *key, lg_gguf_type type,
                              laguna_error *err) {
    if (w->failed) return failed_before(w, err);
    if (w->started)
        return fail(w, err, LAGUNA_ERR_ARGUMENT,
                    "%s: metadata key '%s' set after tensor data began", w->dst, key);
    if (!key[0]) return fail(w, err, LAGUNA_ERR_ARGUMENT, "%s: empty metadata key", w->dst);
    for (size_t i = 0; i < w->n_keys; i++)
        if (!strcmp(w->keys[i], key))
            return fail(w, err, LAGUNA_ERR_ARGUMENT, "%s: metadata key '%s' set twice", w->dst,
                        key);
    if (w->n_keys == w->cap_keys) {
        size_t cap = w->cap_keys ? w->cap_keys * 2 : 32;
        char **k = realloc(w->keys, cap * sizeof *k);
        if (!k) return fail(w, err, LAGUNA_ERR_NOMEM, "%s: out of memory", w->dst);
        w->keys = k, w->cap_keys = cap;
    }
    if (!(w->keys[w->n_keys] = strdup(key)))
        return fail(w, err, LAGUNA_ERR_NOMEM, "%s: out of memory", w->dst);
    w->n_keys++;
    uint32_t t = type;
    if (buf_str(&w->kv, key, strlen(key)) || buf_put(&w->kv, &t, 4))
        return fail(w, err, LAGUNA_ERR_NOMEM, "%s: out of memory", w->dst);
    w->n_kv++;
    return LAGUNA_OK;
}

static laguna_status put_scalar(lg_gguf_writer *w, const char *key, lg_gguf_type type,
                                const void *v, size_t n, laguna_error *err) {
    laguna_status st = begin_kv(w, key, type, err);
    if (st) return st;
    if (buf_put(&w->kv, v, n)) return fail(w, err, LAGUNA_ERR_NOMEM, "%s: out of memory", w->dst);
    return LAGUNA_OK;
}

laguna_status lg_gguf_set_u32(lg_gguf_writer *w, const char *key, uint32_t v, laguna_error *err) {
    if (!strcmp(key, "general.alignment")) {
        if (v == 0 || (v & (v - 1)) != 0 || v > (1u << 30))
            return fail(w, err, LAGUNA_ERR_ARGUMENT, "%s: general.alignment must be a power of two",
                        w->dst);
        w->alignment = v;
    }
    return put_scalar(w, key, LG_GGUF_UINT32, &v, 4, err);
}
laguna_status lg_gguf_set_i32(lg_gguf_writer *w, const char *key, int32_t v, laguna_error *err) {
    return put_scalar(w, key, LG_GGUF_INT32, &v, 4, err);
}
laguna_status lg_gguf_set_u64(lg_gguf_writer *w, const char *key, uint64_t v, laguna_error *err) {
    return put_scalar(w, key, LG_GGUF_UINT64, &v, 8, err);
}
laguna_status lg_gguf_set_f32(lg_gguf_writer *w, const char *key, float v, laguna_error *err) {
    return put_scalar(w, key, LG_GGUF_FLOAT32, &v, 4, err);
}
laguna_status lg_gguf_set_f64(lg_gguf_writer *w, const char *key, double v, laguna_error *err) {
    return put_scalar(w, key, LG_GGUF_FLOAT64, &v, 8, err);
}
laguna_status lg_gguf_set_bool(lg_gguf_writer *w, const char *key, bool v, laguna_error *err) {
    uint8_t b = v ? 1 : 0;
    return put_scalar(w, key, LG_GGUF_BOOL, &b, 1, err);
}
laguna_status lg_gguf_set_str_n(lg_gguf_writer *w, const char *key, const char *v, size_t len,
                                laguna_error *err) {
    laguna_status st = begin_kv(w, key, LG_GGUF_STRING, err);
    if (st) return st;
    if (buf_str(&w->kv, v, len)) return fail(w, err, LAGUNA_ERR_NOMEM, "%s: out of memory", w->dst);
    return LAGUNA_OK;
}
laguna_status lg_gguf_set_str(lg_gguf_writer *w, const char *key, const char *v,
                              laguna_error *err) {
    return lg_gguf_set_str_n(w, key, v, strlen(v), err);
}


static laguna_status begin_array(lg_gguf_writer *w, const char *key, lg_gguf_type elem_type,
                                 size_t n, laguna_error *err) {
    laguna_status st = begin_kv(w, key, LG_GGUF_ARRAY, err);
    if (st) return st;
    uint32_t et = elem_type;
    uint64_t count = n;
    if (buf_put(&w->kv, &et, 4) || buf_put(&w->kv, &count, 8))
        return fail(w, err, LAGUNA_ERR_NOMEM, "%s: out of memory", w->dst);
    return LAGUNA_OK;
}

laguna_status lg_gguf_set_array(lg_gguf_writer *w, const char *key, lg_gguf_type elem_type,
                                const void *data, size_t n, laguna_error *err) {
    size_t es = lg_gguf_value_size(elem_type);
    if (es == 0)
        return fail(w, err, LAGUNA_ERR_ARGUMENT, "%s: array '%s' needs a fixed-size element type",
                    w->dst, key);
    laguna_status st = begin_array(w, key, elem_type, n, err);
    if (st) return st;
    if (n > SIZE_MAX / es || buf_put(&w->kv, data, n * es))
        return fail(w, err, LAGUNA_ERR_NOMEM, "%s: out of memory", w->dst);
    return LAGUNA_OK;
}

laguna_status lg_gguf_set_str_array(lg_gguf_writer *w, const char *key, const char *const *strs,
                                    const size_t *lens, size_t n, laguna_error *err) {
    laguna_status st = begin_array(w, key, LG_GGUF_STRING, n, err);
    if (st) return st;
    for (size_t i = 0; i < n; i++)
        if (buf_str(&w->kv, strs[i], lens ? lens[i] : strlen(strs[i])))
            return fail(w, err, LAGUNA_ERR_NOMEM, "%s: out of memory", w->dst);
    return LAGUNA_OK;
}

laguna_status lg_gguf_copy_kv(lg_gguf_writer *w, const lg_gguf_kv *kv, laguna_error *err) {
    uint64_t len;
    size_t n;
    if (kv->type == LG_GGUF_STRING) {
        memcpy(&len, kv->data, 8);
        n = 8 + (size_t)len;
    } else if (kv->type != LG_GGUF_ARRAY) {
        n = lg_gguf_value_size(kv->type);
    } else if (kv->elem_type != LG_GGUF_STRING) {
        n = (size_t)kv->count * lg_gguf_value_size(kv->elem_type);
    } else if (kv->count == 0) {
        n = 0;
    } else { /* up to the end of the last string */
        memcpy(&len, kv->data + kv->str_off[kv->count - 1], 8);
        n = (size_t)kv->str_off[kv->count - 1] + 8 + (size_t)len;
    }
    laguna_status st = kv->type == LG_GGUF_ARRAY
                           ? begin_array(w, kv->key, kv->elem_type, (size_t)kv->count, err)
                           : begin_kv(w, kv->key, kv->type, err);
    if (st) return st;
    if (buf_put(&w->kv, kv->data, n))
        return fail(w, err, LAGUNA_ERR_NOMEM, "%s: out of memory", w->dst);
    return LAGUNA_OK;
}

laguna_status lg_gguf_add_tensor(lg_gguf_writer *w, const char *name, lg_dtype dtype, int n_dims,
                                 const int64_t *ne, laguna_error *err) {
    if (w->failed) return failed_before(w, err);
    if (w->started)
        return fail(w, err, LAGUNA_ERR_ARGUMENT, "%s: tensor '%s' declared after tensor data began",
                    w->dst, name);
    if (!name[0] || n_dims < 1 || n_dims > LG_GGUF_MAX_DIMS || lg_gguf_ggml_from_dtype(dtype) < 0)
        return fail(w, err, LAGUNA_ERR_ARGUMENT, "%s: tensor '%s': bad name, rank or dtype", w->dst,
                    name);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return fail(w, err, LAGUNA_ERR_ARGUMENT, "%s: tensor '%s' declared twice", w->dst,
                        name);
    tensor_decl t = {.dtype = dtype, .n_dims = n_dims};
    uint64_t bytes = 0;
    for (int d = 0; d < LG_GGUF_MAX_DIMS; d++)
        t.ne[d] = d < n_dims ? ne[d] : 1;
    for (int d = 0; d < n_dims; d++)
        if (t.ne[d] < 0)
            return fail(w, err, LAGUNA_ERR_ARGUMENT, "%s: tensor '%s' has a negative dimension",
                        w->dst, name);
    bytes = lg_dtype_row_bytes(dtype, t.ne[0]);
    if (bytes == 0 && t.ne[0] != 0)
        return fail(w, err, LAGUNA_ERR_ARGUMENT,
                    "%s: tensor '%s': row length is not a whole number of blocks", w->dst, name);
    for (int d = 1; d < LG_GGUF_MAX_DIMS; d++)
        bytes *= (uint64_t)t.ne[d];
    t.n_bytes = bytes;
    t.offset = w->data_size;
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 64;
        tensor_decl *p = realloc(w->tensors, cap * sizeof *p);
        if (!p) return fail(w, err, LAGUNA_ERR_NOMEM, "%s: out of memory", w->dst);
        w->tensors = p, w->cap_tensors = cap;
    }
    if (!(t.name = strdup(name)))
        return fail(w, err, LAGUNA_ERR_NOMEM, "%s: out of memory", w->dst);
    w->tensors[w->n_tensors++] = t;
    w->data_size += (bytes + w->alignment - 1) / w->alignment * w->alignment;
    return LAGUNA_OK;
}

static laguna_status write_out(lg_gguf_writer *w, const void *p, size_t n, laguna_error *err) {
    if (n && fwrite(p, 1, n, w->fp) != n)
        return fail(w, err, LAGUNA_ERR_IO, "%s: write failed: %s", w->tmp, strerror(errno));
    return LAGUNA_OK;
}

static laguna_status write_padding(lg_gguf_writer *w, uint64_t n, laguna_error *err) {
    static const uint8_t zeros[64] = {0};
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        laguna_status st = write_out(w, zeros, k, err);
        if (st) return st;
        n -= k;
    }
    return LAGUNA_OK;
}

/* Header, metadata and tensor infos, padded to the alignment. The offsets
 * were computed with the alignment in force when each tensor was declared,
 * so recompute them now that it is final. */
static laguna_status write_header(lg_gguf_writer *w, laguna_error *err) {
    w->started = true;
    buffer h = {0};
    uint32_t magic = LG_GGUF_MAGIC, version = LG_GGUF_VERSION;
    uint64_t n_tensors = w->n_tensors, off = 0;
    int bad = buf_put(&h, &magic, 4) || buf_put(&h, &version, 4) || buf_put(&h, &n_tensors, 8) ||
              buf_put(&h, &w->n_kv, 8) || buf_put(&h, w->kv.p, w->kv.len);
    for (size_t i = 0; i < w->n_tensors && !bad; i++) {
        tensor_decl *t = &w->tensors[i];
        t->offset = off;
        off += (t->n_bytes + w->alignment - 1) / w->alignment * w->alignment;
        uint32_t n_dims = (uint32_t)t->n_dims, type = (uint32_t)lg_gguf_ggml_from_dtype(t->dtype);
        bad = buf_str(&h, t->name, strlen(t->name)) || buf_put(&h, &n_dims, 4);
        for (int d = 0; d < t->n_dims && !bad; d++) {
            uint64_t ne = (uint64_t)t->ne[d];
            bad = buf_put(&h, &ne, 8);
        }
        bad = bad || buf_put(&h, &type, 4) || buf_put(&h, &t->offset, 8);
    }
    w->data_size = off;
    if (bad) {
        free(h.p);
        return fail(w, err, LAGUNA_ERR_NOMEM, "%s: out of memory", w->dst);
    }
    laguna_status st = write_out(w, h.p, h.len, err);
    if (!st) st = write_padding(w, (w->alignment - h.len % w->alignment) % w->alignment, err);
    free(h.p);
    return st;
}

/* Skips finished (and empty) tensors, padding each to the alignment. */
static laguna_status advance(lg_gguf_writer *w, laguna_error *err) {
    while (w->cur < w->n_tensors && w->cur_written == w->tensors[w->cur].n_bytes) {
        uint64_t n = w->tensors[w->cur].n_bytes;
        laguna_status st = write_padding(w, (w->alignment - n % w->alignment) % w->alignment, err);
        if (st) return st;
        w->cur++;
        w->cur_written = 0;
    }
    return LAGUNA_OK;
}

laguna_status lg_gguf_writer_write(lg_gguf_writer *w, const void *data, size_t n,
                                   laguna_error *err) {
    if (w->failed) return failed_before(w, err);
    laguna_status st;
    if (!w->started && ((st = write_header(w, err)) || (st = advance(w, err)))) return st;
    if (n == 0) return LAGUNA_OK;
    if (w->cur >= w->n_tensors)
        return fail(w, err, LAGUNA_ERR_ARGUMENT,
                    "%s: more tensor data than the declared tensors hold", w->dst);
    tensor_decl *t = &w->tensors[w->cur];
    if (n > t->n_bytes - w->cur_written)
        return fail(w, err, LAGUNA_ERR_ARGUMENT, "%s: data chunk runs past the end of tensor '%s'",
                    w->dst, t->name);
    if ((st = write_out(w, data, n, err))) return st;
    w->cur_written += n;
    return advance(w, err);
}

static void free_writer(lg_gguf_writer *w) {
    for (size_t i = 0; i < w->n_keys; i++)
        free(w->keys[i]);
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->keys);
    free(w->tensors);
    free(w->kv.p);
    free(w->dst);
    free(w->tmp);
    free(w);
}

void lg_gguf_writer_abort(lg_gguf_writer *w) {
    if (!w) return;
    if (w->fp) fclose(w->fp);
    unlink(w->tmp);
    free_writer(w);
}

laguna_status lg_gguf_writer_finish(lg_gguf_writer *w, laguna_error *err) {
    laguna_status st = LAGUNA_OK;
    if (w->failed) st = failed_before(w, err);
    if (!st && !w->started && !(st = write_header(w, err))) st = advance(w, err);
    if (!st && w->cur < w->n_tensors)
        st = lg_fail(err, LAGUNA_ERR_ARGUMENT, "%s: tensor '%s' got %llu of its %llu bytes", w->dst,
                     w->tensors[w->cur].name, (unsigned long long)w->cur_written,
                     (unsigned long long)w->tensors[w->cur].n_bytes);
    if (!st && (fflush(w->fp) != 0 || fsync(fileno(w->fp)) != 0))
        st = lg_fail(err, LAGUNA_ERR_IO, "%s: write failed: %s", w->tmp, strerror(errno));
    if (!st) {
        int rc = fclose(w->fp);
        w->fp = NULL;
        if (rc != 0)
            st = lg_fail(err, LAGUNA_ERR_IO, "%s: write failed: %s", w->tmp, strerror(errno));
    }
    if (!st && rename(w->tmp, w->dst) != 0)
        st = lg_fail(err, LAGUNA_ERR_IO, "%s: cannot rename to %s: %s", w->tmp, w->dst,
                     strerror(errno));
    if (st) {
        lg_gguf_writer_abort(w);
        return st;
    }
    free_writer(w);
    return LAGUNA_OK;
}
