/* Argument parsing helpers: strict numbers, token lists, option values, the
 * options every model-running command shares, and usage errors in one line. */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/file_util.h"
#include "laguna.h"

/* The running command's name for messages ("generate"); set once by main. */
static const char *command_name = "";

void arg_set_command(const char *name) { command_name = name ? name : ""; }

const char *arg_command(void) { return command_name; }

int arg_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "laguna %s: ", command_name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'laguna %s --help'.\n", command_name);
    va_end(ap);
    return 2;
}

int arg_int(const char *option, const char *text, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "laguna %s: %s: '%s' is not an integer in [%ld, %ld]\n", command_name, option, text, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int arg_u64(const char *option, const char *text, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-') {
        fprintf(stderr, "laguna %s: %s: '%s' is not a non-negative integer\n", command_name, option, text);
        return -1;
    }
    *out = v;
    return 0;
}

int arg_float(const char *option, const char *text, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "laguna %s: %s: '%s' is not a number in [%g, %g]\n", command_name, option, text, lo, hi);
        return -1;
    }
    *out = (float)v;
    return 0;
}

int arg_token_list(const char *option, const char *text, int32_t **out, size_t *n) {
    size_t cap = 16, k = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return -1;
    const char *p = text;
    while (*p) {
        while (*p == ',' || *p == ' ') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',' && *end != ' ')) {
            fprintf(stderr, "laguna %s: %s: '%s' is not a list of token ids like 1,2,3\n", command_name, option, text);
            free(ids);
            return -1;
        }
        if (k == cap) {
            int32_t *bigger = realloc(ids, 2 * cap * sizeof *ids);
            if (!bigger) {
                free(ids);
                return -1;
            }
            ids = bigger;
            cap *= 2;
        }
        ids[k++] = (int32_t)v;
        p = end;
    }
    *out = ids;
    *n = k;
    return 0;
}

const char *arg_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "laguna %s: option %s needs a value\n", command_name, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int arg_load_mode(const char *option, const char *text, int *out) {
    if (!strcmp(text, "auto")) *out = LAGUNA_LOAD_AUTO;
    else if (!strcmp(text, "mmap")) *out = LAGUNA_LOAD_MMAP;
    else if (!strcmp(text, "copy")) *out = LAGUNA_LOAD_COPY;
    else {
        fprintf(stderr, "laguna %s: %s: '%s' is not auto, mmap or copy\n", command_name, option, text);
        return -1;
    }
    return 0;
}

/* A seed nobody chose: the clock's nanoseconds mixed with the process id. */
static uint64_t random_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    x ^= x >> 33; /* splitmix64's finaliser */
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x % 4294967296u; /* short enough to retype */
}

/* "loading weights  42%" on a terminal while a model is placed on its
 * device (a GPU upload, or pages read from disk), erased when done. */
static void show_load_progress(void *user, double fraction) {
    int *shown = user, pct = (int)(fraction * 100);
    if (pct == *shown) return;
    *shown = pct;
    if (fraction >= 1) fputs("\r\033[K", stderr);
    else fprintf(stderr, "\rloading weights %3d%%", pct);
    fflush(stderr);
}

run_options run_options_default(void) {
    static int shown = -1;
    run_options o = {0};
    o.sampler = laguna_sampler_default_params();
    o.sampler.seed = random_seed();
    if (isatty(STDERR_FILENO)) o.model.progress = show_load_progress, o.model.progress_user = &shown;
    return o;
}

void run_options_note(const run_options *o) {
    if (o->filters_given && o->sampler.temperature == 0)
        fprintf(stderr,
                "laguna %s: note: --top-k, --top-p and --min-p do nothing with greedy decoding "
                "(--temp 0, the default); add --temp T to sample\n",
                command_name);
}

void model_options_note(const laguna_model_options *o, const laguna_model *m) {
    if (o->bf16_activations && !laguna_model_get_info(m)->bf16_activations)
        fprintf(stderr,
                "laguna %s: note: --bf16-activations not taken (it needs the CPU device and a CPU with "
                "AVX-512 BF16); the activations stay float32\n",
                command_name);
}

int arg_model_option(int argc, char **argv, int *i, laguna_model_options *mo) {
    const char *a = argv[*i], *v;
    int bad = 0, mode = 0;
    if (!strcmp(a, "--device")) bad = !(mo->device = arg_value(argc, argv, i));
    else if (!strcmp(a, "--devices")) bad = !(mo->devices = arg_value(argc, argv, i));
    else if (!strcmp(a, "--bf16-activations")) mo->bf16_activations = 1;
    else if (!strcmp(a, "--load")) {
        bad = !(v = arg_value(argc, argv, i)) || arg_load_mode(a, v, &mode);
        mo->load_mode = (laguna_load_mode)mode;
    } else
        return 0;
    return bad ? -1 : 1;
}

int arg_run_option(int argc, char **argv, int *i, run_options *o) {
    const char *a = argv[*i], *v;
    int bad = 0, mode = 0;
    if (!strcmp(a, "--top-k") || !strcmp(a, "--top-p") || !strcmp(a, "--min-p")) o->filters_given = 1;
    if (!strcmp(a, "--temp")) bad = !(v = arg_value(argc, argv, i)) || arg_float(a, v, 0, 1e6, &o->sampler.temperature);
    else if (!strcmp(a, "--top-k")) bad = !(v = arg_value(argc, argv, i)) || arg_int(a, v, 0, 1 << 30, &o->sampler.top_k);
    else if (!strcmp(a, "--top-p")) bad = !(v = arg_value(argc, argv, i)) || arg_float(a, v, 1e-9, 1, &o->sampler.top_p);
    else if (!strcmp(a, "--min-p")) bad = !(v = arg_value(argc, argv, i)) || arg_float(a, v, 0, 1, &o->sampler.min_p);
    else if (!strcmp(a, "--repeat-penalty"))
        bad = !(v = arg_value(argc, argv, i)) || arg_float(a, v, 1e-6, 1e6, &o->sampler.repetition_penalty);
    else if (!strcmp(a, "--seed") || !strcmp(a, "-s"))
        bad = !(v = arg_value(argc, argv, i)) || arg_u64(a, v, &o->sampler.seed);
    else if (!strcmp(a, "--ctx") || !strcmp(a, "-c") || !strcmp(a, "--ctx-size"))
        bad = !(v = arg_value(argc, argv, i)) || arg_int(a, v, 1, 1 << 30, &o->session.n_ctx);
    else if (!strcmp(a, "--batch-size") || !strcmp(a, "-b"))
        bad = !(v = arg_value(argc, argv, i)) || arg_int(a, v, 1, 65536, &o->session.n_batch);
    else if (!strcmp(a, "--threads") || !strcmp(a, "-t"))
        bad = !(v = arg_value(argc, argv, i)) || arg_int(a, v, 0, 512, &o->model.n_threads);
    else if ((mode = arg_model_option(argc, argv, i, &o->model)))
        bad = mode < 0;
    else if (!strcmp(a, "--kv-type")) {
        if (!(bad = !(v = arg_value(argc, argv, i))) && (mode = laguna_kv_type_from_name(v)) < 0) {
            fprintf(stderr, "laguna %s: --kv-type must be auto, f32, f16, bf16 or q8_0 (got '%s')\n", command_name, v);
            bad = 1;
        }
        if (!bad) o->session.kv_type = (laguna_kv_type)mode;
    } else
        return 0;
    return bad ? -1 : 1;
}

int arg_json_schema_option(int argc, char **argv, int *i, char **schema) {
    const char *a = argv[*i];
    if (!strcmp(a, "--json")) {
        free(*schema);
        *schema = strdup("{\"type\":\"object\"}");
        return *schema ? 1 : -1;
    }
    if (strcmp(a, "--json-schema")) return 0;
    const char *path = arg_value(argc, argv, i);
    if (!path) return -1;
    char *text = NULL;
    size_t len = 0;
    laguna_error err = {0};
    if (lg_read_file(path, (size_t)16 << 20, &text, &len, &err)) {
        fprintf(stderr, "laguna %s: --json-schema: %s\n", arg_command(), err.message);
        return -1;
    }
    free(*schema);
    *schema = text;
    return 1;
}
