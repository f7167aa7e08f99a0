/* Structured output for one generation: which tokens may come next so that
 * the answer is a text of a grammar (a JSON Schema's, grammar/json_schema.h),
 * and the bookkeeping as tokens are chosen.
 *
 * Reasoning stays free: while the generation is inside <think> (the prompt
 * ends inside it), nothing is constrained; the answer after </think> is.
 * End of text is allowed only once the answer is whole (after an object
 * or an array nothing else is; a number may also go on). */
#ifndef LAGUNA_GRAMMAR_OUTPUT_CONSTRAINT_H
#define LAGUNA_GRAMMAR_OUTPUT_CONSTRAINT_H

#include <stdbool.h>
#include <stdint.h>

#include "grammar/grammar.h"
#include "grammar/token_mask.h"

typedef struct lg_output_constraint lg_output_constraint;

typedef struct {
    const int32_t *eos; /* end-of-text ids (copied) */
    int n_eos;
    int32_t think_close; /* </think>'s id, or -1 */
    bool in_reasoning;   /* the prompt leaves the generation inside <think> */
} lg_output_constraint_opts;

/* Takes g (emptied: the constraint frees it); vocab is borrowed. */
laguna_status lg_output_constraint_new(lg_grammar *g, const lg_token_bytes *vocab, const lg_output_constraint_opts *o,
                                       lg_output_constraint **out, laguna_error *err);
void lg_output_constraint_free(lg_output_constraint *c);
/* The tokens allowed next (a bitset of the vocabulary, valid until the next
 * call), or *allowed NULL when anything goes (reasoning). Fails when the
 * matcher does (a limit) or when no token can continue the answer. */
laguna_status lg_output_constraint_allowed(lg_output_constraint *c, const uint64_t **allowed, laguna_error *err);
/* Whether exactly one token may come next, and it is not end of text (a
 * key's remaining bytes, punctuation the schema fixes): *id, which a caller
 * may feed without drawing it ("jump forward"), after taking it. */
bool lg_output_constraint_forced(lg_output_constraint *c, int32_t *id);
/* Takes the token chosen next. Fails when the grammar refuses it. */
laguna_status lg_output_constraint_take(lg_output_constraint *c, int32_t id, laguna_error *err);
/* Whether the answer is a whole text of the grammar. */
bool lg_output_constraint_complete(const lg_output_constraint *c);

#endif
