/* Oniguruma-compatible regex matching on PCRE2 (see regex.h for the
 * differences that the pattern translation irons out). */
#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/strbuf.h"
#include "tokenizer/unicode.h"

struct lg_regex {
    pcre2_code *code;
    bool jit;
};

struct lg_regex_scratch {
    pcre2_match_data *md;
};

/* Oniguruma's \w: Unicode's Word (Alphabetic, marks, decimal digits,
 * connectors) plus the Latin-1 digits its ISO 8859-1 table also calls word
 * characters (superscripts and fractions). */
#define ONIG_WORD "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{B2}\\x{B3}\\x{B9}\\x{BC}-\\x{BE}"
/* Word boundaries by that \w. */
#define W_ "[" ONIG_WORD "]"
#define WORD_BOUNDARY "(?:(?<=" W_ ")(?!" W_ ")|(?<!" W_ ")(?=" W_ "))"
#define NOT_WORD_BOUNDARY "(?:(?<=" W_ ")(?=" W_ ")|(?<!" W_ ")(?!" W_ "))"
/* Everything but [0-9A-Fa-f], for \H. */
#define ONIG_NOT_HEX "\\x{0}-\\x{2f}\\x{3a}-\\x{40}\\x{47}-\\x{60}\\x{67}-\\x{10ffff}"

static bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Copies a brace argument such as {L} or {1F600} after \p, \P or \x. */
static size_t copy_braces(lg_buf *out, const char *s, size_t i, size_t n) {
    if (i < n && s[i] == '{') {
        size_t j = i;
        while (j < n && s[j] != '}')
            j++;
        if (j < n) j++;
        lg_buf_append(out, s + i, j - i);
        return j;
    }
    return i;
}

static void translate(lg_buf *out, const char *s, size_t n) {
    int depth = 0; /* nesting of character classes */
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            char d = s[i + 1];
            bool in = depth > 0;
            i += 2;
            switch (d) {
            case 's':
                lg_buf_append(out, in ? "\\s\\x{85}" : "[\\s\\x{85}]", in ? 8 : 10);
                break;
            case 'S':
                if (in)
                    lg_buf_append(out, "\\S", 2);
                else
                    lg_buf_append(out, "[^\\s\\x{85}]", 11);
                break;
            case 'w':
                if (!in) lg_buf_push(out, '[');
                lg_buf_append(out, ONIG_WORD, strlen(ONIG_WORD));
                if (!in) lg_buf_push(out, ']');
                break;
            case 'W':
                if (in)
                    lg_buf_append(out, "\\W", 2);
                else {
                    lg_buf_append(out, "[^", 2);
                    lg_buf_append(out, ONIG_WORD, strlen(ONIG_WORD));
                    lg_buf_push(out, ']');
                }
                break;
            case 'h':
                if (!in) lg_buf_push(out, '[');
                lg_buf_append(out, "0-9a-fA-F", 9);
                if (!in) lg_buf_push(out, ']');
                break;
            case 'H':
                if (!in) lg_buf_push(out, '[');
                lg_buf_append(out, ONIG_NOT_HEX, strlen(ONIG_NOT_HEX));
                if (!in) lg_buf_push(out, ']');
                break;
            case 'b':
            case 'B':
                if (in) { /* a backspace inside a class */
                    lg_buf_push(out, '\\');
                    lg_buf_push(out, d);
                } else {
                    lg_buf_append(out, d == 'b' ? WORD_BOUNDARY : NOT_WORD_BOUNDARY,
                                  strlen(d == 'b' ? WORD_BOUNDARY : NOT_WORD_BOUNDARY));
                }
                break;
            case 'u':
                if (i + 4 <= n && is_hex(s[i]) && is_hex(s[i + 1]) && is_hex(s[i + 2]) &&
                    is_hex(s[i + 3])) {
                    lg_buf_append(out, "\\x{", 3);
                    lg_buf_append(out, s + i, 4);
                    lg_buf_push(out, '}');
                    i += 4;
                } else {
                    lg_buf_append(out, "\\u", 2);
                }
                break;
            case 'p':
            case 'P':
            case 'x':
                lg_buf_push(out, '\\');
                lg_buf_push(out, d);
                i = copy_braces(out, s, i, n);
                break;
            default:
                lg_buf_push(out, '\\');
                lg_buf_push(out, d);
            }
            continue;
        }
        if (c == '[') {
            if (depth > 0 && i + 1 < n && s[i + 1] == ':') {
                /* a POSIX bracket such as [:alpha:] */
                const char *end = memmem(s + i + 2, n - i - 2, ":]", 2);
                if (end) {
                    size_t j = (size_t)(end - s) + 2;
                    lg_buf_append(out, s + i, j - i);
                    i = j;
                    continue;
                }
            }
            depth++;
            lg_buf_push(out, c);
            i++;
            if (i < n && s[i] == '^') lg_buf_push(out, s[i++]);
            continue;
        }
        if (c == ']' && depth > 0) {
            depth--;
            lg_buf_push(out, c);
            i++;
            continue;
        }
        if (c == '(' && depth == 0 && i + 2 < n && s[i + 1] == '?' && s[i + 2] &&
            strchr("imx-", s[i + 2])) {
            /* option letters: Ruby's m is PCRE2's s (dot matches newline) */
            lg_buf_append(out, "(?", 2);
            i += 2;
            while (i < n && s[i] && strchr("imx-", s[i]))
                lg_buf_push(out, s[i] == 'm' ? 's' : s[i]), i++;
            continue;
        }
        lg_buf_push(out, c);
        i++;
    }
}

static void escape_literal(lg_buf *out, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0) {
            lg_buf_append(out, "\\x{0}", 5);
        } else if (c < 0x80 &&
                   !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
            lg_buf_push(out, '\\');
            lg_buf_push(out, (char)c);
        } else {
            lg_buf_push(out, (char)c);
        }
    }
}

lg_regex *lg_regex_compile(const char *pattern, size_t len, bool literal, char *why,
                           size_t why_cap) {
    lg_buf src = {0};
    if (literal)
        escape_literal(&src, pattern, len);
    else
        translate(&src, pattern, len);
    lg_buf_push(&src, 0); /* make data non-NULL even for an empty pattern */
    if (src.oom) {
        lg_buf_free(&src);
        snprintf(why, why_cap, "out of memory");
        return NULL;
    }
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (cc) pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *code =
        pcre2_compile((PCRE2_SPTR)src.data, src.len - 1, PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE,
                      &errcode, &erroff, cc);
    pcre2_compile_context_free(cc);
    lg_buf_free(&src);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        snprintf(why, why_cap, "%s", (const char *)msg);
        return NULL;
    }
    lg_regex *re = calloc(1, sizeof *re);
    if (!re) {
        pcre2_code_free(code);
        snprintf(why, why_cap, "out of memory");
        return NULL;
    }
    re->code = code;
    re->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    return re;
}

void lg_regex_free(lg_regex *re) {
    if (!re) return;
    pcre2_code_free(re->code);
    free(re);
}

lg_regex_scratch *lg_regex_scratch_new(void) {
    lg_regex_scratch *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->md = pcre2_match_data_create(1, NULL);
    if (!s->md) {
        free(s);
        return NULL;
    }
    return s;
}

void lg_regex_scratch_free(lg_regex_scratch *scratch) {
    if (!scratch) return;
    pcre2_match_data_free(scratch->md);
    free(scratch);
}

void lg_matches_free(lg_matches *m) {
    free(m->items);
    *m = (lg_matches){0};
}

void lg_matches_add(lg_matches *m, uint32_t start, uint32_t end, bool is_match) {
    if (m->oom) return;
    if (!lg_grow((void **)&m->items, &m->cap, m->n + 1, sizeof *m->items)) {
        m->oom = true;
        return;
    }
    m->items[m->n++] = (lg_match){start, end, is_match};
}

static int run_match(const lg_regex *re, pcre2_match_data *md, const char *s, size_t n,
                     size_t from) {
    int rc = PCRE2_ERROR_JIT_STACKLIMIT;
    if (re->jit)
        rc = pcre2_jit_match(re->code, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                         NULL);
    return rc;
}

laguna_status lg_regex_find_matches(const lg_regex *re, lg_regex_scratch *scratch, const char *s,
                                    size_t n, lg_matches *out, laguna_error *err) {
    out->n = 0;
    out->oom = false;
    if (n == 0) return LAGUNA_OK;
    size_t prev = 0, last_end = 0, last_match_end = SIZE_MAX;
    while (last_end <= n) {
        int rc = run_match(re, scratch->md, s, n, last_end);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return lg_fail(err, LAGUNA_ERR_UNSUPPORTED, "regex match failed: %s",
                           (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(scratch->md);
        size_t start = ov[0], end = ov[1];
        /* the text is valid UTF-8 (PCRE2_NO_UTF_CHECK relies on it); a match
         * outside it would mean it was not */
        if (start > n || end > n)
            return lg_fail(err, LAGUNA_ERR_FORMAT, "regex match outside the text (invalid UTF-8?)");
        if (end < start) end = start; /* \K inside a lookahead; not a real split */
        if (start == end && last_match_end == end) {
            /* rust-onig: no empty match right after the previous match */
            last_end += last_end < n ? lg_utf8_len((unsigned char)s[last_end]) : 1;
            continue;
        }
        last_end = end;
        last_match_end = end;
        if (prev != start) lg_matches_add(out, (uint32_t)prev, (uint32_t)start, false);
        lg_matches_add(out, (uint32_t)start, (uint32_t)end, true);
        prev = end;
    }
    if (prev != n) lg_matches_add(out, (uint32_t)prev, (uint32_t)n, false);
    if (out->oom) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory splitting text");
    return LAGUNA_OK;
}
