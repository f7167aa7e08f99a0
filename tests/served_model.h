/* A model folder opened the way the server tests need it: tokenizer, chat template and model
 * (2 threads), and optionally a server on a free loopback port; more servers with other options
 * can be started on the same opened set. One setup and one teardown for the tests that drive
 * laguna serve in process. */
#ifndef LAGUNA_TESTS_SERVED_MODEL_H
#define LAGUNA_TESTS_SERVED_MODEL_H

#include "laguna.h"
#include "laguna_chat.h"
#include "laguna_tokenizer.h"
#include "server/server.h"

typedef struct {
    laguna_model *model;
    laguna_tokenizer *tok;
    laguna_chat_template *tmpl;
    lg_server *srv; /* NULL unless started by served_model_open */
} served_model;

/* Opens dir on device (NULL: the CPU) and, when so is not NULL, starts a server with those
 * options. 0, or -1 with err set; either way served_model_close frees what was opened. */
int served_model_open(served_model *s, const char *dir, const char *device,
                      const lg_server_options *so, laguna_error *err);
/* Starts another server with options so on s's model, tokenizer and template (port 0: a free
 * one). 0 with *srv set, which the caller stops with lg_server_stop before served_model_close;
 * or -1 with err set. */
int served_model_start(const served_model *s, const lg_server_options *so, lg_server **srv,
                       laguna_error *err);
/* Stops the server s->srv (if any) and frees the model, template and tokenizer. */
void served_model_close(served_model *s);

#endif
