/* `laguna bench --expert-spread` (bench_experts.h). */
#include "bench_experts.h"

#include <stdio.h>

int bench_print_expert_spread(const laguna_model *m, const lg_expert_load *counts) {
    const lg_config *c = &m->cfg;
    if (counts->bad) {
        fprintf(stderr, "laguna bench: --expert-spread: %lld expert ids out of range\n", (long long)counts->bad);
        return 1;
    }
    int layers = 0, hit_min = 0, hit_max = 0, min_layer = 0, max_layer = 0;
    double hit_sum = 0, busiest_sum = 0; /* the busiest expert's tokens over the even share, summed */
    for (int l = 0; l < c->n_layers; l++) {
        if (c->mlp_kind[l] != LG_MLP_SPARSE) continue;
        lg_layer_load ll = lg_expert_load_layer(counts->load + (size_t)l * c->n_experts, c->n_experts);
        int hit = c->n_experts - ll.unused;
        if (!layers || hit < hit_min) hit_min = hit, min_layer = l;
        if (!layers || hit > hit_max) hit_max = hit, max_layer = l;
        layers++;
        hit_sum += hit;
        busiest_sum += ll.sum ? ll.max / ((double)ll.sum / c->n_experts) : 0;
    }
    if (!layers) printf("%-36s no routed experts\n", "experts hit by the prompt");
    else
        printf("%-36s %9.1f of %d a layer (fewest %d, layer %d; most %d, layer %d); busiest expert %.1fx its even share\n",
               "experts hit by the prompt", hit_sum / layers, c->n_experts, hit_min, min_layer, hit_max, max_layer,
               busiest_sum / layers);
    return 0;
}
