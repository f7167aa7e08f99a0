/* laguna perplexity -m DIR (--file TEXT_FILE | --tokens-file IDS_FILE): the
 * model's perplexity on a text, and with --experts the load of every
 * sparse layer's experts (max / mean choices per expert). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "io/file_util.h"
#include "model/model.h"
#include "text_input.h"
#include "verify/expert_load.h"
#include "verify/perplexity.h"

static void usage(FILE *f) {
    fprintf(f, "usage: laguna perplexity -m MODEL_DIR (--file TEXT | --tokens-file IDS) [--ctx N] [--experts]\n"
               "  --file TEXT        a text file, tokenized with the model's tokenizer (no special tokens)\n"
               "  --tokens-file IDS  a file of token ids separated by spaces, commas or newlines\n"
               "  --ctx N            score in windows of N positions (default: the whole file if it fits)\n"
               "  --experts          print each sparse layer's expert load (max and mean choices)\n"
               "  --kv-type T        KV cache storage: f32 (default), f16, bf16, q8_0\n");
}

int cmd_perplexity(int argc, char **argv) {
    const char *dir = NULL, *text_file = NULL, *ids_file = NULL;
    int window = 0, experts = 0;
    run_options ro = run_options_default(); /* --threads, --load, --kv-type */
    for (int i = 1; i < argc; i++) {
        const char *v;
        int bad = 0, shared;
        if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) bad = !(dir = arg_value(argc, argv, &i));
        else if (!strcmp(argv[i], "--file") || !strcmp(argv[i], "-f")) bad = !(text_file = arg_value(argc, argv, &i));
        else if (!strcmp(argv[i], "--tokens-file")) bad = !(ids_file = arg_value(argc, argv, &i));
        else if (!strcmp(argv[i], "--ctx") || !strcmp(argv[i], "-c") || !strcmp(argv[i], "--ctx-size"))
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(argv[i - 1], v, 2, 1 << 30, &window);
        else if (!strcmp(argv[i], "--experts")) experts = 1;
        else if ((shared = arg_run_option(argc, argv, &i, &ro))) bad = shared < 0;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] != '-' && !dir) {
            dir = argv[i];
        } else {
            return arg_usage_error("unknown argument '%s'", argv[i]);
        }
        if (bad) return 2;
    }
    if (!dir) return arg_usage_error("missing -m MODEL");
    if (!text_file == !ids_file) return arg_usage_error("give one of -f/--file TEXT and --tokens-file IDS");
    int32_t *ids = NULL;
    size_t n = 0;
    if (ids_file) {
        char *text = NULL;
        laguna_error err = {0};
        if (lg_read_file(ids_file, (size_t)1 << 30, &text, NULL, &err)) {
            fprintf(stderr, "laguna perplexity: %s\n", err.message);
            return 1;
        }
        for (char *p = text; *p; p++)
            if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
        int bad = arg_token_list("--tokens-file", text, &ids, &n);
        free(text);
        if (bad) return 2;
    } else if (text_input_tokenize_file(dir, text_file, &ids, &n)) {
        return 1;
    }
    laguna_error err = {0};
    laguna_model *m;
    if (laguna_model_open(dir, &ro.model, &m, &err)) {
        fprintf(stderr, "laguna perplexity: %s\n", err.message);
        free(ids);
        return 1;
    }
    model_options_note(&ro.model, m);
    lg_perplexity_result r;
    int rc = 0;
    if (lg_perplexity(m, ids, n, window, ro.session.kv_type, experts, &r, &err)) {
        fprintf(stderr, "laguna perplexity: %s\n", err.message);
        rc = 1;
    } else {
        double nll = r.nll_sum / (double)r.n_predicted;
        printf("tokens %zu, predicted %lld, mean NLL %.6f nats, perplexity %.6f\n", n, (long long)r.n_predicted, nll, exp(nll));
        const lg_config *c = &m->cfg;
        for (int l = 0; experts && r.expert_load && l < c->n_layers; l++) {
            if (c->mlp_kind[l] != LG_MLP_SPARSE) continue;
            lg_layer_load ll = lg_expert_load_layer(r.expert_load + (size_t)l * c->n_experts, c->n_experts);
            double mean = (double)ll.sum / c->n_experts;
            printf("layer %3d expert load: max %lld, mean %.1f, max/mean %.2f, unused experts %lld of %d\n", l, (long long)ll.max,
                   mean, mean > 0 ? ll.max / mean : 0, (long long)ll.unused, c->n_experts);
        }
        free(r.expert_load);
    }
    laguna_model_free(m);
    free(ids);
    return rc;
}
