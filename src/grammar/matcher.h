/* Runs a grammar (grammar.h) over bytes as a lazily built automaton.
 *
 * Where a parse can be is a set of stacks of grammar positions (the
 * positions still to match, innermost on top), expanded until every top is
 * a byte class or the stack is empty (the text so far is a whole sentence):
 * the same recogniser as llama.cpp's grammar sampler. Each distinct set is
 * a state, numbered when first met, and its successor on each byte is
 * computed once and remembered, so walking the same bytes again (every
 * token of the vocabulary at every step, in grammar/token_mask.c) costs a
 * table lookup per byte. Unknown successors are worked out on demand.
 *
 * Limits keep a hostile grammar from running away: a stack deeper than
 * LG_MATCHER_MAX_DEPTH, a state of more than LG_MATCHER_MAX_STACKS stacks,
 * or an expansion that does not end (left recursion) makes a step answer
 * LG_MATCHER_ERROR, with the reason in lg_matcher_error. */
#ifndef LAGUNA_GRAMMAR_MATCHER_H
#define LAGUNA_GRAMMAR_MATCHER_H

#include <stdbool.h>
#include <stdint.h>

#include "grammar/grammar.h"

#define LG_MATCHER_DEAD (-1)  /* no sentence continues with that byte */
#define LG_MATCHER_ERROR (-2) /* a limit was reached (lg_matcher_error says which) */
#define LG_MATCHER_MAX_DEPTH 1024
#define LG_MATCHER_MAX_STACKS 512

typedef struct lg_matcher lg_matcher;

/* A matcher of g (borrowed; it must outlive the matcher). */
laguna_status lg_matcher_new(const lg_grammar *g, lg_matcher **out, laguna_error *err);
void lg_matcher_free(lg_matcher *m);
/* The state before any byte (or LG_MATCHER_ERROR). */
int lg_matcher_start(lg_matcher *m);
/* The state after byte b in state s (>= 0), LG_MATCHER_DEAD or LG_MATCHER_ERROR. */
int lg_matcher_step(lg_matcher *m, int s, uint8_t b);
/* The successors known so far, [state][256]: a state's successor on a byte
 * is there once worked out (>= 0 or LG_MATCHER_DEAD), else below
 * LG_MATCHER_ERROR (ask lg_matcher_step). The table moves when a step adds
 * a state: fetch it again after any lg_matcher_step. */
const int32_t *lg_matcher_table(const lg_matcher *m);
/* Whether the bytes that led to state s form a whole sentence. */
bool lg_matcher_accepting(const lg_matcher *m, int s);
/* States known so far. */
int lg_matcher_n_states(const lg_matcher *m);
/* Forgets every state but *s, which becomes state 0 (*s = 0): bounds the
 * memory of a long generation. */
void lg_matcher_forget(lg_matcher *m, int *s);
/* Why the last step answered LG_MATCHER_ERROR. */
const char *lg_matcher_error(const lg_matcher *m);

#endif
