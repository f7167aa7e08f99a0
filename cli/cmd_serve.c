/* laguna serve -m MODEL: the OpenAI-compatible HTTP server (src/server/).
 * Loads the model, its tokenizer and chat template, starts the server and
 * waits for SIGINT or SIGTERM, then shuts down cleanly. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "args.h"
#include "commands.h"
#include "laguna_chat.h"
#include "laguna_generate.h"
#include "laguna_tokenizer.h"
#include "server/server.h"
#include "text_input.h"

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: laguna serve -m MODEL [options]\n"
        "  --host ADDR        IPv4 address to listen on (default 127.0.0.1)\n"
        "  --port N           port (default 8080; 0 = any free port)\n"
        "  --api-key KEY      require 'Authorization: Bearer KEY' (or x-api-key: KEY)\n"
        "  --parallel N       requests decoded together (default 4)\n"
        "  --ctx-size N       positions per request (default: the model's maximum)\n"
        "  --queue N          requests waiting beyond --parallel before 503 (default 64)\n"
        "  --cache-mb N       prefix cache: MiB of KV pages finished conversations may keep, "
        "least\n"
        "                     recently used evicted first (default: as much as --parallel full\n"
        "                     contexts; 0 = off)\n"
        "  --cache-seqs N     most finished conversations kept (default 64; 0 = off)\n"
        "  --max-connections N  open HTTP connections at once (default 512)\n"
        "  --max-connections-per-ip N  from one address (default 0: no limit)\n"
        "  --timeout S        close a connection idle for S seconds (default 60)\n"
        "  --name NAME        model id reported by /v1/models (default: the model folder's name)\n"
        "  --threads N        compute threads (default: all cores)\n"
        "  --sample-threads N host threads drawing a step's sampled rows (default: up to 8\n"
        "                     with a GPU, 1 on CPUs)\n"
        "  --draft-lookup K   greedy requests: up to K tokens a step drafted from earlier text\n"
        "                     (prompt lookup) and checked in the same step; the same tokens in\n"
        "                     fewer steps when the text repeats itself (default 0: off)\n"
        "  --device D         cpu (default) or cuda[:N]\n"
        "  --devices LIST     several GPUs, cuda:0,cuda:1,... (not yet run on real GPUs), or cpu:N\n"
        "  --load auto|mmap|copy\n"
        "  --bf16-activations CPU, bf16 weights: activations rounded to bf16 for the CPU's bf16\n"
        "                     dot products (AVX-512 BF16; ~1.4x faster prompts, logits within ~1e-2)\n");
}

/* Each connection is a descriptor: lifts the soft limit towards the hard one
 * so that --max-connections can be reached (the default soft limit, 1024,
 * is near the default connection limit). */
static void raise_fd_limit(int max_connections) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) return;
    rlim_t want = (rlim_t)max_connections + 256;
    if (rl.rlim_cur >= want) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        fprintf(stderr,
                "laguna serve: note: %lu open files allowed (ulimit -n), fewer than "
                "--max-connections %d needs\n",
                (unsigned long)rl.rlim_cur, max_connections);
}

int cmd_serve(int argc, char **argv) {
    const char *dir = NULL;
    lg_server_options so = {.port = 8080};
    laguna_model_options mo = {0};
    int cache = -2, cache_mb = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int bad = 0, mode = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m"))
            bad = !(dir = arg_value(argc, argv, &i));
        else if (!strcmp(a, "--host"))
            bad = !(so.host = arg_value(argc, argv, &i));
        else if (!strcmp(a, "--api-key"))
            bad = !(so.api_key = arg_value(argc, argv, &i));
        else if (!strcmp(a, "--name"))
            bad = !(so.model_name = arg_value(argc, argv, &i));
        else if (!strcmp(a, "--port"))
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 0, 65535, &so.port);
        else if (!strcmp(a, "--parallel"))
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 1, 256, &so.n_parallel);
        else if (!strcmp(a, "--ctx-size"))
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 16, 1 << 24, &so.n_ctx);
        else if (!strcmp(a, "--queue"))
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 1, 100000, &so.max_queue);
        else if (!strcmp(a, "--cache-seqs"))
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 0, 1024, &cache);
        else if (!strcmp(a, "--cache-mb"))
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 0, 1 << 24, &cache_mb);
        else if (!strcmp(a, "--max-connections"))
            bad =
                !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 1, 1 << 20, &so.max_connections);
        else if (!strcmp(a, "--max-connections-per-ip"))
            bad = !(v = arg_value(argc, argv, &i)) ||
                  arg_int(a, v, 0, 1 << 20, &so.max_connections_per_ip);
        else if (!strcmp(a, "--timeout"))
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 1, 86400, &so.timeout_s);
        else if (!strcmp(a, "--threads"))
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 1, 4096, &mo.n_threads);
        else if (!strcmp(a, "--sample-threads"))
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 1, 256, &so.sample_threads);
        else if (!strcmp(a, "--draft-lookup"))
            bad = !(v = arg_value(argc, argv, &i)) || arg_int(a, v, 0, LAGUNA_DRAFT_LOOKUP_MAX, &so.draft_lookup);
        else if ((mode = arg_model_option(argc, argv, &i, &mo)))
            bad = mode < 0;
        else {
            fprintf(stderr, "laguna serve: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) return 2;
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    if (!so.sample_threads) so.sample_threads = lg_server_default_sample_threads(mo.device, mo.devices);
    if (cache != -2) so.cache_seqs = cache == 0 ? -1 : cache;
    if (cache_mb >= 0) so.cache_bytes = cache_mb == 0 ? -1 : (int64_t)cache_mb << 20;
    raise_fd_limit(so.max_connections ? so.max_connections : 512);
    char name[128];
    if (!so.model_name) {
        const char *base = strrchr(dir, '/');
        size_t len = strlen(dir);
        while (len > 1 && dir[len - 1] == '/')
            len--;
        base = dir;
        for (size_t k = 0; k + 1 < len; k++)
            if (dir[k] == '/') base = dir + k + 1;
        snprintf(name, sizeof name, "%.*s", (int)(len - (size_t)(base - dir)), base);
        so.model_name = name;
    }
    /* block the stop signals in every thread; this one waits for them */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    laguna_error err = {0};
    laguna_tokenizer *tok = NULL;
    laguna_chat_template *tmpl = NULL;
    laguna_model *model = NULL;
    lg_server *srv = NULL;
    int rc = 1;
    if (text_input_load_tokenizer(dir, &tok, &err) || text_input_load_template(dir, &tmpl, &err) ||
        laguna_model_open(dir, &mo, &model, &err) ||
        lg_server_start(model, tok, tmpl, &so, &srv, &err)) {
        fprintf(stderr, "laguna serve: %s\n", err.message);
        goto done;
    }
    model_options_note(&mo, model);
    fprintf(stderr, "laguna serve: %s on http://%s:%d (parallel %d, device %s)\n", so.model_name,
            so.host ? so.host : "127.0.0.1", lg_server_port(srv), so.n_parallel ? so.n_parallel : 4,
            mo.devices ? mo.devices : mo.device ? mo.device : "cpu");
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "laguna serve: stopping\n");
    rc = 0;
done:
    lg_server_stop(srv);
    laguna_model_free(model);
    laguna_chat_template_free(tmpl);
    laguna_tokenizer_free(tok);
    return rc;
}
