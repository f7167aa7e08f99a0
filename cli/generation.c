/* Generation loop: sample -> (eos? stop) -> detokenize -> stop strings ->
 * emit -> feed, until max_new_tokens. */
#include "generation.h"

#include <stdio.h>
#include <stdlib.h>

#include "runtime/stop_strings.h"

static bool is_eos(const laguna_model_info *info, int32_t t) {
    for (int i = 0; i < info->n_eos_token_ids; i++)
        if (info->eos_token_ids[i] == t) return true;
    return false;
}

laguna_status run_generation(const generation_params *p, generation_result *r, laguna_error *err) {
    *r = (generation_result){0, NULL, false, "length"};
    laguna_detokenizer *detok = NULL;
    lg_stop_matcher *stops = NULL;
    laguna_status st = LAGUNA_OK;
    r->tokens = malloc(sizeof(int32_t) * (size_t)(p->max_new_tokens > 0 ? p->max_new_tokens : 1));
    if (!r->tokens) return LAGUNA_ERR_NOMEM;
    if (p->tokenizer) {
        if ((st = laguna_detokenizer_new(p->tokenizer, p->skip_special, &detok, err))) return st;
        stops = lg_stop_matcher_new(p->stops, (size_t)p->n_stops);
    }
    for (int i = 0; i < p->max_new_tokens; i++) {
        int32_t t = laguna_sampler_sample(p->sampler, laguna_session_logits(p->session));
        laguna_sampler_accept(p->sampler, t);
        r->tokens[r->n_generated++] = t;
        r->fed_last = false;
        if (!p->ignore_eos && is_eos(p->info, t)) {
            r->finish = "eos";
            break;
        }
        bool stop_hit = false;
        if (detok) {
            const char *text, *out;
            size_t len, out_len;
            if ((st = laguna_detokenizer_push(detok, t, &text, &len, err))) break;
            stop_hit = lg_stop_matcher_push(stops, text, len, &out, &out_len);
            if (out_len) p->emit(p->user, out, out_len);
        } else {
            char buf[32];
            int n = snprintf(buf, sizeof buf, i ? ",%d" : "%d", t);
            p->emit(p->user, buf, (size_t)n);
        }
        if (stop_hit) {
            r->finish = "stop";
            break;
        }
        if (i + 1 < p->max_new_tokens) {
            if ((st = laguna_session_feed(p->session, &t, 1, NULL, err))) break;
            r->fed_last = true;
        }
    }
    if (detok && !st && r->finish[0] != 's') { /* release what was held back */
        const char *text, *out;
        size_t len, out_len;
        if (!laguna_detokenizer_flush(detok, &text, &len, err)) {
            bool hit = lg_stop_matcher_push(stops, text, len, &out, &out_len);
            if (out_len) p->emit(p->user, out, out_len);
            if (hit) r->finish = "stop";
            else {
                lg_stop_matcher_flush(stops, &out, &out_len);
                if (out_len) p->emit(p->user, out, out_len);
            }
        }
    }
    laguna_detokenizer_free(detok);
    lg_stop_matcher_free(stops);
    return st;
}
