/* laguna template DIR REQUEST.json: prints the prompt that the checkpoint's
 * chat template renders for an OpenAI-style chat request (messages, tools,
 * add_generation_prompt, chat_template_kwargs), exactly, with no newline
 * added. DIR may also be a template file (its folder serves {% include %}). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "io/file_util.h"
#include "laguna_chat.h"

static void usage(FILE *f) {
    fprintf(f, "usage: laguna template MODEL_DIR|TEMPLATE.jinja REQUEST.json\n"
               "  prints the chat template's rendering of the request (- reads it from stdin)\n");
}

static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n - 1, stdin);
        n += k;
        if (k == 0) break;
        if (n + 1 == cap) {
            if (cap >= ((size_t)64 << 20)) break;
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf) buf[n] = 0;
    *len = n;
    return buf;
}

static laguna_status open_template(const char *path, laguna_chat_template **out, laguna_error *err) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
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
    return laguna_chat_template_load(path, out, err);
}

int cmd_template(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 3) {
        usage(stderr);
        return 2;
    }
    laguna_error err = {0};
    laguna_chat_template *tmpl = NULL;
    if (open_template(argv[1], &tmpl, &err) != LAGUNA_OK) {
        fprintf(stderr, "laguna template: %s\n", err.message);
        return 1;
    }
    char *request = NULL;
    size_t request_len = 0;
    if (!strcmp(argv[2], "-")) {
        request = read_stdin(&request_len);
        if (!request) {
            fprintf(stderr, "laguna template: cannot read the request from stdin\n");
            laguna_chat_template_free(tmpl);
            return 1;
        }
    } else if (lg_read_file(argv[2], (size_t)64 << 20, &request, &request_len, &err) != LAGUNA_OK) {
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
