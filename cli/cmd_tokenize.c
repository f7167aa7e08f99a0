/* laguna tokenize / detokenize: a model's tokenizer from the command line
 * (tokenizer.json of a checkpoint folder, the file itself, or the tokenizer
 * embedded in a GGUF). tokenize prints the ids of a text on one line;
 * detokenize prints the text of a list of ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "io/file_util.h"
#include "laguna_tokenizer.h"
#include "text_input.h"

#define MAX_INPUT_BYTES ((size_t)1 << 30)

static laguna_tokenizer *load(const char *cmd, const char *path) {
    laguna_tokenizer *tok;
    laguna_error err = {0};
    if (text_input_load_tokenizer(path, &tok, &err) != LAGUNA_OK) {
        fprintf(stderr, "laguna %s: %s\n", cmd, err.message);
        return NULL;
    }
    return tok;
}

int cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL, *file = NULL, *text = NULL;
    bool special = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--file") || !strcmp(argv[i], "-f")) {
            if (!(file = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (!(dir = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "-p") || !strcmp(argv[i], "--prompt")) {
            if (!(text = arg_value(argc, argv, &i))) return 2;
        } else if (!strcmp(argv[i], "--no-special")) {
            special = false;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: laguna tokenize -m MODEL [--no-special] [TEXT | -p TEXT | -f FILE]\n"
                   "prints the token ids of the text, space-separated (no text: stdin when it is "
                   "not a\n"
                   "terminal; -p - too). MODEL: a checkpoint folder, its tokenizer.json or a GGUF "
                   "file.\n"
                   "--no-special leaves out the post-processor's special tokens\n"
                   "(add_special_tokens=False)\n");
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return arg_usage_error("unknown option '%s'", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else if (!text) {
            text = argv[i];
        } else {
            return arg_usage_error("unexpected argument '%s'", argv[i]);
        }
    }
    if (!dir) return arg_usage_error("missing -m MODEL");
    if (file && text) return arg_usage_error("give the text or -f FILE, not both");
    char *content = NULL;
    size_t len = text ? strlen(text) : 0;
    laguna_error err = {0};
    if (file) {
        if (lg_read_file(file, MAX_INPUT_BYTES, &content, &len, &err) != LAGUNA_OK) {
            fprintf(stderr, "laguna tokenize: %s\n", err.message);
            return 1;
        }
        text = content;
    } else if ((!text && !isatty(0)) || (text && !strcmp(text, "-"))) {
        if (!(text = content = text_input_read_stdin(MAX_INPUT_BYTES, &len))) {
            fprintf(stderr, "laguna tokenize: cannot read the text from stdin\n");
            return 1;
        }
    } else if (!text) {
        return arg_usage_error("missing the text (TEXT, -p TEXT or -f FILE)");
    }
    laguna_tokenizer *tok = load("tokenize", dir);
    int rc = 1;
    if (tok) {
        int32_t *ids;
        size_t n;
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
            printf("usage: laguna detokenize -m MODEL [--skip-special] ID...\n"
                   "prints the text of the ids (given as separate arguments or as 1,2,3).\n"
                   "MODEL: a checkpoint folder, its tokenizer.json or a GGUF file.\n");
            free(ids);
            return 0;
        } else if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
            if (!(dir = arg_value(argc, argv, &i))) goto done;
        } else if (argv[i][0] == '-') {
            rc = arg_usage_error("unknown option '%s'", argv[i]);
            goto done;
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
        rc = arg_usage_error("missing -m MODEL");
        goto done;
    }
    laguna_tokenizer *tok = load("detokenize", dir);
    rc = 1;
    if (tok) {
        char *text;
        size_t len;
        laguna_error err = {0};
        size_t bad = 0;
        while (bad < n && laguna_tokenizer_id_to_token(tok, ids[bad], NULL))
            bad++;
        if (bad < n) {
            fprintf(stderr,
                    "laguna detokenize: token id %d is not in the vocabulary (%zu tokens)\n",
                    (int)ids[bad], laguna_tokenizer_vocab_size(tok));
        } else if (laguna_tokenizer_decode(tok, ids, n, skip_special, &text, &len, &err) ==
                   LAGUNA_OK) {
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
