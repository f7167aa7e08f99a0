/* laguna tokenize / detokenize: a checkpoint's tokenizer.json from the
 * command line. tokenize prints the ids of a text on one line; detokenize
 * prints the text of a list of ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "io/file_util.h"
#include "laguna_tokenizer.h"

#define MAX_INPUT_BYTES ((size_t)1 << 30)

static laguna_tokenizer *load(const char *cmd, const char *path) {
    laguna_tokenizer *tok;
    laguna_error err = {0};
    if (laguna_tokenizer_load(path, &tok, &err) != LAGUNA_OK) {
        fprintf(stderr, "laguna %s: %s\n", cmd, err.message);
        return NULL;
    }
    return tok;
}

int cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL, *file = NULL, *text = NULL;
    bool special = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--file")) {
            if (!(file = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--no-special")) {
            special = false;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(
                "usage: laguna tokenize DIR|tokenizer.json [--no-special] (--file F | TEXT)\n"
                "prints the token ids of the text, space-separated; --no-special leaves out the\n"
                "post-processor's special tokens (add_special_tokens=False)\n");
            return 0;
        } else if (!dir) {
            dir = argv[i];
        } else if (!text) {
            text = argv[i];
        } else {
            fprintf(stderr, "laguna tokenize: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!dir || (!file) == (!text)) {
        fprintf(stderr,
                "usage: laguna tokenize DIR|tokenizer.json [--no-special] (--file F | TEXT)\n");
        return 2;
    }
    char *content = NULL;
    size_t len = text ? strlen(text) : 0;
    if (file) {
        laguna_error err = {0};
        if (lg_read_file(file, MAX_INPUT_BYTES, &content, &len, &err) != LAGUNA_OK) {
            fprintf(stderr, "laguna tokenize: %s\n", err.message);
            return 1;
        }
        text = content;
    }
    laguna_tokenizer *tok = load("tokenize", dir);
    int rc = 1;
    if (tok) {
        int32_t *ids;
        size_t n;
        laguna_error err = {0};
        if (laguna_tokenizer_encode(tok, text, len, special, &ids, &n, &err) == LAGUNA_OK) {
            for (size_t i = 0; i < n; i++)
                printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
            laguna_tokenizer_free_ids(ids);
            rc = 0;
        } else {
            fprintf(stderr, "laguna tokenize: %s\n", err.message);
        }
    }
    laguna_tokenizer_free(tok);
    free(content);
    return rc;
}

int cmd_detokenize(int argc, char **argv) {
    const char *dir = NULL;
    bool skip_special = false;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--skip-special")) {
            skip_special = true;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: laguna detokenize DIR|tokenizer.json [--skip-special] ID...\n"
                   "prints the text of the ids (given as separate arguments or as 1,2,3)\n");
            free(ids);
            return 0;
        } else if (!dir) {
            dir = argv[i];
        } else {
            int32_t *more;
            size_t k;
            if (arg_token_list("ID", argv[i], &more, &k)) goto done;
            int32_t *all = realloc(ids, (n + k + 1) * sizeof *ids);
            if (!all) {
                free(more);
                goto done;
            }
            ids = all;
            memcpy(ids + n, more, k * sizeof *ids);
            n += k;
            free(more);
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: laguna detokenize DIR|tokenizer.json [--skip-special] ID...\n");
        goto done;
    }
    laguna_tokenizer *tok = load("detokenize", dir);
    rc = 1;
    if (tok) {
        char *text;
        size_t len;
        laguna_error err = {0};
        if (laguna_tokenizer_decode(tok, ids, n, skip_special, &text, &len, &err) == LAGUNA_OK) {
            fwrite(text, 1, len, stdout);
            printf("\n");
            laguna_tokenizer_free_text(text);
            rc = 0;
        } else {
            fprintf(stderr, "laguna detokenize: %s\n", err.message);
        }
    }
    laguna_tokenizer_free(tok);
done:
    free(ids);
    return rc;
}
