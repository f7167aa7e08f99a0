/* JSON Schema to grammar (json_schema.h). Shared pieces (whitespace,
 * strings, numbers, any value) are built once per grammar; objects list
 * their properties in the schema's order, each optional one skippable,
 * with the commas placed by two rules per position: one for "a property
 * has been written already" (a comma comes first) and one for "none yet". */
#include "grammar/json_schema.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define MAX_SCHEMA_DEPTH 64
#define MAX_PROPERTIES 1024
#define MAX_REFS 256
#define MAX_BOUND 1024 /* minItems / minLength above this are refused; maxima above it not enforced */
#define INDENT_MAX 32

typedef struct {
    lg_grammar_builder *b;
    const cJSON *root;
    laguna_error *err;
    bool failed;
    int depth;
    char path[256];
    int ws, string, number, integer, value, object, array; /* shared rules, -1 until built */
    struct {
        const cJSON *target;
        int rule;
    } refs[MAX_REFS];
    int n_refs;
} ctx;

static int refuse(ctx *c, const char *fmt, ...) {
    if (!c->failed) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        lg_fail(c->err, LAGUNA_ERR_ARGUMENT, "%s (at schema path '%s')", msg, c->path[0] ? c->path : "/");
        c->failed = true;
    }
    return -1;
}

/* ---- small rules -------------------------------------------------------------------- */

static int text_rule(ctx *c, const char *text) {
    int r = lg_gb_rule(c->b);
    lg_gb_seq s = {0};
    lg_gb_text(c->b, &s, text, strlen(text));
    lg_gb_add(c->b, r, &s);
    lg_gb_seq_free(&s);
    return r;
}

static int range_rule(ctx *c, uint8_t lo, uint8_t hi) {
    lg_byte_class k = {{0}};
    lg_byte_class_range(&k, lo, hi);
    return lg_gb_class_rule(c->b, &k);
}

static int optional(ctx *c, int r) {
    int o = lg_gb_rule(c->b);
    lg_gb_seq s = {0};
    lg_gb_ref(&s, r);
    lg_gb_add(c->b, o, &s);
    lg_gb_add(c->b, o, &s);
    lg_gb_seq_free(&s);
    return o;
}

/* ws ::= "" | " " | "\n" [ \t]{0,INDENT_MAX} */
static int ws(ctx *c) {
    if (c->ws >= 0) return c->ws;
    lg_byte_class k = {{0}};
    lg_byte_class_chars(&k, " \t");
    int indent = lg_gb_repeat(c->b, lg_gb_class_rule(c->b, &k), 0, INDENT_MAX);
    int r = lg_gb_rule(c->b);
    lg_gb_seq s = {0};
    lg_gb_add(c->b, r, &s);
    lg_gb_byte(c->b, &s, ' ');
    lg_gb_add(c->b, r, &s);
    lg_gb_byte(c->b, &s, '\n');
    lg_gb_ref(&s, indent);
    lg_gb_add(c->b, r, &s);
    lg_gb_seq_free(&s);
    return c->ws = r;
}

/* Appends ws "," ws to q: what goes between two items or members. */
static void comma(ctx *c, lg_gb_seq *q) {
    lg_gb_ref(q, ws(c));
    lg_gb_byte(c->b, q, ',');
    lg_gb_ref(q, ws(c));
}

/* The rule ws "," ws item: one more item after the first. */
static int comma_then(ctx *c, int item) {
    int r = lg_gb_rule(c->b);
    lg_gb_seq q = {0};
    comma(c, &q);
    lg_gb_ref(&q, item);
    lg_gb_add(c->b, r, &q);
    lg_gb_seq_free(&q);
    return r;
}

/* One character of a JSON string: printable ASCII but '"' and '\', a whole
 * UTF-8 sequence, or an escape. */
static int string_char(ctx *c) {
    lg_grammar_builder *b = c->b;
    int r = lg_gb_rule(b);
    lg_gb_seq s = {0};
    lg_byte_class plain = {{0}}, cont = {{0}}, lead2 = {{0}}, lead3 = {{0}}, lead4 = {{0}}, esc = {{0}}, hex = {{0}};
    lg_byte_class_range(&plain, 0x20, 0x7F);
    plain.bits[0] &= ~(1ull << '"');
    plain.bits[1] &= ~(1ull << ('\\' - 64));
    lg_byte_class_range(&cont, 0x80, 0xBF);
    lg_byte_class_range(&lead2, 0xC2, 0xDF);
    lg_byte_class_range(&lead3, 0xE0, 0xEF);
    lg_byte_class_range(&lead4, 0xF0, 0xF4);
    lg_byte_class_chars(&esc, "\"\\/bfnrt");
    lg_byte_class_range(&hex, '0', '9');
    lg_byte_class_range(&hex, 'a', 'f');
    lg_byte_class_range(&hex, 'A', 'F');
    lg_gb_class(b, &s, &plain);
    lg_gb_add(b, r, &s);
    lg_gb_class(b, &s, &lead2);
    lg_gb_class(b, &s, &cont);
    lg_gb_add(b, r, &s);
    lg_gb_class(b, &s, &lead3);
    for (int i = 0; i < 2; i++) lg_gb_class(b, &s, &cont);
    lg_gb_add(b, r, &s);
    lg_gb_class(b, &s, &lead4);
    for (int i = 0; i < 3; i++) lg_gb_class(b, &s, &cont);
    lg_gb_add(b, r, &s);
    lg_gb_byte(b, &s, '\\');
    lg_gb_class(b, &s, &esc);
    lg_gb_add(b, r, &s);
    lg_gb_text(b, &s, "\\u", 2);
    for (int i = 0; i < 4; i++) lg_gb_class(b, &s, &hex);
    lg_gb_add(b, r, &s);
    lg_gb_seq_free(&s);
    return r;
}

/* A string of lo to hi characters (hi < 0: no maximum). */
static int string_rule(ctx *c, int lo, int hi) {
    bool plain = lo == 0 && hi < 0;
    if (plain && c->string >= 0) return c->string;
    int ch = string_char(c);
    int body = hi < 0 ? lg_gb_repeat_any(c->b, ch, lo) : lg_gb_repeat(c->b, ch, lo, hi);
    int r = lg_gb_rule(c->b);
    lg_gb_seq s = {0};
    lg_gb_byte(c->b, &s, '"');
    lg_gb_ref(&s, body);
    lg_gb_byte(c->b, &s, '"');
    lg_gb_add(c->b, r, &s);
    lg_gb_seq_free(&s);
    if (plain) c->string = r;
    return r;
}

/* -? (0 | [1-9][0-9]{0,15}), then (number) (. [0-9]{1,16})? ([eE] [+-]? [0-9]{1,3})? */
static int number_rule(ctx *c, bool integer) {
    int *cached = integer ? &c->integer : &c->number;
    if (*cached >= 0) return *cached;
    lg_grammar_builder *b = c->b;
    int digit = range_rule(c, '0', '9');
    int whole = lg_gb_rule(b);
    lg_gb_seq s = {0};
    lg_gb_byte(b, &s, '0');
    lg_gb_add(b, whole, &s);
    lg_gb_ref(&s, range_rule(c, '1', '9'));
    lg_gb_ref(&s, lg_gb_repeat(b, digit, 0, 15));
    lg_gb_add(b, whole, &s);
    int r = lg_gb_rule(b);
    lg_gb_ref(&s, optional(c, text_rule(c, "-")));
    lg_gb_ref(&s, whole);
    if (!integer) {
        int frac = lg_gb_rule(b), exp = lg_gb_rule(b);
        lg_gb_seq t = {0};
        lg_gb_byte(b, &t, '.');
        lg_gb_ref(&t, lg_gb_repeat(b, digit, 1, 16));
        lg_gb_add(b, frac, &t);
        lg_byte_class e = {{0}}, sign = {{0}};
        lg_byte_class_chars(&e, "eE");
        lg_byte_class_chars(&sign, "+-");
        lg_gb_class(b, &t, &e);
        lg_gb_ref(&t, optional(c, lg_gb_class_rule(b, &sign)));
        lg_gb_ref(&t, lg_gb_repeat(b, digit, 1, 3));
        lg_gb_add(b, exp, &t);
        lg_gb_seq_free(&t);
        lg_gb_ref(&s, optional(c, frac));
        lg_gb_ref(&s, optional(c, exp));
    }
    lg_gb_add(b, r, &s);
    lg_gb_seq_free(&s);
    return *cached = r;
}

/* "open" ws item (ws "," ws item){lo-1 .. hi-1} ws "close" (hi < 0: no
 * maximum); with "open" ws "close" too when lo is 0. */
static int list_rule(ctx *c, char open, int item, char close, int lo, int hi) {
    lg_grammar_builder *b = c->b;
    int r = lg_gb_rule(b);
    lg_gb_seq s = {0};
    if (lo == 0) {
        lg_gb_byte(b, &s, (uint8_t)open);
        lg_gb_ref(&s, ws(c));
        lg_gb_byte(b, &s, (uint8_t)close);
        lg_gb_add(b, r, &s);
    }
    if (hi != 0) {
        int next = comma_then(c, item);
        int more = lo > 0 ? lo - 1 : 0;
        int tail = hi < 0 ? lg_gb_repeat_any(b, next, more) : lg_gb_repeat(b, next, more, hi - 1);
        lg_gb_byte(b, &s, (uint8_t)open);
        lg_gb_ref(&s, ws(c));
        lg_gb_ref(&s, item);
        lg_gb_ref(&s, tail);
        lg_gb_ref(&s, ws(c));
        lg_gb_byte(b, &s, (uint8_t)close);
        lg_gb_add(b, r, &s);
    }
    lg_gb_seq_free(&s);
    return r;
}

/* member ::= string ws ":" ws value */
static int member_rule(ctx *c, int key, int value) {
    int r = lg_gb_rule(c->b);
    lg_gb_seq s = {0};
    lg_gb_ref(&s, key);
    lg_gb_ref(&s, ws(c));
    lg_gb_byte(c->b, &s, ':');
    lg_gb_ref(&s, ws(c));
    lg_gb_ref(&s, value);
    lg_gb_add(c->b, r, &s);
    lg_gb_seq_free(&s);
    return r;
}

/* Any JSON value; any object; any array (they refer to each other). */
static int any_value(ctx *c) {
    if (c->value >= 0) return c->value;
    lg_grammar_builder *b = c->b;
    int v = c->value = lg_gb_rule(b);
    c->object = list_rule(c, '{', member_rule(c, string_rule(c, 0, -1), v), '}', 0, -1);
    c->array = list_rule(c, '[', v, ']', 0, -1);
    int parts[] = {c->object, c->array, string_rule(c, 0, -1), number_rule(c, false), text_rule(c, "true"),
                   text_rule(c, "false"), text_rule(c, "null")};
    lg_gb_seq s = {0};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        lg_gb_ref(&s, parts[i]);
        lg_gb_add(b, v, &s);
    }
    lg_gb_seq_free(&s);
    return v;
}

static int any_object(ctx *c) {
    any_value(c);
    return c->object;
}

/* ---- schemas ------------------------------------------------------------------------ */

static int schema_rule(ctx *c, const cJSON *s);

/* The schema path grows while a sub-schema is compiled. */
static size_t path_push(ctx *c, const char *seg) {
    size_t n = strlen(c->path);
    snprintf(c->path + n, sizeof c->path - n, "/%s", seg);
    return n;
}

static int sub_rule(ctx *c, const char *seg, const cJSON *s) {
    size_t n = path_push(c, seg);
    int r = schema_rule(c, s);
    c->path[n] = 0;
    return r;
}

/* The JSON text of v, as a rule of its bytes. */
static int literal_rule(ctx *c, const cJSON *v) {
    char *text = cJSON_PrintUnformatted(v);
    if (!text) return refuse(c, "out of memory");
    int r = text_rule(c, text);
    cJSON_free(text);
    return r;
}

/* A non-negative integer keyword (or def when absent). */
static int count_keyword(ctx *c, const cJSON *s, const char *key, int def, bool *ok) {
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(s, key);
    if (!k) return def;
    if (!cJSON_IsNumber(k) || k->valuedouble < 0 || k->valuedouble != floor(k->valuedouble)) {
        *ok = false;
        return refuse(c, "'%s' must be a non-negative integer", key);
    }
    return k->valuedouble > 1e9 ? 1000000000 : (int)k->valuedouble;
}

/* A property name as its JSON string. */
static int key_rule(ctx *c, const char *name) {
    cJSON *k = cJSON_CreateString(name);
    int r = k ? literal_rule(c, k) : refuse(c, "out of memory");
    cJSON_Delete(k);
    return r;
}

/* A minimum and a maximum count (minItems / maxItems, minLength /
 * maxLength): *lo (0 when absent), *hi (-1: none, also past MAX_BOUND,
 * which is not enforced); false (refused) when bad or above MAX_BOUND. */
static bool bounds(ctx *c, const cJSON *s, const char *min_key, const char *max_key, int *lo, int *hi) {
    bool ok = true;
    *lo = count_keyword(c, s, min_key, 0, &ok), *hi = count_keyword(c, s, max_key, -1, &ok);
    if (!ok) return false;
    if (*lo > MAX_BOUND) return refuse(c, "%s above %d is not supported", min_key, MAX_BOUND), false;
    if (*hi > MAX_BOUND) *hi = -1;
    if (*hi >= 0 && *hi < *lo) return refuse(c, "%s is below %s", max_key, min_key), false;
    return true;
}

static bool in_required(const cJSON *required, const char *name) {
    const cJSON *r;
    cJSON_ArrayForEach(r, required) if (cJSON_IsString(r) && !strcmp(r->valuestring, name)) return true;
    return false;
}

static int object_rule(ctx *c, const cJSON *s) {
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *required = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    if (props && !cJSON_IsObject(props)) return refuse(c, "'properties' must be an object");
    if (required && !cJSON_IsArray(required)) return refuse(c, "'required' must be an array");
    if (extra && !cJSON_IsBool(extra) && !cJSON_IsObject(extra))
        return refuse(c, "'additionalProperties' must be a boolean or a schema");
    int n = props ? cJSON_GetArraySize(props) : 0;
    if (n == 0 && (!extra || cJSON_IsTrue(extra)) && (!required || !cJSON_GetArraySize(required))) return any_object(c);
    /* the listed properties, then required names that are not listed (any value) */
    int n_all = n + (required ? cJSON_GetArraySize(required) : 0);
    if (n_all > MAX_PROPERTIES) return refuse(c, "more than %d properties", MAX_PROPERTIES);
    int *key = malloc(sizeof *key * (size_t)(n_all + 1)), *value = malloc(sizeof *value * (size_t)(n_all + 1));
    bool *needed = malloc(sizeof *needed * (size_t)(n_all + 1));
    if (!key || !value || !needed) {
        free(key), free(value), free(needed);
        return refuse(c, "out of memory");
    }
    int m = 0;
    const cJSON *p;
    size_t at = path_push(c, "properties");
    cJSON_ArrayForEach(p, props) {
        key[m] = key_rule(c, p->string);
        value[m] = sub_rule(c, p->string, p);
        needed[m++] = in_required(required, p->string);
    }
    c->path[at] = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, required) {
        if (!cJSON_IsString(r)) {
            free(key), free(value), free(needed);
            return refuse(c, "'required' must list strings");
        }
        if (props && cJSON_GetObjectItemCaseSensitive(props, r->valuestring)) continue;
        key[m] = key_rule(c, r->valuestring);
        value[m] = any_value(c);
        needed[m++] = true;
    }
    int extra_member = -1;
    if (extra && !cJSON_IsFalse(extra))
        extra_member = member_rule(c, string_rule(c, 0, -1),
                                   cJSON_IsTrue(extra) ? any_value(c) : sub_rule(c, "additionalProperties", extra));
    /* after[i][f]: the members from property i on; f: none written yet (no comma first) */
    lg_grammar_builder *b = c->b;
    int (*after)[2] = malloc(sizeof *after * (size_t)(m + 1));
    if (!after) {
        free(key), free(value), free(needed);
        return refuse(c, "out of memory");
    }
    lg_gb_seq q = {0};
    for (int i = m; i >= 0 && !c->failed; i--) {
        after[i][0] = lg_gb_rule(b), after[i][1] = lg_gb_rule(b);
        int member = i == m ? extra_member : member_rule(c, key[i], value[i]); /* one rule for both f */
        for (int f = 0; f < 2; f++) {
            int rule = after[i][f];
            if (i == m) {
                lg_gb_add(b, rule, &q); /* nothing more */
                if (extra_member < 0) continue;
            }
            if (!f) comma(c, &q);
            lg_gb_ref(&q, member);
            lg_gb_ref(&q, after[i == m ? m : i + 1][0]);
            lg_gb_add(b, rule, &q);
            if (i < m && !needed[i]) {
                lg_gb_ref(&q, after[i + 1][f]);
                lg_gb_add(b, rule, &q);
            }
        }
    }
    if (c->failed) {
        lg_gb_seq_free(&q);
        free(after), free(key), free(value), free(needed);
        return -1;
    }
    int obj = lg_gb_rule(b);
    lg_gb_byte(b, &q, '{');
    lg_gb_ref(&q, ws(c));
    lg_gb_ref(&q, after[0][1]);
    lg_gb_ref(&q, ws(c));
    lg_gb_byte(b, &q, '}');
    lg_gb_add(b, obj, &q);
    lg_gb_seq_free(&q);
    free(after), free(key), free(value), free(needed);
    return obj;
}

static int array_rule(ctx *c, const cJSON *s) {
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(s, "prefixItems");
    int lo, hi;
    if (!bounds(c, s, "minItems", "maxItems", &lo, &hi)) return -1;
    if (items && !cJSON_IsBool(items) && !cJSON_IsObject(items))
        return refuse(c, "'items' must be a schema (an array of schemas is 'prefixItems')");
    if (prefix && (!cJSON_IsArray(prefix) || !cJSON_GetArraySize(prefix)))
        return refuse(c, "'prefixItems' must be a non-empty array of schemas");
    int item = !items || cJSON_IsTrue(items) ? any_value(c) : cJSON_IsFalse(items) ? -1 : sub_rule(c, "items", items);
    if (!prefix) return item < 0 ? list_rule(c, '[', -1, ']', 0, 0) : list_rule(c, '[', item, ']', lo, hi);
    /* a tuple: every prefix item, then more items only when 'items' allows them */
    lg_grammar_builder *b = c->b;
    lg_gb_seq q = {0};
    int r = lg_gb_rule(b), k = 0;
    lg_gb_byte(b, &q, '[');
    lg_gb_ref(&q, ws(c));
    const cJSON *p;
    size_t at = path_push(c, "prefixItems");
    cJSON_ArrayForEach(p, prefix) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", k);
        if (k++) comma(c, &q);
        lg_gb_ref(&q, sub_rule(c, idx, p));
    }
    c->path[at] = 0;
    if (items && item >= 0) lg_gb_ref(&q, lg_gb_repeat_any(b, comma_then(c, item), 0));
    lg_gb_ref(&q, ws(c));
    lg_gb_byte(b, &q, ']');
    lg_gb_add(b, r, &q);
    lg_gb_seq_free(&q);
    return r;
}

static int typed_rule(ctx *c, const cJSON *s, const char *type) {
    if (!strcmp(type, "string")) {
        int lo, hi;
        return bounds(c, s, "minLength", "maxLength", &lo, &hi) ? string_rule(c, lo, hi) : -1;
    }
    if (!strcmp(type, "number")) return number_rule(c, false);
    if (!strcmp(type, "integer")) return number_rule(c, true);
    if (!strcmp(type, "boolean")) return lg_gb_either(c->b, text_rule(c, "true"), text_rule(c, "false"));
    if (!strcmp(type, "null")) return text_rule(c, "null");
    if (!strcmp(type, "object")) return object_rule(c, s);
    if (!strcmp(type, "array")) return array_rule(c, s);
    return refuse(c, "unknown type '%.40s'", type);
}

/* Resolves a local reference ("#" or a JSON pointer "#/a/b", with ~1 for '/'
 * and ~0 for '~'). */
static const cJSON *resolve(const cJSON *root, const char *ref) {
    if (ref[0] != '#') return NULL;
    const cJSON *node = root;
    const char *p = ref + 1;
    while (*p == '/' && node) {
        char seg[256];
        size_t n = 0;
        for (p++; *p && *p != '/'; p++) {
            char ch = *p;
            if (ch == '~' && (p[1] == '0' || p[1] == '1')) ch = *++p == '0' ? '~' : '/';
            if (n + 1 >= sizeof seg) return NULL;
            seg[n++] = ch;
        }
        seg[n] = 0;
        if (cJSON_IsArray(node)) {
            char *end;
            long i = strtol(seg, &end, 10);
            node = *seg && !*end && i >= 0 && i < cJSON_GetArraySize(node) ? cJSON_GetArrayItem(node, (int)i) : NULL;
        } else {
            node = cJSON_GetObjectItemCaseSensitive(node, seg);
        }
    }
    return *p ? NULL : node;
}

static int ref_rule(ctx *c, const cJSON *ref) {
    if (!cJSON_IsString(ref)) return refuse(c, "'$ref' must be a string");
    const cJSON *target = resolve(c->root, ref->valuestring);
    if (!target) return refuse(c, "'$ref' '%.80s' does not name a part of this schema", ref->valuestring);
    for (int i = 0; i < c->n_refs; i++)
        if (c->refs[i].target == target) return c->refs[i].rule;
    if (c->n_refs == MAX_REFS) return refuse(c, "more than %d distinct $ref targets", MAX_REFS);
    int r = lg_gb_rule(c->b); /* defined before its body, so the body may refer to it */
    c->refs[c->n_refs].target = target, c->refs[c->n_refs++].rule = r;
    char saved[sizeof c->path];
    memcpy(saved, c->path, sizeof saved);
    snprintf(c->path, sizeof c->path, "%s", ref->valuestring + 1);
    int body = schema_rule(c, target);
    memcpy(c->path, saved, sizeof saved);
    lg_gb_seq q = {0};
    lg_gb_ref(&q, body);
    lg_gb_add(c->b, r, &q);
    lg_gb_seq_free(&q);
    return r;
}

/* One of the schemas (or values, for enum) in array a. */
static int alternatives(ctx *c, const char *key, const cJSON *a, bool values) {
    if (!cJSON_IsArray(a) || !cJSON_GetArraySize(a)) return refuse(c, "'%s' must be a non-empty array", key);
    int r = lg_gb_rule(c->b), i = 0;
    lg_gb_seq q = {0};
    const cJSON *v;
    size_t at = path_push(c, key);
    cJSON_ArrayForEach(v, a) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i++);
        lg_gb_ref(&q, values ? literal_rule(c, v) : sub_rule(c, idx, v));
        lg_gb_add(c->b, r, &q);
    }
    c->path[at] = 0;
    lg_gb_seq_free(&q);
    return r;
}

/* Keywords whose meaning the grammar cannot follow. */
static const char *const UNSUPPORTED[] = {"not", "if", "then", "else", "patternProperties", "dependentSchemas",
                                          "dependentRequired", "dependencies", "contains", "propertyNames",
                                          "unevaluatedProperties", "unevaluatedItems", "$dynamicRef", "$recursiveRef"};

static int schema_body(ctx *c, const cJSON *s) {
    if (cJSON_IsTrue(s)) return any_value(c);
    if (cJSON_IsFalse(s)) return refuse(c, "the schema false allows no value");
    if (!cJSON_IsObject(s)) return refuse(c, "a schema must be an object or a boolean");
    for (size_t i = 0; i < sizeof UNSUPPORTED / sizeof *UNSUPPORTED; i++)
        if (cJSON_GetObjectItemCaseSensitive(s, UNSUPPORTED[i]))
            return refuse(c, "the keyword '%s' is not supported in structured output", UNSUPPORTED[i]);
    const cJSON *k;
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "$ref"))) return ref_rule(c, k);
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "const"))) return literal_rule(c, k);
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "enum"))) return alternatives(c, "enum", k, true);
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "anyOf"))) return alternatives(c, "anyOf", k, false);
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "oneOf"))) return alternatives(c, "oneOf", k, false);
    if ((k = cJSON_GetObjectItemCaseSensitive(s, "allOf"))) {
        if (!cJSON_IsArray(k) || cJSON_GetArraySize(k) != 1)
            return refuse(c, "'allOf' is supported with exactly one schema");
        return sub_rule(c, "allOf/0", cJSON_GetArrayItem(k, 0));
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (cJSON_IsString(type)) return typed_rule(c, s, type->valuestring);
    if (cJSON_IsArray(type)) {
        if (!cJSON_GetArraySize(type)) return refuse(c, "'type' must not be an empty list");
        int r = lg_gb_rule(c->b);
        lg_gb_seq q = {0};
        const cJSON *t;
        cJSON_ArrayForEach(t, type) {
            if (!cJSON_IsString(t)) return lg_gb_seq_free(&q), refuse(c, "'type' must list strings");
            lg_gb_ref(&q, typed_rule(c, s, t->valuestring));
            lg_gb_add(c->b, r, &q);
        }
        lg_gb_seq_free(&q);
        return r;
    }
    if (type) return refuse(c, "'type' must be a string or a list of strings");
    if (cJSON_GetObjectItemCaseSensitive(s, "properties") || cJSON_GetObjectItemCaseSensitive(s, "required") ||
        cJSON_GetObjectItemCaseSensitive(s, "additionalProperties"))
        return object_rule(c, s);
    if (cJSON_GetObjectItemCaseSensitive(s, "items") || cJSON_GetObjectItemCaseSensitive(s, "prefixItems"))
        return array_rule(c, s);
    return any_value(c);
}

static int schema_rule(ctx *c, const cJSON *s) {
    if (c->failed) return -1;
    if (++c->depth > MAX_SCHEMA_DEPTH) return refuse(c, "the schema is nested more than %d deep", MAX_SCHEMA_DEPTH);
    int r = schema_body(c, s);
    if (r >= 0 && cJSON_IsObject(s) && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "nullable")))
        r = lg_gb_either(c->b, r, text_rule(c, "null"));
    c->depth--;
    return r;
}

laguna_status lg_json_schema_grammar(const cJSON *schema, lg_grammar *out, laguna_error *err) {
    ctx c = {.b = lg_gb_new(), .root = schema, .err = err, .ws = -1, .string = -1, .number = -1, .integer = -1,
             .value = -1, .object = -1, .array = -1};
    memset(out, 0, sizeof *out);
    if (!c.b) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    int value = schema ? schema_rule(&c, schema) : any_object(&c);
    laguna_status st = LAGUNA_ERR_ARGUMENT;
    if (!c.failed) {
        lg_byte_class lead = {{0}};
        lg_byte_class_chars(&lead, " \t\r\n");
        int top = lg_gb_rule(c.b);
        lg_gb_seq q = {0};
        lg_gb_ref(&q, lg_gb_repeat(c.b, lg_gb_class_rule(c.b, &lead), 0, 4));
        lg_gb_ref(&q, value);
        lg_gb_add(c.b, top, &q);
        lg_gb_seq_free(&q);
        st = lg_gb_build(c.b, top, out, err);
    }
    lg_gb_free(c.b);
    return st;
}
