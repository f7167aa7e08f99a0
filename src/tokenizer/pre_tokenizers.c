/* Pre-tokenizers, following tokenizers' pre_tokenizers/ (*.rs). Each stage maps
 * the list of pieces to a new list; pieces that are added tokens pass
 * through untouched. */
#include "tokenizer/pre_tokenizers.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/unicode.h"

typedef enum {
    PRE_SEQUENCE,
    PRE_SPLIT,
    PRE_BYTE_LEVEL,
    PRE_DIGITS,
    PRE_WHITESPACE,
    PRE_WHITESPACE_SPLIT,
    PRE_METASPACE,
    PRE_PUNCTUATION,
    PRE_BERT,
    PRE_DELIMITER,
} pre_type;

struct lg_pretokenizer {
    pre_type type;
    lg_pretokenizer **children; /* Sequence */
    size_t n_children;
    lg_regex *regex;            /* Split; ByteLevel's GPT-2 regex when use_regex */
    lg_split_behavior behavior; /* Split, Punctuation */
    bool invert;                /* Split */
    bool add_prefix_space;      /* ByteLevel */
    bool individual_digits;     /* Digits */
    uint32_t replacement;       /* Metaspace's replacement, CharDelimiterSplit's delimiter */
    lg_prepend_scheme prepend;  /* Metaspace */
    bool split;                 /* Metaspace */
};

/* byte_level.rs: the GPT-2 word regex. */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

void lg_pretokenizer_free(lg_pretokenizer *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_children; i++)
        lg_pretokenizer_free(p->children[i]);
    free(p->children);
    lg_regex_free(p->regex);
    free(p);
}

void lg_pretok_scratch_free(lg_pretok_scratch *s) {
    lg_regex_scratch_free(s->regex);
    lg_matches_free(&s->matches);
    lg_pieces_free(&s->spare);
    *s = (lg_pretok_scratch){0};
}

/* ---- loading -------------------------------------------------------------- */

laguna_status lg_split_behavior_from_json(const lg_json_ctx *c, const cJSON *json,
                                          const char *where, const char *key, bool required,
                                          lg_split_behavior *out) {
    const char *name;
    laguna_status st = lg_json_string(c, json, where, key, required, &name);
    if (st || !name) return st;
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                  "Contiguous"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(names[i], name)) {
            *out = (lg_split_behavior)i;
            return LAGUNA_OK;
        }
    return lg_json_fail(c, where, LAGUNA_ERR_UNSUPPORTED, "split behavior '%s' is not supported",
                        name);
}

laguna_status lg_metaspace_from_json(const lg_json_ctx *c, const cJSON *json, const char *where,
                                     uint32_t *replacement, lg_prepend_scheme *scheme,
                                     bool *split) {
    laguna_status st = lg_json_char(c, json, where, "replacement", 0x2581, replacement);
    if (st) return st;
    if ((st = lg_json_bool(c, json, where, "split", true, split))) return st;
    const char *name;
    if ((st = lg_json_string(c, json, where, "prepend_scheme", false, &name))) return st;
    *scheme = LG_PREPEND_ALWAYS;
    if (name) {
        if (!strcmp(name, "always"))
            *scheme = LG_PREPEND_ALWAYS;
        else if (!strcmp(name, "first"))
            *scheme = LG_PREPEND_FIRST;
        else if (!strcmp(name, "never"))
            *scheme = LG_PREPEND_NEVER;
        else
            return lg_json_fail(c, where, LAGUNA_ERR_UNSUPPORTED,
                                "prepend_scheme '%s' is not supported", name);
    }
    /* Files older than prepend_scheme say add_prefix_space instead. */
    bool add_prefix_space;
    if ((st = lg_json_bool(c, json, where, "add_prefix_space", true, &add_prefix_space))) return st;
    if (!add_prefix_space) *scheme = LG_PREPEND_NEVER;
    return LAGUNA_OK;
}

laguna_status lg_pretokenizer_from_json(const lg_json_ctx *c, const cJSON *json, const char *where,
                                        lg_pretokenizer **out) {
    *out = NULL;
    const char *type;
    laguna_status st = lg_json_type(c, json, where, &type);
    if (st) return st;
    if (!type) return lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "pre_tokenizer has no 'type'");
    static const struct {
        const char *name;
        pre_type type;
    } names[] = {
        {"Sequence", PRE_SEQUENCE},     {"Split", PRE_SPLIT},
        {"ByteLevel", PRE_BYTE_LEVEL},  {"Digits", PRE_DIGITS},
        {"Whitespace", PRE_WHITESPACE}, {"WhitespaceSplit", PRE_WHITESPACE_SPLIT},
        {"Metaspace", PRE_METASPACE},   {"Punctuation", PRE_PUNCTUATION},
        {"BertPreTokenizer", PRE_BERT}, {"CharDelimiterSplit", PRE_DELIMITER},
    };
    size_t k = 0, n_names = sizeof names / sizeof names[0];
    while (k < n_names && strcmp(names[k].name, type) != 0)
        k++;
    if (k == n_names)
        return lg_json_fail(c, where, LAGUNA_ERR_UNSUPPORTED,
                            "pre_tokenizer type '%s' is not supported", type);
    lg_pretokenizer *p = calloc(1, sizeof *p);
    if (!p) return lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
    p->type = names[k].type;
    switch (p->type) {
    case PRE_SEQUENCE: {
        const cJSON *arr;
        if ((st = lg_json_array(c, json, where, "pretokenizers", &arr))) break;
        size_t count = (size_t)cJSON_GetArraySize(arr);
        if (!(p->children = calloc(count ? count : 1, sizeof *p->children))) {
            st = lg_fail(c->err, LAGUNA_ERR_NOMEM, "out of memory");
            break;
        }
        const cJSON *item;
        cJSON_ArrayForEach(item, arr) {
            char w[256];
            lg_json_where(w, sizeof w, where, "pretokenizers", (int)p->n_children);
            if ((st = lg_pretokenizer_from_json(c, item, w, &p->children[p->n_children]))) break;
            p->n_children++;
        }
        break;
    }
    case PRE_SPLIT:
        if ((st = lg_pattern_from_json(c, json, where, &p->regex))) break;
        if ((st = lg_split_behavior_from_json(c, json, where, "behavior", true, &p->behavior)))
            break;
        st = lg_json_bool(c, json, where, "invert", false, &p->invert);
        break;
    case PRE_BYTE_LEVEL: {
        bool use_regex;
        if ((st = lg_json_bool(c, json, where, "add_prefix_space", true, &p->add_prefix_space)))
            break;
        if ((st = lg_json_bool(c, json, where, "use_regex", true, &use_regex))) break;
        if (use_regex) {
            char why[200];
            p->regex =
                lg_regex_compile(GPT2_PATTERN, sizeof GPT2_PATTERN - 1, false, why, sizeof why);
            if (!p->regex) st = lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "GPT-2 regex: %s", why);
        }
        break;
    }
    case PRE_DIGITS:
        st = lg_json_bool(c, json, where, "individual_digits", false, &p->individual_digits);
        break;
    case PRE_METASPACE:
        st = lg_metaspace_from_json(c, json, where, &p->replacement, &p->prepend, &p->split);
        break;
    case PRE_PUNCTUATION:
        p->behavior = LG_SPLIT_ISOLATED;
        st = lg_split_behavior_from_json(c, json, where, "behavior", false, &p->behavior);
        break;
    case PRE_DELIMITER: {
        if ((st = lg_json_char(c, json, where, "delimiter", 0, &p->replacement))) break;
        if (!p->replacement)
            st = lg_json_fail(c, where, LAGUNA_ERR_FORMAT, "missing field 'delimiter'");
        break;
    }
    default:
        break;
    }
    if (st) {
        lg_pretokenizer_free(p);
        return st;
    }
    *out = p;
    return LAGUNA_OK;
}

/* ---- applying ------------------------------------------------------------- */

static bool pred_numeric(uint32_t cp, const void *ctx) {
    (void)ctx;
    return lg_uni_is_numeric(cp);
}
static bool pred_whitespace(uint32_t cp, const void *ctx) {
    (void)ctx;
    return lg_uni_is_whitespace(cp);
}
static bool pred_punctuation(uint32_t cp, const void *ctx) {
    (void)ctx;
    return lg_uni_is_punctuation(cp);
}
static bool pred_equals(uint32_t cp, const void *ctx) {
    return cp == *(const uint32_t *)ctx;
}

/* Whitespace: the words of Rust's regex \w+|[^\w\s]+ ; whitespace between
 * them is dropped. */
static void split_whitespace_words(lg_pieces *out, const lg_piece *piece, const char *s) {
    size_t i = 0, n = piece->len;
    while (i < n) {
        uint32_t cp;
        size_t k = lg_utf8_get(s + i, &cp);
        if (lg_uni_is_whitespace(cp) && !lg_uni_is_word(cp)) {
            i += k;
            continue;
        }
        bool word = lg_uni_is_word(cp);
        size_t start = i;
        i += k;
        while (i < n) {
            k = lg_utf8_get(s + i, &cp);
            bool w = lg_uni_is_word(cp);
            if (w != word || (!w && lg_uni_is_whitespace(cp))) break;
            i += k;
        }
        lg_pieces_add(out, (lg_piece){piece->off + (uint32_t)start, (uint32_t)(i - start), -1,
                                      piece->at_origin && start == 0});
    }
}

/* ByteLevel: optional leading space, optional GPT-2 split, then bytes to
 * their printable stand-ins. */
static laguna_status byte_level(const lg_pretokenizer *p, const lg_piece *in, lg_pieces *out,
                                lg_buf *arena, lg_pretok_scratch *scratch, laguna_error *err) {
    lg_piece piece = *in;
    if (p->add_prefix_space && arena->data[piece.off] != ' ') {
        if (!lg_buf_reserve(arena, piece.len + 1)) return LAGUNA_ERR_NOMEM;
        uint32_t off = (uint32_t)arena->len;
        lg_buf_push(arena, ' ');
        lg_buf_append(arena, arena->data + piece.off, piece.len);
        piece.off = off, piece.len++;
    }
    size_t first = out->n;
    if (p->regex) {
        laguna_status st = lg_regex_find_matches(p->regex, scratch->regex, arena->data + piece.off,
                                                 piece.len, &scratch->matches, err);
        if (st) return st;
        lg_pieces_split(out, &piece, &scratch->matches, LG_SPLIT_ISOLATED, false);
    } else {
        lg_pieces_add(out, piece);
    }
    for (size_t i = first; i < out->n; i++) {
        lg_piece *q = &out->items[i];
        if (!lg_buf_reserve(arena, 2 * (size_t)q->len) ||
            arena->len + 2 * (size_t)q->len > UINT32_MAX)
            return LAGUNA_ERR_NOMEM;
        uint32_t off = (uint32_t)arena->len;
        const unsigned char *src = (const unsigned char *)arena->data + q->off;
        for (uint32_t j = 0; j < q->len; j++)
            lg_byte_level_append(arena, src[j]);
        q->len = (uint32_t)arena->len - off;
        q->off = off;
    }
    return LAGUNA_OK;
}

/* Metaspace: spaces become the replacement character, which is also
 * prepended as the scheme asks, then each replacement starts a new piece. */
static laguna_status metaspace(const lg_pretokenizer *p, const lg_piece *in, lg_pieces *out,
                               lg_buf *arena, lg_pretok_scratch *scratch) {
    if (!lg_buf_reserve(arena, 4 * (size_t)in->len + 4) ||
        arena->len + 4 * (size_t)in->len + 4 > UINT32_MAX)
        return LAGUNA_ERR_NOMEM;
    uint32_t off = (uint32_t)arena->len;
    const char *src = arena->data + in->off;
    uint32_t first_cp;
    lg_utf8_get(src, &first_cp);
    bool starts = first_cp == p->replacement || (first_cp == ' ' && in->len > 0);
    bool prepend =
        p->prepend == LG_PREPEND_ALWAYS || (p->prepend == LG_PREPEND_FIRST && in->at_origin);
    if (prepend && !starts) lg_buf_push_cp(arena, p->replacement);
    for (uint32_t j = 0; j < in->len; j++) {
        if (src[j] == ' ')
            lg_buf_push_cp(arena, p->replacement);
        else
            lg_buf_push(arena, src[j]);
    }
    lg_piece piece = {off, (uint32_t)arena->len - off, -1, in->at_origin};
    if (!p->split) {
        lg_pieces_add(out, piece);
        return LAGUNA_OK;
    }
    lg_matches_from_chars(&scratch->matches, arena->data + piece.off, piece.len, pred_equals,
                          &p->replacement);
    if (scratch->matches.oom) return LAGUNA_ERR_NOMEM;
    lg_pieces_split(out, &piece, &scratch->matches, LG_SPLIT_MERGED_WITH_NEXT, false);
    return LAGUNA_OK;
}

/* Splits by a per-character predicate. */
static laguna_status split_chars(const lg_piece *piece, const lg_buf *arena, lg_pieces *out,
                                 lg_pretok_scratch *scratch, bool (*pred)(uint32_t, const void *),
                                 const void *ctx, lg_split_behavior behavior) {
    lg_matches_from_chars(&scratch->matches, arena->data + piece->off, piece->len, pred, ctx);
    if (scratch->matches.oom) return LAGUNA_ERR_NOMEM;
    lg_pieces_split(out, piece, &scratch->matches, behavior, false);
    return LAGUNA_OK;
}

static laguna_status apply_piece(const lg_pretokenizer *p, const lg_piece *piece, lg_pieces *out,
                                 lg_buf *arena, lg_pretok_scratch *scratch, laguna_error *err) {
    laguna_status st;
    switch (p->type) {
    case PRE_SPLIT:
        st = lg_regex_find_matches(p->regex, scratch->regex, arena->data + piece->off, piece->len,
                                   &scratch->matches, err);
        if (st) return st;
        lg_pieces_split(out, piece, &scratch->matches, p->behavior, p->invert);
        return LAGUNA_OK;
    case PRE_BYTE_LEVEL:
        return byte_level(p, piece, out, arena, scratch, err);
    case PRE_DIGITS:
        return split_chars(piece, arena, out, scratch, pred_numeric, NULL,
                           p->individual_digits ? LG_SPLIT_ISOLATED : LG_SPLIT_CONTIGUOUS);
    case PRE_WHITESPACE:
        split_whitespace_words(out, piece, arena->data + piece->off);
        return LAGUNA_OK;
    case PRE_WHITESPACE_SPLIT:
        return split_chars(piece, arena, out, scratch, pred_whitespace, NULL, LG_SPLIT_REMOVED);
    case PRE_METASPACE:
        return metaspace(p, piece, out, arena, scratch);
    case PRE_PUNCTUATION:
        return split_chars(piece, arena, out, scratch, pred_punctuation, NULL, p->behavior);
    case PRE_DELIMITER:
        return split_chars(piece, arena, out, scratch, pred_equals, &p->replacement,
                           LG_SPLIT_REMOVED);
    case PRE_BERT: /* handled as two passes in apply_stage */
    case PRE_SEQUENCE:
        break;
    }
    return LAGUNA_OK;
}

static laguna_status apply_stage(const lg_pretokenizer *p, lg_pieces *pieces, lg_buf *arena,
                                 lg_pretok_scratch *scratch, laguna_error *err) {
    lg_pieces *out = &scratch->spare;
    out->n = 0;
    out->oom = false;
    laguna_status st = LAGUNA_OK;
    for (size_t i = 0; i < pieces->n && st == LAGUNA_OK; i++) {
        const lg_piece *piece = &pieces->items[i];
        if (piece->token >= 0)
            lg_pieces_add(out, *piece);
        else if (p->type == PRE_BERT)
            st = split_chars(piece, arena, out, scratch, pred_whitespace, NULL, LG_SPLIT_REMOVED);
        else
            st = apply_piece(p, piece, out, arena, scratch, err);
    }
    if (st == LAGUNA_OK && (out->oom || arena->oom)) st = LAGUNA_ERR_NOMEM;
    if (st == LAGUNA_ERR_NOMEM) return lg_fail(err, st, "out of memory pre-tokenizing text");
    if (st) return st;
    lg_pieces t = *pieces;
    *pieces = *out;
    *out = t;
    if (p->type == PRE_BERT) {
        lg_pretokenizer punct = {.type = PRE_PUNCTUATION, .behavior = LG_SPLIT_ISOLATED};
        return apply_stage(&punct, pieces, arena, scratch, err);
    }
    return LAGUNA_OK;
}

/* Real pre-tokenizers grow text a little (ByteLevel's two-byte characters,
 * Metaspace's three-byte marker); a hostile file's Sequence of rewriting
 * stages could double it stage after stage. The text (the arena) may grow
 * to this many times what it was before pre-tokenization, checked after
 * every stage. */
#define LG_PRETOKENIZED_MAX_GROWTH 8

static laguna_status apply_tree(const lg_pretokenizer *p, lg_pieces *pieces, lg_buf *arena,
                                lg_pretok_scratch *scratch, size_t limit, laguna_error *err) {
    if (p->type != PRE_SEQUENCE) {
        laguna_status st = apply_stage(p, pieces, arena, scratch, err);
        if (st == LAGUNA_OK && arena->len > limit)
            return lg_fail(err, LAGUNA_ERR_FORMAT,
                           "pre-tokenized text exceeds %d times its input (%zu bytes): the tokenizer's "
                           "pre-tokenizers keep rewriting the text",
                           LG_PRETOKENIZED_MAX_GROWTH, arena->len);
        return st;
    }
    for (size_t i = 0; i < p->n_children; i++) {
        laguna_status st = apply_tree(p->children[i], pieces, arena, scratch, limit, err);
        if (st) return st;
    }
    return LAGUNA_OK;
}

laguna_status lg_pretokenizer_apply(const lg_pretokenizer *p, lg_pieces *pieces, lg_buf *arena,
                                    lg_pretok_scratch *scratch, laguna_error *err) {
    if (!scratch->regex && !(scratch->regex = lg_regex_scratch_new()))
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory pre-tokenizing text");
    return apply_tree(p, pieces, arena, scratch, LG_PRETOKENIZED_MAX_GROWTH * arena->len + 4096, err);
}
