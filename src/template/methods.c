/* Python methods that templates call on values: str (strip, split, startswith,
 * format, ...), dict (get, items, keys, values) and list (index, count).
 * Methods that would mutate a list or dict resolve to the sandbox's "unsafe"
 * undefined, so calling them fails as in ImmutableSandboxedEnvironment. */
#include <stdio.h>
#include <string.h>

#include "template/format.h"
#include "template/interp.h"
#include "template/pystr.h"
#include "template/unicode.h"

typedef struct {
    const char *name;
    jt_builtin_fn fn;
} method;

static jt_value str_arg(jt_vm *vm, const jt_args *a, size_t i, const char *name, const char *fname) {
    bool given;
    jt_value v = jt_arg(a, i, name, jt_none(), &given);
    if (!given) jt_raise(vm, "%s() missing required argument '%s'", fname, name);
    if (v.kind != JT_STR) jt_raise(vm, "%s() argument must be str, not %s", fname, jt_type_name(v));
    return v;
}

static int64_t opt_int(jt_vm *vm, const jt_args *a, size_t i, const char *name, int64_t dflt) {
    jt_value v = jt_arg(a, i, name, jt_none(), NULL);
    if (v.kind == JT_NONE) return dflt;
    if (v.kind == JT_INT) return v.as.i;
    if (v.kind == JT_BOOL) return v.as.b;
    jt_raise(vm, "'%s' object cannot be interpreted as an integer", jt_type_name(v));
}

/* ---- str ------------------------------------------------------------------------- */

static jt_value strip_common(jt_vm *vm, jt_value self, const jt_args *a, int sides, const char *fname) {
    static const char *const names[] = {"chars", NULL};
    jt_check_args(vm, fname, a, 1, names);
    jt_value chars = jt_arg(a, 0, "chars", jt_none(), NULL);
    if (chars.kind == JT_NONE) return jt_pystr_strip(vm->arena, self, NULL, sides);
    if (chars.kind != JT_STR) jt_raise(vm, "%s arg must be None or str", fname);
    return jt_pystr_strip(vm->arena, self, &chars, sides);
}

static jt_value m_strip(jt_vm *vm, jt_value s, const jt_args *a) { return strip_common(vm, s, a, JT_STRIP_BOTH, "strip"); }
static jt_value m_lstrip(jt_vm *vm, jt_value s, const jt_args *a) { return strip_common(vm, s, a, JT_STRIP_LEFT, "lstrip"); }
static jt_value m_rstrip(jt_vm *vm, jt_value s, const jt_args *a) { return strip_common(vm, s, a, JT_STRIP_RIGHT, "rstrip"); }

static jt_value split_common(jt_vm *vm, jt_value s, const jt_args *a, bool right) {
    static const char *const names[] = {"sep", "maxsplit", NULL};
    jt_check_args(vm, right ? "rsplit" : "split", a, 2, names);
    jt_value sep = jt_arg(a, 0, "sep", jt_none(), NULL);
    int64_t maxsplit = opt_int(vm, a, 1, "maxsplit", -1);
    if (sep.kind == JT_NONE) return jt_pystr_split(vm->arena, s, NULL, maxsplit, right);
    if (sep.kind != JT_STR) jt_raise(vm, "must be str or None, not %s", jt_type_name(sep));
    if (jt_slen(sep) == 0) jt_raise(vm, "empty separator");
    return jt_pystr_split(vm->arena, s, &sep, maxsplit, right);
}

static jt_value m_split(jt_vm *vm, jt_value s, const jt_args *a) { return split_common(vm, s, a, false); }
static jt_value m_rsplit(jt_vm *vm, jt_value s, const jt_args *a) { return split_common(vm, s, a, true); }

static jt_value m_splitlines(jt_vm *vm, jt_value s, const jt_args *a) {
    static const char *const names[] = {"keepends", NULL};
    jt_check_args(vm, "splitlines", a, 1, names);
    return jt_pystr_splitlines(vm->arena, s, jt_truthy(jt_arg(a, 0, "keepends", jt_bool(false), NULL)));
}

/* startswith/endswith accept a string or a tuple of strings, and optional start/end. */
static jt_value affix_common(jt_vm *vm, jt_value s, const jt_args *a, bool ends) {
    const char *fname = ends ? "endswith" : "startswith";
    jt_check_args(vm, fname, a, 3, NULL);
    if (a->n < 1) jt_raise(vm, "%s() takes at least 1 argument (0 given)", fname);
    jt_value what = a->pos[0];
    if (a->n > 1) { /* restrict to s[start:end] */
        jt_value end = a->n > 2 ? a->pos[2] : jt_none();
        s = jt_slice(vm, s, a->pos[1], end, jt_none());
    }
    size_t n = 1;
    const jt_value *cands = &what;
    if (what.kind == JT_TUPLE) {
        n = what.as.l->n;
        cands = what.as.l->items;
    }
    for (size_t i = 0; i < n; i++) {
        if (cands[i].kind != JT_STR)
            jt_raise(vm, "%s first arg must be str or a tuple of str, not %s", fname, jt_type_name(cands[i]));
        if (ends ? jt_pystr_endswith(s, cands[i]) : jt_pystr_startswith(s, cands[i])) return jt_bool(true);
    }
    return jt_bool(false);
}

static jt_value m_startswith(jt_vm *vm, jt_value s, const jt_args *a) { return affix_common(vm, s, a, false); }
static jt_value m_endswith(jt_vm *vm, jt_value s, const jt_args *a) { return affix_common(vm, s, a, true); }

static jt_value m_replace(jt_vm *vm, jt_value s, const jt_args *a) {
    static const char *const names[] = {"old", "new", "count", NULL};
    jt_check_args(vm, "replace", a, 3, names);
    jt_value old = str_arg(vm, a, 0, "old", "replace"), new_ = str_arg(vm, a, 1, "new", "replace");
    return jt_pystr_replace(vm->arena, s, old, new_, opt_int(vm, a, 2, "count", -1));
}

static jt_value m_upper(jt_vm *vm, jt_value s, const jt_args *a) {
    jt_check_args(vm, "upper", a, 0, NULL);
    return jt_pystr_upper(vm->arena, s);
}
static jt_value m_lower(jt_vm *vm, jt_value s, const jt_args *a) {
    jt_check_args(vm, "lower", a, 0, NULL);
    return jt_pystr_lower(vm->arena, s);
}
static jt_value m_title(jt_vm *vm, jt_value s, const jt_args *a) {
    jt_check_args(vm, "title", a, 0, NULL);
    return jt_pystr_title(vm->arena, s);
}
static jt_value m_capitalize(jt_vm *vm, jt_value s, const jt_args *a) {
    jt_check_args(vm, "capitalize", a, 0, NULL);
    return jt_pystr_capitalize(vm->arena, s);
}

static jt_value find_common(jt_vm *vm, jt_value s, const jt_args *a, bool right, bool raise, const char *fname) {
    jt_check_args(vm, fname, a, 3, NULL);
    jt_value sub = str_arg(vm, a, 0, "sub", fname);
    int64_t start = opt_int(vm, a, 1, NULL, 0), end = opt_int(vm, a, 2, NULL, INT64_MAX / 2);
    int64_t r = jt_pystr_find(s, sub, start, end, right);
    if (r < 0 && raise) jt_raise(vm, "substring not found");
    return jt_int(r);
}

static jt_value m_find(jt_vm *vm, jt_value s, const jt_args *a) { return find_common(vm, s, a, false, false, "find"); }
static jt_value m_rfind(jt_vm *vm, jt_value s, const jt_args *a) { return find_common(vm, s, a, true, false, "rfind"); }
static jt_value m_index(jt_vm *vm, jt_value s, const jt_args *a) { return find_common(vm, s, a, false, true, "index"); }
static jt_value m_rindex(jt_vm *vm, jt_value s, const jt_args *a) { return find_common(vm, s, a, true, true, "rindex"); }

static jt_value m_count(jt_vm *vm, jt_value s, const jt_args *a) {
    jt_check_args(vm, "count", a, 1, NULL);
    return jt_int(jt_pystr_count(s, str_arg(vm, a, 0, "x", "count")));
}

static jt_value m_join(jt_vm *vm, jt_value sep, const jt_args *a) {
    jt_check_args(vm, "join", a, 1, NULL);
    if (a->n < 1) jt_raise(vm, "join() takes exactly one argument (0 given)");
    jt_value items = jt_iterate(vm, a->pos[0]);
    jt_sb b;
    jt_sb_init(&b, vm->arena);
    for (size_t i = 0; i < items.as.l->n; i++) {
        jt_value it = items.as.l->items[i];
        if (it.kind != JT_STR)
            jt_raise(vm, "sequence item %zu: expected str instance, %s found", i, jt_type_name(it));
        if (i) jt_sb_add(&b, jt_sdata(sep), jt_slen(sep));
        jt_sb_add(&b, jt_sdata(it), jt_slen(it));
    }
    return jt_sb_value(&b);
}

static bool all_cps(jt_value s, bool (*pred)(int32_t)) {
    const char *p = jt_sdata(s);
    size_t n = jt_slen(s), pos = 0;
    if (n == 0) return false;
    while (pos < n)
        if (!pred(jt_utf8_next(p, n, &pos))) return false;
    return true;
}

static bool cp_digit(int32_t c) { return c >= '0' && c <= '9'; }

static jt_value m_isdigit(jt_vm *vm, jt_value s, const jt_args *a) { jt_check_args(vm, "isdigit", a, 0, NULL); return jt_bool(all_cps(s, cp_digit)); }
static jt_value m_isalpha(jt_vm *vm, jt_value s, const jt_args *a) { jt_check_args(vm, "isalpha", a, 0, NULL); return jt_bool(all_cps(s, jt_py_isalpha)); }
static jt_value m_isalnum(jt_vm *vm, jt_value s, const jt_args *a) { jt_check_args(vm, "isalnum", a, 0, NULL); return jt_bool(all_cps(s, jt_py_isalnum)); }
static jt_value m_isspace(jt_vm *vm, jt_value s, const jt_args *a) { jt_check_args(vm, "isspace", a, 0, NULL); return jt_bool(all_cps(s, jt_py_isspace)); }
static jt_value m_islower(jt_vm *vm, jt_value s, const jt_args *a) { jt_check_args(vm, "islower", a, 0, NULL); return jt_bool(jt_pystr_islower(s)); }
static jt_value m_isupper(jt_vm *vm, jt_value s, const jt_args *a) { jt_check_args(vm, "isupper", a, 0, NULL); return jt_bool(jt_pystr_isupper(s)); }

static jt_value m_removeprefix(jt_vm *vm, jt_value s, const jt_args *a) {
    jt_check_args(vm, "removeprefix", a, 1, NULL);
    jt_value p = str_arg(vm, a, 0, "prefix", "removeprefix");
    if (!jt_pystr_startswith(s, p)) return s;
    return jt_str_new(vm->arena, jt_sdata(s) + jt_slen(p), jt_slen(s) - jt_slen(p));
}

static jt_value m_removesuffix(jt_vm *vm, jt_value s, const jt_args *a) {
    jt_check_args(vm, "removesuffix", a, 1, NULL);
    jt_value p = str_arg(vm, a, 0, "suffix", "removesuffix");
    if (!jt_pystr_endswith(s, p) || jt_slen(p) == 0) return s;
    return jt_str_new(vm->arena, jt_sdata(s), jt_slen(s) - jt_slen(p));
}

static jt_value partition_common(jt_vm *vm, jt_value s, const jt_args *a, bool right) {
    jt_check_args(vm, right ? "rpartition" : "partition", a, 1, NULL);
    jt_value sep = str_arg(vm, a, 0, "sep", right ? "rpartition" : "partition");
    if (jt_slen(sep) == 0) jt_raise(vm, "empty separator");
    jt_value parts = jt_pystr_split(vm->arena, s, &sep, 1, right);
    jt_value out = jt_list_new(vm->arena, 3, true);
    jt_value empty = jt_str_new(vm->arena, "", 0);
    if (parts.as.l->n == 1) {
        jt_items(out)[0] = right ? empty : s;
        jt_items(out)[1] = empty;
        jt_items(out)[2] = right ? s : empty;
    } else {
        jt_items(out)[0] = parts.as.l->items[0];
        jt_items(out)[1] = sep;
        jt_items(out)[2] = parts.as.l->items[1];
    }
    return out;
}

static jt_value m_partition(jt_vm *vm, jt_value s, const jt_args *a) { return partition_common(vm, s, a, false); }
static jt_value m_rpartition(jt_vm *vm, jt_value s, const jt_args *a) { return partition_common(vm, s, a, true); }

/* str.format with {} / {0} / {name} fields, !r/!s conversions and no format
 * specs beyond the empty one (what chat templates use). */
static jt_value m_format(jt_vm *vm, jt_value s, const jt_args *a) {
    const char *p = jt_sdata(s);
    size_t n = jt_slen(s), auto_index = 0;
    jt_sb b;
    jt_sb_init(&b, vm->arena);
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '}' ) {
            if (i + 1 < n && p[i + 1] == '}') i++;
            else jt_raise(vm, "Single '}' encountered in format string");
            jt_sb_addch(&b, '}');
            continue;
        }
        if (c != '{') {
            jt_sb_addch(&b, c);
            continue;
        }
        if (i + 1 < n && p[i + 1] == '{') {
            jt_sb_addch(&b, '{');
            i++;
            continue;
        }
        const char *close = memchr(p + i, '}', n - i);
        if (!close) jt_raise(vm, "Single '{' encountered in format string");
        size_t fs = i + 1, fe = (size_t)(close - p);
        char conv = 0;
        size_t name_end = fe;
        for (size_t k = fs; k < fe; k++)
            if (p[k] == '!' || p[k] == ':') {
                name_end = k;
                if (p[k] == '!' && k + 1 < fe) conv = p[k + 1];
                break;
            }
        for (size_t k = name_end; k < fe; k++)
            if (p[k] == ':' && k + 1 < fe) jt_raise(vm, "format specs are not supported in str.format");
        jt_value v;
        if (name_end == fs) {
            if (auto_index >= a->n) jt_raise(vm, "Replacement index %zu out of range for positional args tuple", auto_index);
            v = a->pos[auto_index++];
        } else if (p[fs] >= '0' && p[fs] <= '9') {
            size_t idx = 0;
            for (size_t k = fs; k < name_end; k++) idx = idx * 10 + (size_t)(p[k] - '0');
            if (idx >= a->n) jt_raise(vm, "Replacement index %zu out of range for positional args tuple", idx);
            v = a->pos[idx];
        } else {
            char *key = jt_strndup(vm->arena, p + fs, name_end - fs);
            bool given;
            v = jt_arg(a, SIZE_MAX, key, jt_none(), &given);
            if (!given) jt_raise(vm, "KeyError: '%s'", key);
        }
        if (conv == 'r') jt_write_repr(&b, v, 512);
        else {
            jt_value str = jt_to_str(vm, v);
            jt_sb_add(&b, jt_sdata(str), jt_slen(str));
        }
        i = fe;
    }
    return jt_sb_value(&b);
}

static const method str_methods[] = {
    {"strip", m_strip},         {"lstrip", m_lstrip},         {"rstrip", m_rstrip},
    {"split", m_split},         {"rsplit", m_rsplit},         {"splitlines", m_splitlines},
    {"startswith", m_startswith}, {"endswith", m_endswith},   {"replace", m_replace},
    {"upper", m_upper},         {"lower", m_lower},           {"title", m_title},
    {"capitalize", m_capitalize}, {"find", m_find},           {"rfind", m_rfind},
    {"index", m_index},         {"rindex", m_rindex},         {"count", m_count},
    {"join", m_join},           {"format", m_format},         {"isdigit", m_isdigit},
    {"isalpha", m_isalpha},     {"isalnum", m_isalnum},       {"isspace", m_isspace},
    {"islower", m_islower},     {"isupper", m_isupper},       {"removeprefix", m_removeprefix},
    {"removesuffix", m_removesuffix}, {"partition", m_partition}, {"rpartition", m_rpartition},
};

/* ---- dict ------------------------------------------------------------------------- */

static jt_value m_get(jt_vm *vm, jt_value d, const jt_args *a) {
    jt_check_args(vm, "get", a, 2, NULL);
    if (a->n < 1) jt_raise(vm, "get expected at least 1 argument, got 0");
    const jt_value *v = jt_dict_get(d.as.d, a->pos[0]);
    return v ? *v : (a->n > 1 ? a->pos[1] : jt_none());
}

static jt_value dict_view(jt_vm *vm, jt_value d, int view) {
    jt_value out = jt_list_new(vm->arena, d.as.d->n, false);
    out.view = (uint8_t)view;
    for (size_t i = 0; i < d.as.d->n; i++) {
        if (view == JT_VIEW_KEYS) jt_items(out)[i] = d.as.d->keys[i];
        else if (view == JT_VIEW_VALUES) jt_items(out)[i] = d.as.d->vals[i];
        else {
            jt_value pair = jt_list_new(vm->arena, 2, true);
            jt_items(pair)[0] = d.as.d->keys[i];
            jt_items(pair)[1] = d.as.d->vals[i];
            jt_items(out)[i] = pair;
        }
    }
    return out;
}

static jt_value m_items(jt_vm *vm, jt_value d, const jt_args *a) {
    jt_check_args(vm, "items", a, 0, NULL);
    return dict_view(vm, d, JT_VIEW_ITEMS);
}
static jt_value m_keys(jt_vm *vm, jt_value d, const jt_args *a) {
    jt_check_args(vm, "keys", a, 0, NULL);
    return dict_view(vm, d, JT_VIEW_KEYS);
}
static jt_value m_values(jt_vm *vm, jt_value d, const jt_args *a) {
    jt_check_args(vm, "values", a, 0, NULL);
    return dict_view(vm, d, JT_VIEW_VALUES);
}
static jt_value m_dict_copy(jt_vm *vm, jt_value d, const jt_args *a) {
    jt_check_args(vm, "copy", a, 0, NULL);
    jt_value out = jt_dict_new(vm->arena, d.as.d->n);
    for (size_t i = 0; i < d.as.d->n; i++) jt_dict_set(vm->arena, out.as.d, d.as.d->keys[i], d.as.d->vals[i]);
    return out;
}

static const method dict_methods[] = {
    {"get", m_get}, {"items", m_items}, {"keys", m_keys}, {"values", m_values}, {"copy", m_dict_copy},
};
static const char *const dict_unsafe[] = {"clear", "pop", "popitem", "setdefault", "update", NULL};

/* ---- list ------------------------------------------------------------------------- */

static jt_value m_list_index(jt_vm *vm, jt_value l, const jt_args *a) {
    jt_check_args(vm, "index", a, 1, NULL);
    if (a->n < 1) jt_raise(vm, "index expected 1 argument, got 0");
    for (size_t i = 0; i < l.as.l->n; i++)
        if (jt_equal(l.as.l->items[i], a->pos[0])) return jt_int((int64_t)i);
    jt_raise(vm, "value is not in list");
}

static jt_value m_list_count(jt_vm *vm, jt_value l, const jt_args *a) {
    jt_check_args(vm, "count", a, 1, NULL);
    if (a->n < 1) jt_raise(vm, "count() takes exactly one argument (0 given)");
    int64_t c = 0;
    for (size_t i = 0; i < l.as.l->n; i++) c += jt_equal(l.as.l->items[i], a->pos[0]);
    return jt_int(c);
}

static jt_value m_list_copy(jt_vm *vm, jt_value l, const jt_args *a) {
    jt_check_args(vm, "copy", a, 0, NULL);
    jt_value out = jt_list_new(vm->arena, l.as.l->n, false);
    if (l.as.l->n) memcpy(jt_items(out), l.as.l->items, l.as.l->n * sizeof(jt_value));
    return out;
}

static const method list_methods[] = {{"index", m_list_index}, {"count", m_list_count}, {"copy", m_list_copy}};
static const char *const list_unsafe[] = {"append", "clear", "pop", "reverse", "insert",
                                          "sort", "extend", "remove", NULL};

static jt_value find_method(jt_vm *vm, jt_value obj, const char *name, const method *table,
                            size_t n, const char *const *unsafe, bool *found) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(table[i].name, name)) {
            *found = true;
            return jt_make_builtin(vm, table[i].name, table[i].fn, obj);
        }
    for (size_t i = 0; unsafe && unsafe[i]; i++)
        if (!strcmp(unsafe[i], name)) {
            *found = true;
            return jt_undef_unsafe(vm->arena, obj, unsafe[i]);
        }
    *found = false;
    return jt_undef_plain();
}

jt_value jt_method(jt_vm *vm, jt_value obj, const char *name, bool *found) {
    switch (obj.kind) {
    case JT_STR:
        return find_method(vm, obj, name, str_methods, sizeof str_methods / sizeof str_methods[0], NULL, found);
    case JT_DICT:
        return find_method(vm, obj, name, dict_methods, sizeof dict_methods / sizeof dict_methods[0], dict_unsafe, found);
    case JT_LIST:
        return find_method(vm, obj, name, list_methods, sizeof list_methods / sizeof list_methods[0], list_unsafe, found);
    case JT_TUPLE: return find_method(vm, obj, name, list_methods, 2, NULL, found);
    default: *found = false; return jt_undef_plain();
    }
}
