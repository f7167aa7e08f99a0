/* bench_tokenizer: how fast laguna.c loads tokenizer.json, encodes and
 * decodes. Prints one table: load time, encode MB/s with a cold word cache
 * (a fresh tokenizer per run) and a warm one, decode and streaming-decode
 * MB/s; medians over --runs runs on one thread. Compare with
 * bench/tokenizer_reference.py, which measures Hugging Face tokenizers on the
 * same text (pass its number as --hf-mbps to print the ratio).
 *
 * usage: bench_tokenizer [--tokenizer DIR|tokenizer.json] [--file TEXT] [--runs N] [--hf-mbps X]
 * Without --file the text is the 60 kB "long_source" case of
 * tests/fixtures/tokenizer/laguna-like/cases.json. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/file_util.h"
#include "laguna_tokenizer.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The long_source case of the fixture, as a heap string. */
static char *fixture_text(size_t *len) {
    char *json;
    size_t n;
    laguna_error err = {0};
    if (lg_read_file("tests/fixtures/tokenizer/laguna-like/cases.json", 1 << 26, &json, &n, &err)) {
        fprintf(stderr, "bench_tokenizer: %s (run from the repository root or pass --file)\n",
                err.message);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(json, n), *c;
    free(json);
    char *text = NULL;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const cJSON *name = cJSON_GetObjectItem(c, "name");
        if (cJSON_IsString(name) && !strcmp(name->valuestring, "long_source"))
            text = strdup(cJSON_GetObjectItem(c, "text")->valuestring);
    }
    cJSON_Delete(root);
    if (text) *len = strlen(text);
    return text;
}

static void row(const char *what, double seconds, size_t bytes, double hf_mbps) {
    double mbps = bytes / 1e6 / seconds;
    printf("%-32s %10.3f ms %10.2f MB/s", what, seconds * 1e3, mbps);
    if (hf_mbps > 0) printf("   x%.2f vs tokenizers", mbps / hf_mbps);
    printf("\n");
}

int main(int argc, char **argv) {
    const char *path = "tests/fixtures/tokenizer/laguna-like/tokenizer.json", *file = NULL;
    int runs = 15;
    double hf_mbps = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "--file") && i + 1 < argc)
            file = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--hf-mbps") && i + 1 < argc)
            hf_mbps = atof(argv[++i]);
        else {
            fprintf(
                stderr,
                "usage: bench_tokenizer [--tokenizer P] [--file TEXT] [--runs N] [--hf-mbps X]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 10000) runs = 15;
    size_t len = 0;
    char *text = NULL;
    laguna_error err = {0};
    if (file) {
        if (lg_read_file(file, (size_t)1 << 30, &text, &len, &err)) {
            fprintf(stderr, "bench_tokenizer: %s\n", err.message);
            return 1;
        }
    } else if (!(text = fixture_text(&len))) {
        return 1;
    }
    double *t = calloc((size_t)runs, sizeof *t), *load = calloc((size_t)runs, sizeof *load);
    laguna_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    /* cold: a fresh tokenizer (empty word cache) per run */
    for (int r = 0; r < runs; r++) {
        double t0 = now_s();
        if (laguna_tokenizer_load(path, &tok, &err)) {
            fprintf(stderr, "bench_tokenizer: %s\n", err.message);
            return 1;
        }
        double t1 = now_s();
        if (laguna_tokenizer_encode(tok, text, len, false, &ids, &n_ids, &err)) {
            fprintf(stderr, "bench_tokenizer: %s\n", err.message);
            return 1;
        }
        t[r] = now_s() - t1;
        load[r] = t1 - t0;
        laguna_tokenizer_free_ids(ids);
        if (r + 1 < runs) laguna_tokenizer_free(tok);
    }
    printf("tokenizer %s (%zu tokens in the vocabulary); text %zu bytes\n", path,
           laguna_tokenizer_vocab_size(tok), len);
    printf("%-32s %10.3f ms\n", "load tokenizer.json", median(load, runs) * 1e3);
    row("encode, cold word cache", median(t, runs), len, hf_mbps);
    for (int r = 0; r < runs; r++) {
        double t0 = now_s();
        laguna_tokenizer_encode(tok, text, len, false, &ids, &n_ids, &err);
        t[r] = now_s() - t0;
        if (r + 1 < runs) laguna_tokenizer_free_ids(ids);
    }
    row("encode, warm word cache", median(t, runs), len, hf_mbps);
    printf("%-32s %10zu\n", "tokens", n_ids);
    char *out;
    size_t out_len;
    for (int r = 0; r < runs; r++) {
        double t0 = now_s();
        laguna_tokenizer_decode(tok, ids, n_ids, false, &out, &out_len, &err);
        t[r] = now_s() - t0;
        laguna_tokenizer_free_text(out);
    }
    row("decode", median(t, runs), len, 0);
    for (int r = 0; r < runs; r++) {
        laguna_detokenizer *d;
        laguna_detokenizer_new(tok, false, &d, &err);
        const char *piece;
        size_t piece_len;
        double t0 = now_s();
        for (size_t i = 0; i < n_ids; i++)
            laguna_detokenizer_push(d, ids[i], &piece, &piece_len, &err);
        laguna_detokenizer_flush(d, &piece, &piece_len, &err);
        t[r] = now_s() - t0;
        laguna_detokenizer_free(d);
    }
    row("streaming decode, id by id", median(t, runs), len, 0);
    laguna_tokenizer_free_ids(ids);
    laguna_tokenizer_free(tok);
    free(t);
    free(load);
    free(text);
    return 0;
}
