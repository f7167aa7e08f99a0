/* str() and repr() of template values as CPython writes them. Float repr is
 * the shortest string that reads back to the same double, laid out with
 * CPython's rule: scientific when the decimal exponent is < -4 or >= 16. */
#include "template/format.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/unicode.h"

void jt_format_float(double f, char *buf) {
    if (isnan(f)) {
        strcpy(buf, "nan");
        return;
    }
    if (isinf(f)) {
        strcpy(buf, f < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[40];
    int prec;
    for (prec = 0; prec < 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp = [-]d[.ddd]e[+-]XX: collect the digits and the exponent */
    char digits[24];
    int nd = 0, exp10;
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    int decpt = exp10 + 1; /* position of the decimal point after digits[0..decpt) */
    char *o = buf;
    if (neg) *o++ = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -decpt; i++) *o++ = '0';
            memcpy(o, digits, (size_t)nd);
            o += nd;
        } else if (decpt >= nd) {
            memcpy(o, digits, (size_t)nd);
            o += nd;
            for (int i = nd; i < decpt; i++) *o++ = '0';
            *o++ = '.';
            *o++ = '0';
        } else {
            memcpy(o, digits, (size_t)decpt);
            o += decpt;
            *o++ = '.';
            memcpy(o, digits + decpt, (size_t)(nd - decpt));
            o += nd - decpt;
        }
        *o = 0;
    } else {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)(nd - 1));
            o += nd - 1;
        }
        int e = decpt - 1;
        sprintf(o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
}

void jt_write_str_repr(jt_sb *b, const char *s, size_t n) {
    bool has_single = memchr(s, '\'', n) != NULL, has_double = memchr(s, '"', n) != NULL;
    char quote = has_single && !has_double ? '"' : '\'';
    jt_sb_addch(b, quote);
    size_t pos = 0;
    while (pos < n) {
        size_t start = pos;
        int32_t cp = jt_utf8_next(s, n, &pos);
        char esc[16];
        if (cp == quote || cp == '\\') {
            esc[0] = '\\';
            esc[1] = (char)cp;
            jt_sb_add(b, esc, 2);
        } else if (cp == '\n') jt_sb_addc(b, "\\n");
        else if (cp == '\r') jt_sb_addc(b, "\\r");
        else if (cp == '\t') jt_sb_addc(b, "\\t");
        else if (jt_py_isprintable(cp)) jt_sb_add(b, s + start, pos - start);
        else {
            if (cp < 0x100) snprintf(esc, sizeof esc, "\\x%02x", (unsigned)cp);
            else if (cp < 0x10000) snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
            else snprintf(esc, sizeof esc, "\\U%08x", (unsigned)cp);
            jt_sb_addc(b, esc);
        }
    }
    jt_sb_addch(b, quote);
}

static bool write_value(jt_sb *b, jt_value v, bool repr, int depth);

static bool write_items(jt_sb *b, const jt_list *l, const char *open, const char *close,
                        int depth) {
    jt_sb_addc(b, open);
    for (size_t i = 0; i < l->n; i++) {
        if (i) jt_sb_addc(b, ", ");
        if (!write_value(b, l->items[i], true, depth - 1)) return false;
    }
    jt_sb_addc(b, close);
    return true;
}

static bool write_dict(jt_sb *b, const jt_dict *d, int depth) {
    jt_sb_addch(b, '{');
    for (size_t i = 0; i < d->n; i++) {
        if (i) jt_sb_addc(b, ", ");
        if (!write_value(b, d->keys[i], true, depth - 1)) return false;
        jt_sb_addc(b, ": ");
        if (!write_value(b, d->vals[i], true, depth - 1)) return false;
    }
    jt_sb_addch(b, '}');
    return true;
}

static bool write_value(jt_sb *b, jt_value v, bool repr, int depth) {
    char num[40];
    if (depth <= 0) return false;
    switch (v.kind) {
    case JT_UNDEF:
        if (repr) jt_sb_addc(b, "Undefined");
        return true;
    case JT_NONE: jt_sb_addc(b, "None"); return true;
    case JT_BOOL: jt_sb_addc(b, v.as.b ? "True" : "False"); return true;
    case JT_INT:
        snprintf(num, sizeof num, "%" PRId64, v.as.i);
        jt_sb_addc(b, num);
        return true;
    case JT_FLOAT:
        jt_format_float(v.as.f, num);
        jt_sb_addc(b, num);
        return true;
    case JT_STR:
        if (repr) jt_write_str_repr(b, v.as.s->bytes, v.as.s->len);
        else jt_sb_add(b, v.as.s->bytes, v.as.s->len);
        return true;
    case JT_LIST: {
        static const char *const view_names[] = {"", "dict_items(", "dict_keys(", "dict_values("};
        jt_sb_addc(b, view_names[v.view]);
        if (!write_items(b, v.as.l, "[", "]", depth)) return false;
        if (v.view) jt_sb_addch(b, ')');
        return true;
    }
    case JT_TUPLE:
        if (v.as.l->n == 1) {
            jt_sb_addch(b, '(');
            if (!write_value(b, v.as.l->items[0], true, depth - 1)) return false;
            jt_sb_addc(b, ",)");
            return true;
        }
        return write_items(b, v.as.l, "(", ")", depth);
    case JT_DICT: return write_dict(b, v.as.d, depth);
    case JT_NS:
        jt_sb_addc(b, "<Namespace ");
        if (!write_dict(b, v.as.d, depth)) return false;
        jt_sb_addch(b, '>');
        return true;
    case JT_LOOP: jt_sb_addc(b, "<LoopContext>"); return true;
    default: jt_sb_addc(b, "<function>"); return true;
    }
}

bool jt_write_str(jt_sb *b, jt_value v, int max_depth) { return write_value(b, v, false, max_depth); }
bool jt_write_repr(jt_sb *b, jt_value v, int max_depth) { return write_value(b, v, true, max_depth); }
