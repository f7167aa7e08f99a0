/* A model folder opened the way the server tests need it: tokenizer, chat template and model
 * (2 threads), and optionally a server on a free loopback port. One setup and one teardown for
 * the tests that drive laguna serve in process. */
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
    lg_server *srv; /* NULL unless started */
} served_model;

/* Opens dir on device (NULL: the CPU) and, when so is not NULL, starts a server with those
 * options. 0, or -1 with err set; either way served_model_close frees what was opened. */
int served_model_open(served_model *s, const char *dir, const char *device, const lg_server_options *so,
                      laguna_error *err);
/* Stops the server (if any) and frees the model, template and tokenizer. */
void served_model_close(served_model *s);

#endif
