/* The chat output parser: splits an assistant turn, token by token, into
 * reasoning, answer text and structured tool calls, in Laguna's format.
 *
 * It works on token ids, not on text: <think>, </think>, <tool_call> and
 * </tool_call> are added tokens, recognised by id (ids taken from the
 * tokenizer), and every other added token (</assistant>, <tool_response>,
 * ...) is dropped, so control tokens never reach the content. Inside a call
 * the body is plain text: NAME, then <arg_key>K</arg_key><arg_value>V</arg_value>
 * pairs, with or without newlines between them (XS.2 / XS-2.1 and S-2.1
 * styles). String values (by the tool's JSON schema) stay raw; other values
 * are parsed as JSON, falling back to a string.
 *
 * Output is a list of events the caller drains after each push: text for
 * the reasoning or content channel, the start of a tool call (its name), a
 * fragment of its JSON arguments (one per complete key/value pair, so partial
 * tags are never emitted), and its end. The fragments of one call concatenate
 * to its arguments object. One parser per request; not thread-safe. */
#ifndef LAGUNA_SERVER_CHAT_PARSER_H
#define LAGUNA_SERVER_CHAT_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "laguna_tokenizer.h"

struct cJSON;

typedef enum {
    LG_EV_CONTENT = 0, /* answer text */
    LG_EV_REASONING,   /* text inside <think> ... </think> */
    LG_EV_TOOL_START,  /* text = the tool's name */
    LG_EV_TOOL_ARGS,   /* text = a fragment of the call's JSON arguments */
    LG_EV_TOOL_END,    /* the call is complete */
} lg_event_kind;

typedef struct {
    lg_event_kind kind;
    int tool_index; /* for the LG_EV_TOOL_* events: 0, 1, ... within the turn */
    char *text;     /* NUL-terminated, owned by the event list */
    size_t len;
} lg_event;

typedef struct {
    lg_event *items;
    size_t n, cap;
} lg_event_list;

/* Appends an event (text copied); coalesces with the last one when both are
 * text of the same channel. Returns -1 when out of memory. */
int lg_events_add(lg_event_list *l, lg_event_kind kind, int tool_index, const char *text,
                  size_t len);
/* Frees the texts and empties the list (keeps the array). */
void lg_events_clear(lg_event_list *l);
void lg_events_free(lg_event_list *l);

typedef struct lg_chat_parser lg_chat_parser;

/* tools: the request's "tools" array (borrowed, may be NULL; used for the
 * argument types and known names). in_reasoning: the prompt left the model
 * inside <think> (see lg_prompt_ends_in_think). */
int lg_chat_parser_new(const laguna_tokenizer *tok, const struct cJSON *tools, bool in_reasoning,
                       lg_chat_parser **out);
void lg_chat_parser_free(lg_chat_parser *p);
/* Feeds one generated id (not an end-of-turn id: the caller stops on those).
 * Events are appended to out. Returns -1 on an error (out of memory). */
int lg_chat_parser_push(lg_chat_parser *p, int32_t id, lg_event_list *out);
/* End of the turn: flushes held-back text; an unfinished tool call is
 * completed with what it has. */
int lg_chat_parser_finish(lg_chat_parser *p, lg_event_list *out);
/* Number of tool calls started so far. */
int lg_chat_parser_n_calls(const lg_chat_parser *p);

/* Whether a prompt leaves the model inside a reasoning block: scanning back
 * from the end to the last <assistant> id, a <think> id comes before any
 * </think>. Scoped to the current turn, so </think> in earlier turns or in
 * tool descriptions does not count. */
bool lg_prompt_ends_in_think(const laguna_tokenizer *tok, const int32_t *ids, size_t n);

#endif
