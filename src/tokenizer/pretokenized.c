/* Pieces of the text being encoded and NormalizedString::split's behaviours. */
#include "tokenizer/pretokenized.h"

#include <stdlib.h>

#include "tokenizer/unicode.h"

void lg_pieces_free(lg_pieces *p) {
    free(p->items);
    *p = (lg_pieces){0};
}

void lg_pieces_add(lg_pieces *p, lg_piece piece) {
    if (p->oom || (piece.len == 0 && piece.token < 0)) return;
    if (!lg_grow((void **)&p->items, &p->cap, p->n + 1, sizeof *p->items)) {
        p->oom = true;
        return;
    }
    p->items[p->n++] = piece;
}

static void add_part(lg_pieces *out, const lg_piece *piece, uint32_t start, uint32_t end) {
    lg_pieces_add(out,
                  (lg_piece){piece->off + start, end - start, -1, piece->at_origin && start == 0});
}

void lg_pieces_split(lg_pieces *out, const lg_piece *piece, const lg_matches *matches,
                     lg_split_behavior behavior, bool invert) {
    size_t n = matches->n;
    const lg_match *m = matches->items;
#define IS_MATCH(i) (m[i].is_match != invert)
    switch (behavior) {
    case LG_SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++)
            add_part(out, piece, m[i].start, m[i].end);
        break;
    case LG_SPLIT_REMOVED:
        for (size_t i = 0; i < n; i++)
            if (!IS_MATCH(i)) add_part(out, piece, m[i].start, m[i].end);
        break;
    case LG_SPLIT_CONTIGUOUS:
    case LG_SPLIT_MERGED_WITH_PREVIOUS: {
        /* a part joins the one before it when both are matches (contiguous)
         * or when it is a match following a non-match (merged with previous) */
        bool previous = false, have = false;
        uint32_t start = 0, end = 0;
        for (size_t i = 0; i < n; i++) {
            bool cur = IS_MATCH(i);
            bool join = behavior == LG_SPLIT_CONTIGUOUS ? cur == previous : cur && !previous;
            if (join && have) {
                end = m[i].end;
            } else {
                if (have) add_part(out, piece, start, end);
                start = m[i].start, end = m[i].end, have = true;
            }
            previous = cur;
        }
        if (have) add_part(out, piece, start, end);
        break;
    }
    case LG_SPLIT_MERGED_WITH_NEXT: {
        /* the same fold from the right: a match joins the part after it
         * unless that part is a match too */
        size_t first = out->n;
        bool previous = false, have = false;
        uint32_t start = 0, end = 0;
        for (size_t i = n; i-- > 0;) {
            bool cur = IS_MATCH(i);
            if (cur && !previous && have) {
                start = m[i].start;
            } else {
                if (have) add_part(out, piece, start, end);
                start = m[i].start, end = m[i].end, have = true;
            }
            previous = cur;
        }
        if (have) add_part(out, piece, start, end);
        if (out->oom) break;
        for (size_t a = first, b = out->n; a + 1 < b; a++, b--) {
            lg_piece t = out->items[a];
            out->items[a] = out->items[b - 1];
            out->items[b - 1] = t;
        }
        break;
    }
    }
#undef IS_MATCH
}

void lg_matches_from_chars(lg_matches *out, const char *s, size_t n,
                           bool (*pred)(uint32_t cp, const void *ctx), const void *ctx) {
    out->n = 0;
    out->oom = false;
    size_t last = 0, i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = lg_utf8_get(s + i, &cp);
        if (pred(cp, ctx)) {
            if (last < i) lg_matches_add(out, (uint32_t)last, (uint32_t)i, false);
            lg_matches_add(out, (uint32_t)i, (uint32_t)(i + k), true);
            last = i + k;
        }
        i += k;
    }
    if (last < n) lg_matches_add(out, (uint32_t)last, (uint32_t)n, false);
}
