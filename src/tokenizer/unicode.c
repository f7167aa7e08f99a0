/* UTF-8 decoding with maximal-subpart replacement, Rust's character classes
 * and normalization forms (libutf8proc). */
#include "tokenizer/unicode.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

size_t lg_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, bool *incomplete) {
    if (incomplete) *incomplete = false;
    unsigned char b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    uint32_t c;
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1, c = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2, c = b & 0x0F;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3, c = b & 0x07;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else {
        *cp = LG_UTF8_INVALID;
        return 1;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n) {
            if (incomplete) *incomplete = true;
            *cp = LG_UTF8_INVALID;
            return i;
        }
        unsigned char x = s[i];
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (x < l || x > h) {
            *cp = LG_UTF8_INVALID;
            return i;
        }
        c = (c << 6) | (x & 0x3F);
    }
    *cp = c;
    return i;
}

size_t lg_utf8_get(const char *s, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    size_t n = lg_utf8_len(u[0]);
    switch (n) {
    case 1:
        *cp = u[0];
        break;
    case 2:
        *cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
        break;
    case 3:
        *cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
        break;
    default:
        *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
              ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
    }
    return n;
}

bool lg_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        i += lg_utf8_decode(u + i, n - i, &cp, NULL);
        if (cp == LG_UTF8_INVALID) return false;
    }
    return true;
}

void lg_utf8_append_lossy(lg_buf *out, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: start of the pending valid bytes */
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = lg_utf8_decode(u + i, n - i, &cp, NULL);
        if (cp == LG_UTF8_INVALID) {
            lg_buf_append(out, s + run, i - run);
            lg_buf_push_cp(out, LG_REPLACEMENT_CHAR);
            run = i + k;
        }
        i += k;
    }
    lg_buf_append(out, s + run, n - run);
}

bool lg_uni_is_whitespace(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    switch (cp) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

bool lg_uni_is_numeric(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

bool lg_uni_is_punctuation(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) ||
               (cp >= 0x5B && cp <= 0x60) || (cp >= 0x7B && cp <= 0x7E);
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

bool lg_uni_is_mark(uint32_t cp) {
    if (cp < 0x300) return false;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME;
}

bool lg_uni_is_other(uint32_t cp) {
    /* unicode_categories' is_other: no table for unassigned code points */
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CO ||
           c == UTF8PROC_CATEGORY_CS;
}

bool lg_uni_is_word(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
               cp == '_';
    /* Alphabetic = letters, letter numbers and Other_Alphabetic (mostly marks,
     * plus the circled and squared Latin letters); utf8proc has no property
     * for it, so those symbol ranges are listed here. */
    if (cp == 0x200C || cp == 0x200D) return true;
    if ((cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149) ||
        (cp >= 0x1F150 && cp <= 0x1F169) || (cp >= 0x1F170 && cp <= 0x1F189))
        return true;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    switch (c) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
        return true;
    default:
        return false;
    }
}

void lg_uni_append_lowercase(lg_buf *out, uint32_t cp) {
    if (cp < 0x80) {
        lg_buf_push(out, (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
        return;
    }
    /* The one unconditional multi-character lowercase mapping in
     * SpecialCasing.txt, which Rust's char::to_lowercase applies. */
    if (cp == 0x130) {
        lg_buf_push(out, 'i');
        lg_buf_push_cp(out, 0x307);
        return;
    }
    lg_buf_push_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
}

void lg_uni_append_normalized(lg_buf *out, const char *s, size_t n, lg_norm_form form) {
    if (n == 0) return;
    int opt = UTF8PROC_STABLE;
    switch (form) {
    case LG_NF_NFC:
        opt |= UTF8PROC_COMPOSE;
        break;
    case LG_NF_NFD:
        opt |= UTF8PROC_DECOMPOSE;
        break;
    case LG_NF_NFKC:
        opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
        break;
    case LG_NF_NFKD:
        opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
        break;
    }
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      (utf8proc_option_t)opt);
    if (k < 0) {
        /* Only out of memory is possible for valid input. */
        free(dst);
        out->oom = true;
        return;
    }
    lg_buf_append(out, dst, (size_t)k);
    free(dst);
}
