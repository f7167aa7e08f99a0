/* Safetensors writer: header from specs (offsets in order, padded to 8
 * bytes), then sequential data, into a temporary file renamed on success. */
#include "io/safetensors_write.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

struct lg_st_writer {
    FILE *f;
    char *path, *tmp;
    uint64_t total, written;
};

size_t lg_st_spec_bytes(const lg_st_spec *s) {
    size_t n = 1;
    for (int i = 0; i < s->n_dims; i++) n *= (size_t)s->shape[i];
    return lg_dtype_row_bytes(s->dtype, (int64_t)n);
}

static char *header_json(const lg_st_spec *specs, size_t n, uint64_t *total) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, specs[i].name);
        cJSON_AddStringToObject(e, "dtype", lg_dtype_name(specs[i].dtype));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < specs[i].n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)specs[i].shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        uint64_t bytes = lg_st_spec_bytes(&specs[i]);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    *total = off;
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

laguna_status lg_st_writer_open(const char *path, const lg_st_spec *specs, size_t n, lg_st_writer **out,
                                laguna_error *err) {
    *out = NULL;
    lg_st_writer *w = calloc(1, sizeof *w);
    char *header = w ? header_json(specs, n, &w->total) : NULL;
    if (w) {
        w->path = strdup(path);
        w->tmp = malloc(strlen(path) + 5);
    }
    if (!w || !header || !w->path || !w->tmp) {
        free(header);
        if (w) free(w->path), free(w->tmp), free(w);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    sprintf(w->tmp, "%s.tmp", path);
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        laguna_status st = lg_fail(err, LAGUNA_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
        free(header);
        free(w->path), free(w->tmp), free(w);
        return st;
    }
    size_t hlen = strlen(header), padded = (hlen + 7) / 8 * 8;
    uint8_t len_bytes[8];
    for (int i = 0; i < 8; i++) len_bytes[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len_bytes, 1, 8, w->f) == 8 && fwrite(header, 1, hlen, w->f) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', w->f) != EOF;
    free(header);
    if (!ok) {
        lg_st_writer_abort(w);
        return lg_fail(err, LAGUNA_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    *out = w;
    return LAGUNA_OK;
}

laguna_status lg_st_writer_write(lg_st_writer *w, const void *data, size_t bytes, laguna_error *err) {
    if (w->written + bytes > w->total)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "%s: more data than the header declares", w->path);
    if (fwrite(data, 1, bytes, w->f) != bytes)
        return lg_fail(err, LAGUNA_ERR_IO, "%s: write failed: %s", w->tmp, strerror(errno));
    w->written += bytes;
    return LAGUNA_OK;
}

laguna_status lg_st_writer_finish(lg_st_writer *w, laguna_error *err) {
    laguna_status st = LAGUNA_OK;
    if (w->written != w->total)
        st = lg_fail(err, LAGUNA_ERR_ARGUMENT, "%s: %llu of %llu data bytes written", w->path,
                     (unsigned long long)w->written, (unsigned long long)w->total);
    else if (fflush(w->f) != 0 || ferror(w->f))
        st = lg_fail(err, LAGUNA_ERR_IO, "%s: write failed: %s", w->tmp, strerror(errno));
    if (st) {
        lg_st_writer_abort(w);
        return st;
    }
    int closed = fclose(w->f);
    w->f = NULL;
    if (closed != 0 || rename(w->tmp, w->path) != 0) {
        st = lg_fail(err, LAGUNA_ERR_IO, "%s: cannot complete: %s", w->path, strerror(errno));
        remove(w->tmp);
    }
    free(w->path);
    free(w->tmp);
    free(w);
    return st;
}

void lg_st_writer_abort(lg_st_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    remove(w->tmp);
    free(w->path);
    free(w->tmp);
    free(w);
}
