/* Token sampling: repetition penalty, temperature, top-k, top-p, min-p, in
 * the order transformers' generate applies them, then a draw from a seeded
 * xoshiro256** generator. Temperature 0 is greedy (argmax, lowest id on ties). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "laguna.h"

typedef struct {
    float value;
    int32_t id;
} candidate;

struct laguna_sampler {
    laguna_sampler_params p;
    int vocab;
    uint64_t rng[4];
    unsigned char *seen; /* tokens accepted so far (repetition penalty) */
    float *work;
    candidate *cand;
};

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

laguna_sampler_params laguna_sampler_default_params(void) {
    return (laguna_sampler_params){.temperature = 0, .top_k = 0, .top_p = 1, .min_p = 0, .repetition_penalty = 1, .seed = 0};
}

laguna_status laguna_sampler_create(const laguna_sampler_params *p, int vocab, laguna_sampler **out, laguna_error *err) {
    *out = NULL;
    if (vocab <= 0) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "vocabulary size must be positive");
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "temperature must be >= 0 (got %g)", p->temperature);
    if (p->top_k < 0) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "top-k must be >= 0 (got %d)", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1)) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "top-p must be in (0, 1] (got %g)", p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1)) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "min-p must be in [0, 1] (got %g)", p->min_p);
    if (!(p->repetition_penalty > 0) || !isfinite(p->repetition_penalty))
        return lg_fail(err, LAGUNA_ERR_ARGUMENT, "repetition penalty must be > 0 (got %g)", p->repetition_penalty);
    laguna_sampler *s = calloc(1, sizeof *s);
    if (!s) return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    s->p = *p;
    s->vocab = vocab;
    s->seen = calloc((size_t)vocab, 1);
    s->work = malloc(sizeof(float) * (size_t)vocab);
    s->cand = malloc(sizeof(candidate) * (size_t)vocab);
    if (!s->seen || !s->work || !s->cand) {
        laguna_sampler_free(s);
        return lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    }
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    *out = s;
    return LAGUNA_OK;
}

void laguna_sampler_free(laguna_sampler *s) {
    if (!s) return;
    free(s->seen);
    free(s->work);
    free(s->cand);
    free(s);
}

void laguna_sampler_accept(laguna_sampler *s, int32_t token) {
    if (token >= 0 && token < s->vocab) s->seen[token] = 1;
}

static int by_value_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->value != y->value) return x->value > y->value ? -1 : 1;
    return x->id - y->id;
}

int32_t laguna_sampler_sample(laguna_sampler *s, const float *logits) {
    int V = s->vocab;
    float *w = s->work;
    memcpy(w, logits, sizeof(float) * (size_t)V);
    if (s->p.repetition_penalty != 1) /* as transformers: divide positive logits, multiply negative */
        for (int i = 0; i < V; i++)
            if (s->seen[i]) w[i] = w[i] > 0 ? w[i] / s->p.repetition_penalty : w[i] * s->p.repetition_penalty;
    if (s->p.temperature == 0) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (w[i] > w[best]) best = i;
        return best;
    }
    for (int i = 0; i < V; i++) w[i] /= s->p.temperature;

    /* candidates: all ids, or the top_k best; sorted by logit descending */
    int n = V;
    candidate *c = s->cand;
    for (int i = 0; i < V; i++) c[i] = (candidate){w[i], i};
    qsort(c, (size_t)V, sizeof *c, by_value_desc);
    if (s->p.top_k > 0 && s->p.top_k < n) n = s->p.top_k;

    /* softmax over the candidates */
    float max = c[0].value;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)c[i].value - max);
    /* top-p: smallest prefix whose probability reaches top_p (at least one) */
    if (s->p.top_p < 1) {
        double acc = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            acc += exp((double)c[i].value - max) / sum;
            if (acc >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    /* min-p: drop candidates below min_p times the best probability */
    if (s->p.min_p > 0) {
        double floor_ratio = s->p.min_p; /* p_i / p_max = exp(w_i - max) */
        int keep = 1;
        while (keep < n && exp((double)c[keep].value - max) >= floor_ratio) keep++;
        n = keep;
    }
    double total = 0;
    for (int i = 0; i < n; i++) total += exp((double)c[i].value - max);
    double r = (double)(next_u64(s->rng) >> 11) * (1.0 / 9007199254740992.0) * total;
    for (int i = 0; i < n; i++) {
        r -= exp((double)c[i].value - max);
        if (r < 0) return c[i].id;
    }
    return c[n - 1].id;
}
