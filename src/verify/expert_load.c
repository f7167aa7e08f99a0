/* Expert choices counted through the observer (expert_load.h). */
#include "verify/expert_load.h"

#include <stdlib.h>

static void count_experts(void *user, int layer, const int32_t *ids, int n, int k) {
    lg_expert_load *c = user;
    if (layer < 0 || layer >= c->n_layers) {
        c->bad += (int64_t)n * k;
        return;
    }
    for (long i = 0; i < (long)n * k; i++) {
        if (ids[i] < 0 || ids[i] >= c->n_experts) c->bad++;
        else c->load[(size_t)layer * c->n_experts + ids[i]]++;
    }
}

bool lg_expert_load_init(lg_expert_load *c, int n_layers, int n_experts) {
    *c = (lg_expert_load){NULL, n_layers, n_experts, 0};
    c->load = calloc((size_t)n_layers * (size_t)n_experts, sizeof(int64_t));
    return c->load != NULL;
}

laguna_observer lg_expert_load_observer(lg_expert_load *c) { return (laguna_observer){NULL, count_experts, c}; }

lg_layer_load lg_expert_load_layer(const int64_t *row, int n_experts) {
    lg_layer_load l = {0, 0, 0};
    for (int e = 0; e < n_experts; e++) {
        l.sum += row[e];
        l.max = row[e] > l.max ? row[e] : l.max;
        l.unused += row[e] == 0;
    }
    return l;
}
