/* laguna chat -m MODEL: an interactive multi-turn chat. Each turn renders the
 * whole conversation with the model's chat template, but only feeds the
 * tokens after the longest prefix the session already holds (taking back the
 * few the template rewrites, such as an empty <think></think>), so the KV
 * cache carries over from turn to turn (laguna_session_feed_reuse). Replies
 * stream as they come (laguna_generate), the reasoning apart from the answer
 * (its emit_reasoning). Ctrl-C stops a reply and keeps what was said; when
 * the conversation outgrows the context the oldest turns are dropped. Input
 * lines come from cli/line_input.c (libedit on a terminal). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "clock.h"
#include "text_buf.h"
#include "commands.h"
#include "laguna_chat.h"
#include "laguna_generate.h"
#include "laguna_tokenizer.h"
#include "line_input.h"
#include "text_input.h"

#define DEFAULT_MAX_NEW 1024
/* positions the template may rewrite at the end of a turn, beyond the reply */
#define ROLLBACK_SLACK 64

static void usage(FILE *f) {
    fprintf(f,
            "usage: laguna chat -m MODEL [options]     (or laguna chat MODEL)\n"
            "  --system TEXT          system message (default none)\n"
            "  --think                start with thinking on (default off; /think on|off)\n"
            "  -n N                   most tokens per reply (default %d; -1: until eos or the\n"
            "                         context is full)\n"
            "  --ignore-eos           keep going after an end-of-sequence token\n" RUN_OPTIONS_USAGE
            "  --no-reuse             re-read the whole conversation every turn (for comparison)\n"
            "  --draft-lookup K       greedy replies: draft up to K tokens a step from the conversation\n"
            "                         (prompt lookup) and check them in one step; the same replies\n"
            JSON_SCHEMA_USAGE
            "  --stats                per turn: tokens, prompt and reply speed (tok/s), on stderr\n"
            "In the chat, /help lists its commands. Ctrl-C stops a reply; Ctrl-C on an empty\n"
            "line or Ctrl-D leaves.\n",
            DEFAULT_MAX_NEW);
}

static void chat_help(void) {
    fprintf(stderr, "  /help            this list\n"
                    "  /think on|off    thinking before answering\n"
                    "  /history         the conversation so far\n"
                    "  /reset           forget the conversation (the system message stays)\n"
                    "  /quit, /exit     leave (as do Ctrl-D and Ctrl-C on an empty line)\n"
                    "  \"\"\"              start and end a message of several lines\n"
                    "  Ctrl-C during a reply stops it; the conversation keeps what was said.\n"
                    "  A pasted block is one message.\n");
}

/* ---- one reply on screen: reasoning (dim on a terminal) then the answer ---------- */

typedef struct {
    text_buf answer, reasoning;
    bool tty, showing_reasoning;
} reply;

static void reasoning_close(reply *r) {
    if (!r->showing_reasoning) return;
    fputs(r->tty ? "\033[0m\n" : "</think>\n", stdout);
    r->showing_reasoning = false;
}

static int emit_answer(void *user, const char *text, size_t len) {
    reply *r = user;
    reasoning_close(r);
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    text_add(&r->answer, text, len);
    return line_input_interrupted();
}

static int emit_reasoning(void *user, const char *text, size_t len) {
    reply *r = user;
    if (!r->showing_reasoning && len) {
        fputs(r->tty ? "\033[2m" : "<think>", stdout);
        r->showing_reasoning = true;
    }
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    text_add(&r->reasoning, text, len);
    return line_input_interrupted();
}

/* ---- the conversation ------------------------------------------------------------ */

typedef struct {
    laguna_model *model;
    laguna_session *session;
    laguna_sampler *sampler;
    laguna_tokenizer *tok;
    laguna_chat_template *tmpl;
    cJSON *messages;
    const char *system_text;
    char *schema; /* --json, --json-schema: every reply follows it */
    int max_new, think, reuse, stats, ignore_eos, draft;
} chat_state;

static char *render(chat_state *c, laguna_error *err) {
    cJSON *req = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(req, "messages", c->messages);
    cJSON_AddTrueToObject(req, "add_generation_prompt");
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(req, "chat_template_kwargs"), "enable_thinking",
                          c->think);
    char *json = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    char *out = NULL;
    size_t len;
    if (!json || laguna_chat_template_apply(c->tmpl, json, strlen(json), &out, &len, err))
        out = NULL;
    free(json);
    return out;
}

static void add_message(cJSON *messages, const char *role, const char *content,
                        const char *reasoning) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", content);
    if (reasoning) cJSON_AddStringToObject(m, "reasoning_content", reasoning);
    cJSON_AddItemToArray(messages, m);
}

static const char *role_of(cJSON *m) {
    return cJSON_GetStringValue(cJSON_GetObjectItem(m, "role"));
}

static void reset_messages(chat_state *c) {
    cJSON_Delete(c->messages);
    c->messages = cJSON_CreateArray();
    if (c->system_text) add_message(c->messages, "system", c->system_text, NULL);
}

/* Drops the oldest turn (a user message and the replies up to the next user
 * message), never the system message nor the newest user message; 0 when
 * there is nothing left to drop. */
static int drop_oldest_turn(chat_state *c) {
    int n = cJSON_GetArraySize(c->messages), first = 0;
    while (first < n && !strcmp(role_of(cJSON_GetArrayItem(c->messages, first)), "system"))
        first++;
    int end = first + 1;
    while (end < n && strcmp(role_of(cJSON_GetArrayItem(c->messages, end)), "user"))
        end++;
    if (first >= n - 1 || end >= n) return 0;
    for (int i = first; i < end; i++)
        cJSON_DeleteItemFromArray(c->messages, first);
    return 1;
}

static void show_history(chat_state *c) {
    int n = cJSON_GetArraySize(c->messages);
    if (n == 0) fprintf(stderr, "(no messages yet)\n");
    for (int i = 0; i < n; i++) {
        cJSON *m = cJSON_GetArrayItem(c->messages, i);
        const char *content = cJSON_GetStringValue(cJSON_GetObjectItem(m, "content"));
        fprintf(stderr, "%s: %s\n", role_of(m), content ? content : "");
    }
}

/* Room kept free for the reply when the prompt is fitted into the context. */
static size_t reply_room(const chat_state *c, int capacity) {
    size_t want = c->max_new > 0 ? (size_t)c->max_new : (size_t)capacity / 4;
    return want < (size_t)capacity / 2 ? want : (size_t)capacity / 2;
}

/* The conversation as token ids, dropping the oldest turns while it and the
 * room for a reply do not fit the context. */
static int encode_conversation(chat_state *c, int32_t **ids, size_t *n) {
    laguna_error err = {0};
    int capacity = laguna_session_capacity(c->session), dropped = 0;
    for (;;) {
        char *prompt = render(c, &err);
        if (!prompt ||
            laguna_tokenizer_encode(c->tok, prompt, strlen(prompt), false, ids, n, &err)) {
            fprintf(stderr, "laguna chat: %s\n", err.message);
            free(prompt);
            return -1;
        }
        free(prompt);
        if (*n > 0 && *n + reply_room(c, capacity) <= (size_t)capacity) break;
        laguna_tokenizer_free_ids(*ids);
        *ids = NULL;
        if (!drop_oldest_turn(c)) {
            fprintf(stderr,
                    "laguna chat: the message (%zu tokens with the system message) leaves no room "
                    "for a reply in "
                    "the context (%d tokens; see --ctx-size and -n)\n",
                    *n, capacity);
            return -1;
        }
        dropped++;
    }
    if (dropped)
        fprintf(stderr, "[the context (%d tokens) is full: dropped the oldest %d turn%s]\n",
                capacity, dropped, dropped > 1 ? "s" : "");
    return 0;
}

/* One user turn: render, sync, generate, record the reply. */
static int turn(chat_state *c, const char *user_text) {
    /* a Ctrl-C from here on (during the prompt's prefill too) stops the reply */
    line_input_clear_interrupt();
    add_message(c->messages, "user", user_text, NULL);
    int32_t *ids = NULL;
    size_t n = 0, reused = 0;
    if (encode_conversation(c, &ids, &n)) {
        cJSON_DeleteItemFromArray(c->messages, cJSON_GetArraySize(c->messages) - 1);
        return -1;
    }
    laguna_error err = {0};
    if (!c->reuse) laguna_session_reset(c->session);
    double t0 = now_s();
    laguna_status st = laguna_session_feed_reuse(c->session, ids, n, &reused, &err);
    double t1 = now_s();
    laguna_tokenizer_free_ids(ids);
    if (st) {
        fprintf(stderr, "laguna chat: %s\n", err.message);
        cJSON_DeleteItemFromArray(c->messages, cJSON_GetArraySize(c->messages) - 1);
        return -1;
    }
    reply r = {.tty = isatty(STDOUT_FILENO)};
    laguna_generate_params gp = {.session = c->session,
                                 .sampler = c->sampler,
                                 .tokenizer = c->tok,
                                 .max_new_tokens = c->max_new,
                                 .ignore_eos = c->ignore_eos,
                                 .skip_special = true,
                                 .emit = emit_answer,
                                 .emit_reasoning = emit_reasoning,
                                 .user = &r,
                                 .draft_lookup = c->draft,
                                 .json_schema = c->schema};
    laguna_generate_result gr;
    st = laguna_generate(&gp, &gr, &err);
    double t2 = now_s();
    reasoning_close(&r);
    printf("\n");
    fflush(stdout);
    if (st)
        fprintf(stderr, "laguna chat: %s\n", err.message);
    else if (gr.finish == LAGUNA_FINISH_CANCELLED)
        fprintf(stderr, "[reply stopped]\n");
    else if (gr.finish == LAGUNA_FINISH_CONTEXT)
        fprintf(stderr, "[the context is full: the next turn drops the oldest turns]\n");
    /* what was said stays in the conversation, a stopped reply included */
    add_message(c->messages, "assistant", r.answer.buf ? r.answer.buf : "",
                r.reasoning.len ? r.reasoning.buf : NULL);
    if (c->stats) {
        size_t fed = n - reused;
        fprintf(
            stderr,
            "[turn: prompt %zu tokens, %zu reused from the cache, %zu fed in %.3f s (%.1f tok/s); "
            "reply %d tokens in %.3f s (%.1f tok/s), %s]\n",
            n, reused, fed, t1 - t0, fed / (t1 - t0 > 0 ? t1 - t0 : 1e-9), gr.n_tokens, t2 - t1,
            gr.n_tokens / (t2 - t1 > 0 ? t2 - t1 : 1e-9), laguna_finish_reason_name(gr.finish));
        if (c->draft)
            fprintf(stderr, "[drafts: %d tokens drafted, %d accepted]\n", gr.n_drafted, gr.n_accepted);
    }
    laguna_generate_result_free(&gr);
    free(r.answer.buf);
    free(r.reasoning.buf);
    return st ? -1 : 0;
}

/* ---- input: commands, multi-line messages ----------------------------------------- */

static bool ends_with_quotes(const char *s) {
    size_t n = strlen(s);
    return n >= 3 && !strcmp(s + n - 3, "\"\"\"");
}

/* A message between """ lines (the opening line is given, """ removed); NULL
 * when Ctrl-C, Ctrl-D or the end of the input abandons it. */
static char *read_multiline(line_input *in, const char *first) {
    text_buf msg = {0};
    text_add(&msg, first, strlen(first));
    bool closed = ends_with_quotes(first);
    while (!closed) {
        char *line = NULL;
        bool pasted;
        line_status ls = line_input_read(in, "... ", &line, &pasted);
        if (ls != LINE_TEXT) {
            free(msg.buf);
            return NULL;
        }
        text_add(&msg, "\n", 1);
        text_add(&msg, line, strlen(line));
        closed = ends_with_quotes(line);
        free(line);
    }
    msg.buf[msg.len - 3] = 0; /* the closing """ */
    return msg.buf;
}

/* A command line (starting with /); 1 when it asks to leave. */
static int command(chat_state *c, const char *line) {
    if (!strcmp(line, "/quit") || !strcmp(line, "/exit") || !strcmp(line, "/bye")) return 1;
    if (!strcmp(line, "/help") || !strcmp(line, "/?")) {
        chat_help();
    } else if (!strcmp(line, "/think on") || !strcmp(line, "/think off")) {
        c->think = line[8] == 'n';
        fprintf(stderr, "thinking %s\n", c->think ? "on" : "off");
    } else if (!strcmp(line, "/history")) {
        show_history(c);
    } else if (!strcmp(line, "/reset")) {
        reset_messages(c);
        laguna_session_reset(c->session);
        fprintf(stderr, "conversation cleared\n");
    } else {
        fprintf(stderr, "unknown command %s (/help lists them)\n", line);
    }
    return 0;
}

static int chat_loop(chat_state *c) {
    bool editing = isatty(STDIN_FILENO);
    line_input *in = line_input_new(editing);
    if (!in) {
        fprintf(stderr, "laguna chat: cannot set up line editing\n");
        return 1;
    }
    line_input_catch_sigint();
    if (editing)
        fprintf(stderr, "laguna chat: /help for commands, Ctrl-D to leave. Thinking is %s.\n",
                c->think ? "on" : "off");
    int rc = 0;
    for (;;) {
        char *line = NULL;
        bool pasted = false;
        line_status ls = line_input_read(in, "> ", &line, &pasted);
        if (ls == LINE_EOF || ls == LINE_INTERRUPTED) break;
        if (ls == LINE_CANCELLED) continue;
        if (!pasted && !strncmp(line, "\"\"\"", 3)) {
            char *msg = read_multiline(in, line + 3);
            free(line);
            if (!msg) continue;
            line = msg;
            pasted = true; /* taken as it is */
        }
        if (!line[0]) {
            free(line);
            continue;
        }
        line_input_add_history(in, line);
        if (!pasted && line[0] == '/') {
            int leave = command(c, line);
            free(line);
            if (leave) break;
            continue;
        }
        if (turn(c, line)) rc = 1;
        free(line);
    }
    line_input_free(in);
    return rc;
}

static int chat(int argc, char **argv, chat_state *cs);

int cmd_chat(int argc, char **argv) {
    chat_state c = {.max_new = DEFAULT_MAX_NEW, .reuse = 1};
    int rc = chat(argc, argv, &c);
    free(c.schema); /* whichever way chat returned */
    return rc;
}

static int chat(int argc, char **argv, chat_state *c) {
    const char *dir = NULL;
    run_options ro = run_options_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int bad = 0, shared = arg_run_option(argc, argv, &i, &ro), json = 0;
        if (!shared && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            usage(stdout);
            return 0;
        } else if (shared)
            bad = shared < 0;
        else if ((json = arg_json_schema_option(argc, argv, &i, &c->schema)))
            bad = json < 0;
        else if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            bad = !(dir = arg_value(argc, argv, &i));
        else if (!strcmp(a, "--system"))
            bad = !(c->system_text = arg_value(argc, argv, &i));
        else if (!strcmp(a, "--think"))
            c->think = 1;
        else if (!strcmp(a, "--no-reuse"))
            c->reuse = 0;
        else if (!strcmp(a, "--stats"))
            c->stats = 1;
        else if (!strcmp(a, "--draft-lookup"))
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 0, LAGUNA_DRAFT_LOOKUP_MAX, &c->draft);
        else if (!strcmp(a, "--ignore-eos"))
            c->ignore_eos = 1;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict"))
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, -1, 1 << 30, &c->max_new) ||
                  (c->max_new == 0 && arg_usage_error("-n must be -1 or a positive count"));
        else if (a[0] != '-' && !dir)
            dir = a;
        else
            return arg_usage_error("unknown option '%s'", a);
        if (bad) return 2;
    }
    if (!dir) return arg_usage_error("missing -m MODEL");
    run_options_note(&ro);
    laguna_error err = {0};
    int rc = 1;
    if (text_input_load_tokenizer(dir, &c->tok, &err) ||
        text_input_load_template(dir, &c->tmpl, &err) ||
        laguna_model_open(dir, &ro.model, &c->model, &err))
        goto fail;
    model_options_note(&ro.model, c->model);
    const laguna_model_info *info = laguna_model_get_info(c->model);
    /* the template may rewrite the whole last reply: keep it within reach of
     * truncation when it fits the context (beyond that, feed_reuse re-feeds) */
    int n_ctx = ro.session.n_ctx ? ro.session.n_ctx : info->max_position_embeddings;
    int rollback = (c->max_new > 0 ? c->max_new : DEFAULT_MAX_NEW) + ROLLBACK_SLACK;
    if (rollback < c->draft) rollback = c->draft; /* rejected drafts are taken back */
    ro.session.n_rollback = rollback < n_ctx ? rollback : n_ctx;
    if (laguna_session_create(c->model, &ro.session, &c->session, &err) ||
        laguna_sampler_create(&ro.sampler, info->vocab_size, &c->sampler, &err))
        goto fail;
    if (c->stats) fprintf(stderr, "[seed %llu]\n", (unsigned long long)ro.sampler.seed);
    reset_messages(c);
    rc = chat_loop(c);
    goto done;
fail:
    fprintf(stderr, "laguna chat: %s\n", err.message);
done:
    cJSON_Delete(c->messages);
    laguna_sampler_free(c->sampler);
    laguna_session_free(c->session);
    laguna_model_free(c->model);
    laguna_chat_template_free(c->tmpl);
    laguna_tokenizer_free(c->tok);
    return rc;
}
