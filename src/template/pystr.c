/* Python str methods over UTF-8, code point by code point. */
#include "template/pystr.h"

#include <string.h>

#include "template/unicode.h"

static bool in_chars(int32_t cp, const jt_value *chars) {
    const char *s = jt_sdata(*chars);
    size_t n = jt_slen(*chars), pos = 0;
    while (pos < n)
        if (jt_utf8_next(s, n, &pos) == cp) return true;
    return false;
}

jt_value jt_pystr_strip(jt_arena *a, jt_value v, const jt_value *chars, int sides) {
    const char *s = jt_sdata(v);
    size_t n = jt_slen(v), start = 0, end = n;
    if (sides & JT_STRIP_LEFT) {
        while (start < n) {
            size_t next = start;
            int32_t cp = jt_utf8_next(s, n, &next);
            if (chars ? !in_chars(cp, chars) : !jt_py_isspace(cp)) break;
            start = next;
        }
    }
    if (sides & JT_STRIP_RIGHT) {
        while (end > start) {
            size_t b = end - 1;
            while (b > start && ((unsigned char)s[b] & 0xc0) == 0x80 && end - b < 4) b--;
            size_t p = b;
            int32_t cp = jt_utf8_next(s, n, &p);
            if (p != end || (chars ? !in_chars(cp, chars) : !jt_py_isspace(cp))) break;
            end = b;
        }
    }
    if (start == 0 && end == n) return v;
    return jt_str_new(a, s + start, end - start);
}

/* Maps every code point through f. */
static jt_value map_cps(jt_arena *a, jt_value v, int32_t (*f)(int32_t)) {
    jt_sb b;
    jt_sb_init(&b, a);
    const char *s = jt_sdata(v);
    size_t n = jt_slen(v), pos = 0;
    while (pos < n) {
        char buf[4];
        int32_t cp = jt_utf8_next(s, n, &pos);
        jt_sb_add(&b, buf, jt_utf8_put(f(cp), buf));
    }
    return jt_sb_value(&b);
}

jt_value jt_pystr_upper(jt_arena *a, jt_value s) { return map_cps(a, s, jt_to_upper); }
jt_value jt_pystr_lower(jt_arena *a, jt_value s) { return map_cps(a, s, jt_to_lower); }

jt_value jt_pystr_title(jt_arena *a, jt_value v) {
    jt_sb b;
    jt_sb_init(&b, a);
    const char *s = jt_sdata(v);
    size_t n = jt_slen(v), pos = 0;
    bool prev_cased = false;
    while (pos < n) {
        char buf[4];
        int32_t cp = jt_utf8_next(s, n, &pos);
        int32_t out = prev_cased ? jt_to_lower(cp) : jt_to_title(cp);
        prev_cased = jt_is_cased(cp);
        jt_sb_add(&b, buf, jt_utf8_put(out, buf));
    }
    return jt_sb_value(&b);
}

jt_value jt_pystr_capitalize(jt_arena *a, jt_value v) {
    jt_sb b;
    jt_sb_init(&b, a);
    const char *s = jt_sdata(v);
    size_t n = jt_slen(v), pos = 0;
    bool first = true;
    while (pos < n) {
        char buf[4];
        int32_t cp = jt_utf8_next(s, n, &pos);
        jt_sb_add(&b, buf, jt_utf8_put(first ? jt_to_title(cp) : jt_to_lower(cp), buf));
        first = false;
    }
    return jt_sb_value(&b);
}

static bool space_at(const char *s, size_t n, size_t pos, size_t *next) {
    size_t p = pos;
    int32_t cp = jt_utf8_next(s, n, &p);
    *next = p;
    return jt_py_isspace(cp);
}

jt_value jt_pystr_split(jt_arena *a, jt_value v, const jt_value *sep, int64_t maxsplit, bool right) {
    const char *s = jt_sdata(v);
    size_t n = jt_slen(v);
    jt_list_builder lb;
    jt_lb_init(&lb, a);
    if (!sep) { /* runs of whitespace, no empty strings */
        /* collect all words with positions, then honour maxsplit from the chosen side */
        size_t *starts = jt_alloc(a, (n + 1) * sizeof *starts), *ends = jt_alloc(a, (n + 1) * sizeof *ends);
        size_t nw = 0, pos = 0, next;
        while (pos < n) {
            while (pos < n && space_at(s, n, pos, &next)) pos = next;
            if (pos >= n) break;
            starts[nw] = pos;
            while (pos < n && !space_at(s, n, pos, &next)) pos = next;
            ends[nw++] = pos;
        }
        if (maxsplit < 0 || (size_t)maxsplit + 1 >= nw) {
            for (size_t i = 0; i < nw; i++) jt_lb_push(&lb, jt_str_new(a, s + starts[i], ends[i] - starts[i]));
        } else if (!right) {
            for (size_t i = 0; i < (size_t)maxsplit; i++)
                jt_lb_push(&lb, jt_str_new(a, s + starts[i], ends[i] - starts[i]));
            /* the rest starts at its first word and keeps everything after it */
            jt_lb_push(&lb, jt_str_new(a, s + starts[maxsplit], n - starts[maxsplit]));
        } else {
            size_t keep = nw - (size_t)maxsplit;
            jt_lb_push(&lb, jt_str_new(a, s, ends[keep - 1]));
            for (size_t i = keep; i < nw; i++) jt_lb_push(&lb, jt_str_new(a, s + starts[i], ends[i] - starts[i]));
        }
        return jt_lb_finish(&lb, false);
    }
    const char *p = jt_sdata(*sep);
    size_t m = jt_slen(*sep);
    if (!right) {
        size_t start = 0;
        int64_t splits = 0;
        while (maxsplit < 0 || splits < maxsplit) {
            const char *hit = memmem(s + start, n - start, p, m);
            if (!hit) break;
            size_t at = (size_t)(hit - s);
            jt_lb_push(&lb, jt_str_new(a, s + start, at - start));
            start = at + m;
            splits++;
        }
        jt_lb_push(&lb, jt_str_new(a, s + start, n - start));
        return jt_lb_finish(&lb, false);
    }
    /* rsplit: find separators from the right, then reverse */
    jt_list_builder rev;
    jt_lb_init(&rev, a);
    size_t end = n;
    int64_t splits = 0;
    while ((maxsplit < 0 || splits < maxsplit) && end >= m) {
        size_t at = end - m;
        bool found = false;
        while (true) {
            if (memcmp(s + at, p, m) == 0) {
                found = true;
                break;
            }
            if (at == 0) break;
            at--;
        }
        if (!found) break;
        jt_lb_push(&rev, jt_str_new(a, s + at + m, end - at - m));
        end = at;
        splits++;
    }
    jt_lb_push(&rev, jt_str_new(a, s, end));
    for (size_t i = rev.n; i-- > 0;) jt_lb_push(&lb, rev.items[i]);
    return jt_lb_finish(&lb, false);
}

/* Python's line boundaries: \n \r \r\n \v \f \x1c \x1d \x1e \x85 \u2028 \u2029. */
static size_t line_break_at(const char *s, size_t n, size_t pos) {
    unsigned char c = (unsigned char)s[pos];
    if (c == '\r') return pos + 1 < n && s[pos + 1] == '\n' ? 2 : 1;
    if (c == '\n' || c == 0x0b || c == 0x0c || (c >= 0x1c && c <= 0x1e)) return 1;
    if (c >= 0x80) {
        size_t p = pos;
        int32_t cp = jt_utf8_next(s, n, &p);
        if (cp == 0x85 || cp == 0x2028 || cp == 0x2029) return p - pos;
    }
    return 0;
}

jt_value jt_pystr_splitlines(jt_arena *a, jt_value v, bool keepends) {
    const char *s = jt_sdata(v);
    size_t n = jt_slen(v), start = 0, pos = 0;
    jt_list_builder lb;
    jt_lb_init(&lb, a);
    while (pos < n) {
        size_t k = line_break_at(s, n, pos);
        if (!k) {
            pos++;
            continue;
        }
        jt_lb_push(&lb, jt_str_new(a, s + start, (keepends ? pos + k : pos) - start));
        pos += k;
        start = pos;
    }
    if (start < n) jt_lb_push(&lb, jt_str_new(a, s + start, n - start));
    return jt_lb_finish(&lb, false);
}

jt_value jt_pystr_replace(jt_arena *a, jt_value v, jt_value old, jt_value new_, int64_t count) {
    const char *s = jt_sdata(v), *o = jt_sdata(old);
    size_t n = jt_slen(v), m = jt_slen(old);
    jt_sb b;
    jt_sb_init(&b, a);
    int64_t done = 0;
    if (m == 0) { /* Python inserts new_ before every code point and at the end */
        size_t pos = 0;
        while (pos < n) {
            if (count < 0 || done < count) {
                jt_sb_add(&b, jt_sdata(new_), jt_slen(new_));
                done++;
            }
            size_t start = pos;
            jt_utf8_next(s, n, &pos);
            jt_sb_add(&b, s + start, pos - start);
        }
        if (count < 0 || done < count) jt_sb_add(&b, jt_sdata(new_), jt_slen(new_));
        return jt_sb_value(&b);
    }
    size_t start = 0;
    while (count < 0 || done < count) {
        const char *hit = memmem(s + start, n - start, o, m);
        if (!hit) break;
        size_t at = (size_t)(hit - s);
        jt_sb_add(&b, s + start, at - start);
        jt_sb_add(&b, jt_sdata(new_), jt_slen(new_));
        start = at + m;
        done++;
    }
    if (done == 0) return v;
    jt_sb_add(&b, s + start, n - start);
    return jt_sb_value(&b);
}

int64_t jt_pystr_find(jt_value v, jt_value sub, int64_t start, int64_t end, bool right) {
    const char *s = jt_sdata(v);
    size_t n = jt_slen(v);
    int64_t len = (int64_t)jt_utf8_count(s, n);
    if (start < 0) start = start + len < 0 ? 0 : start + len;
    if (end < 0) end = end + len < 0 ? 0 : end + len;
    if (end > len) end = len;
    if (start > end) return -1;
    size_t b0 = jt_utf8_offset(s, n, (size_t)start), b1 = jt_utf8_offset(s, n, (size_t)end);
    const char *p = jt_sdata(sub);
    size_t m = jt_slen(sub);
    if (m > b1 - b0) return -1;
    size_t hit = (size_t)-1;
    if (!right) {
        const char *h = memmem(s + b0, b1 - b0, p, m);
        if (h) hit = (size_t)(h - s);
    } else {
        for (size_t at = b1 - m + 1; at-- > b0;)
            if (memcmp(s + at, p, m) == 0) {
                hit = at;
                break;
            }
    }
    if (hit == (size_t)-1) return -1;
    return (int64_t)jt_utf8_count(s, hit);
}

int64_t jt_pystr_count(jt_value v, jt_value sub) {
    const char *s = jt_sdata(v);
    size_t n = jt_slen(v), m = jt_slen(sub), start = 0;
    if (m == 0) return (int64_t)jt_utf8_count(s, n) + 1;
    int64_t count = 0;
    const char *hit;
    while ((hit = memmem(s + start, n - start, jt_sdata(sub), m))) {
        count++;
        start = (size_t)(hit - s) + m;
    }
    return count;
}

bool jt_pystr_startswith(jt_value s, jt_value p) {
    return jt_slen(p) <= jt_slen(s) && memcmp(jt_sdata(s), jt_sdata(p), jt_slen(p)) == 0;
}

bool jt_pystr_endswith(jt_value s, jt_value p) {
    return jt_slen(p) <= jt_slen(s) &&
           memcmp(jt_sdata(s) + jt_slen(s) - jt_slen(p), jt_sdata(p), jt_slen(p)) == 0;
}

static bool all_cased(jt_value v, bool (*ok)(int32_t), bool (*bad)(int32_t)) {
    const char *s = jt_sdata(v);
    size_t n = jt_slen(v), pos = 0;
    bool any = false;
    while (pos < n) {
        int32_t cp = jt_utf8_next(s, n, &pos);
        if (bad(cp)) return false;
        if (ok(cp)) any = true;
    }
    return any;
}

static bool is_title_or_upper(int32_t cp) { return jt_is_upper(cp) || (jt_is_cased(cp) && !jt_is_lower(cp)); }
static bool is_title_or_lower(int32_t cp) { return jt_is_lower(cp) || (jt_is_cased(cp) && !jt_is_upper(cp)); }

bool jt_pystr_islower(jt_value s) { return all_cased(s, jt_is_lower, is_title_or_upper); }
bool jt_pystr_isupper(jt_value s) { return all_cased(s, jt_is_upper, is_title_or_lower); }
