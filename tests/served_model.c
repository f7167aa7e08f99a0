/* See served_model.h. */
#include "served_model.h"

#include <string.h>

int served_model_open(served_model *s, const char *dir, const char *device,
                      const lg_server_options *so, laguna_error *err) {
    memset(s, 0, sizeof *s);
    laguna_model_options mo = {.n_threads = 2, .device = device};
    if (laguna_tokenizer_load(dir, &s->tok, err) || laguna_chat_template_load(dir, &s->tmpl, err) ||
        laguna_model_open(dir, &mo, &s->model, err))
        return -1;
    return so ? served_model_start(s, so, &s->srv, err) : 0;
}

int served_model_start(const served_model *s, const lg_server_options *so, lg_server **srv,
                       laguna_error *err) {
    *srv = NULL;
    return lg_server_start(s->model, s->tok, s->tmpl, so, srv, err) ? -1 : 0;
}

void served_model_close(served_model *s) {
    lg_server_stop(s->srv);
    laguna_model_free(s->model);
    laguna_chat_template_free(s->tmpl);
    laguna_tokenizer_free(s->tok);
    memset(s, 0, sizeof *s);
}
