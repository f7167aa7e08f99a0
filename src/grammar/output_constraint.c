/* Structured output for one generation (output_constraint.h). The masks of
 * the last few states are kept: inside a JSON string the state after most
 * tokens is the state before them, so a long string costs one walk of the
 * vocabulary, not one per token. */
#include "grammar/output_constraint.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define MASKS_KEPT 16 /* a JSON answer's strings of different nesting are different states */
#define STATES_KEPT 4096 /* beyond, the matcher forgets all but the current state */
#define MAX_EOS 8

struct lg_output_constraint {
    lg_grammar g;
    lg_matcher *m;
    const lg_token_bytes *vocab;
    int32_t eos[MAX_EOS];
    int n_eos;
    int32_t think_close;
    bool reasoning;
    int state;
    size_t words;                   /* of a mask */
    uint64_t *mask[MASKS_KEPT];     /* masks of recent states, end of text included */
    int mask_state[MASKS_KEPT];     /* -1: empty */
    int mask_count[MASKS_KEPT];     /* tokens it allows, end of text included */
    int mask_next;                  /* the slot replaced next */
};

static void forget_masks(lg_output_constraint *c) {
    for (int i = 0; i < MASKS_KEPT; i++) c->mask_state[i] = -1;
}

laguna_status lg_output_constraint_new(lg_grammar *g, const lg_token_bytes *vocab, const lg_output_constraint_opts *o,
                                       lg_output_constraint **out, laguna_error *err) {
    lg_output_constraint *c = calloc(1, sizeof *c);
    if (!c) {
        lg_grammar_free(g);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    c->g = *g;
    memset(g, 0, sizeof *g);
    c->vocab = vocab;
    c->n_eos = o->n_eos < MAX_EOS ? o->n_eos : MAX_EOS;
    memcpy(c->eos, o->eos, sizeof *c->eos * (size_t)c->n_eos);
    c->think_close = o->think_close;
    c->reasoning = o->in_reasoning;
    c->words = (size_t)(lg_token_bytes_n_vocab(vocab) + 63) / 64;
    forget_masks(c);
    laguna_status st = lg_matcher_new(&c->g, &c->m, err);
    for (int i = 0; !st && i < MASKS_KEPT; i++)
        if (!(c->mask[i] = malloc(sizeof(uint64_t) * c->words))) st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    if (!st) {
        c->state = lg_matcher_start(c->m);
        if (c->state < 0) st = lg_fail(err, LAGUNA_ERR_ARGUMENT, "structured output: %s", lg_matcher_error(c->m));
    }
    if (st) {
        lg_output_constraint_free(c);
        return st;
    }
    *out = c;
    return LAGUNA_OK;
}

void lg_output_constraint_free(lg_output_constraint *c) {
    if (!c) return;
    lg_matcher_free(c->m);
    lg_grammar_free(&c->g);
    for (int i = 0; i < MASKS_KEPT; i++) free(c->mask[i]);
    free(c);
}

bool lg_output_constraint_complete(const lg_output_constraint *c) {
    return !c->reasoning && lg_matcher_accepting(c->m, c->state);
}

static bool is_eos(const lg_output_constraint *c, int32_t id) {
    for (int i = 0; i < c->n_eos; i++)
        if (id == c->eos[i]) return true;
    return false;
}

/* *slot: where the current state's mask is kept, worked out when it is not. */
static laguna_status current_mask(lg_output_constraint *c, int *slot, laguna_error *err) {
    for (int i = 0; i < MASKS_KEPT; i++)
        if (c->mask_state[i] == c->state) return *slot = i, LAGUNA_OK;
    int k = c->mask_next;
    c->mask_next = (k + 1) % MASKS_KEPT;
    uint64_t *mask = c->mask[k];
    int n = lg_token_mask(c->vocab, c->m, c->state, mask);
    if (n == LG_MATCHER_ERROR) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "structured output: %s", lg_matcher_error(c->m));
    bool whole = lg_matcher_accepting(c->m, c->state); /* end of text too (a number may also go on) */
    for (int i = 0; whole && i < c->n_eos; i++)
        if (c->eos[i] >= 0 && (size_t)c->eos[i] < 64 * c->words && !((mask[c->eos[i] >> 6] >> (c->eos[i] & 63)) & 1)) {
            mask[c->eos[i] >> 6] |= 1ull << (c->eos[i] & 63);
            n++;
        }
    if (!whole && n == 0)
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "structured output: no token of the vocabulary continues the answer");
    c->mask_state[k] = c->state, c->mask_count[k] = n;
    *slot = k;
    return LAGUNA_OK;
}

laguna_status lg_output_constraint_allowed(lg_output_constraint *c, const uint64_t **allowed, laguna_error *err) {
    *allowed = NULL;
    int slot;
    if (c->reasoning) return LAGUNA_OK;
    laguna_status st = current_mask(c, &slot, err);
    if (!st) *allowed = c->mask[slot];
    return st;
}

bool lg_output_constraint_forced(lg_output_constraint *c, int32_t *id) {
    int slot;
    if (c->reasoning || current_mask(c, &slot, NULL) || c->mask_count[slot] != 1) return false;
    const uint64_t *mask = c->mask[slot];
    for (size_t w = 0; w < c->words; w++)
        if (mask[w]) {
            *id = (int32_t)(64 * w + (size_t)__builtin_ctzll(mask[w]));
            return !is_eos(c, *id); /* the end is drawn, never forced */
        }
    return false;
}

laguna_status lg_output_constraint_take(lg_output_constraint *c, int32_t id, laguna_error *err) {
    if (c->reasoning) {
        if (id == c->think_close) c->reasoning = false;
        return LAGUNA_OK;
    }
    if (is_eos(c, id)) return LAGUNA_OK; /* the end: nothing to match */
    int s = lg_token_advance(c->vocab, c->m, c->state, id);
    if (s == LG_MATCHER_ERROR) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "structured output: %s", lg_matcher_error(c->m));
    if (s < 0) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "structured output: token %d does not continue the answer", id);
    c->state = s;
    if (lg_matcher_n_states(c->m) > STATES_KEPT) {
        lg_matcher_forget(c->m, &c->state);
        forget_masks(c);
    }
    return LAGUNA_OK;
}
