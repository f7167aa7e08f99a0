/* Fuzzes the Jinja interpreter: the input is a chat template, compiled and
 * rendered for a fixed request (messages with tool calls, tools, a system
 * prompt), under small limits so that runaway templates end quickly. */
#include "fuzz_util.h"
#include "laguna_chat.h"

static const char REQUEST[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
    "\"content\": \"Hi <b>there</b> \\u00e9\"}, {\"role\": \"assistant\", \"content\": null, "
    "\"reasoning_content\": \"think\", \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\", "
    "\"function\": {\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1.5, \\\"b\\\": [true, null]}\"}}]}, "
    "{\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"42\"}, {\"role\": \"user\", "
    "\"content\": [{\"type\": \"text\", \"text\": \"more\"}]}], \"tools\": [{\"type\": \"function\", "
    "\"function\": {\"name\": \"f\", \"description\": \"d\", \"parameters\": {\"type\": \"object\", "
    "\"properties\": {\"a\": {\"type\": \"number\"}}}}}], \"add_generation_prompt\": true, "
    "\"chat_template_kwargs\": {\"enable_thinking\": false}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    laguna_chat_template *t = NULL;
    laguna_error err;
    if (laguna_chat_template_compile((const char *)data, size, "fuzz", NULL, &t, &err) != LAGUNA_OK)
        return 0;
    laguna_chat_limits lim = {.max_output_bytes = 1 << 20, .max_memory_bytes = 64 << 20,
                              .max_depth = 32, .max_steps = 100000};
    laguna_chat_template_set_limits(t, &lim);
    char *out = NULL;
    if (laguna_chat_template_apply(t, REQUEST, sizeof REQUEST - 1, &out, NULL, &err) == LAGUNA_OK)
        free(out);
    laguna_chat_template_free(t);
    return 0;
}
