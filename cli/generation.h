/* The token loop shared by `generate` and `chat`: sample, stop on an
 * end-of-sequence id or a stop string, stream text (or ids) as it comes. */
#ifndef LAGUNA_CLI_GENERATION_H
#define LAGUNA_CLI_GENERATION_H

#include <stdbool.h>
#include <stdint.h>

#include "laguna.h"
#include "laguna_tokenizer.h"

typedef struct {
    laguna_session *session;   /* holds the prompt; its logits give the first token */
    laguna_sampler *sampler;
    const laguna_model_info *info;
    const laguna_tokenizer *tokenizer; /* NULL: print ids instead of text */
    const char *const *stops;  /* stop strings (need a tokenizer) */
    int n_stops;
    int max_new_tokens;
    bool ignore_eos;
    bool skip_special;         /* leave special tokens out of the text */
    void (*emit)(void *user, const char *text, size_t len);
    void *user;
} generation_params;

typedef struct {
    int n_generated;           /* sampled tokens, the final eos included */
    int32_t *tokens;           /* the sampled tokens (caller frees) */
    bool fed_last;             /* whether the last sampled token went into the session */
    const char *finish;        /* "eos", "stop" or "length" */
} generation_result;

laguna_status run_generation(const generation_params *p, generation_result *r, laguna_error *err);

#endif
