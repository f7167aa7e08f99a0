/* Expert choices counted through the session observer (laguna_observer's
 * on_experts): load[layer][expert], summed over every feed while attached.
 * Used by `laguna perplexity --experts` and `laguna bench --expert-spread`. */
#ifndef LAGUNA_VERIFY_EXPERT_LOAD_H
#define LAGUNA_VERIFY_EXPERT_LOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "laguna.h"

typedef struct {
    int64_t *load; /* [n_layers][n_experts] */
    int n_layers, n_experts;
    int64_t bad; /* ids outside [0, n_experts): not counted (an engine bug) */
} lg_expert_load;

/* False without memory. */
bool lg_expert_load_init(lg_expert_load *c, int n_layers, int n_experts);

/* The observer that counts into c (c must outlive its use). */
laguna_observer lg_expert_load_observer(lg_expert_load *c);

/* One layer's row of counts summarised. */
typedef struct {
    int64_t max, sum;
    int unused; /* experts never chosen */
} lg_layer_load;

lg_layer_load lg_expert_load_layer(const int64_t *row, int n_experts);

#endif
