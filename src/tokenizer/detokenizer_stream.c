/* The streaming detokenizer: ids in one at a time, new text out.
 *
 * With a lone ByteLevel decoder every token decodes to bytes on its own, so
 * the bytes go through an incremental UTF-8 decoder that replaces invalid
 * sequences exactly as the whole-text decode does (maximal subparts) and
 * holds back only an incomplete final character: constant work per token.
 *
 * Any other decoder goes through tokenizers' DecodeStream algorithm: decode a
 * short window of recent ids, emit what follows the text already emitted for
 * that window once it no longer ends in U+FFFD, then slide the window. If the
 * window grows past LG_STREAM_MAX_WINDOW ids without settling (a long run of
 * invalid bytes), the pending text is emitted anyway. Where tokenizers'
 * DecodeStream fails because a decoder rewrote text already returned
 * (ByteFallback turning a complete character back into U+FFFDs when a stray
 * byte token follows it), the new ids are decoded on their own instead. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

#define LG_STREAM_MAX_WINDOW 256

struct laguna_detokenizer {
    const laguna_tokenizer *tok;
    bool skip_special, byte_level;
    lg_buf out;     /* text returned by the last call */
    lg_buf pending; /* byte-level: bytes of an incomplete character */
    lg_ids window;  /* generic: recent ids */
    lg_buf prefix;  /* generic: the decoding of window[0..prefix_index) already emitted */
    size_t prefix_index;
    lg_buf scratch;
};

laguna_status laguna_detokenizer_new(const laguna_tokenizer *tok, bool skip_special_tokens,
                                     laguna_detokenizer **out, laguna_error *err) {
    if (!tok || !out)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "laguna_detokenizer_new: NULL argument");
    laguna_detokenizer *d = calloc(1, sizeof *d);
    if (!d) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    d->tok = tok;
    d->skip_special = skip_special_tokens;
    d->byte_level = lg_decoder_is_byte_level(tok->decoder);
    *out = d;
    return LAGUNA_OK;
}

void laguna_detokenizer_free(laguna_detokenizer *d) {
    if (!d) return;
    lg_buf_free(&d->out);
    lg_buf_free(&d->pending);
    lg_ids_free(&d->window);
    lg_buf_free(&d->prefix);
    lg_buf_free(&d->scratch);
    free(d);
}

static laguna_status finish(laguna_detokenizer *d, const char **text, size_t *len,
                            laguna_error *err) {
    if (d->out.oom || d->pending.oom || d->window.oom || d->prefix.oom || d->scratch.oom)
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory in the detokenizer");
    *text = d->out.data ? d->out.data : "";
    *len = d->out.len;
    return LAGUNA_OK;
}

/* Moves the complete characters (and invalid sequences, as U+FFFD) of the
 * pending bytes to out; keeps an incomplete final character pending. */
static void drain_utf8(laguna_detokenizer *d) {
    const unsigned char *p = (const unsigned char *)d->pending.data;
    size_t n = d->pending.len, i = 0;
    while (i < n) {
        uint32_t cp;
        bool incomplete;
        size_t k = lg_utf8_decode(p + i, n - i, &cp, &incomplete);
        if (incomplete) break;
        if (cp == LG_UTF8_INVALID)
            lg_buf_push_cp(&d->out, LG_REPLACEMENT_CHAR);
        else
            lg_buf_append(&d->out, p + i, k);
        i += k;
    }
    if (i > 0 && i < n) memmove(d->pending.data, d->pending.data + i, n - i); /* pending may be empty, data NULL */
    d->pending.len = n - i;
}

static bool ends_with_replacement(const lg_buf *b) {
    return b->len >= 3 && memcmp(b->data + b->len - 3, "\xEF\xBF\xBD", 3) == 0;
}

static laguna_status decode_window(laguna_detokenizer *d, size_t from, lg_buf *out,
                                   laguna_error *err) {
    out->len = 0;
    return lg_tokenizer_decode_into(d->tok, d->window.v + from, d->window.n - from, d->skip_special,
                                    out, err);
}

/* Appends to d->out the text of the ids after prefix_index, given d->scratch =
 * the whole window's text: what follows the returned prefix, or, where the
 * earlier text changed under us (a ByteFallback rewrite), the new ids' own
 * text, so that no byte is lost. */
static laguna_status append_new_text(laguna_detokenizer *d, laguna_error *err) {
    const lg_buf *s = &d->scratch;
    if (s->len >= d->prefix.len &&
        memcmp(s->data ? s->data : "", d->prefix.data ? d->prefix.data : "", d->prefix.len) == 0) {
        lg_buf_append(&d->out, s->data ? s->data + d->prefix.len : "", s->len - d->prefix.len);
        return LAGUNA_OK;
    }
    laguna_status st = decode_window(d, d->prefix_index, &d->scratch, err);
    if (st) return st;
    lg_buf_append(&d->out, d->scratch.data ? d->scratch.data : "", d->scratch.len);
    return LAGUNA_OK;
}

/* tokenizers' step_decode_stream. */
static laguna_status push_generic(laguna_detokenizer *d, int32_t id, laguna_error *err) {
    laguna_status st;
    if (d->prefix.len == 0 && d->window.n > 0) {
        if ((st = decode_window(d, 0, &d->scratch, err))) return st;
        if (!ends_with_replacement(&d->scratch)) {
            lg_buf t = d->prefix;
            d->prefix = d->scratch;
            d->scratch = t;
            d->prefix_index = d->window.n;
        }
    }
    lg_ids_push(&d->window, id);
    if ((st = decode_window(d, 0, &d->scratch, err))) return st;
    const lg_buf *s = &d->scratch;
    bool settled = !ends_with_replacement(s) || d->window.n > LG_STREAM_MAX_WINDOW;
    if (s->len <= d->prefix.len || !settled) return LAGUNA_OK;
    if ((st = append_new_text(d, err))) return st;
    /* drop the ids whose text was returned before; keep the rest */
    size_t keep = d->window.n - d->prefix_index;
    memmove(d->window.v, d->window.v + d->prefix_index, keep * sizeof *d->window.v);
    d->window.n = keep;
    d->prefix_index = keep;
    return decode_window(d, 0, &d->prefix, err);
}

laguna_status laguna_detokenizer_push(laguna_detokenizer *d, int32_t id, const char **text,
                                      size_t *len, laguna_error *err) {
    if (!d || !text || !len)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "laguna_detokenizer_push: NULL argument");
    d->out.len = 0;
    if (d->byte_level) {
        size_t n;
        const char *s = lg_tokenizer_id_str(d->tok, id, &n);
        if (s && !(d->skip_special && (d->tok->id_flags[id] & LG_ID_SKIP))) {
            lg_byte_level_decode_token(&d->pending, s, n);
            drain_utf8(d);
        }
    } else {
        laguna_status st = push_generic(d, id, err);
        if (st) return st;
    }
    return finish(d, text, len, err);
}

laguna_status laguna_detokenizer_flush(laguna_detokenizer *d, const char **text, size_t *len,
                                       laguna_error *err) {
    if (!d || !text || !len)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "laguna_detokenizer_flush: NULL argument");
    d->out.len = 0;
    if (d->byte_level) {
        /* a cut-off character decodes to one U+FFFD, as in from_utf8_lossy */
        if (d->pending.len) lg_buf_push_cp(&d->out, LG_REPLACEMENT_CHAR);
        d->pending.len = 0;
    } else if (d->window.n) {
        laguna_status st = decode_window(d, 0, &d->scratch, err);
        if (!st) st = append_new_text(d, err);
        if (st) return st;
    }
    d->window.n = 0;
    d->prefix.len = 0;
    d->prefix_index = 0;
    return finish(d, text, len, err);
}
