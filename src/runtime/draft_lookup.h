/* Drafts for speculative greedy decoding without a draft model ("prompt
 * lookup"): the tokens that followed the most recent earlier occurrence of
 * the text's last few tokens. Code and agent turns repeat a great deal of
 * what they have already seen (a file being edited, a function's name,
 * JSON keys), so those tokens are often what the model writes next. */
#ifndef LAGUNA_RUNTIME_DRAFT_LOOKUP_H
#define LAGUNA_RUNTIME_DRAFT_LOOKUP_H

#include <stdint.h>

#define LG_DRAFT_NGRAM_MAX 4 /* the longest tail looked up */
#define LG_DRAFT_NGRAM_MIN 2 /* the shortest (a single token matches too often to pay) */

/* The text is hist[0..n) followed by last. Looks for its last g tokens
 * earlier in it, g from LG_DRAFT_NGRAM_MAX down to LG_DRAFT_NGRAM_MIN, the
 * most recent occurrence first, and copies up to k tokens that followed the
 * first match into out. Returns how many (0: no match). */
int lg_draft_lookup(const int32_t *hist, int n, int32_t last, int k, int32_t *out);

#endif
