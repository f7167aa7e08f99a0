/* laguna chat -m DIR: an interactive multi-turn chat. Each turn renders the
 * whole conversation with the checkpoint's chat template, but only feeds
 * the tokens after the longest prefix the session already holds (taking
 * back the few the template rewrites, such as an empty <think></think>), so
 * the KV cache carries over from turn to turn (laguna_session_feed_reuse).
 * Replies stream as they come (laguna_generate). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "text_input.h"
#include "laguna_chat.h"
#include "laguna_generate.h"
#include "laguna_tokenizer.h"
#include "server/chat_parser.h"

static void usage(FILE *f) {
    fprintf(f, "usage: laguna chat -m MODEL_DIR [--system TEXT] [--think] [-n N] [sampling options]\n"
               "  --system TEXT     system message\n"
               "  --think           start with thinking on (toggle with /think on|off)\n"
               "  -n N              most tokens per reply (default 1024)\n"
               RUN_OPTIONS_USAGE
               "  --no-reuse        re-read the whole conversation every turn (for comparison)\n"
               "  --stats           per-turn token counts and speed on stderr\n"
               "commands in the chat: /think on|off, /reset, /quit, /help\n");
}

typedef struct {
    char *buf;
    size_t len, cap;
} text_buf;

static int keep_text(text_buf *b, const char *text, size_t len) {
    if (b->len + len + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 256) + len;
        char *p = realloc(b->buf, nc);
        if (!p) return 0;
        b->buf = p;
        b->cap = nc;
    }
    memcpy(b->buf + b->len, text, len);
    b->len += len;
    b->buf[b->len] = 0;
    return 0;
}

static int emit_and_keep(void *user, const char *text, size_t len) {
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    keep_text(user, text, len);
    return 0;
}

typedef struct {
    laguna_model *model;
    laguna_session *session;
    laguna_sampler *sampler;
    laguna_tokenizer *tok;
    laguna_chat_template *tmpl;
    cJSON *messages;
    int max_new, think, reuse, stats;
} chat_state;

static char *render(chat_state *c, laguna_error *err) {
    cJSON *req = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(req, "messages", c->messages);
    cJSON_AddTrueToObject(req, "add_generation_prompt");
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(req, "chat_template_kwargs"), "enable_thinking", c->think);
    char *json = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    char *out = NULL;
    size_t len;
    if (!json || laguna_chat_template_apply(c->tmpl, json, strlen(json), &out, &len, err)) out = NULL;
    free(json);
    return out;
}

static void add_message(cJSON *messages, const char *role, const char *content, const char *reasoning) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", content);
    if (reasoning) cJSON_AddStringToObject(m, "reasoning_content", reasoning);
    cJSON_AddItemToArray(messages, m);
}

/* One user turn: render, sync, generate, record the reply. */
static int turn(chat_state *c, const char *user_text) {
    laguna_error err = {0};
    add_message(c->messages, "user", user_text, NULL);
    char *prompt = render(c, &err);
    int32_t *ids = NULL;
    size_t n = 0, reused = 0;
    if (!prompt || laguna_tokenizer_encode(c->tok, prompt, strlen(prompt), false, &ids, &n, &err) ||
        (n == 0 && !(err.code = LAGUNA_ERR_ARGUMENT, snprintf(err.message, sizeof err.message, "empty prompt")))) {
        fprintf(stderr, "laguna chat: %s\n", err.message);
        cJSON_DeleteItemFromArray(c->messages, cJSON_GetArraySize(c->messages) - 1);
        free(prompt);
        return -1;
    }
    free(prompt);
    int capacity = laguna_session_capacity(c->session);
    if (n + (size_t)c->max_new > (size_t)capacity) {
        fprintf(stderr, "laguna chat: the conversation (%zu tokens) + a reply no longer fit the context (%d); /reset\n", n,
                capacity);
        cJSON_DeleteItemFromArray(c->messages, cJSON_GetArraySize(c->messages) - 1);
        laguna_tokenizer_free_ids(ids);
        return -1;
    }
    if (!c->reuse) laguna_session_reset(c->session);
    bool in_think = lg_prompt_ends_in_think(c->tok, ids, n);
    laguna_status st = laguna_session_feed_reuse(c->session, ids, n, &reused, &err);
    laguna_tokenizer_free_ids(ids);
    if (st) {
        fprintf(stderr, "laguna chat: %s\n", err.message);
        return -1;
    }
    text_buf reply = {0};
    laguna_generate_params gp = {.session = c->session,
                                 .sampler = c->sampler,
                                 .tokenizer = c->tok,
                                 .max_new_tokens = c->max_new,
                                 .skip_special = true,
                                 .emit = emit_and_keep,
                                 .user = &reply};
    laguna_generate_result gr;
    if ((st = laguna_generate(&gp, &gr, &err))) {
        fprintf(stderr, "\nlaguna chat: %s\n", err.message);
        laguna_generate_result_free(&gr);
        free(reply.buf);
        return -1;
    }
    printf("\n");
    /* Split the reply on the <think> / </think> token ids (added tokens, absent
     * from the text streamed with special tokens skipped) for the history. */
    lg_chat_parser *parser = NULL;
    lg_event_list evs = {0};
    text_buf content = {0}, reasoning = {0};
    int split = !lg_chat_parser_new(c->tok, NULL, in_think, &parser);
    const laguna_model_info *info = laguna_model_get_info(c->model);
    for (int i = 0; split && i < gr.n_tokens; i++) {
        int eos = 0;
        for (int k = 0; k < info->n_eos_token_ids; k++) eos |= gr.tokens[i] == info->eos_token_ids[k];
        if (!eos) split = !lg_chat_parser_push(parser, gr.tokens[i], &evs);
    }
    if (split) split = !lg_chat_parser_finish(parser, &evs);
    for (size_t i = 0; split && i < evs.n; i++) {
        if (evs.items[i].kind == LG_EV_REASONING) keep_text(&reasoning, evs.items[i].text, evs.items[i].len);
        if (evs.items[i].kind == LG_EV_CONTENT) keep_text(&content, evs.items[i].text, evs.items[i].len);
    }
    if (split && reasoning.len) add_message(c->messages, "assistant", content.buf ? content.buf : "", reasoning.buf);
    else add_message(c->messages, "assistant", reply.buf ? reply.buf : "", NULL);
    lg_events_free(&evs);
    lg_chat_parser_free(parser);
    free(content.buf);
    free(reasoning.buf);
    if (c->stats)
        fprintf(stderr, "[turn: prompt %zu tokens, %zu reused from the cache, %zu fed; reply %d tokens (%s)]\n", n, reused,
                n - reused, gr.n_tokens, laguna_finish_reason_name(gr.finish));
    laguna_generate_result_free(&gr);
    free(reply.buf);
    return 0;
}

int cmd_chat(int argc, char **argv) {
    const char *dir = NULL, *system_text = NULL;
    run_options ro = run_options_default();
    chat_state c = {.max_new = 1024, .reuse = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int bad = 0, shared = arg_run_option(argc, argv, &i, &ro);
        if (!shared && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            usage(stdout);
            return 0;
        } else if (shared) bad = shared < 0;
        else if (!strcmp(a, "-m")) bad = !(dir = arg_value(argc, argv, &i));
        else if (!strcmp(a, "--system")) bad = !(system_text = arg_value(argc, argv, &i));
        else if (!strcmp(a, "--think")) c.think = 1;
        else if (!strcmp(a, "--no-reuse")) c.reuse = 0;
        else if (!strcmp(a, "--stats")) c.stats = 1;
        else if (!strcmp(a, "-n")) bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 1, 1 << 20, &c.max_new);
        else {
            fprintf(stderr, "laguna chat: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) return 2;
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    laguna_error err = {0};
    int rc = 1;
    if (text_input_load_tokenizer(dir, &c.tok, &err) || text_input_load_template(dir, &c.tmpl, &err) ||
        laguna_model_open(dir, &ro.model, &c.model, &err) ||
        (ro.session.n_rollback = c.max_new + 64, laguna_session_create(c.model, &ro.session, &c.session, &err)) ||
        laguna_sampler_create(&ro.sampler, laguna_model_get_info(c.model)->vocab_size, &c.sampler, &err)) {
        fprintf(stderr, "laguna chat: %s\n", err.message);
        goto done;
    }
    c.messages = cJSON_CreateArray();
    if (system_text) add_message(c.messages, "system", system_text, NULL);
    int interactive = isatty(0);
    if (interactive) fprintf(stderr, "laguna chat: /think on|off, /reset, /quit. Thinking is %s.\n", c.think ? "on" : "off");
    char *line = NULL;
    size_t line_cap = 0;
    rc = 0;
    for (;;) {
        if (interactive) fprintf(stderr, "> ");
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0) break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (got == 0) continue;
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) break;
        if (!strcmp(line, "/help")) {
            usage(stderr);
        } else if (!strcmp(line, "/think on") || !strcmp(line, "/think off")) {
            c.think = line[8] == 'n';
            fprintf(stderr, "thinking %s\n", c.think ? "on" : "off");
        } else if (!strcmp(line, "/reset")) {
            cJSON_Delete(c.messages);
            c.messages = cJSON_CreateArray();
            if (system_text) add_message(c.messages, "system", system_text, NULL);
            laguna_session_reset(c.session);
            fprintf(stderr, "conversation cleared\n");
        } else if (line[0] == '/') {
            fprintf(stderr, "unknown command %s (/think on|off, /reset, /quit)\n", line);
        } else if (turn(&c, line)) {
            rc = 1;
        }
    }
    free(line);
done:
    cJSON_Delete(c.messages);
    laguna_sampler_free(c.sampler);
    laguna_session_free(c.session);
    laguna_model_free(c.model);
    laguna_chat_template_free(c.tmpl);
    laguna_tokenizer_free(c.tok);
    return rc;
}
