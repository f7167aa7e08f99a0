/* laguna.c chat templates: render a checkpoint's Jinja2 chat template the way
 * Hugging Face transformers' apply_chat_template does, byte for byte.
 *
 * transformers renders with jinja2's ImmutableSandboxedEnvironment
 * (trim_blocks, lstrip_blocks, loopcontrols), its own `tojson`
 * (json.dumps with ensure_ascii=False) and the globals raise_exception and
 * strftime_now; the context is messages, tools, documents,
 * add_generation_prompt, the tokenizer's special tokens (bos_token, ...) and
 * any extra keyword arguments (chat_template_kwargs such as enable_thinking).
 *
 * Errors (syntax or runtime, including raise_exception) come back as a
 * laguna_status with a one-line message naming the template and line. The
 * library never prints or aborts; runaway templates hit limits instead. */
#ifndef LAGUNA_CHAT_H
#define LAGUNA_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "laguna.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct laguna_chat_template laguna_chat_template;

/* Guards against runaway templates; 0 in a field means its default. */
typedef struct {
    size_t max_output_bytes; /* default 16 MiB */
    size_t max_memory_bytes; /* working memory of one render, default 256 MiB */
    int max_depth;           /* nested macro calls / includes / recursive loops, default 64 */
    uint64_t max_steps;      /* statements + loop iterations + calls, default 20 million */
} laguna_chat_limits;

/* Compiles template text. base_dir (may be NULL) is where {% include %}
 * finds files; name is used in messages (NULL: "chat_template"). */
laguna_status laguna_chat_template_compile(const char *source, size_t source_len, const char *name,
                                           const char *base_dir, laguna_chat_template **out,
                                           laguna_error *err);

/* Loads a checkpoint folder's template as transformers does: chat_template.jinja
 * when present, else tokenizer_config.json's "chat_template" (a string, or a
 * list of {name, template} from which "default" is taken). The special tokens
 * of tokenizer_config.json (bos_token, eos_token, unk_token, pad_token, ...;
 * strings or {"content": ...}) become default context variables. */
laguna_status laguna_chat_template_load(const char *checkpoint_dir, laguna_chat_template **out,
                                        laguna_error *err);

void laguna_chat_template_free(laguna_chat_template *tmpl);

/* The special token the loader found under this name ("bos_token"), or NULL. */
const char *laguna_chat_template_token(const laguna_chat_template *tmpl, const char *name);

void laguna_chat_template_set_limits(laguna_chat_template *tmpl, const laguna_chat_limits *limits);

/* Renders with the context given as the text of a JSON object (merged over
 * the special tokens); numbers keep Python's int/float distinction ("1.0"
 * renders as 1.0, as in transformers). *out is a NUL-terminated heap string
 * (caller frees); *out_len its length (may be NULL). */
laguna_status laguna_chat_template_render_json(const laguna_chat_template *tmpl,
                                               const char *context_json, size_t len, char **out,
                                               size_t *out_len, laguna_error *err);

/* Renders an OpenAI-style chat request body: `messages`, optional `tools`,
 * `add_generation_prompt` (default true) and `chat_template_kwargs` (merged
 * at the top level). Tool-call arguments given as JSON strings are parsed
 * into objects first, as OpenAI-compatible servers do. */
laguna_status laguna_chat_template_apply(const laguna_chat_template *tmpl, const char *request_json,
                                         size_t len, char **out, size_t *out_len, laguna_error *err);

#ifdef __cplusplus
}
#endif
#endif
