/* Perplexity: log-softmax of every position's logits against the next token,
 * in float64, window by window; expert choices counted through the observer. */
#include "verify/perplexity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/model.h"
#include "verify/expert_load.h"

laguna_status lg_perplexity(laguna_model *m, const int32_t *tokens, size_t n_tokens, int window, laguna_kv_type kv_type,
                            bool want_load, lg_perplexity_result *r, laguna_error *err) {
    memset(r, 0, sizeof *r);
    const lg_config *c = &m->cfg;
    int V = c->vocab_size;
    if (window <= 0 || window > c->max_position_embeddings) window = c->max_position_embeddings;
    if (n_tokens < 2) return lg_fail(err, LAGUNA_ERR_ARGUMENT, "perplexity needs at least 2 tokens (got %zu)", n_tokens);
    int batch = window < 256 ? window : 256;
    laguna_session *s = NULL;
    laguna_status st = laguna_session_create(m, &(laguna_session_options){.n_ctx = window, .n_batch = batch, .kv_type = kv_type}, &s, err);
    if (st) return st;
    float *logits = malloc(sizeof(float) * (size_t)batch * V);
    lg_expert_load counter = {0};
    if (want_load && c->n_experts > 0 && lg_expert_load_init(&counter, c->n_layers, c->n_experts)) {
        laguna_observer obs = lg_expert_load_observer(&counter);
        laguna_session_set_observer(s, &obs);
    }
    if (!logits || (want_load && c->n_experts > 0 && !counter.load)) st = lg_fail(err, LAGUNA_ERR_NOMEM, "out of memory");
    for (size_t w0 = 0; w0 + 1 < n_tokens && !st; w0 += (size_t)window) {
        laguna_session_reset(s);
        size_t w_end = w0 + (size_t)window < n_tokens ? w0 + (size_t)window : n_tokens;
        for (size_t b0 = w0; b0 < w_end && !st; b0 += (size_t)batch) {
            size_t n = w_end - b0 < (size_t)batch ? w_end - b0 : (size_t)batch;
            if ((st = laguna_session_feed(s, tokens + b0, n, logits, err))) break;
            for (size_t i = 0; i < n; i++) {
                size_t pos = b0 + i;
                if (pos + 1 >= w_end) break; /* the window's last token predicts nothing inside it */
                const float *row = logits + i * V;
                double max = row[0], z = 0;
                for (int v = 1; v < V; v++)
                    if (row[v] > max) max = row[v];
                for (int v = 0; v < V; v++) z += exp(row[v] - max);
                r->nll_sum += -(row[tokens[pos + 1]] - max - log(z));
                r->n_predicted++;
            }
        }
    }
    free(logits);
    laguna_session_free(s);
    if (st) {
        free(counter.load);
        return st;
    }
    r->expert_load = counter.load;
    return LAGUNA_OK;
}
