/* `laguna bench --expert-spread`: how a prompt's tokens spread over the
 * routed experts. A prefill's expert products cost what their weights and
 * tokens cost, so the same speed means different things when every expert
 * gets its even share (a trained model's balanced router) and when a few
 * take most tokens (possible with random weights): this line says which. */
#ifndef LAGUNA_CLI_BENCH_EXPERTS_H
#define LAGUNA_CLI_BENCH_EXPERTS_H

#include <stdint.h>

#include "laguna.h"

/* Feeds toks[0..n) once more in a session of its own with an observer on the
 * chosen experts and prints the line; non-zero (message printed) on failure. */
int bench_print_expert_spread(laguna_model *m, const laguna_session_options *so, const int32_t *toks, int n);

#endif
