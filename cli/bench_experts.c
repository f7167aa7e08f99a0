/* `laguna bench --expert-spread` (bench_experts.h). */
#include "bench_experts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int n_experts;
    int *count;      /* tokens an expert got in the layer being counted */
    int layers;      /* sparse layers seen */
    double hit_sum;  /* experts with at least one token, summed over layers */
    int hit_min, hit_max, min_layer, max_layer;
    double busiest_sum; /* the busiest expert's tokens over the even share, summed */
    int failed;
} spread;

static void on_experts(void *user, int layer, const int32_t *ids, int n_tokens, int top_k) {
    spread *s = user;
    memset(s->count, 0, sizeof(int) * (size_t)s->n_experts);
    for (long i = 0; i < (long)n_tokens * top_k; i++) {
        if (ids[i] < 0 || ids[i] >= s->n_experts) {
            s->failed = 1; /* not an expert id: the engine's bug, not the prompt's */
            return;
        }
        s->count[ids[i]]++;
    }
    int hit = 0, busiest = 0;
    for (int e = 0; e < s->n_experts; e++) {
        hit += s->count[e] > 0;
        busiest = s->count[e] > busiest ? s->count[e] : busiest;
    }
    if (!s->layers || hit < s->hit_min) s->hit_min = hit, s->min_layer = layer;
    if (!s->layers || hit > s->hit_max) s->hit_max = hit, s->max_layer = layer;
    s->layers++;
    s->hit_sum += hit;
    s->busiest_sum += busiest / ((double)n_tokens * top_k / s->n_experts);
}

int bench_print_expert_spread(laguna_model *m, const laguna_session_options *so, const int32_t *toks, int n) {
    const laguna_model_info *info = laguna_model_get_info(m);
    spread s = {.n_experts = info->n_experts};
    laguna_error err = {0};
    laguna_session *session = NULL;
    if (info->n_experts <= 0) {
        printf("%-36s no routed experts\n", "experts hit by the prompt");
        return 0;
    }
    s.count = malloc(sizeof(int) * (size_t)info->n_experts);
    int rc = !s.count || laguna_session_create(m, so, &session, &err) != LAGUNA_OK;
    if (!rc) {
        laguna_observer obs = {NULL, on_experts, &s};
        laguna_session_set_observer(session, &obs);
        rc = laguna_session_feed(session, toks, (size_t)n, NULL, &err) != LAGUNA_OK;
    }
    if (rc) fprintf(stderr, "laguna bench: --expert-spread: %s\n", err.message[0] ? err.message : "out of memory");
    else if (s.failed) fprintf(stderr, "laguna bench: --expert-spread: an expert id out of range\n"), rc = 1;
    else if (s.layers)
        printf("%-36s %9.1f of %d a layer (fewest %d, layer %d; most %d, layer %d); busiest expert %.1fx its even share\n",
               "experts hit by the prompt", s.hit_sum / s.layers, s.n_experts, s.hit_min, s.min_layer, s.hit_max,
               s.max_layer, s.busiest_sum / s.layers);
    laguna_session_free(session);
    free(s.count);
    return rc;
}
