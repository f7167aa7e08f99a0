/* Typed access to GGUF metadata values: scalars by key with range-checked
 * conversion, and array elements by index. Values live in the mapping, so
 * they are read with memcpy (GGUF does not align them). */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "gguf/gguf.h"

bool lg_gguf_type_is_int(lg_gguf_type t) {
    switch (t) {
    case LG_GGUF_UINT8:
    case LG_GGUF_INT8:
    case LG_GGUF_UINT16:
    case LG_GGUF_INT16:
    case LG_GGUF_UINT32:
    case LG_GGUF_INT32:
    case LG_GGUF_UINT64:
    case LG_GGUF_INT64:
    case LG_GGUF_BOOL:
        return true;
    default:
        return false;
    }
}

/* Reads an integer of type t at p; UINT64 values above INT64_MAX saturate. */
static int64_t int_at(lg_gguf_type t, const uint8_t *p) {
    switch (t) {
    case LG_GGUF_UINT8:
    case LG_GGUF_BOOL:
        return p[0];
    case LG_GGUF_INT8:
        return (int8_t)p[0];
    case LG_GGUF_UINT16: {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case LG_GGUF_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case LG_GGUF_UINT32: {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    case LG_GGUF_INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    case LG_GGUF_UINT64: {
        uint64_t v;
        memcpy(&v, p, 8);
        return v > INT64_MAX ? INT64_MAX : (int64_t)v;
    }
    case LG_GGUF_INT64: {
        int64_t v;
        memcpy(&v, p, 8);
        return v;
    }
    default:
        return 0;
    }
}

static double float_at(lg_gguf_type t, const uint8_t *p) {
    if (t == LG_GGUF_FLOAT32) {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    if (t == LG_GGUF_FLOAT64) {
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    return (double)int_at(t, p);
}

size_t lg_gguf_value_size(lg_gguf_type t) {
    switch (t) {
    case LG_GGUF_UINT8:
    case LG_GGUF_INT8:
    case LG_GGUF_BOOL:
        return 1;
    case LG_GGUF_UINT16:
    case LG_GGUF_INT16:
        return 2;
    case LG_GGUF_UINT32:
    case LG_GGUF_INT32:
    case LG_GGUF_FLOAT32:
        return 4;
    case LG_GGUF_UINT64:
    case LG_GGUF_INT64:
    case LG_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

int64_t lg_gguf_kv_int(const lg_gguf_kv *kv) {
    return int_at(kv->type, kv->data);
}
double lg_gguf_kv_f64(const lg_gguf_kv *kv) {
    return float_at(kv->type, kv->data);
}
int64_t lg_gguf_arr_int(const lg_gguf_kv *kv, uint64_t i) {
    return int_at(kv->elem_type, kv->data + i * lg_gguf_value_size(kv->elem_type));
}
double lg_gguf_arr_f64(const lg_gguf_kv *kv, uint64_t i) {
    return float_at(kv->elem_type, kv->data + i * lg_gguf_value_size(kv->elem_type));
}

lg_gguf_str lg_gguf_arr_str(const lg_gguf_kv *kv, uint64_t i) {
    lg_gguf_str s;
    const uint8_t *p = kv->data + kv->str_off[i];
    memcpy(&s.len, p, 8);
    s.ptr = (const char *)p + 8;
    return s;
}

static laguna_status find(const lg_gguf_file *f, const char *key, const lg_gguf_kv **kv,
                          laguna_error *err) {
    *kv = lg_gguf_find_kv(f, key);
    if (!*kv)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: missing metadata key '%s'", lg_gguf_path(f),
                       key);
    return LAGUNA_OK;
}

static laguna_status wrong_type(const lg_gguf_file *f, const lg_gguf_kv *kv, const char *want,
                                laguna_error *err) {
    return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: metadata key '%s' is %s%s, expected %s",
                   lg_gguf_path(f), kv->key, kv->type == LG_GGUF_ARRAY ? "an array of " : "",
                   lg_gguf_value_type_name(kv->elem_type), want);
}

laguna_status lg_gguf_get_i64(const lg_gguf_file *f, const char *key, int64_t *out,
                              laguna_error *err) {
    const lg_gguf_kv *kv;
    laguna_status st = find(f, key, &kv, err);
    if (st) return st;
    if (kv->type == LG_GGUF_ARRAY || kv->type == LG_GGUF_BOOL || !lg_gguf_type_is_int(kv->type))
        return wrong_type(f, kv, "an integer", err);
    *out = lg_gguf_kv_int(kv);
    return LAGUNA_OK;
}

laguna_status lg_gguf_get_u32(const lg_gguf_file *f, const char *key, uint32_t *out,
                              laguna_error *err) {
    int64_t v;
    laguna_status st = lg_gguf_get_i64(f, key, &v, err);
    if (st) return st;
    if (v < 0 || v > UINT32_MAX)
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: metadata key '%s' = %lld is out of range",
                       lg_gguf_path(f), key, (long long)v);
    *out = (uint32_t)v;
    return LAGUNA_OK;
}

laguna_status lg_gguf_get_f64(const lg_gguf_file *f, const char *key, double *out,
                              laguna_error *err) {
    const lg_gguf_kv *kv;
    laguna_status st = find(f, key, &kv, err);
    if (st) return st;
    if (kv->type != LG_GGUF_FLOAT32 && kv->type != LG_GGUF_FLOAT64)
        return wrong_type(f, kv, "a float", err);
    *out = lg_gguf_kv_f64(kv);
    if (!isfinite(*out))
        return lg_fail(err, LAGUNA_ERR_FORMAT, "%s: metadata key '%s' is not a finite number",
                       lg_gguf_path(f), key);
    return LAGUNA_OK;
}

laguna_status lg_gguf_get_bool(const lg_gguf_file *f, const char *key, bool *out,
                               laguna_error *err) {
    const lg_gguf_kv *kv;
    laguna_status st = find(f, key, &kv, err);
    if (st) return st;
    if (kv->type != LG_GGUF_BOOL) return wrong_type(f, kv, "a bool", err);
    *out = kv->data[0] != 0;
    return LAGUNA_OK;
}

laguna_status lg_gguf_get_str(const lg_gguf_file *f, const char *key, lg_gguf_str *out,
                              laguna_error *err) {
    const lg_gguf_kv *kv;
    laguna_status st = find(f, key, &kv, err);
    if (st) return st;
    if (kv->type != LG_GGUF_STRING) return wrong_type(f, kv, "a string", err);
    memcpy(&out->len, kv->data, 8);
    out->ptr = (const char *)kv->data + 8;
    return LAGUNA_OK;
}
