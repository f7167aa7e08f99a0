/* bench_grammar: what structured output costs the host a token. A JSON
 * answer of an agent-like shape is cut into tokens (longest match in the
 * vocabulary) and walked as a generation would: the allowed tokens worked
 * out before each token (grammar/output_constraint.c), then the token
 * taken. Prints microseconds per token (median, mean, worst) and the first
 * mask's (an empty automaton), for a schema and for json_object.
 *
 * The vocabulary is a tokenizer's (default models/laguna-tiny-chat, 8192
 * ids), grown with --vocab N to N ids by joining pairs of its tokens (as
 * BPE merges do), deterministically, to stand in for XS.2's 100352.
 *
 * usage: bench_grammar [--tokenizer FILE] [--vocab N] [--rounds N] */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grammar/json_schema.h"
#include "grammar/output_constraint.h"
#include "laguna_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/decoders.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{\"summary\":{\"type\":\"string\"},\"files\":{\"type\":\"array\",\"items\":"
    "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"lines\":{\"type\":\"array\",\"items\":"
    "{\"type\":\"integer\"}},\"change\":{\"enum\":[\"add\",\"edit\",\"delete\"]}},\"required\":[\"path\",\"change\"]}},"
    "\"confidence\":{\"type\":\"number\"},\"done\":{\"type\":\"boolean\"}},\"required\":[\"summary\",\"files\",\"done\"]}";

static const char ANSWER[] =
    "{\n  \"summary\": \"Fix the off-by-one in the tokenizer's merge loop and add a regression test for empty input.\",\n"
    "  \"files\": [\n    {\"path\": \"src/tokenizer/bpe.c\", \"lines\": [112, 118, 240], \"change\": \"edit\"},\n"
    "    {\"path\": \"tests/test_tokenizer.c\", \"lines\": [801], \"change\": \"add\"}\n  ],\n"
    "  \"confidence\": 0.85,\n  \"done\": true\n}";

typedef struct {
    char **s;
    int *len;
    int n, cap;
} strings;

static void add(strings *v, const char *s, int len) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 1024;
        v->s = realloc(v->s, sizeof *v->s * (size_t)v->cap);
        v->len = realloc(v->len, sizeof *v->len * (size_t)v->cap);
    }
    v->s[v->n] = len > 0 ? malloc((size_t)len) : NULL;
    if (len > 0) memcpy(v->s[v->n], s, (size_t)len);
    v->len[v->n++] = len;
}

/* A hash of strings to ids for the longest-match cut (open addressing). */
typedef struct {
    int *slot;
    size_t cap;
    const strings *v;
} index_t;

static uint64_t hash(const char *s, int n) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int lookup(const index_t *ix, const char *s, int n) {
    for (size_t i = hash(s, n) & (ix->cap - 1); ix->slot[i] >= 0; i = (i + 1) & (ix->cap - 1)) {
        int id = ix->slot[i];
        if (ix->v->len[id] == n && !memcmp(ix->v->s[id], s, (size_t)n)) return id;
    }
    return -1;
}

static void index_build(index_t *ix, const strings *v) {
    ix->cap = 1;
    while (ix->cap < 4 * (size_t)v->n) ix->cap *= 2;
    ix->slot = malloc(sizeof *ix->slot * ix->cap);
    memset(ix->slot, -1, sizeof *ix->slot * ix->cap);
    ix->v = v;
    for (int id = 0; id < v->n; id++) {
        if (v->len[id] <= 0 || lookup(ix, v->s[id], v->len[id]) >= 0) continue;
        size_t i = hash(v->s[id], v->len[id]) & (ix->cap - 1);
        while (ix->slot[i] >= 0) i = (i + 1) & (ix->cap - 1);
        ix->slot[i] = id;
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Walks ANSWER's tokens under schema (NULL: json_object) `rounds` times. */
static void run(const char *what, const char *schema_text, const lg_token_bytes *tb, const int *tokens, int n_tokens,
                int rounds) {
    double *t = malloc(sizeof *t * (size_t)n_tokens * (size_t)rounds), first = 0, total = 0;
    int n = 0, eos = -1;
    for (int r = 0; r < rounds; r++) {
        cJSON *schema = schema_text ? cJSON_Parse(schema_text) : NULL;
        lg_grammar g;
        laguna_error err = {0};
        lg_output_constraint *c = NULL;
        lg_output_constraint_opts o = {&eos, 1, -1, false};
        if (lg_json_schema_grammar(schema, &g, &err) || lg_output_constraint_new(&g, tb, &o, &c, &err)) {
            fprintf(stderr, "bench_grammar: %s\n", err.message);
            exit(1);
        }
        cJSON_Delete(schema);
        for (int i = 0; i < n_tokens; i++) {
            const uint64_t *allowed;
            double t0 = now_s();
            laguna_status st = lg_output_constraint_allowed(c, &allowed, &err);
            double dt = now_s() - t0;
            if (st || !allowed || !((allowed[tokens[i] >> 6] >> (tokens[i] & 63)) & 1)) {
                fprintf(stderr, "bench_grammar: token %d of the answer refused (%s)\n", i, st ? err.message : "mask");
                exit(1);
            }
            if (i == 0) first += dt;
            t[n++] = dt;
            total += dt;
            if (lg_output_constraint_take(c, tokens[i], &err)) {
                fprintf(stderr, "bench_grammar: %s\n", err.message);
                exit(1);
            }
        }
        if (!lg_output_constraint_complete(c)) fprintf(stderr, "bench_grammar: the answer is not whole\n");
        lg_output_constraint_free(c);
    }
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    printf("%-12s %6d tokens  median %8.1f us  mean %8.1f us  worst %9.1f us  first mask %9.1f us\n", what,
           n_tokens, 1e6 * t[n / 2], 1e6 * total / n, 1e6 * t[n - 1], 1e6 * first / rounds);
    free(t);
}

int main(int argc, char **argv) {
    const char *path = "models/laguna-tiny-chat/tokenizer.json";
    int vocab = 0, rounds = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--vocab") && i + 1 < argc) vocab = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_grammar [--tokenizer FILE] [--vocab N] [--rounds N]\n");
            return 2;
        }
    }
    laguna_tokenizer *tok = NULL;
    laguna_error err = {0};
    if (laguna_tokenizer_load(path, &tok, &err)) {
        fprintf(stderr, "bench_grammar: %s\n", err.message);
        return 1;
    }
    /* the tokenizer's tokens as bytes (added tokens as no text) */
    strings v = {0};
    lg_buf b = {0};
    int base = (int)laguna_tokenizer_vocab_size(tok);
    for (int32_t id = 0; id < base; id++) {
        size_t n;
        const char *s = lg_tokenizer_id_str(tok, id, &n);
        b.len = 0;
        if (s && !laguna_tokenizer_is_special(tok, id)) lg_byte_level_decode_token(&b, s, n);
        add(&v, b.data, (int)b.len);
    }
    lg_buf_free(&b);
    /* grown by joining pairs, until --vocab ids */
    index_t ix;
    index_build(&ix, &v);
    uint64_t x = 12345;
    char joined[64];
    while (v.n < vocab) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int a = (int)((x >> 33) % (uint64_t)base), c = (int)((x >> 13) % (uint64_t)base);
        if (v.len[a] <= 0 || v.len[c] <= 0 || v.len[a] + v.len[c] > 24) continue;
        memcpy(joined, v.s[a], (size_t)v.len[a]);
        memcpy(joined + v.len[a], v.s[c], (size_t)v.len[c]);
        if (lookup(&ix, joined, v.len[a] + v.len[c]) >= 0) continue;
        add(&v, joined, v.len[a] + v.len[c]);
        if (v.n * 2 > (int)ix.cap) {
            free(ix.slot);
            index_build(&ix, &v);
        } else {
            size_t i = hash(joined, v.len[v.n - 1]) & (ix.cap - 1);
            while (ix.slot[i] >= 0) i = (i + 1) & (ix.cap - 1);
            ix.slot[i] = v.n - 1;
        }
    }
    lg_token_bytes *tb = NULL;
    if (lg_token_bytes_from_list((const char *const *)v.s, v.len, v.n, &tb, &err)) {
        fprintf(stderr, "bench_grammar: %s\n", err.message);
        return 1;
    }
    /* the answer cut into the longest tokens the vocabulary has */
    int *tokens = malloc(sizeof *tokens * sizeof ANSWER), n_tokens = 0, len = (int)strlen(ANSWER);
    for (int at = 0; at < len;) {
        int best = -1, best_len = 0;
        for (int l = len - at < 24 ? len - at : 24; l > 0 && best < 0; l--)
            if ((best = lookup(&ix, ANSWER + at, l)) >= 0) best_len = l;
        if (best < 0) {
            fprintf(stderr, "bench_grammar: no token for byte %d of the answer\n", at);
            return 1;
        }
        tokens[n_tokens++] = best;
        at += best_len;
    }
    printf("vocabulary %d ids (%s%s), answer %d bytes in %d tokens, %d rounds\n", v.n, path,
           v.n > base ? " grown by joined pairs" : "", len, n_tokens, rounds);
    run("json_schema", SCHEMA, tb, tokens, n_tokens, rounds);
    run("json_object", NULL, tb, tokens, n_tokens, rounds);
    for (int i = 0; i < v.n; i++) free(v.s[i]);
    free(v.s), free(v.len), free(ix.slot), free(tokens);
    lg_token_bytes_free(tb);
    laguna_tokenizer_free(tok);
    return 0;
}
