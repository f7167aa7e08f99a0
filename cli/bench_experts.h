/* `laguna bench --expert-spread`: how a prompt's tokens spread over the
 * routed experts. A prefill's expert products cost what their weights and
 * tokens cost, so the same speed means different things when every expert
 * gets its even share (a trained model's balanced router) and when a few
 * take most tokens (possible with random weights): this line says which. */
#ifndef LAGUNA_CLI_BENCH_EXPERTS_H
#define LAGUNA_CLI_BENCH_EXPERTS_H

#include "model/model.h"
#include "verify/expert_load.h"

/* Prints the line from the counts of one feed of the prompt (the bench's
 * untimed prefill); non-zero (message printed) if the engine chose an id
 * that is no expert. */
int bench_print_expert_spread(const laguna_model *m, const lg_expert_load *counts);

#endif
