/* Jinja2's builtin filters (jinja2/filters.py) as chat templates use them,
 * plus transformers' tojson (json.dumps with ensure_ascii=False, its own
 * indent/separators/sort_keys arguments; no HTML escaping). There is no
 * autoescaping in transformers, but `safe` and `escape` still return
 * jinja2's Markup, whose + escapes a plain string added to it (jt_binop). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/format.h"
#include "template/interp.h"
#include "template/json.h"
#include "template/pystr.h"
#include "template/unicode.h"

#define MAX_VALUE_DEPTH 512

typedef jt_value (*filter_fn)(jt_vm *vm, jt_value v, const jt_args *a);

/* soft_str: str() of anything, "" for undefined. */
static jt_value soft_str(jt_vm *vm, jt_value v) { return jt_to_str(vm, v); }

static int64_t int_arg(jt_vm *vm, jt_value v, const char *what) {
    if (v.kind == JT_INT) return v.as.i;
    if (v.kind == JT_BOOL) return v.as.b;
    jt_raise(vm, "%s must be an integer, not %s", what, jt_type_name(v));
}

/* Jinja's make_attrgetter: "a.b.0" walks items (then attributes) part by part. */
static jt_value get_attribute(jt_vm *vm, jt_value item, jt_value attribute) {
    if (attribute.kind == JT_INT) return jt_getitem(vm, item, attribute);
    if (attribute.kind != JT_STR) jt_raise(vm, "attribute must be a string or an integer");
    const char *s = jt_sdata(attribute);
    size_t n = jt_slen(attribute), start = 0;
    while (start <= n) {
        const char *dot = memchr(s + start, '.', n - start);
        size_t end = dot ? (size_t)(dot - s) : n;
        jt_value part = jt_str_new(vm->arena, s + start, end - start);
        bool digits = end > start;
        for (size_t i = start; i < end; i++)
            if (s[i] < '0' || s[i] > '9') digits = false;
        if (digits) part = jt_int(strtoll(jt_sdata(part), NULL, 10));
        item = jt_getitem(vm, item, part);
        if (!dot) break;
        start = end + 1;
    }
    return item;
}

/* ---- sorting ---------------------------------------------------------------------- */

typedef struct {
    jt_vm *vm;
    bool case_sensitive;
} sort_ctx;

static jt_value sort_key(jt_vm *vm, jt_value v, bool case_sensitive) {
    if (!case_sensitive && v.kind == JT_STR) return jt_pystr_lower(vm->arena, v);
    return v;
}

/* Stable merge sort of vals by keys (Python's sorted is stable). */
static void merge_sort(jt_vm *vm, jt_value *keys, jt_value *vals, size_t n, bool reverse) {
    if (n < 2) return;
    jt_value *tk = jt_alloc(vm->arena, n * sizeof *tk), *tv = jt_alloc(vm->arena, n * sizeof *tv);
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int c = jt_compare(vm, keys[j], keys[i]);
                bool take_right = reverse ? c > 0 : c < 0;
                if (take_right) tk[k] = keys[j], tv[k++] = vals[j++];
                else tk[k] = keys[i], tv[k++] = vals[i++];
            }
            while (i < mid) tk[k] = keys[i], tv[k++] = vals[i++];
            while (j < hi) tk[k] = keys[j], tv[k++] = vals[j++];
        }
        memcpy(keys, tk, n * sizeof *keys);
        memcpy(vals, tv, n * sizeof *vals);
    }
}

static jt_value f_sort(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"reverse", "case_sensitive", "attribute", NULL};
    jt_check_args(vm, "sort", a, 3, names);
    bool reverse = jt_truthy(jt_arg(a, 0, "reverse", jt_bool(false), NULL));
    bool cs = jt_truthy(jt_arg(a, 1, "case_sensitive", jt_bool(false), NULL));
    bool has_attr;
    jt_value attr = jt_arg(a, 2, "attribute", jt_none(), &has_attr);
    jt_value items = jt_iterate(vm, v);
    size_t n = items.as.l->n;
    jt_value out = jt_list_new(vm->arena, n, false);
    jt_value *keys = jt_alloc(vm->arena, (n + 1) * sizeof *keys);
    for (size_t i = 0; i < n; i++) {
        jt_items(out)[i] = items.as.l->items[i];
        jt_value k = has_attr && attr.kind != JT_NONE ? get_attribute(vm, items.as.l->items[i], attr)
                                                      : items.as.l->items[i];
        keys[i] = sort_key(vm, k, cs);
    }
    merge_sort(vm, keys, jt_items(out), n, reverse);
    return out;
}

static jt_value f_dictsort(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"case_sensitive", "by", "reverse", NULL};
    jt_check_args(vm, "dictsort", a, 3, names);
    bool cs = jt_truthy(jt_arg(a, 0, "case_sensitive", jt_bool(false), NULL));
    jt_value by = jt_arg(a, 1, "by", jt_str_cstr(vm->arena, "key"), NULL);
    bool reverse = jt_truthy(jt_arg(a, 2, "reverse", jt_bool(false), NULL));
    if (v.kind != JT_DICT && v.kind != JT_NS) jt_raise(vm, "dictsort expects a mapping");
    int pos;
    if (jt_str_eq_c(by, "key")) pos = 0;
    else if (jt_str_eq_c(by, "value")) pos = 1;
    else jt_raise(vm, "You can only sort by either \"key\" or \"value\"");
    size_t n = v.as.d->n;
    jt_value out = jt_list_new(vm->arena, n, false);
    jt_value *keys = jt_alloc(vm->arena, (n + 1) * sizeof *keys);
    for (size_t i = 0; i < n; i++) {
        jt_value pair = jt_list_new(vm->arena, 2, true);
        jt_items(pair)[0] = v.as.d->keys[i];
        jt_items(pair)[1] = v.as.d->vals[i];
        jt_items(out)[i] = pair;
        keys[i] = sort_key(vm, pos ? v.as.d->vals[i] : v.as.d->keys[i], cs);
    }
    merge_sort(vm, keys, jt_items(out), n, reverse);
    return out;
}

static jt_value min_max(jt_vm *vm, jt_value v, const jt_args *a, bool want_max) {
    static const char *const names[] = {"case_sensitive", "attribute", NULL};
    jt_check_args(vm, want_max ? "max" : "min", a, 2, names);
    bool cs = jt_truthy(jt_arg(a, 0, "case_sensitive", jt_bool(false), NULL));
    bool has_attr;
    jt_value attr = jt_arg(a, 1, "attribute", jt_none(), &has_attr);
    jt_value items = jt_iterate(vm, v);
    if (items.as.l->n == 0) return jt_undef_msg(vm->arena, "No aggregated item, sequence was empty.");
    jt_value best = items.as.l->items[0], best_key = jt_none();
    for (size_t i = 0; i < items.as.l->n; i++) {
        jt_value it = items.as.l->items[i];
        jt_value k = sort_key(vm, has_attr && attr.kind != JT_NONE ? get_attribute(vm, it, attr) : it, cs);
        if (i == 0 || (want_max ? jt_compare(vm, k, best_key) > 0 : jt_compare(vm, k, best_key) < 0)) {
            best = it;
            best_key = k;
        }
    }
    return best;
}

static jt_value f_min(jt_vm *vm, jt_value v, const jt_args *a) { return min_max(vm, v, a, false); }
static jt_value f_max(jt_vm *vm, jt_value v, const jt_args *a) { return min_max(vm, v, a, true); }

static jt_value f_unique(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"case_sensitive", "attribute", NULL};
    jt_check_args(vm, "unique", a, 2, names);
    bool cs = jt_truthy(jt_arg(a, 0, "case_sensitive", jt_bool(false), NULL));
    bool has_attr;
    jt_value attr = jt_arg(a, 1, "attribute", jt_none(), &has_attr);
    jt_value items = jt_iterate(vm, v);
    jt_list_builder out, seen;
    jt_lb_init(&out, vm->arena);
    jt_lb_init(&seen, vm->arena);
    for (size_t i = 0; i < items.as.l->n; i++) {
        jt_value it = items.as.l->items[i];
        jt_value k = sort_key(vm, has_attr && attr.kind != JT_NONE ? get_attribute(vm, it, attr) : it, cs);
        bool dup = false;
        for (size_t j = 0; j < seen.n && !dup; j++) dup = jt_equal(seen.items[j], k);
        if (dup) continue;
        jt_lb_push(&seen, k);
        jt_lb_push(&out, it);
    }
    return jt_lb_finish(&out, false);
}

/* ---- strings ------------------------------------------------------------------------ */

static jt_value f_trim(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"chars", NULL};
    jt_check_args(vm, "trim", a, 1, names);
    jt_value chars = jt_arg(a, 0, "chars", jt_none(), NULL);
    jt_value s = soft_str(vm, v);
    if (chars.kind == JT_NONE) return jt_pystr_strip(vm->arena, s, NULL, JT_STRIP_BOTH);
    if (chars.kind != JT_STR) jt_raise(vm, "strip arg must be None or str");
    return jt_pystr_strip(vm->arena, s, &chars, JT_STRIP_BOTH);
}

static jt_value f_upper(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "upper", a, 0, NULL);
    return jt_pystr_upper(vm->arena, soft_str(vm, v));
}

static jt_value f_lower(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "lower", a, 0, NULL);
    return jt_pystr_lower(vm->arena, soft_str(vm, v));
}

static jt_value f_capitalize(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "capitalize", a, 0, NULL);
    return jt_pystr_capitalize(vm->arena, soft_str(vm, v));
}

/* Jinja's title: words start after runs of -, whitespace, (, {, [ or <; each
 * word gets its first character upper-cased and the rest lower-cased. */
static jt_value f_title(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "title", a, 0, NULL);
    jt_value s = soft_str(vm, v);
    const char *p = jt_sdata(s);
    size_t n = jt_slen(s), pos = 0;
    jt_sb b;
    jt_sb_init(&b, vm->arena);
    bool word_start = true;
    while (pos < n) {
        int32_t cp = jt_utf8_next(p, n, &pos);
        bool sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || jt_py_isspace(cp);
        int32_t out = sep ? cp : word_start ? jt_to_upper(cp) : jt_to_lower(cp);
        word_start = sep;
        char buf[4];
        jt_sb_add(&b, buf, jt_utf8_put(out, buf));
    }
    return jt_sb_value(&b);
}

static jt_value f_replace(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"old", "new", "count", NULL};
    jt_check_args(vm, "replace", a, 3, names);
    bool g1, g2;
    jt_value old = jt_arg(a, 0, "old", jt_none(), &g1), new_ = jt_arg(a, 1, "new", jt_none(), &g2);
    jt_value count = jt_arg(a, 2, "count", jt_none(), NULL);
    if (!g1 || !g2) jt_raise(vm, "replace() needs the old and new strings");
    return jt_pystr_replace(vm->arena, soft_str(vm, v), soft_str(vm, old), soft_str(vm, new_),
                            count.kind == JT_NONE ? -1 : int_arg(vm, count, "count"));
}

static jt_value f_string(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "string", a, 0, NULL);
    return soft_str(vm, v);
}

static jt_value f_safe(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "safe", a, 0, NULL);
    jt_value s = v.kind == JT_STR ? v : soft_str(vm, v);
    s.markup = 1;
    return s;
}

jt_value jt_html_escape(jt_vm *vm, jt_value s) {
    if (s.markup) return s;
    jt_sb b;
    jt_sb_init(&b, vm->arena);
    for (size_t i = 0; i < jt_slen(s); i++) {
        char c = jt_sdata(s)[i];
        switch (c) {
        case '&': jt_sb_addc(&b, "&amp;"); break;
        case '<': jt_sb_addc(&b, "&lt;"); break;
        case '>': jt_sb_addc(&b, "&gt;"); break;
        case '"': jt_sb_addc(&b, "&#34;"); break;
        case '\'': jt_sb_addc(&b, "&#39;"); break;
        default: jt_sb_addch(&b, c);
        }
    }
    jt_value out = jt_sb_value(&b);
    out.markup = 1;
    return out;
}

static jt_value f_escape(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "escape", a, 0, NULL);
    return jt_html_escape(vm, v.kind == JT_STR ? v : soft_str(vm, v));
}

static jt_value f_indent(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"width", "first", "blank", NULL};
    jt_check_args(vm, "indent", a, 3, names);
    jt_value width = jt_arg(a, 0, "width", jt_int(4), NULL);
    bool first = jt_truthy(jt_arg(a, 1, "first", jt_bool(false), NULL));
    bool blank = jt_truthy(jt_arg(a, 2, "blank", jt_bool(false), NULL));
    jt_value ind;
    if (width.kind == JT_STR) ind = width;
    else {
        int64_t w = int_arg(vm, width, "width");
        if (w > 4096) jt_raise(vm, "indent width too large");
        jt_sb sp;
        jt_sb_init(&sp, vm->arena);
        for (int64_t i = 0; i < w; i++) jt_sb_addch(&sp, ' ');
        ind = jt_sb_value(&sp);
    }
    jt_value s = soft_str(vm, v);
    jt_sb withnl;
    jt_sb_init(&withnl, vm->arena);
    jt_sb_add(&withnl, jt_sdata(s), jt_slen(s));
    jt_sb_addch(&withnl, '\n'); /* Jinja appends a newline before splitlines() */
    jt_value lines = jt_pystr_splitlines(vm->arena, jt_sb_value(&withnl), false);
    jt_sb b;
    jt_sb_init(&b, vm->arena);
    if (first) jt_sb_add(&b, jt_sdata(ind), jt_slen(ind));
    for (size_t i = 0; i < lines.as.l->n; i++) {
        jt_value line = lines.as.l->items[i];
        if (i > 0) {
            jt_sb_addch(&b, '\n');
            if (blank || jt_slen(line) > 0) jt_sb_add(&b, jt_sdata(ind), jt_slen(ind));
        }
        jt_sb_add(&b, jt_sdata(line), jt_slen(line));
    }
    return jt_sb_value(&b);
}

static jt_value f_center(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"width", NULL};
    jt_check_args(vm, "center", a, 1, names);
    int64_t width = int_arg(vm, jt_arg(a, 0, "width", jt_int(80), NULL), "width");
    jt_value s = soft_str(vm, v);
    int64_t len = jt_length(vm, s);
    if (width <= len) return s;
    if (width > 100000) jt_raise(vm, "center width too large");
    int64_t pad = width - len, left = pad / 2 + (pad & width & 1);
    jt_sb b;
    jt_sb_init(&b, vm->arena);
    for (int64_t i = 0; i < left; i++) jt_sb_addch(&b, ' ');
    jt_sb_add(&b, jt_sdata(s), jt_slen(s));
    for (int64_t i = 0; i < pad - left; i++) jt_sb_addch(&b, ' ');
    return jt_sb_value(&b);
}

static jt_value f_wordcount(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "wordcount", a, 0, NULL);
    jt_value s = soft_str(vm, v);
    const char *p = jt_sdata(s);
    size_t n = jt_slen(s), pos = 0;
    int64_t words = 0;
    bool in_word = false;
    while (pos < n) {
        int32_t cp = jt_utf8_next(p, n, &pos);
        bool w = cp == '_' || jt_py_isalnum(cp);
        if (w && !in_word) words++;
        in_word = w;
    }
    return jt_int(words);
}

static jt_value f_format(jt_vm *vm, jt_value v, const jt_args *a) {
    if (a->n && a->n_kw) jt_raise(vm, "can't handle positional and keyword arguments at the same time");
    jt_value s = soft_str(vm, v);
    jt_value args = jt_list_new(vm->arena, a->n, true);
    for (size_t i = 0; i < a->n; i++) jt_items(args)[i] = a->pos[i];
    return jt_binop(vm, TK_MOD, s, args);
}

/* ---- sequences --------------------------------------------------------------------- */

static jt_value f_length(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "length", a, 0, NULL);
    return jt_int(jt_length(vm, v));
}

static jt_value f_list(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "list", a, 0, NULL);
    jt_value items = jt_iterate(vm, v);
    jt_value out = jt_list_new(vm->arena, items.as.l->n, false);
    if (items.as.l->n) memcpy(jt_items(out), items.as.l->items, items.as.l->n * sizeof(jt_value));
    return out;
}

static jt_value f_first(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "first", a, 0, NULL);
    jt_value items = jt_iterate(vm, v);
    if (items.as.l->n == 0) return jt_undef_msg(vm->arena, "No first item, sequence was empty.");
    return items.as.l->items[0];
}

static jt_value f_last(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "last", a, 0, NULL);
    jt_value items = jt_iterate(vm, v);
    if (items.as.l->n == 0) return jt_undef_msg(vm->arena, "No last item, sequence was empty.");
    return items.as.l->items[items.as.l->n - 1];
}

static jt_value f_reverse(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "reverse", a, 0, NULL);
    jt_value items = jt_iterate(vm, v);
    size_t n = items.as.l->n;
    if (v.kind == JT_STR) {
        jt_sb b;
        jt_sb_init(&b, vm->arena);
        for (size_t i = n; i-- > 0;) jt_sb_add(&b, jt_sdata(items.as.l->items[i]), jt_slen(items.as.l->items[i]));
        return jt_sb_value(&b);
    }
    jt_value out = jt_list_new(vm->arena, n, false);
    for (size_t i = 0; i < n; i++) jt_items(out)[i] = items.as.l->items[n - 1 - i];
    return out;
}

static jt_value f_join(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"d", "attribute", NULL};
    jt_check_args(vm, "join", a, 2, names);
    jt_value sep = soft_str(vm, jt_arg(a, 0, "d", jt_str_new(vm->arena, "", 0), NULL));
    bool has_attr;
    jt_value attr = jt_arg(a, 1, "attribute", jt_none(), &has_attr);
    jt_value items = jt_iterate(vm, v);
    jt_sb b;
    jt_sb_init(&b, vm->arena);
    for (size_t i = 0; i < items.as.l->n; i++) {
        if (i) jt_sb_add(&b, jt_sdata(sep), jt_slen(sep));
        jt_value it = items.as.l->items[i];
        if (has_attr && attr.kind != JT_NONE) it = get_attribute(vm, it, attr);
        jt_value s = soft_str(vm, it);
        jt_sb_add(&b, jt_sdata(s), jt_slen(s));
    }
    return jt_sb_value(&b);
}

static jt_value f_items(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "items", a, 0, NULL);
    if (v.kind == JT_UNDEF) return jt_list_new(vm->arena, 0, false);
    if (v.kind != JT_DICT && v.kind != JT_NS) jt_raise(vm, "Can only get item pairs from a mapping.");
    jt_value out = jt_list_new(vm->arena, v.as.d->n, false);
    for (size_t i = 0; i < v.as.d->n; i++) {
        jt_value pair = jt_list_new(vm->arena, 2, true);
        jt_items(pair)[0] = v.as.d->keys[i];
        jt_items(pair)[1] = v.as.d->vals[i];
        jt_items(out)[i] = pair;
    }
    return out;
}

static jt_value f_batch(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"linecount", "fill_with", NULL};
    jt_check_args(vm, "batch", a, 2, names);
    int64_t count = int_arg(vm, jt_arg(a, 0, "linecount", jt_none(), NULL), "linecount");
    bool fill;
    jt_value fill_with = jt_arg(a, 1, "fill_with", jt_none(), &fill);
    fill = fill && fill_with.kind != JT_NONE;
    if (count <= 0) jt_raise(vm, "batch linecount must be positive");
    jt_value items = jt_iterate(vm, v);
    jt_list_builder out;
    jt_lb_init(&out, vm->arena);
    for (size_t i = 0; i < items.as.l->n; i += (size_t)count) {
        size_t k = items.as.l->n - i < (size_t)count ? items.as.l->n - i : (size_t)count;
        jt_value row = jt_list_new(vm->arena, fill ? (size_t)count : k, false);
        for (size_t j = 0; j < jt_len_list(row); j++) jt_items(row)[j] = j < k ? items.as.l->items[i + j] : fill_with;
        jt_lb_push(&out, row);
    }
    return jt_lb_finish(&out, false);
}

static jt_value f_sum(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"attribute", "start", NULL};
    jt_check_args(vm, "sum", a, 2, names);
    bool has_attr;
    jt_value attr = jt_arg(a, 0, "attribute", jt_none(), &has_attr);
    jt_value total = jt_arg(a, 1, "start", jt_int(0), NULL);
    jt_value items = jt_iterate(vm, v);
    for (size_t i = 0; i < items.as.l->n; i++) {
        jt_value it = items.as.l->items[i];
        if (has_attr && attr.kind != JT_NONE) it = get_attribute(vm, it, attr);
        total = jt_binop(vm, TK_ADD, total, it);
    }
    return total;
}

/* map(filter_name, args...) or map(attribute=..., default=...) */
static jt_value f_map(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_value items = jt_iterate(vm, v);
    jt_value out = jt_list_new(vm->arena, items.as.l->n, false);
    bool by_attr;
    jt_value attr = jt_arg(a, SIZE_MAX, "attribute", jt_none(), &by_attr);
    if (by_attr) {
        bool has_default;
        jt_value dflt = jt_arg(a, SIZE_MAX, "default", jt_none(), &has_default);
        for (size_t i = 0; i < items.as.l->n; i++) {
            jt_value r = get_attribute(vm, items.as.l->items[i], attr);
            if (has_default && r.kind == JT_UNDEF) r = dflt;
            jt_items(out)[i] = r;
        }
        return out;
    }
    if (a->n == 0) jt_raise(vm, "map requires a filter argument");
    if (a->pos[0].kind != JT_STR) jt_raise(vm, "map: the filter name must be a string");
    jt_args rest = {a->n - 1, a->pos + 1, a->n_kw, a->kw_names, a->kw_vals};
    const char *name = jt_sdata(a->pos[0]);
    if (!jt_has_filter(name)) jt_raise(vm, "No filter named '%s'.", name);
    for (size_t i = 0; i < items.as.l->n; i++)
        jt_items(out)[i] = jt_apply_filter(vm, name, items.as.l->items[i], &rest);
    return out;
}

/* select/reject/selectattr/rejectattr share this: keep items whose test
 * (or truthiness) equals want. */
static jt_value select_items(jt_vm *vm, jt_value v, const jt_args *a, bool want, bool by_attr) {
    /* jinja2's select_or_reject starts with `if value:`: none (or any false
     * value) selects nothing rather than failing to iterate */
    if (v.kind != JT_UNDEF && !jt_truthy(v)) return jt_list_new(vm->arena, 0, false);
    jt_value items = jt_iterate(vm, v);
    size_t argi = 0;
    jt_value attr = jt_none();
    if (by_attr) {
        if (a->n < 1) jt_raise(vm, "Missing parameter for attribute name");
        attr = a->pos[argi++];
    }
    const char *test = NULL;
    if (argi < a->n) {
        if (a->pos[argi].kind != JT_STR) jt_raise(vm, "the test name must be a string");
        test = jt_sdata(a->pos[argi++]);
        if (!jt_has_test(test)) jt_raise(vm, "No test named '%s'.", test);
    }
    jt_args rest = {a->n - argi, a->pos + argi, a->n_kw, a->kw_names, a->kw_vals};
    jt_list_builder out;
    jt_lb_init(&out, vm->arena);
    for (size_t i = 0; i < items.as.l->n; i++) {
        jt_value it = items.as.l->items[i];
        jt_value subject = by_attr ? get_attribute(vm, it, attr) : it;
        bool r = test ? jt_apply_test(vm, test, subject, &rest) : jt_truthy(subject);
        if (r == want) jt_lb_push(&out, it);
    }
    return jt_lb_finish(&out, false);
}

static jt_value f_select(jt_vm *vm, jt_value v, const jt_args *a) { return select_items(vm, v, a, true, false); }
static jt_value f_reject(jt_vm *vm, jt_value v, const jt_args *a) { return select_items(vm, v, a, false, false); }
static jt_value f_selectattr(jt_vm *vm, jt_value v, const jt_args *a) { return select_items(vm, v, a, true, true); }
static jt_value f_rejectattr(jt_vm *vm, jt_value v, const jt_args *a) { return select_items(vm, v, a, false, true); }

static jt_value f_attr(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "attr", a, 1, NULL);
    jt_value name = jt_arg(a, 0, NULL, jt_none(), NULL);
    if (name.kind != JT_STR) jt_raise(vm, "attribute name must be a string");
    if (v.kind == JT_DICT) { /* Python getattr: methods only, never keys */
        bool found;
        jt_value m = jt_method(vm, v, jt_sdata(name), &found);
        return found ? m : jt_undef_attr(vm->arena, v, jt_sdata(name));
    }
    return jt_getattr(vm, v, jt_sdata(name));
}

/* ---- values ------------------------------------------------------------------------- */

static jt_value f_default(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"default_value", "boolean", NULL};
    jt_check_args(vm, "default", a, 2, names);
    jt_value dflt = jt_arg(a, 0, "default_value", jt_str_new(vm->arena, "", 0), NULL);
    bool boolean = jt_truthy(jt_arg(a, 1, "boolean", jt_bool(false), NULL));
    if (v.kind == JT_UNDEF || (boolean && !jt_truthy(v))) return dflt;
    return v;
}

/* Python int(str, base): optional sign, digits with single underscores, surrounding whitespace. */
static bool parse_py_int(const char *s, int base, int64_t *out) {
    while (*s == ' ' || (*s >= '\t' && *s <= '\r')) s++;
    bool neg = false;
    if (*s == '+' || *s == '-') neg = *s++ == '-';
    if (base == 16 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s += 2;
    int64_t v = 0;
    int digits = 0;
    bool prev_us = true;
    for (; *s; s++) {
        if (*s == '_') {
            if (prev_us) return false;
            prev_us = true;
            continue;
        }
        int d = *s >= '0' && *s <= '9' ? *s - '0' : *s >= 'a' && *s <= 'z' ? *s - 'a' + 10
                : *s >= 'A' && *s <= 'Z' ? *s - 'A' + 10 : 99;
        if (d >= base) break;
        if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v)) return false;
        digits++;
        prev_us = false;
    }
    while (*s == ' ' || (*s >= '\t' && *s <= '\r')) s++;
    if (*s || !digits || prev_us) return false;
    *out = neg ? -v : v;
    return true;
}

static bool parse_py_float(const char *s, double *out) {
    char *end;
    while (*s == ' ' || (*s >= '\t' && *s <= '\r')) s++;
    if (!*s) return false;
    char buf[128];
    size_t k = 0;
    for (; *s && k < sizeof buf - 1; s++)
        if (*s != '_') buf[k++] = *s;
    buf[k] = 0;
    while (k > 0 && (buf[k - 1] == ' ' || (buf[k - 1] >= '\t' && buf[k - 1] <= '\r'))) buf[--k] = 0;
    if (k > 0 && (buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X'))) return false;
    double d = strtod(buf, &end);
    if (*end || end == buf) return false;
    *out = d;
    return true;
}

static jt_value f_int(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"default", "base", NULL};
    jt_check_args(vm, "int", a, 2, names);
    jt_value dflt = jt_arg(a, 0, "default", jt_int(0), NULL);
    int64_t base = int_arg(vm, jt_arg(a, 1, "base", jt_int(10), NULL), "base");
    switch (v.kind) {
    case JT_INT: return v;
    case JT_BOOL: return jt_int(v.as.b);
    case JT_FLOAT:
        if (!isfinite(v.as.f) || fabs(v.as.f) >= 9.2e18) return dflt;
        return jt_int((int64_t)v.as.f);
    case JT_STR: {
        int64_t i;
        double d;
        if (base >= 2 && base <= 36 && parse_py_int(jt_sdata(v), (int)base, &i)) return jt_int(i);
        if (parse_py_float(jt_sdata(v), &d) && isfinite(d) && fabs(d) < 9.2e18) return jt_int((int64_t)d);
        return dflt;
    }
    default: return dflt;
    }
}

static jt_value f_float(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"default", NULL};
    jt_check_args(vm, "float", a, 1, names);
    jt_value dflt = jt_arg(a, 0, "default", jt_float(0.0), NULL);
    double d;
    if (jt_is_number(v)) return jt_float(jt_as_double(v));
    if (v.kind == JT_STR && parse_py_float(jt_sdata(v), &d)) return jt_float(d);
    return dflt;
}

static jt_value f_abs(jt_vm *vm, jt_value v, const jt_args *a) {
    jt_check_args(vm, "abs", a, 0, NULL);
    if (v.kind == JT_INT) {
        if (v.as.i == INT64_MIN) jt_raise(vm, "integer overflow");
        return jt_int(v.as.i < 0 ? -v.as.i : v.as.i);
    }
    if (v.kind == JT_BOOL) return jt_int(v.as.b);
    if (v.kind == JT_FLOAT) return jt_float(fabs(v.as.f));
    if (v.kind == JT_UNDEF) jt_raise_undefined(vm, v);
    jt_raise(vm, "bad operand type for abs(): '%s'", jt_type_name(v));
}

/* Python round(x, ndigits): correctly rounded, ties to even. */
static double py_round(double x, int64_t nd) {
    if (!isfinite(x)) return x;
    if (nd >= 0) {
        if (nd > 300) return x;
        char buf[400];
        snprintf(buf, sizeof buf, "%.*f", (int)nd, x);
        return strtod(buf, NULL);
    }
    double p = pow(10.0, (double)-nd);
    return nearbyint(x / p) * p;
}

static jt_value f_round(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"precision", "method", NULL};
    jt_check_args(vm, "round", a, 2, names);
    int64_t precision = int_arg(vm, jt_arg(a, 0, "precision", jt_int(0), NULL), "precision");
    jt_value method = jt_arg(a, 1, "method", jt_str_cstr(vm->arena, "common"), NULL);
    if (v.kind == JT_UNDEF) jt_raise_undefined(vm, v);
    if (!jt_is_number(v)) jt_raise(vm, "type %s doesn't define __round__ method", jt_type_name(v));
    if (jt_str_eq_c(method, "common")) {
        if (v.kind != JT_FLOAT) {
            int64_t i = v.kind == JT_BOOL ? v.as.b : v.as.i;
            if (precision >= 0) return jt_int(i);
            return jt_int((int64_t)py_round((double)i, precision));
        }
        return jt_float(py_round(v.as.f, precision));
    }
    bool ceil_ = jt_str_eq_c(method, "ceil");
    if (!ceil_ && !jt_str_eq_c(method, "floor")) jt_raise(vm, "method must be common, ceil or floor");
    double p = pow(10.0, (double)precision);
    double x = jt_as_double(v) * p;
    return jt_float((ceil_ ? ceil(x) : floor(x)) / p);
}

/* transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) */
static jt_value f_tojson(jt_vm *vm, jt_value v, const jt_args *a) {
    static const char *const names[] = {"ensure_ascii", "indent", "separators", "sort_keys", NULL};
    jt_check_args(vm, "tojson", a, 4, names);
    jt_json_style st = {0};
    st.ensure_ascii = jt_truthy(jt_arg(a, 0, "ensure_ascii", jt_bool(false), NULL));
    jt_value indent = jt_arg(a, 1, "indent", jt_none(), NULL);
    jt_value seps = jt_arg(a, 2, "separators", jt_none(), NULL);
    st.sort_keys = jt_truthy(jt_arg(a, 3, "sort_keys", jt_bool(false), NULL));
    if (indent.kind == JT_STR) st.indent = jt_sdata(indent);
    else if (indent.kind == JT_INT || indent.kind == JT_BOOL) {
        int64_t w = indent.kind == JT_BOOL ? indent.as.b : indent.as.i;
        if (w > 256) jt_raise(vm, "tojson indent too large");
        char *sp = jt_alloc(vm->arena, (size_t)(w > 0 ? w : 0) + 1);
        for (int64_t i = 0; i < w; i++) sp[i] = ' ';
        st.indent = sp;
    } else if (indent.kind != JT_NONE) jt_raise(vm, "tojson indent must be an int or a string");
    if (seps.kind != JT_NONE) {
        if (!jt_is_seq(seps) || seps.as.l->n != 2 || seps.as.l->items[0].kind != JT_STR ||
            seps.as.l->items[1].kind != JT_STR)
            jt_raise(vm, "tojson separators must be a pair of strings");
        st.item_sep = jt_sdata(seps.as.l->items[0]);
        st.key_sep = jt_sdata(seps.as.l->items[1]);
    }
    jt_sb b;
    jt_sb_init(&b, vm->arena);
    const char *e = jt_json_write(&b, v, &st, MAX_VALUE_DEPTH);
    if (e) jt_raise(vm, "%s", e);
    return jt_sb_value(&b);
}

/* ---- the table ----------------------------------------------------------------------- */

static const struct {
    const char *name;
    filter_fn fn;
} filters[] = {
    {"abs", f_abs},           {"attr", f_attr},         {"batch", f_batch},
    {"capitalize", f_capitalize}, {"center", f_center}, {"count", f_length},
    {"d", f_default},         {"default", f_default},   {"dictsort", f_dictsort},
    {"e", f_escape},          {"escape", f_escape},     {"first", f_first},
    {"float", f_float},       {"format", f_format},     {"indent", f_indent},
    {"int", f_int},           {"items", f_items},       {"join", f_join},
    {"last", f_last},         {"length", f_length},     {"list", f_list},
    {"lower", f_lower},       {"map", f_map},           {"max", f_max},
    {"min", f_min},           {"reject", f_reject},     {"rejectattr", f_rejectattr},
    {"replace", f_replace},   {"reverse", f_reverse},   {"round", f_round},
    {"safe", f_safe},         {"select", f_select},     {"selectattr", f_selectattr},
    {"sort", f_sort},         {"string", f_string},     {"sum", f_sum},
    {"title", f_title},       {"tojson", f_tojson},     {"trim", f_trim},
    {"unique", f_unique},     {"upper", f_upper},       {"wordcount", f_wordcount},
};

static filter_fn find_filter(const char *name) {
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (!strcmp(filters[i].name, name)) return filters[i].fn;
    return NULL;
}

bool jt_has_filter(const char *name) { return find_filter(name) != NULL; }

jt_value jt_apply_filter(jt_vm *vm, const char *name, jt_value operand, const jt_args *args) {
    filter_fn fn = find_filter(name);
    if (!fn) jt_raise(vm, "No filter named '%s'.", name);
    jt_step(vm);
    return fn(vm, operand, args);
}
