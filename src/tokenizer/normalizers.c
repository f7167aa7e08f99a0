/* Normalizers: each one rewrites a whole string, following tokenizers'
 * normalizers/ (*.rs) (behaviour cited per type below). */
#include "tokenizer/normalizers.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/unicode.h"

typedef enum {
    NORM_SEQUENCE,
    NORM_NFC,
    NORM_NFD,
    NORM_NFKC,
    NORM_NFKD,
    NORM_LOWERCASE,
    NORM_REPLACE,
    NORM_PREPEND,
    NORM_STRIP,
    NORM_STRIP_ACCENTS,
    NORM_BYTE_LEVEL,
    NORM_NMT,
    NORM_BERT,
} norm_type;

struct lg_normalizer {
    norm_type type;
    lg_normalizer **children; /* Sequence */
    size_t n_children;
    lg_regex *pattern; /* Replace */
    char *content;     /* Replace's replacement, Prepend's prefix */
    bool left, right;  /* Strip */
    bool clean_text, chinese_chars, strip_accents, lowercase; /* BertNormalizer */
};

void lg_normalizer_free(lg_normalizer *n) {
    if (!n) return;
    for (size_t i = 0; i < n->n_children; i++)
        lg_normalizer_free(n->children[i]);
    free(n->children);
    lg_regex_free(n->pattern);
    free(n->content);
    free(n);
}

/* ---- loading -------------------------------------------------------------- */

laguna_status lg_normalizer_from_json(const lg_json_ctx *c, const cJSON *json, const char *where,
                                      lg_normalizer **out) {
    *out = NULL;
    const char *type;
    laguna_status st = lg_json_type(c, json, where, &type);
    if (st) return st;
    if (!type) return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "normalizer has no 'type'");
    static const struct {
        const char *name;
        norm_type type;
    } names[] = {
        {"Sequence", NORM_SEQUENCE},
        {"NFC", NORM_NFC},
        {"NFD", NORM_NFD},
        {"NFKC", NORM_NFKC},
        {"NFKD", NORM_NFKD},
        {"Lowercase", NORM_LOWERCASE},
        {"Replace", NORM_REPLACE},
        {"Prepend", NORM_PREPEND},
        {"Strip", NORM_STRIP},
        {"StripAccents", NORM_STRIP_ACCENTS},
        {"ByteLevel", NORM_BYTE_LEVEL},
        {"Nmt", NORM_NMT},
        {"BertNormalizer", NORM_BERT},
    };
    size_t k = 0, n_names = sizeof names / sizeof names[0];
    while (k < n_names && strcmp(names[k].name, type) != 0)
        k++;
    if (k == n_names)
        return lg_json_fail(c, where, LAGUNA_ERR_UNSUPPORTED,
                            "normalizer type '%s' is not supported", type);
    lg_normalizer *n = calloc(1, sizeof *n);
    if (!n) return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
    n->type = names[k].type;
    switch (n->type) {
    case NORM_SEQUENCE: {
        const cJSON *arr;
        if ((st = lg_json_array(c, json, where, "normalizers", &arr))) break;
        size_t count = (size_t)cJSON_GetArraySize(arr);
        n->children = calloc(count ? count : 1, sizeof *n->children);
        if (!n->children) {
            st = lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
            break;
        }
        const cJSON *item;
        cJSON_ArrayForEach(item, arr) {
            char w[256];
            lg_json_where(w, sizeof w, where, "normalizers", (int)n->n_children);
            if ((st = lg_normalizer_from_json(c, item, w, &n->children[n->n_children]))) break;
            n->n_children++;
        }
        break;
    }
    case NORM_REPLACE: {
        const char *content;
        if ((st = lg_pattern_from_json(c, json, where, &n->pattern))) break;
        if ((st = lg_json_string(c, json, where, "content", true, &content))) break;
        if (!(n->content = strdup(content)))
            st = lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
        break;
    }
    case NORM_PREPEND: {
        const char *prepend;
        if ((st = lg_json_string(c, json, where, "prepend", true, &prepend))) break;
        if (!(n->content = strdup(prepend)))
            st = lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
        break;
    }
    case NORM_STRIP:
        if ((st = lg_json_bool(c, json, where, "strip_left", true, &n->left))) break;
        st = lg_json_bool(c, json, where, "strip_right", true, &n->right);
        break;
    case NORM_BERT:
        if ((st = lg_json_bool(c, json, where, "clean_text", true, &n->clean_text))) break;
        if ((st = lg_json_bool(c, json, where, "handle_chinese_chars", true, &n->chinese_chars)))
            break;
        if ((st = lg_json_bool(c, json, where, "lowercase", true, &n->lowercase))) break;
        /* strip_accents: null means "same as lowercase" */
        st = lg_json_bool(c, json, where, "strip_accents", n->lowercase, &n->strip_accents);
        break;
    default:
        break;
    }
    if (st) {
        lg_normalizer_free(n);
        return st;
    }
    *out = n;
    return LAGUNA_OK;
}

/* ---- applying ------------------------------------------------------------- */

/* NormalizedString::lrstrip: White_Space characters at either end. */
static void strip(lg_buf *out, const char *s, size_t n, bool left, bool right) {
    size_t a = 0, b = n;
    if (left)
        while (a < b) {
            uint32_t cp;
            size_t k = lg_utf8_get(s + a, &cp);
            if (!lg_uni_is_whitespace(cp)) break;
            a += k;
        }
    if (right)
        while (b > a) {
            size_t j = b - 1;
            while (j > a && ((unsigned char)s[j] & 0xC0) == 0x80)
                j--;
            uint32_t cp;
            lg_utf8_get(s + j, &cp);
            if (!lg_uni_is_whitespace(cp)) break;
            b = j;
        }
    lg_buf_append(out, s + a, b - a);
}

static bool is_bert_chinese(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Nmt: drop some control characters and map other spaces to ' '. */
static void nmt(lg_buf *out, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += lg_utf8_get(s + i, &cp);
        if ((cp >= 0x01 && cp <= 0x08) || cp == 0x0B || (cp >= 0x0E && cp <= 0x1F) || cp == 0x7F ||
            cp == 0x8F || cp == 0x9F)
            continue;
        if (cp == 0x09 || cp == 0x0A || cp == 0x0C || cp == 0x0D || cp == 0x1680 ||
            (cp >= 0x200B && cp <= 0x200F) || cp == 0x2028 || cp == 0x2029 || cp == 0x2581 ||
            cp == 0xFEFF || cp == 0xFFFD)
            cp = ' ';
        lg_buf_push_cp(out, cp);
    }
}

/* One BertNormalizer step at a time, each reading `s` and writing `out`. */
static void bert_clean_text(lg_buf *out, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += lg_utf8_get(s + i, &cp);
        bool tab_nl_cr = cp == '\t' || cp == '\n' || cp == '\r';
        if (cp == 0 || cp == 0xFFFD || (!tab_nl_cr && lg_uni_is_other(cp))) continue;
        lg_buf_push_cp(out, tab_nl_cr || lg_uni_is_whitespace(cp) ? ' ' : cp);
    }
}

static void bert_chinese_chars(lg_buf *out, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = lg_utf8_get(s + i, &cp);
        bool pad = is_bert_chinese(cp);
        if (pad) lg_buf_push(out, ' ');
        lg_buf_append(out, s + i, k);
        if (pad) lg_buf_push(out, ' ');
        i += k;
    }
}

static void filter_marks(lg_buf *out, const char *s, size_t n, bool nonspacing_only) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = lg_utf8_get(s + i, &cp);
        bool drop = nonspacing_only ? cp >= 0x300 && utf8proc_category((utf8proc_int32_t)cp) ==
                                                         UTF8PROC_CATEGORY_MN
                                    : lg_uni_is_mark(cp);
        if (!drop) lg_buf_append(out, s + i, k);
        i += k;
    }
}

static void lowercase(lg_buf *out, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += lg_utf8_get(s + i, &cp);
        lg_uni_append_lowercase(out, cp);
    }
}

/* ByteLevel: every byte becomes its printable stand-in. */
static void byte_level(lg_buf *out, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        lg_byte_level_append(out, (unsigned char)s[i]);
}

static laguna_status apply_bert(const lg_normalizer *nz, const char *s, size_t len, lg_buf *out) {
    lg_buf a = {0}, b = {0};
    lg_buf_append(&a, s, len);
    if (nz->clean_text) {
        b.len = 0;
        bert_clean_text(&b, a.data, a.len);
        lg_buf t = a;
        a = b;
        b = t;
    }
    if (nz->chinese_chars) {
        b.len = 0;
        bert_chinese_chars(&b, a.data, a.len);
        lg_buf t = a;
        a = b;
        b = t;
    }
    if (nz->strip_accents) {
        b.len = 0;
        lg_uni_append_normalized(&b, a.data, a.len, LG_NF_NFD);
        lg_buf t = a;
        a = b;
        b = t;
        b.len = 0;
        filter_marks(&b, a.data, a.len, true);
        t = a;
        a = b;
        b = t;
    }
    if (nz->lowercase) {
        b.len = 0;
        lowercase(&b, a.data, a.len);
        lg_buf t = a;
        a = b;
        b = t;
    }
    bool oom = a.oom || b.oom;
    lg_buf_append(out, a.data, a.len);
    lg_buf_free(&a);
    lg_buf_free(&b);
    return oom ? LAGUNA_ERR_NOMEM : LAGUNA_OK;
}

/* Normalised text may grow this many times the input (plus a little): real
 * normalizers stay far below (NFKC's longest expansion is 11x in bytes,
 * lowercasing 3x), while a Replace with a megabyte replacement, or a
 * sequence of them, would otherwise multiply the input without bound. */
#define LG_NORMALIZED_MAX_GROWTH 32
#define LG_NORMALIZED_SLACK_BYTES 1024

static size_t normalized_limit(size_t len) {
    if (len > (SIZE_MAX - LG_NORMALIZED_SLACK_BYTES) / LG_NORMALIZED_MAX_GROWTH) return SIZE_MAX;
    return len * LG_NORMALIZED_MAX_GROWTH + LG_NORMALIZED_SLACK_BYTES;
}

static laguna_status too_long(laguna_error *err, size_t len) {
    return lg_fail(err, LAGUNA_ERR_ARGUMENT,
                   "normalizer output exceeds %d times the input of %zu bytes (a Replace "
                   "normalizer expanding without bound?)",
                   LG_NORMALIZED_MAX_GROWTH, len);
}

static laguna_status replace(const lg_normalizer *nz, const char *s, size_t len, lg_buf *out,
                             lg_regex_scratch *scratch, size_t max_out, laguna_error *err) {
    lg_matches m = {0};
    laguna_status st = lg_regex_find_matches(nz->pattern, scratch, s, len, &m, err);
    size_t content_len = strlen(nz->content);
    if (st == LAGUNA_OK) {
        size_t last = 0;
        for (size_t i = 0; i < m.n; i++) {
            if (!m.items[i].is_match) continue;
            if (content_len > max_out - out->len ||
                m.items[i].start - last > max_out - out->len - content_len) {
                st = LAGUNA_ERR_ARGUMENT;
                break;
            }
            lg_buf_append(out, s + last, m.items[i].start - last);
            lg_buf_append(out, nz->content, content_len);
            last = m.items[i].end;
        }
        if (st == LAGUNA_OK) lg_buf_append(out, s + last, len - last);
    }
    lg_matches_free(&m);
    return st;
}

static laguna_status apply(const lg_normalizer *nz, const char *s, size_t len, lg_buf *out,
                           lg_regex_scratch *scratch, size_t max_out, laguna_error *err);

laguna_status lg_normalizer_apply(const lg_normalizer *nz, const char *s, size_t len, lg_buf *out,
                                  lg_regex_scratch *scratch, laguna_error *err) {
    laguna_status st = apply(nz, s, len, out, scratch, normalized_limit(len), err);
    if (st == LAGUNA_ERR_ARGUMENT || (st == LAGUNA_OK && out->len > normalized_limit(len)))
        return too_long(err, len);
    if (st == LAGUNA_ERR_NOMEM || (st == LAGUNA_OK && out->oom))
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory normalizing text");
    return st;
}

/* Normalises into out, failing with LAGUNA_ERR_ARGUMENT (message left to the
 * caller) once the output passes max_out bytes. */
static laguna_status apply(const lg_normalizer *nz, const char *s, size_t len, lg_buf *out,
                           lg_regex_scratch *scratch, size_t max_out, laguna_error *err) {
    out->len = 0;
    laguna_status st = LAGUNA_OK;
    switch (nz->type) {
    case NORM_SEQUENCE: {
        lg_buf tmp = {0};
        lg_buf_append(out, s, len);
        for (size_t i = 0; i < nz->n_children && st == LAGUNA_OK && !out->oom; i++) {
            lg_buf t = tmp;
            tmp = *out;
            *out = t; /* the input moves to tmp */
            st = apply(nz->children[i], tmp.data ? tmp.data : "", tmp.len, out, scratch, max_out,
                       err);
            if (st == LAGUNA_OK && out->len > max_out) st = LAGUNA_ERR_ARGUMENT;
        }
        if (tmp.oom) out->oom = true;
        lg_buf_free(&tmp);
        break;
    }
    case NORM_NFC:
        lg_uni_append_normalized(out, s, len, LG_NF_NFC);
        break;
    case NORM_NFD:
        lg_uni_append_normalized(out, s, len, LG_NF_NFD);
        break;
    case NORM_NFKC:
        lg_uni_append_normalized(out, s, len, LG_NF_NFKC);
        break;
    case NORM_NFKD:
        lg_uni_append_normalized(out, s, len, LG_NF_NFKD);
        break;
    case NORM_LOWERCASE:
        lowercase(out, s, len);
        break;
    case NORM_REPLACE:
        st = replace(nz, s, len, out, scratch, max_out, err);
        break;
    case NORM_PREPEND:
        /* prepend.rs: only a non-empty string gets the prefix */
        if (len) lg_buf_append(out, nz->content, strlen(nz->content));
        lg_buf_append(out, s, len);
        break;
    case NORM_STRIP:
        strip(out, s, len, nz->left, nz->right);
        break;
    case NORM_STRIP_ACCENTS:
        filter_marks(out, s, len, false);
        break;
    case NORM_BYTE_LEVEL:
        byte_level(out, s, len);
        break;
    case NORM_NMT:
        nmt(out, s, len);
        break;
    case NORM_BERT:
        st = apply_bert(nz, s, len, out);
        break;
    }
    if (st == LAGUNA_OK && out->len > max_out) st = LAGUNA_ERR_ARGUMENT;
    return st;
}
