/* Typed field getters for tokenizer.json with file/field error messages. */
#include "tokenizer/json_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/unicode.h"

laguna_status lg_json_fail(const lg_json_ctx *c, const char *where, laguna_status code,
                           const char *fmt, ...) {
    char reason[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (where && *where) return lg_fail(c->err, code, "%s: %s: %s", c->source, where, reason);
    return lg_fail(c->err, code, "%s: %s", c->source, reason);
}

const char *lg_json_where(char *buf, size_t cap, const char *parent, const char *key, int index) {
    if (index >= 0)
        snprintf(buf, cap, "%s%s%s[%d]", parent, *parent ? "." : "", key, index);
    else
        snprintf(buf, cap, "%s%s%s", parent, *parent ? "." : "", key);
    return buf;
}

laguna_status lg_json_type(const lg_json_ctx *c, const cJSON *obj, const char *where,
                           const char **type) {
    *type = NULL;
    if (!cJSON_IsObject(obj))
        return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "expected an object");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (!t || cJSON_IsNull(t)) return LAGUNA_OK;
    if (!cJSON_IsString(t))
        return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "field 'type' must be a string");
    *type = t->valuestring;
    return LAGUNA_OK;
}

laguna_status lg_json_bool(const lg_json_ctx *c, const cJSON *obj, const char *where,
                           const char *key, bool def, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return LAGUNA_OK;
    }
    if (!cJSON_IsBool(v))
        return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "field '%s' must be true or false", key);
    *out = cJSON_IsTrue(v);
    return LAGUNA_OK;
}

laguna_status lg_json_uint(const lg_json_ctx *c, const cJSON *obj, const char *where,
                           const char *key, uint32_t def, uint32_t max, uint32_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return LAGUNA_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > max)
        return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "field '%s' must be an integer in [0, %u]",
                            key, max);
    *out = (uint32_t)v->valuedouble;
    return LAGUNA_OK;
}

laguna_status lg_json_string(const lg_json_ctx *c, const cJSON *obj, const char *where,
                             const char *key, bool required, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) {
        if (required) return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "missing field '%s'", key);
        return LAGUNA_OK;
    }
    if (!cJSON_IsString(v))
        return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "field '%s' must be a string", key);
    *out = v->valuestring;
    return LAGUNA_OK;
}

laguna_status lg_json_char(const lg_json_ctx *c, const cJSON *obj, const char *where,
                           const char *key, uint32_t def, uint32_t *out) {
    const char *s;
    laguna_status st = lg_json_string(c, obj, where, key, false, &s);
    if (st) return st;
    if (!s) {
        *out = def;
        return LAGUNA_OK;
    }
    size_t n = strlen(s);
    uint32_t cp = LG_UTF8_INVALID;
    size_t k = n ? lg_utf8_decode((const unsigned char *)s, n, &cp, NULL) : 0;
    if (n == 0 || k != n || cp == LG_UTF8_INVALID)
        return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "field '%s' must be a single character",
                            key);
    *out = cp;
    return LAGUNA_OK;
}

laguna_status lg_json_array(const lg_json_ctx *c, const cJSON *obj, const char *where,
                            const char *key, const cJSON **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsArray(v))
        return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "field '%s' must be an array", key);
    *out = v;
    return LAGUNA_OK;
}

/* A {"String": s} or {"Regex": r} pattern object (Replace, Split). */
laguna_status lg_pattern_from_json(const lg_json_ctx *c, const cJSON *obj, const char *where,
                                   lg_regex **out) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(obj, "pattern");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(p, "String");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(p, "Regex");
    const cJSON *v = cJSON_IsString(s) ? s : r;
    if (!cJSON_IsObject(p) || !cJSON_IsString(v))
        return lg_json_fail(c, where, LAGUNA_ERR_FORMAT,
                            "field 'pattern' must be {\"String\": ...} or {\"Regex\": ...}");
    char why[200];
    *out = lg_regex_compile(v->valuestring, strlen(v->valuestring), v == s, why, sizeof why);
    if (!*out)
        return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "bad pattern '%s': %s", v->valuestring,
                            why);
    return LAGUNA_OK;
}
