/* The arena and the value constructors of the Jinja interpreter, and the
 * Python semantics every other part shares: truthiness and equality. */
#include "template/value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ----------------------------------------------------------------- */

struct jt_arena_block {
    jt_arena_block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

void jt_arena_init(jt_arena *a, size_t cap_bytes, void (*fail)(void *, const char *), void *ctx) {
    memset(a, 0, sizeof *a);
    a->cap_bytes = cap_bytes;
    a->fail = fail;
    a->fail_ctx = ctx;
}

void jt_arena_free(jt_arena *a) {
    jt_arena_block *b = a->head;
    while (b) {
        jt_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used_bytes = 0;
}

void *jt_alloc(jt_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    jt_arena_block *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t size = n > 32768 ? n : 32768;
        if (b && b->size * 2 > size && b->size < (size_t)1 << 22) size = b->size * 2;
        if (a->used_bytes + size > a->cap_bytes || n > a->cap_bytes) {
            a->fail(a->fail_ctx, "out of template memory (the render's limit was reached)");
        }
        b = malloc(sizeof *b + size);
        if (!b) a->fail(a->fail_ctx, "out of memory");
        b->size = size;
        b->used = 0;
        b->next = a->head;
        a->head = b;
        a->used_bytes += size;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *jt_strndup(jt_arena *a, const char *s, size_t n) {
    char *p = jt_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* ---- undefined ---------------------------------------------------------------- */

static jt_value make_undef(jt_arena *a, jt_undef u) {
    jt_undef *p = jt_alloc(a, sizeof *p);
    *p = u;
    return (jt_value){.kind = JT_UNDEF, .as.u = p};
}

/* Jinja's object_type_repr: "None" for None, else "<type> object". */
static const char *obj_type_repr(jt_value obj) {
    switch (obj.kind) {
    case JT_NONE: return "None";
    case JT_BOOL: return "bool object";
    case JT_INT: return "int object";
    case JT_FLOAT: return "float object";
    case JT_STR: return "str object";
    case JT_LIST: return "list object";
    case JT_TUPLE: return "tuple object";
    case JT_DICT: return "dict object";
    case JT_NS: return "jinja2.utils.Namespace object";
    case JT_LOOP: return "jinja2.runtime.LoopContext object";
    default: return "function object";
    }
}

jt_value jt_undef_named(jt_arena *a, const char *name) {
    return make_undef(a, (jt_undef){.name = name});
}

jt_value jt_undef_attr(jt_arena *a, jt_value obj, const char *name) {
    return make_undef(a, (jt_undef){.name = name, .obj_type = obj_type_repr(obj)});
}

jt_value jt_undef_index(jt_arena *a, jt_value obj, int64_t index) {
    return make_undef(a, (jt_undef){.index = index, .obj_type = obj_type_repr(obj)});
}

jt_value jt_undef_msg(jt_arena *a, const char *message) {
    return make_undef(a, (jt_undef){.message = message});
}

jt_value jt_undef_unsafe(jt_arena *a, jt_value obj, const char *name) {
    return make_undef(a, (jt_undef){.name = name, .obj_type = jt_type_name(obj), .unsafe = true});
}

const char *jt_undef_describe(jt_arena *a, jt_value v) {
    const jt_undef *u = v.as.u;
    char buf[512];
    if (!u) return "value is undefined";
    if (u->message) return u->message;
    if (u->unsafe)
        snprintf(buf, sizeof buf, "access to attribute '%s' of '%s' object is unsafe.", u->name,
                 u->obj_type);
    else if (!u->obj_type)
        snprintf(buf, sizeof buf, "'%s' is undefined", u->name ? u->name : "?");
    else if (!u->name)
        snprintf(buf, sizeof buf, "'%s' has no element %lld", u->obj_type, (long long)u->index);
    else
        snprintf(buf, sizeof buf, "'%s' has no attribute '%s'", u->obj_type, u->name);
    return jt_strndup(a, buf, strlen(buf));
}

/* ---- strings, lists, dicts --------------------------------------------------------- */

jt_value jt_str_new(jt_arena *a, const char *s, size_t n) {
    jt_str *p = jt_alloc(a, sizeof *p + n + 1);
    p->len = n;
    bool ascii = true;
    for (size_t i = 0; i < n; i++) {
        p->bytes[i] = s[i];
        ascii &= (unsigned char)s[i] < 0x80;
    }
    p->bytes[n] = 0;
    p->ascii = ascii;
    return (jt_value){.kind = JT_STR, .as.s = p};
}

jt_value jt_str_cstr(jt_arena *a, const char *s) { return jt_str_new(a, s, strlen(s)); }

bool jt_str_eq_c(jt_value v, const char *s) {
    size_t n = strlen(s);
    return v.kind == JT_STR && v.as.s->len == n && memcmp(v.as.s->bytes, s, n) == 0;
}

jt_value jt_list_new(jt_arena *a, size_t n, bool tuple) {
    jt_list *l = jt_alloc(a, sizeof *l);
    l->n = n;
    l->items = n ? jt_alloc(a, n * sizeof(jt_value)) : NULL;
    return (jt_value){.kind = tuple ? JT_TUPLE : JT_LIST, .as.l = l};
}

void jt_lb_init(jt_list_builder *b, jt_arena *a) {
    b->arena = a;
    b->n = b->cap = 0;
    b->items = NULL;
}

void jt_lb_push(jt_list_builder *b, jt_value v) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        jt_value *items = jt_alloc(b->arena, cap * sizeof *items);
        if (b->n) memcpy(items, b->items, b->n * sizeof *items);
        b->items = items;
        b->cap = cap;
    }
    b->items[b->n++] = v;
}

jt_value jt_lb_finish(jt_list_builder *b, bool tuple) {
    jt_list *l = jt_alloc(b->arena, sizeof *l);
    l->n = b->n;
    l->items = b->items;
    return (jt_value){.kind = tuple ? JT_TUPLE : JT_LIST, .as.l = l};
}

jt_value jt_dict_new(jt_arena *a, size_t cap) {
    jt_dict *d = jt_alloc(a, sizeof *d);
    d->cap = cap;
    d->keys = cap ? jt_alloc(a, cap * sizeof(jt_value)) : NULL;
    d->vals = cap ? jt_alloc(a, cap * sizeof(jt_value)) : NULL;
    return (jt_value){.kind = JT_DICT, .as.d = d};
}

const jt_value *jt_dict_get(const jt_dict *d, jt_value key) {
    if (key.kind == JT_STR) {
        for (size_t i = 0; i < d->n; i++) {
            const jt_value *k = &d->keys[i];
            if (k->kind == JT_STR && k->as.s->len == key.as.s->len &&
                memcmp(k->as.s->bytes, key.as.s->bytes, key.as.s->len) == 0)
                return &d->vals[i];
        }
        return NULL;
    }
    for (size_t i = 0; i < d->n; i++)
        if (jt_equal(d->keys[i], key)) return &d->vals[i];
    return NULL;
}

const jt_value *jt_dict_get_c(const jt_dict *d, const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i < d->n; i++) {
        const jt_value *k = &d->keys[i];
        if (k->kind == JT_STR && k->as.s->len == n && memcmp(k->as.s->bytes, key, n) == 0)
            return &d->vals[i];
    }
    return NULL;
}

void jt_dict_set(jt_arena *a, jt_dict *d, jt_value key, jt_value val) {
    const jt_value *old = jt_dict_get(d, key);
    if (old) {
        d->vals[old - d->vals] = val;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        jt_value *keys = jt_alloc(a, cap * sizeof *keys);
        jt_value *vals = jt_alloc(a, cap * sizeof *vals);
        if (d->n) {
            memcpy(keys, d->keys, d->n * sizeof *keys);
            memcpy(vals, d->vals, d->n * sizeof *vals);
        }
        d->keys = keys;
        d->vals = vals;
        d->cap = cap;
    }
    d->keys[d->n] = key;
    d->vals[d->n] = val;
    d->n++;
}

/* ---- Python semantics ------------------------------------------------------------ */

bool jt_truthy(jt_value v) {
    switch (v.kind) {
    case JT_UNDEF:
    case JT_NONE: return false;
    case JT_BOOL: return v.as.b;
    case JT_INT: return v.as.i != 0;
    case JT_FLOAT: return v.as.f != 0.0;
    case JT_STR: return v.as.s->len != 0;
    case JT_LIST:
    case JT_TUPLE: return v.as.l->n != 0;
    case JT_DICT: return v.as.d->n != 0;
    default: return true;
    }
}

double jt_as_double(jt_value v) {
    if (v.kind == JT_FLOAT) return v.as.f;
    if (v.kind == JT_INT) return (double)v.as.i;
    if (v.kind == JT_BOOL) return v.as.b ? 1.0 : 0.0;
    return NAN;
}

bool jt_equal(jt_value a, jt_value b) {
    if (jt_is_number(a) && jt_is_number(b)) {
        if (a.kind != JT_FLOAT && b.kind != JT_FLOAT) {
            int64_t x = a.kind == JT_BOOL ? a.as.b : a.as.i;
            int64_t y = b.kind == JT_BOOL ? b.as.b : b.as.i;
            return x == y;
        }
        return jt_as_double(a) == jt_as_double(b);
    }
    if (a.kind != b.kind) return false;
    switch (a.kind) {
    case JT_UNDEF:
    case JT_NONE: return true;
    case JT_STR:
        return a.as.s->len == b.as.s->len && memcmp(a.as.s->bytes, b.as.s->bytes, a.as.s->len) == 0;
    case JT_LIST:
    case JT_TUPLE:
        if (a.as.l->n != b.as.l->n) return false;
        for (size_t i = 0; i < a.as.l->n; i++)
            if (!jt_equal(a.as.l->items[i], b.as.l->items[i])) return false;
        return true;
    case JT_DICT:
        if (a.as.d->n != b.as.d->n) return false;
        for (size_t i = 0; i < a.as.d->n; i++) {
            const jt_value *o = jt_dict_get(b.as.d, a.as.d->keys[i]);
            if (!o || !jt_equal(a.as.d->vals[i], *o)) return false;
        }
        return true;
    case JT_NS: return a.as.d == b.as.d;
    case JT_FUNC: return a.as.fn == b.as.fn;
    case JT_LOOP: return a.as.loop == b.as.loop;
    default: return false;
    }
}

const char *jt_type_name(jt_value v) {
    switch (v.kind) {
    case JT_UNDEF: return "Undefined";
    case JT_NONE: return "NoneType";
    case JT_BOOL: return "bool";
    case JT_INT: return "int";
    case JT_FLOAT: return "float";
    case JT_STR: return "str";
    case JT_LIST: return "list";
    case JT_TUPLE: return "tuple";
    case JT_DICT: return "dict";
    case JT_NS: return "Namespace";
    case JT_LOOP: return "LoopContext";
    default: return "function";
    }
}

/* ---- string builder ------------------------------------------------------------ */

void jt_sb_init(jt_sb *b, jt_arena *a) {
    b->arena = a;
    b->data = NULL;
    b->len = b->cap = 0;
}

void jt_sb_add(jt_sb *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *data = jt_alloc(b->arena, cap);
        if (b->len) memcpy(data, b->data, b->len);
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void jt_sb_addc(jt_sb *b, const char *s) { jt_sb_add(b, s, strlen(s)); }
void jt_sb_addch(jt_sb *b, char c) { jt_sb_add(b, &c, 1); }

jt_value jt_sb_value(jt_sb *b) { return jt_str_new(b->arena, b->data ? b->data : "", b->len); }
