/* Decoders, following tokenizers' decoders/ (*.rs) and the Decoder impls of
 * ByteLevel and Metaspace. Each step maps a list of strings to a new list;
 * Decoder::decode joins the final list. */
#include "tokenizer/decoders.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

typedef enum {
    DEC_BYTE_LEVEL,
    DEC_SEQUENCE,
    DEC_REPLACE,
    DEC_STRIP,
    DEC_FUSE,
    DEC_BYTE_FALLBACK,
    DEC_METASPACE,
    DEC_BPE,
    DEC_WORDPIECE,
    DEC_CTC,
} dec_type;

struct lg_decoder {
    dec_type type;
    lg_decoder **children; /* Sequence */
    size_t n_children;
    lg_regex *pattern;    /* Replace */
    char *text;           /* Replace's content, BPE's suffix, WordPiece's prefix, CTC's pad token */
    char *text2;          /* CTC's word delimiter */
    uint32_t ch;          /* Strip's content, Metaspace's replacement */
    uint32_t start, stop; /* Strip */
    lg_prepend_scheme prepend; /* Metaspace */
    bool cleanup;              /* WordPiece, CTC */
};

void lg_decoder_free(lg_decoder *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n_children; i++)
        lg_decoder_free(d->children[i]);
    free(d->children);
    lg_regex_free(d->pattern);
    free(d->text);
    free(d->text2);
    free(d);
}

bool lg_decoder_is_byte_level(const lg_decoder *d) {
    if (d && d->type == DEC_SEQUENCE && d->n_children == 1) d = d->children[0];
    return d && d->type == DEC_BYTE_LEVEL;
}

/* ---- loading -------------------------------------------------------------- */

static laguna_status dup_field(const lg_json_ctx *c, const cJSON *json, const char *where,
                               const char *key, const char *def, char **out) {
    const char *s;
    laguna_status st = lg_json_string(c, json, where, key, def == NULL, &s);
    if (st) return st;
    if (!(*out = strdup(s ? s : def))) return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
    return LAGUNA_OK;
}

laguna_status lg_decoder_from_json(const lg_json_ctx *c, const cJSON *json, const char *where,
                                   lg_decoder **out) {
    *out = NULL;
    const char *type;
    laguna_status st = lg_json_type(c, json, where, &type);
    if (st) return st;
    if (!type) return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "decoder has no 'type'");
    static const struct {
        const char *name;
        dec_type type;
    } names[] = {
        {"ByteLevel", DEC_BYTE_LEVEL},
        {"Sequence", DEC_SEQUENCE},
        {"Replace", DEC_REPLACE},
        {"Strip", DEC_STRIP},
        {"Fuse", DEC_FUSE},
        {"ByteFallback", DEC_BYTE_FALLBACK},
        {"Metaspace", DEC_METASPACE},
        {"BPEDecoder", DEC_BPE},
        {"WordPiece", DEC_WORDPIECE},
        {"CTC", DEC_CTC},
    };
    size_t k = 0, n_names = sizeof names / sizeof names[0];
    while (k < n_names && strcmp(names[k].name, type) != 0)
        k++;
    if (k == n_names)
        return lg_json_fail(c, where, LAGUNA_ERR_UNSUPPORTED, "decoder type '%s' is not supported",
                            type);
    lg_decoder *d = calloc(1, sizeof *d);
    if (!d) return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
    d->type = names[k].type;
    switch (d->type) {
    case DEC_SEQUENCE: {
        const cJSON *arr;
        if ((st = lg_json_array(c, json, where, "decoders", &arr))) break;
        size_t count = (size_t)cJSON_GetArraySize(arr);
        if (!(d->children = calloc(count ? count : 1, sizeof *d->children))) {
            st = lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
            break;
        }
        const cJSON *item;
        cJSON_ArrayForEach(item, arr) {
            char w[256];
            lg_json_where(w, sizeof w, where, "decoders", (int)d->n_children);
            if ((st = lg_decoder_from_json(c, item, w, &d->children[d->n_children]))) break;
            d->n_children++;
        }
        break;
    }
    case DEC_REPLACE:
        if ((st = lg_pattern_from_json(c, json, where, &d->pattern))) break;
        st = dup_field(c, json, where, "content", NULL, &d->text);
        break;
    case DEC_STRIP:
        if ((st = lg_json_char(c, json, where, "content", ' ', &d->ch))) break;
        if ((st = lg_json_uint(c, json, where, "start", 0, UINT32_MAX, &d->start))) break;
        st = lg_json_uint(c, json, where, "stop", 0, UINT32_MAX, &d->stop);
        break;
    case DEC_METASPACE: {
        bool split;
        st = lg_metaspace_from_json(c, json, where, &d->ch, &d->prepend, &split);
        break;
    }
    case DEC_BPE:
        st = dup_field(c, json, where, "suffix", "</w>", &d->text);
        break;
    case DEC_WORDPIECE:
        if ((st = dup_field(c, json, where, "prefix", "##", &d->text))) break;
        st = lg_json_bool(c, json, where, "cleanup", true, &d->cleanup);
        break;
    case DEC_CTC:
        if ((st = dup_field(c, json, where, "pad_token", "<pad>", &d->text))) break;
        if ((st = dup_field(c, json, where, "word_delimiter_token", "|", &d->text2))) break;
        st = lg_json_bool(c, json, where, "cleanup", true, &d->cleanup);
        break;
    default:
        break;
    }
    if (st) {
        lg_decoder_free(d);
        return st;
    }
    *out = d;
    return LAGUNA_OK;
}

/* ---- decoding --------------------------------------------------------------- */

void lg_byte_level_decode_token(lg_buf *out, const char *token, size_t len) {
    size_t start = out->len;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += lg_utf8_get(token + i, &cp);
        int b = lg_byte_level_byte(cp);
        if (b < 0) {
            /* not a byte-level token: keep it as it is */
            if (!out->oom) out->len = start;
            lg_buf_append(out, token, len);
            return;
        }
        lg_buf_push(out, (char)b);
    }
}

/* Rust's str::replace, including its rule for an empty pattern (the
 * replacement goes between all characters and at both ends). */
static void str_replace(lg_buf *out, const char *s, size_t n, const char *from, const char *to) {
    size_t fn = strlen(from), tn = strlen(to);
    if (fn == 0) {
        lg_buf_append(out, to, tn);
        for (size_t i = 0; i < n;) {
            size_t k = lg_utf8_len((unsigned char)s[i]);
            lg_buf_append(out, s + i, k);
            lg_buf_append(out, to, tn);
            i += k;
        }
        return;
    }
    size_t i = 0;
    while (i < n) {
        const char *hit = fn <= n - i ? memmem(s + i, n - i, from, fn) : NULL;
        if (!hit) break;
        lg_buf_append(out, s + i, (size_t)(hit - (s + i)));
        lg_buf_append(out, to, tn);
        i = (size_t)(hit - s) + fn;
    }
    lg_buf_append(out, s + i, n - i);
}

/* WordPiece's cleanup(): tidy spaces before punctuation and contractions. */
static void wordpiece_cleanup(lg_buf *out, const char *s, size_t n) {
    static const char *rules[][2] = {
        {" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},
        {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},   {" do not", " don't"},
        {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
    };
    lg_buf a = {0}, b = {0};
    lg_buf_append(&a, s, n);
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        b.len = 0;
        str_replace(&b, a.data ? a.data : "", a.len, rules[r][0], rules[r][1]);
        lg_buf t = a;
        a = b;
        b = t;
    }
    lg_buf_append(out, a.data ? a.data : "", a.len);
    if (a.oom || b.oom) out->oom = true;
    lg_buf_free(&a);
    lg_buf_free(&b);
}

/* ByteFallback: "<0xHH>" as parsed by u8::from_str_radix on "HH". */
static int fallback_byte(const char *t, size_t n) {
    if (n != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char ch = t[i];
        if (i == 3 && ch == '+') continue; /* from_str_radix accepts a sign */
        int d = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static void flush_fallback_bytes(lg_strlist *out, lg_buf *bytes) {
    if (!bytes->len) return;
    if (lg_utf8_valid(bytes->data, bytes->len)) {
        lg_strlist_add(out, bytes->data, bytes->len);
    } else {
        for (size_t i = 0; i < bytes->len; i++)
            lg_strlist_add(out, "\xEF\xBF\xBD", 3);
    }
    bytes->len = 0;
}

static laguna_status step(const lg_decoder *d, const lg_strlist *in, lg_strlist *out,
                          laguna_error *err) {
    lg_strlist_clear(out);
    lg_buf *a = &out->arena;
    switch (d->type) {
    case DEC_BYTE_LEVEL: {
        lg_buf bytes = {0};
        for (size_t i = 0; i < in->n; i++)
            lg_byte_level_decode_token(&bytes, lg_strlist_at(in, i), in->items[i].len);
        uint32_t off = (uint32_t)a->len;
        lg_utf8_append_lossy(a, bytes.data ? bytes.data : "", bytes.len);
        if (bytes.oom) a->oom = true;
        lg_buf_free(&bytes);
        lg_strlist_add_span(out, off, (uint32_t)(a->len - off));
        break;
    }
    case DEC_FUSE: {
        uint32_t off = (uint32_t)a->len;
        for (size_t i = 0; i < in->n; i++)
            lg_buf_append(a, lg_strlist_at(in, i), in->items[i].len);
        lg_strlist_add_span(out, off, (uint32_t)(a->len - off));
        break;
    }
    case DEC_REPLACE: {
        lg_matches m = {0};
        lg_regex_scratch *rs = lg_regex_scratch_new();
        if (!rs) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory decoding");
        for (size_t i = 0; i < in->n; i++) {
            const char *t = lg_strlist_at(in, i);
            size_t n = in->items[i].len;
            laguna_status st = lg_regex_find_matches(d->pattern, rs, t, n, &m, err);
            if (st) {
                lg_matches_free(&m);
                lg_regex_scratch_free(rs);
                return st;
            }
            uint32_t off = (uint32_t)a->len;
            for (size_t j = 0; j < m.n; j++) {
                if (m.items[j].is_match)
                    lg_buf_append(a, d->text, strlen(d->text));
                else
                    lg_buf_append(a, t + m.items[j].start, m.items[j].end - m.items[j].start);
            }
            lg_strlist_add_span(out, off, (uint32_t)(a->len - off));
        }
        lg_matches_free(&m);
        lg_regex_scratch_free(rs);
        break;
    }
    case DEC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            const char *t = lg_strlist_at(in, i);
            size_t n = in->items[i].len, a0 = 0, b0 = n;
            uint32_t cp;
            for (uint32_t k = 0; k < d->start && a0 < n; k++) {
                size_t len = lg_utf8_get(t + a0, &cp);
                if (cp != d->ch) break;
                a0 += len;
            }
            for (uint32_t k = 0; k < d->stop && b0 > 0; k++) {
                size_t j = b0 - 1;
                while (j > 0 && ((unsigned char)t[j] & 0xC0) == 0x80)
                    j--;
                lg_utf8_get(t + j, &cp);
                if (cp != d->ch) break;
                b0 = j;
            }
            lg_strlist_add(out, t + a0, b0 > a0 ? b0 - a0 : 0);
        }
        break;
    case DEC_BYTE_FALLBACK: {
        lg_buf bytes = {0};
        for (size_t i = 0; i < in->n; i++) {
            const char *t = lg_strlist_at(in, i);
            int b = fallback_byte(t, in->items[i].len);
            if (b >= 0) {
                lg_buf_push(&bytes, (char)b);
                continue;
            }
            flush_fallback_bytes(out, &bytes);
            lg_strlist_add(out, t, in->items[i].len);
        }
        flush_fallback_bytes(out, &bytes);
        if (bytes.oom) out->oom = true;
        lg_buf_free(&bytes);
        break;
    }
    case DEC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *t = lg_strlist_at(in, i);
            uint32_t off = (uint32_t)a->len;
            for (size_t j = 0; j < in->items[i].len;) {
                uint32_t cp;
                size_t k = lg_utf8_get(t + j, &cp);
                if (cp == d->ch) {
                    if (i != 0 || d->prepend == LG_PREPEND_NEVER) lg_buf_push(a, ' ');
                } else {
                    lg_buf_append(a, t + j, k);
                }
                j += k;
            }
            lg_strlist_add_span(out, off, (uint32_t)(a->len - off));
        }
        break;
    case DEC_BPE:
        for (size_t i = 0; i < in->n; i++) {
            uint32_t off = (uint32_t)a->len;
            str_replace(a, lg_strlist_at(in, i), in->items[i].len, d->text,
                        i + 1 == in->n ? "" : " ");
            lg_strlist_add_span(out, off, (uint32_t)(a->len - off));
        }
        break;
    case DEC_WORDPIECE:
        for (size_t i = 0; i < in->n; i++) {
            const char *t = lg_strlist_at(in, i);
            size_t n = in->items[i].len, pn = strlen(d->text);
            lg_buf tok = {0};
            if (i != 0 && n >= pn && memcmp(t, d->text, pn) == 0) {
                lg_buf_append(&tok, t + pn, n - pn);
            } else {
                if (i != 0) lg_buf_push(&tok, ' ');
                lg_buf_append(&tok, t, n);
            }
            uint32_t off = (uint32_t)a->len;
            if (d->cleanup)
                wordpiece_cleanup(a, tok.data ? tok.data : "", tok.len);
            else
                lg_buf_append(a, tok.data ? tok.data : "", tok.len);
            if (tok.oom) a->oom = true;
            lg_buf_free(&tok);
            lg_strlist_add_span(out, off, (uint32_t)(a->len - off));
        }
        break;
    case DEC_CTC:
        for (size_t i = 0; i < in->n; i++) {
            const char *t = lg_strlist_at(in, i);
            size_t n = in->items[i].len;
            if (i > 0 && in->items[i - 1].len == n && memcmp(lg_strlist_at(in, i - 1), t, n) == 0)
                continue;
            lg_buf x = {0}, y = {0};
            str_replace(&x, t, n, d->text, "");
            if (d->cleanup) {
                wordpiece_cleanup(&y, x.data ? x.data : "", x.len);
                x.len = 0;
                str_replace(&x, y.data ? y.data : "", y.len, d->text2, " ");
            }
            if (x.oom || y.oom) a->oom = true;
            if (x.len) lg_strlist_add(out, x.data, x.len);
            lg_buf_free(&x);
            lg_buf_free(&y);
        }
        break;
    case DEC_SEQUENCE:
        break; /* handled by lg_decoder_decode */
    }
    if (lg_strlist_failed(out)) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory decoding");
    return LAGUNA_OK;
}

static laguna_status chain(const lg_decoder *d, lg_strlist *tokens, lg_strlist *spare,
                           laguna_error *err) {
    if (d->type == DEC_SEQUENCE) {
        for (size_t i = 0; i < d->n_children; i++) {
            laguna_status st = chain(d->children[i], tokens, spare, err);
            if (st) return st;
        }
        return LAGUNA_OK;
    }
    laguna_status st = step(d, tokens, spare, err);
    if (st) return st;
    lg_strlist t = *tokens;
    *tokens = *spare;
    *spare = t;
    return LAGUNA_OK;
}

laguna_status lg_decoder_decode(const lg_decoder *d, lg_strlist *tokens, lg_buf *out,
                                laguna_error *err) {
    lg_strlist spare = {0};
    laguna_status st = chain(d, tokens, &spare, err);
    lg_strlist_free(&spare);
    if (st) return st;
    for (size_t i = 0; i < tokens->n; i++)
        lg_buf_append(out, lg_strlist_at(tokens, i), tokens->items[i].len);
    return out->oom ? lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory decoding") : LAGUNA_OK;
}
