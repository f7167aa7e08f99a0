/* laguna template DIR REQUEST.json: prints the prompt that the checkpoint's
 * chat template renders for an OpenAI-style chat request (messages, tools,
 * add_generation_prompt, chat_template_kwargs), exactly, with no newline
 * added. DIR may also be a template file (its folder serves {% include %}). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "commands.h"
#include "text_input.h"
#include "io/file_util.h"
#include "laguna_chat.h"

static void usage(FILE *f) {
    fprintf(f, "usage: laguna template -m MODEL REQUEST.json\n"
               "  prints the chat template's rendering of the request (- reads it from stdin).\n"
               "  MODEL: a checkpoint folder, a GGUF file or a template file (.jinja)\n");
}

static laguna_status open_template(const char *path, laguna_chat_template **out, laguna_error *err) {
    struct stat st;
    size_t n = strlen(path);
    bool gguf = n >= 5 && !strcmp(path + n - 5, ".gguf");
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && !gguf && !text_input_is_gguf(path)) {
        char *text = NULL;
        size_t len = 0;
        laguna_status s = lg_read_file(path, (size_t)16 << 20, &text, &len, err);
        if (s != LAGUNA_OK) return s;
        char *dir = strdup(path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (slash) *slash = 0;
        const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        s = laguna_chat_template_compile(text, len, name, slash ? dir : ".", out, err);
        free(dir);
        free(text);
        return s;
    }
    return text_input_load_template(path, out, err); /* a checkpoint folder or a GGUF */
}

int cmd_template(int argc, char **argv) {
    const char *model = NULL, *request_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (!(model = arg_value(argc, argv, &i))) return 2;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return arg_usage_error("unknown option '%s'", argv[i]);
        } else if (!model) {
            model = argv[i];
        } else if (!request_path) {
            request_path = argv[i];
        } else {
            return arg_usage_error("unexpected argument '%s'", argv[i]);
        }
    }
    if (!model) return arg_usage_error("missing -m MODEL");
    if (!request_path) return arg_usage_error("missing REQUEST.json (- for stdin)");
    laguna_error err = {0};
    laguna_chat_template *tmpl = NULL;
    if (open_template(model, &tmpl, &err) != LAGUNA_OK) {
        fprintf(stderr, "laguna template: %s\n", err.message);
        return 1;
    }
    char *request = NULL;
    size_t request_len = 0;
    if (!strcmp(request_path, "-")) {
        request = text_input_read_stdin((size_t)64 << 20, &request_len);
        if (!request) {
            fprintf(stderr, "laguna template: cannot read the request from stdin\n");
            laguna_chat_template_free(tmpl);
            return 1;
        }
    } else if (lg_read_file(request_path, (size_t)64 << 20, &request, &request_len, &err) != LAGUNA_OK) {
        fprintf(stderr, "laguna template: %s\n", err.message);
        laguna_chat_template_free(tmpl);
        return 1;
    }
    char *prompt = NULL;
    size_t prompt_len = 0;
    laguna_status s = laguna_chat_template_apply(tmpl, request, request_len, &prompt, &prompt_len, &err);
    free(request);
    laguna_chat_template_free(tmpl);
    if (s != LAGUNA_OK) {
        fprintf(stderr, "laguna template: %s\n", err.message);
        return 1;
    }
    fwrite(prompt, 1, prompt_len, stdout);
    free(prompt);
    return ferror(stdout) ? 1 : 0;
}
