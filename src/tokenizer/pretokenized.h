/* The text being encoded, cut into pieces: tokenizers' PreTokenizedString
 * without offset tracking.
 *
 * All piece bytes live in one arena for the whole encode call; splitting a
 * piece only makes narrower spans of it, and a transformation (byte-level
 * mapping, Metaspace's replacement) appends the new text to the arena. A
 * piece that already is an added token carries its id and is passed through
 * by every later stage, as in tokenizers. */
#ifndef LAGUNA_TOKENIZER_PRETOKENIZED_H
#define LAGUNA_TOKENIZER_PRETOKENIZED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/regex.h"
#include "tokenizer/strbuf.h"

typedef struct {
    uint32_t off, len; /* bytes in the arena */
    int32_t token;     /* an added token's id, or -1 for text still to tokenize */
    /* The piece starts where the input starts (tokenizers' offsets_original
     * == 0), which Metaspace's prepend_scheme "first" asks about. */
    bool at_origin;
} lg_piece;

typedef struct {
    lg_piece *items;
    size_t n, cap;
    bool oom;
} lg_pieces;

void lg_pieces_free(lg_pieces *p);
/* Appends a piece unless it is empty text (tokenizers drops empty splits). */
void lg_pieces_add(lg_pieces *p, lg_piece piece);

/* tokenizers' SplitDelimiterBehavior. */
typedef enum {
    LG_SPLIT_REMOVED,
    LG_SPLIT_ISOLATED,
    LG_SPLIT_MERGED_WITH_PREVIOUS,
    LG_SPLIT_MERGED_WITH_NEXT,
    LG_SPLIT_CONTIGUOUS,
} lg_split_behavior;

/* Cuts `piece` along `matches` (offsets relative to the piece, covering it)
 * as NormalizedString::split does, appending the parts to out. When invert
 * is set, matches and gaps swap roles. */
void lg_pieces_split(lg_pieces *out, const lg_piece *piece, const lg_matches *matches,
                     lg_split_behavior behavior, bool invert);

/* Matches of a per-character predicate (tokenizers' `impl Pattern for
 * Fn(char) -> bool`): every character for which it holds is one match. */
void lg_matches_from_chars(lg_matches *out, const char *s, size_t n,
                           bool (*pred)(uint32_t cp, const void *ctx), const void *ctx);

#endif
