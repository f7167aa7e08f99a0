/* laguna generate: feed a prompt (text through the checkpoint's tokenizer, or
 * token ids) and sample a continuation, streaming it to stdout as text (or
 * as ids when the checkpoint has no tokenizer or --ids is given). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "clock.h"
#include "commands.h"
#include "io/file_util.h"
#include "text_input.h"
#include "laguna_tokenizer.h"
#include "laguna.h"
#include "laguna_generate.h"

static void usage(FILE *f) {
    fprintf(f, "usage: laguna generate -m MODEL [-p TEXT | -f FILE | --tokens 1,2,3] [-n N] [options]\n"
               "  -p, --prompt TEXT      the prompt (-p - or none, with stdin not a terminal: read stdin)\n"
               "  -f, --file FILE        read the prompt from FILE\n"
               "  --tokens IDS           the prompt as token ids (1,2,3)\n"
               "  -n N                   tokens to generate (default 64; -1: until eos or the context is full)\n"
               RUN_OPTIONS_USAGE
               "  --ignore-eos           keep going after an end-of-sequence token\n"
               "  --stop S               stop before the text S (repeatable)\n"
               "  --draft-lookup K       greedy only: draft up to K tokens a step from earlier text\n"
               "                         (prompt lookup) and check them in one step; same tokens, fewer steps\n"
               JSON_SCHEMA_USAGE
               "  --ids                  print token ids instead of text\n"
               "  --stats                print timings and the seed to stderr\n");
}

static int emit_stdout(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int generate(int argc, char **argv, char **schema);

int cmd_generate(int argc, char **argv) {
    char *schema = NULL; /* --json, --json-schema: freed here, whichever way generate returns */
    int rc = generate(argc, argv, &schema);
    free(schema);
    return rc;
}

static int generate(int argc, char **argv, char **schema) {
    const char *dir = NULL, *tokens_text = NULL, *prompt = NULL, *prompt_file = NULL;
    int n_gen = 64, ignore_eos = 0, stats = 0, print_ids = 0, n_stops = 0, draft = 0;
    const char *stops[16];
    run_options ro = run_options_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int bad = 0, shared = arg_run_option(argc, argv, &i, &ro), json = 0;
        if (shared) {
            bad = shared < 0;
        } else if ((json = arg_json_schema_option(argc, argv, &i, schema))) {
            bad = json < 0;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--ignore-eos")) {
            ignore_eos = 1;
        } else if (!strcmp(a, "--stats")) {
            stats = 1;
        } else if (!strcmp(a, "--ids")) {
            print_ids = 1;
        } else if (!strcmp(a, "--stop")) {
            if (n_stops == 16) return arg_usage_error("at most 16 --stop strings");
            bad = !(stops[n_stops++] = arg_value(argc, argv, &i));
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            bad = !(dir = arg_value(argc, argv, &i));
        } else if (!strcmp(a, "--tokens")) {
            bad = !(tokens_text = arg_value(argc, argv, &i));
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            bad = !(prompt = arg_value(argc, argv, &i));
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            bad = !(prompt_file = arg_value(argc, argv, &i));
        } else if (!strcmp(a, "--draft-lookup")) {
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 0, LAGUNA_DRAFT_LOOKUP_MAX, &draft);
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, -1, 1 << 30, &n_gen);
        } else if (a[0] != '-' && !dir) {
            dir = a;
        } else {
            return arg_usage_error("unknown option '%s'", a);
        }
        if (bad) return 2;
    }
    if (!dir) return arg_usage_error("missing -m MODEL");
    run_options_note(&ro);
    if (!!tokens_text + !!prompt + !!prompt_file > 1) return arg_usage_error("give one of -p, -f and --tokens");
    laguna_error err = {0};
    char *prompt_text = NULL; /* read from a file or stdin */
    size_t prompt_len = prompt ? strlen(prompt) : 0;
    bool from_stdin = (prompt && !strcmp(prompt, "-")) || (!tokens_text && !prompt && !prompt_file && !isatty(0));
    if (from_stdin && !(prompt = prompt_text = text_input_read_stdin((size_t)1 << 30, &prompt_len))) {
        fprintf(stderr, "laguna generate: cannot read the prompt from stdin\n");
        return 1;
    }
    if (prompt_file) {
        if (lg_read_file(prompt_file, (size_t)1 << 30, &prompt_text, &prompt_len, &err)) {
            fprintf(stderr, "laguna generate: %s\n", err.message);
            return 1;
        }
        prompt = prompt_text;
    }
    if (!tokens_text && !prompt) return arg_usage_error("missing the prompt (-p TEXT, -f FILE or --tokens IDS)");
    laguna_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    /* a checkpoint without tokenizer.json still runs on ids */
    if (text_input_load_tokenizer(dir, &tok, &err) != LAGUNA_OK && (prompt || n_stops)) {
        fprintf(stderr, "laguna generate: %s\n", err.message);
        free(prompt_text);
        return 1;
    }
    if (prompt) {
        int32_t *enc = NULL;
        if (laguna_tokenizer_encode(tok, prompt, prompt_len, true, &enc, &n_ids, &err)) {
            fprintf(stderr, "laguna generate: %s\n", err.message);
            laguna_tokenizer_free(tok);
            free(prompt_text);
            return 1;
        }
        ids = malloc(sizeof(int32_t) * (n_ids ? n_ids : 1));
        if (ids) memcpy(ids, enc, sizeof(int32_t) * n_ids);
        laguna_tokenizer_free_ids(enc);
    } else if (arg_token_list("--tokens", tokens_text, &ids, &n_ids)) {
        laguna_tokenizer_free(tok);
        return 2;
    }
    free(prompt_text);
    prompt = prompt_text = NULL;
    if (n_ids == 0) {
        fprintf(stderr, "laguna generate: the prompt is empty\n");
        free(ids);
        laguna_tokenizer_free(tok);
        return 2;
    }

    laguna_model *m = NULL;
    laguna_session *s = NULL;
    laguna_sampler *smp = NULL;
    laguna_generate_result gen = {0};
    int rc = 1;
    double t0 = now_s(), t_load, t_prompt, t_end;
    if (laguna_model_open(dir, &ro.model, &m, &err)) goto fail;
    model_options_note(&ro.model, m);
    t_load = now_s();
    const laguna_model_info *info = laguna_model_get_info(m);
    if (ro.session.n_rollback < draft) ro.session.n_rollback = draft; /* rejected drafts are taken back */
    if (laguna_session_create(m, &ro.session, &s, &err)) goto fail;
    if (laguna_sampler_create(&ro.sampler, info->vocab_size, &smp, &err)) goto fail;
    if (n_gen >= 0 && n_ids + (size_t)n_gen > (size_t)laguna_session_capacity(s)) {
        fprintf(stderr, "laguna generate: prompt (%zu tokens) + %d new tokens exceed the context length %d\n", n_ids, n_gen,
                laguna_session_capacity(s));
        goto done;
    }
    for (size_t i = 0; i < n_ids; i++) laguna_sampler_accept(smp, ids[i]);
    if (laguna_session_feed(s, ids, n_ids, NULL, &err)) goto fail;
    t_prompt = now_s();
    laguna_generate_params gp = {.session = s,
                                 .sampler = smp,
                                 .tokenizer = print_ids ? NULL : tok,
                                 .stops = stops,
                                 .n_stops = (size_t)n_stops,
                                 .max_new_tokens = n_gen,
                                 .ignore_eos = ignore_eos,
                                 .skip_special = true,
                                 .emit = emit_stdout,
                                 .draft_lookup = draft,
                                 .json_schema = *schema};
    if (print_ids && n_stops) {
        fprintf(stderr, "laguna generate: --stop works on text, not with --ids\n");
        rc = 2;
        goto done;
    }
    if (laguna_generate(&gp, &gen, &err)) goto fail;
    int produced = gen.n_tokens;
    printf("\n");
    fflush(stdout); /* before the --stats line on stderr */
    t_end = now_s();
    if (stats)
        fprintf(stderr, "seed %llu | load %.3f s (weights %s) | prompt %zu tokens in %.3f s (%.1f tok/s) | generated %d tokens in %.3f s (%.2f tok/s) | finish: %s\n",
                (unsigned long long)ro.sampler.seed, t_load - t0,
                laguna_model_get_info(m)->weights_load == LAGUNA_LOAD_COPY ? "copied to RAM" : "memory-mapped", n_ids, t_prompt - t_load, n_ids / (t_prompt - t_load), produced, t_end - t_prompt,
                produced / (t_end - t_prompt), laguna_finish_reason_name(gen.finish));
    if (stats && draft)
        fprintf(stderr, "drafts: %d tokens drafted, %d accepted (%.0f%%)%s\n", gen.n_drafted, gen.n_accepted,
                gen.n_drafted ? 100.0 * gen.n_accepted / gen.n_drafted : 0.0,
                laguna_sampler_is_greedy(smp) ? "" : " (sampled: drafts are for greedy decoding only)");
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "laguna generate: %s\n", err.message);
done:
    laguna_generate_result_free(&gen);
    laguna_sampler_free(smp);
    laguna_session_free(s);
    laguna_model_free(m);
    laguna_tokenizer_free(tok);
    free(ids);
    return rc;
}
