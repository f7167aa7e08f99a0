/* UTF-8 decoding and Python's character classes, on top of utf8proc. */
#include "template/unicode.h"

#include <utf8proc.h>

int32_t jt_utf8_next(const char *s, size_t n, size_t *pos) {
    const unsigned char *p = (const unsigned char *)s + *pos;
    size_t left = n - *pos;
    if (p[0] < 0x80) {
        (*pos)++;
        return p[0];
    }
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate(p, (utf8proc_ssize_t)(left < 4 ? left : 4), &cp);
    if (k <= 0) {
        (*pos)++;
        return p[0];
    }
    *pos += (size_t)k;
    return cp;
}

size_t jt_utf8_put(int32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    utf8proc_ssize_t k = utf8proc_encode_char(cp, (utf8proc_uint8_t *)out);
    return k > 0 ? (size_t)k : 0;
}

size_t jt_utf8_count(const char *s, size_t n) {
    size_t count = 0, pos = 0;
    while (pos < n) {
        if ((unsigned char)s[pos] < 0x80) pos++;
        else jt_utf8_next(s, n, &pos);
        count++;
    }
    return count;
}

size_t jt_utf8_offset(const char *s, size_t n, size_t cp_index) {
    size_t pos = 0;
    while (cp_index > 0 && pos < n) {
        jt_utf8_next(s, n, &pos);
        cp_index--;
    }
    return pos;
}

bool jt_py_isspace(int32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x1f);
    switch (cp) {
    case 0x85: case 0xa0: case 0x1680: case 0x2028: case 0x2029: case 0x202f: case 0x205f:
    case 0x3000: return true;
    default: return cp >= 0x2000 && cp <= 0x200a;
    }
}

size_t jt_space_suffix(const char *s, size_t n) {
    size_t end = n;
    while (end > 0) {
        size_t start = end - 1;
        while (start > 0 && end - start < 4 && ((unsigned char)s[start] & 0xc0) == 0x80) start--;
        size_t pos = start;
        int32_t cp = jt_utf8_next(s, n, &pos);
        if (pos != end || !jt_py_isspace(cp)) break;
        end = start;
    }
    return n - end;
}

size_t jt_space_prefix(const char *s, size_t n) {
    size_t pos = 0;
    while (pos < n) {
        size_t next = pos;
        int32_t cp = jt_utf8_next(s, n, &next);
        if (!jt_py_isspace(cp)) break;
        pos = next;
    }
    return pos;
}

bool jt_py_isprintable(int32_t cp) {
    if (cp == ' ') return true;
    if (cp < 0x20 || cp == 0x7f) return false;
    if (cp < 0x7f) return true;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS: case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS: return false;
    default: return true;
    }
}

bool jt_py_isalnum(int32_t cp) {
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    utf8proc_category_t c = utf8proc_category(cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

bool jt_py_isalpha(int32_t cp) {
    if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

bool jt_is_upper(int32_t cp) { return utf8proc_category(cp) == UTF8PROC_CATEGORY_LU; }
bool jt_is_lower(int32_t cp) { return utf8proc_category(cp) == UTF8PROC_CATEGORY_LL; }
bool jt_is_cased(int32_t cp) {
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}
int32_t jt_to_upper(int32_t cp) { return cp < 0x80 ? (cp >= 'a' && cp <= 'z' ? cp - 32 : cp) : utf8proc_toupper(cp); }
int32_t jt_to_lower(int32_t cp) { return cp < 0x80 ? (cp >= 'A' && cp <= 'Z' ? cp + 32 : cp) : utf8proc_tolower(cp); }
int32_t jt_to_title(int32_t cp) { return cp < 0x80 ? jt_to_upper(cp) : utf8proc_totitle(cp); }
