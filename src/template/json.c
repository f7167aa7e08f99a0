/* JSON reading into template values and json.dumps-compatible writing. */
#include "template/json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/format.h"
#include "template/unicode.h"

/* ---- reading text ---------------------------------------------------------------- */

typedef struct {
    jt_arena *arena;
    const char *s;
    size_t n, pos;
    int max_depth;
    char *why;
    size_t why_size;
} json_reader;

static bool jfail(json_reader *r, const char *what) {
    snprintf(r->why, r->why_size, "%s at byte %zu", what, r->pos);
    return false;
}

static void skip_ws(json_reader *r) {
    while (r->pos < r->n) {
        char c = r->s[r->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        r->pos++;
    }
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

static bool read_string(json_reader *r, jt_value *out) {
    r->pos++; /* opening quote */
    jt_sb b;
    jt_sb_init(&b, r->arena);
    while (true) {
        if (r->pos >= r->n) return jfail(r, "unterminated string");
        unsigned char c = (unsigned char)r->s[r->pos];
        if (c == '"') {
            r->pos++;
            break;
        }
        if (c < 0x20) return jfail(r, "control character in string");
        if (c != '\\') {
            size_t start = r->pos;
            while (r->pos < r->n && r->s[r->pos] != '"' && r->s[r->pos] != '\\' &&
                   (unsigned char)r->s[r->pos] >= 0x20)
                r->pos++;
            jt_sb_add(&b, r->s + start, r->pos - start);
            continue;
        }
        if (r->pos + 1 >= r->n) return jfail(r, "unterminated string");
        char e = r->s[r->pos + 1];
        r->pos += 2;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            jt_sb_addch(&b, map[simple - "\"\\/bfnrt"]);
            continue;
        }
        if (e != 'u' || r->pos + 4 > r->n) return jfail(r, "bad escape in string");
        int cp = hex4(r->s + r->pos);
        if (cp < 0) return jfail(r, "bad \\u escape in string");
        r->pos += 4;
        if (cp >= 0xd800 && cp < 0xdc00 && r->pos + 6 <= r->n && r->s[r->pos] == '\\' &&
            r->s[r->pos + 1] == 'u') {
            int lo = hex4(r->s + r->pos + 2);
            if (lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                r->pos += 6;
            }
        }
        if (cp >= 0xd800 && cp < 0xe000) cp = 0xfffd; /* a lone surrogate cannot be UTF-8 */
        char buf[4];
        jt_sb_add(&b, buf, jt_utf8_put(cp, buf));
    }
    *out = jt_sb_value(&b);
    return true;
}

static bool read_number(json_reader *r, jt_value *out) {
    size_t start = r->pos;
    bool is_float = false;
    if (r->s[r->pos] == '-') r->pos++;
    if (r->pos >= r->n || r->s[r->pos] < '0' || r->s[r->pos] > '9') return jfail(r, "bad number");
    while (r->pos < r->n) {
        char c = r->s[r->pos];
        if (c >= '0' && c <= '9') r->pos++;
        else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
            is_float = true;
            r->pos++;
        } else break;
    }
    char buf[64];
    size_t len = r->pos - start;
    if (len >= sizeof buf) {
        if (!is_float) is_float = true; /* beyond int64 anyway */
        len = sizeof buf - 1;
    }
    memcpy(buf, r->s + start, len);
    buf[len] = 0;
    char *end;
    if (!is_float) {
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (*end == 0 && errno == 0) {
            *out = jt_int(v);
            return true;
        }
        /* Python keeps big ints exact; we fall back to the nearest double. */
    }
    double d = strtod(buf, &end);
    if (*end != 0) return jfail(r, "bad number");
    *out = jt_float(d);
    return true;
}

static bool read_value(json_reader *r, jt_value *out, int depth) {
    skip_ws(r);
    if (r->pos >= r->n) return jfail(r, "unexpected end of JSON");
    if (depth > r->max_depth) return jfail(r, "JSON nested too deeply");
    char c = r->s[r->pos];
    if (c == '"') return read_string(r, out);
    if (c == '-' || (c >= '0' && c <= '9')) return read_number(r, out);
    if (c == '[') {
        r->pos++;
        jt_list_builder lb;
        jt_lb_init(&lb, r->arena);
        skip_ws(r);
        if (r->pos < r->n && r->s[r->pos] == ']') {
            r->pos++;
            *out = jt_lb_finish(&lb, false);
            return true;
        }
        while (true) {
            jt_value item;
            if (!read_value(r, &item, depth + 1)) return false;
            jt_lb_push(&lb, item);
            skip_ws(r);
            if (r->pos < r->n && r->s[r->pos] == ',') {
                r->pos++;
                continue;
            }
            if (r->pos < r->n && r->s[r->pos] == ']') {
                r->pos++;
                break;
            }
            return jfail(r, "expected ',' or ']'");
        }
        *out = jt_lb_finish(&lb, false);
        return true;
    }
    if (c == '{') {
        r->pos++;
        jt_value d = jt_dict_new(r->arena, 0);
        skip_ws(r);
        if (r->pos < r->n && r->s[r->pos] == '}') {
            r->pos++;
            *out = d;
            return true;
        }
        while (true) {
            skip_ws(r);
            if (r->pos >= r->n || r->s[r->pos] != '"') return jfail(r, "expected a string key");
            jt_value key, val;
            if (!read_string(r, &key)) return false;
            skip_ws(r);
            if (r->pos >= r->n || r->s[r->pos] != ':') return jfail(r, "expected ':'");
            r->pos++;
            if (!read_value(r, &val, depth + 1)) return false;
            jt_dict_set(r->arena, d.as.d, key, val);
            skip_ws(r);
            if (r->pos < r->n && r->s[r->pos] == ',') {
                r->pos++;
                continue;
            }
            if (r->pos < r->n && r->s[r->pos] == '}') {
                r->pos++;
                break;
            }
            return jfail(r, "expected ',' or '}'");
        }
        *out = d;
        return true;
    }
    static const struct {
        const char *word;
        jt_value v;
    } words[] = {{"true", {.kind = JT_BOOL, .as.b = true}},
                 {"false", {.kind = JT_BOOL, .as.b = false}},
                 {"null", {.kind = JT_NONE}}};
    for (size_t i = 0; i < 3; i++) {
        size_t len = strlen(words[i].word);
        if (r->n - r->pos >= len && !memcmp(r->s + r->pos, words[i].word, len)) {
            r->pos += len;
            *out = words[i].v;
            return true;
        }
    }
    return jfail(r, "unexpected character");
}

bool jt_json_parse(jt_arena *a, const char *text, size_t len, int max_depth, jt_value *out,
                   char *why, size_t why_size) {
    json_reader r = {a, text, len, 0, max_depth, why, why_size};
    if (!read_value(&r, out, 0)) return false;
    skip_ws(&r);
    if (r.pos != r.n) return jfail(&r, "extra data after JSON value");
    return true;
}

/* ---- reading cJSON ---------------------------------------------------------------- */

bool jt_from_cjson(jt_arena *a, const cJSON *item, int max_depth, jt_value *out) {
    if (max_depth < 0) return false;
    if (cJSON_IsNull(item) || !item) *out = jt_none();
    else if (cJSON_IsTrue(item)) *out = jt_bool(true);
    else if (cJSON_IsFalse(item)) *out = jt_bool(false);
    else if (cJSON_IsNumber(item)) {
        double d = item->valuedouble;
        /* cJSON forgets whether the text had a fraction; integral values are
         * taken as ints, which is what chat requests almost always mean. */
        if (d == floor(d) && fabs(d) < 9.0e15) *out = jt_int((int64_t)d);
        else *out = jt_float(d);
    } else if (cJSON_IsString(item)) *out = jt_str_cstr(a, item->valuestring ? item->valuestring : "");
    else if (cJSON_IsArray(item)) {
        jt_value l = jt_list_new(a, (size_t)cJSON_GetArraySize(item), false);
        size_t i = 0;
        for (const cJSON *c = item->child; c && i < jt_len_list(l); c = c->next, i++)
            if (!jt_from_cjson(a, c, max_depth - 1, &jt_items(l)[i])) return false;
        *out = l;
    } else if (cJSON_IsObject(item)) {
        jt_value d = jt_dict_new(a, (size_t)cJSON_GetArraySize(item));
        for (const cJSON *c = item->child; c; c = c->next) {
            jt_value v;
            if (!jt_from_cjson(a, c, max_depth - 1, &v)) return false;
            jt_dict_set(a, d.as.d, jt_str_cstr(a, c->string ? c->string : ""), v);
        }
        *out = d;
    } else *out = jt_none(); /* cJSON_Raw / invalid: nothing sensible to map */
    return true;
}

/* ---- writing (json.dumps) ------------------------------------------------------------ */

static void write_json_string(jt_sb *b, const char *s, size_t n, bool ensure_ascii) {
    jt_sb_addch(b, '"');
    size_t pos = 0;
    while (pos < n) {
        unsigned char c = (unsigned char)s[pos];
        char esc[16];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            size_t start = pos;
            while (pos < n && (unsigned char)s[pos] >= 0x20 && s[pos] != '"' && s[pos] != '\\' &&
                   (unsigned char)s[pos] < 0x80)
                pos++;
            jt_sb_add(b, s + start, pos - start);
            continue;
        }
        if (c >= 0x80) {
            size_t start = pos;
            int32_t cp = jt_utf8_next(s, n, &pos);
            if (!ensure_ascii) {
                jt_sb_add(b, s + start, pos - start);
            } else if (cp >= 0x10000) {
                int32_t v = cp - 0x10000;
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
                jt_sb_addc(b, esc);
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
                jt_sb_addc(b, esc);
            }
            continue;
        }
        pos++;
        switch (c) {
        case '"': jt_sb_addc(b, "\\\""); break;
        case '\\': jt_sb_addc(b, "\\\\"); break;
        case '\n': jt_sb_addc(b, "\\n"); break;
        case '\r': jt_sb_addc(b, "\\r"); break;
        case '\t': jt_sb_addc(b, "\\t"); break;
        case '\b': jt_sb_addc(b, "\\b"); break;
        case '\f': jt_sb_addc(b, "\\f"); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            jt_sb_addc(b, esc);
        }
    }
    jt_sb_addch(b, '"');
}

static void write_float(jt_sb *b, double f) {
    char num[40];
    if (isnan(f)) jt_sb_addc(b, "NaN");
    else if (isinf(f)) jt_sb_addc(b, f < 0 ? "-Infinity" : "Infinity");
    else {
        jt_format_float(f, num);
        jt_sb_addc(b, num);
    }
}

static void newline_indent(jt_sb *b, const jt_json_style *st, int level) {
    jt_sb_addch(b, '\n');
    for (int i = 0; i < level; i++) jt_sb_addc(b, st->indent);
}

/* Dict keys as json.dumps coerces them: str as is, numbers/bools/None spelled. */
static const char *write_key(jt_sb *b, jt_value k, const jt_json_style *st) {
    char num[40];
    switch (k.kind) {
    case JT_STR: write_json_string(b, k.as.s->bytes, k.as.s->len, st->ensure_ascii); return NULL;
    case JT_INT: snprintf(num, sizeof num, "\"%" PRId64 "\"", k.as.i); break;
    case JT_BOOL: snprintf(num, sizeof num, "\"%s\"", k.as.b ? "true" : "false"); break;
    case JT_NONE: snprintf(num, sizeof num, "\"null\""); break;
    case JT_FLOAT: {
        jt_sb tmp;
        jt_sb_init(&tmp, b->arena);
        write_float(&tmp, k.as.f);
        jt_sb_addch(b, '"');
        jt_sb_add(b, tmp.data, tmp.len);
        jt_sb_addch(b, '"');
        return NULL;
    }
    default: return "keys must be str, int, float, bool or None";
    }
    jt_sb_addc(b, num);
    return NULL;
}

static int key_cmp(jt_value a, jt_value b) {
    size_t n = a.as.s->len < b.as.s->len ? a.as.s->len : b.as.s->len;
    int c = memcmp(a.as.s->bytes, b.as.s->bytes, n);
    if (c) return c;
    return a.as.s->len < b.as.s->len ? -1 : a.as.s->len > b.as.s->len;
}

static const char *write_json(jt_sb *b, jt_value v, const jt_json_style *st, int level, int depth) {
    char num[40];
    if (depth <= 0) return "value nested too deeply for tojson";
    switch (v.kind) {
    case JT_NONE: jt_sb_addc(b, "null"); return NULL;
    case JT_BOOL: jt_sb_addc(b, v.as.b ? "true" : "false"); return NULL;
    case JT_INT:
        snprintf(num, sizeof num, "%" PRId64, v.as.i);
        jt_sb_addc(b, num);
        return NULL;
    case JT_FLOAT: write_float(b, v.as.f); return NULL;
    case JT_STR: write_json_string(b, v.as.s->bytes, v.as.s->len, st->ensure_ascii); return NULL;
    case JT_LIST:
    case JT_TUPLE: {
        const jt_list *l = v.as.l;
        if (l->n == 0) {
            jt_sb_addc(b, "[]");
            return NULL;
        }
        jt_sb_addch(b, '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i) jt_sb_addc(b, st->item_sep);
            if (st->indent) newline_indent(b, st, level + 1);
            const char *e = write_json(b, l->items[i], st, level + 1, depth - 1);
            if (e) return e;
        }
        if (st->indent) newline_indent(b, st, level);
        jt_sb_addch(b, ']');
        return NULL;
    }
    case JT_DICT: {
        const jt_dict *d = v.as.d;
        if (d->n == 0) {
            jt_sb_addc(b, "{}");
            return NULL;
        }
        size_t *order = jt_alloc(b->arena, d->n * sizeof *order);
        for (size_t i = 0; i < d->n; i++) order[i] = i;
        if (st->sort_keys) {
            for (size_t i = 0; i < d->n; i++)
                if (d->keys[i].kind != JT_STR) return "sort_keys needs string keys";
            for (size_t i = 1; i < d->n; i++) /* insertion sort: stable, dicts are small */
                for (size_t j = i; j > 0 && key_cmp(d->keys[order[j - 1]], d->keys[order[j]]) > 0; j--) {
                    size_t t = order[j];
                    order[j] = order[j - 1];
                    order[j - 1] = t;
                }
        }
        jt_sb_addch(b, '{');
        for (size_t i = 0; i < d->n; i++) {
            if (i) jt_sb_addc(b, st->item_sep);
            if (st->indent) newline_indent(b, st, level + 1);
            const char *e = write_key(b, d->keys[order[i]], st);
            if (e) return e;
            jt_sb_addc(b, st->key_sep);
            e = write_json(b, d->vals[order[i]], st, level + 1, depth - 1);
            if (e) return e;
        }
        if (st->indent) newline_indent(b, st, level);
        jt_sb_addch(b, '}');
        return NULL;
    }
    case JT_UNDEF: return "Object of type Undefined is not JSON serializable";
    case JT_NS: return "Object of type Namespace is not JSON serializable";
    case JT_LOOP: return "Object of type LoopContext is not JSON serializable";
    default: return "Object of type function is not JSON serializable";
    }
}

const char *jt_json_write(jt_sb *b, jt_value v, const jt_json_style *style, int max_depth) {
    jt_json_style st = *style;
    if (!st.item_sep) st.item_sep = st.indent ? "," : ", ";
    if (!st.key_sep) st.key_sep = ": ";
    return write_json(b, v, &st, 0, max_depth);
}
