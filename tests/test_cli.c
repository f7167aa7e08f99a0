/* The laguna program as a user runs it: good commands succeed with the
 * expected output, wrong input gives a message and a non-zero exit. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/cpu/bf16_dot.h"
#include "harness.h"
#include "laguna_tokenizer.h"
#include "testutil.h"

static void expect(const char *args, int want_rc, const char *needle) {
    char *out = NULL;
    int rc = tu_run_laguna(args, &out);
    CHECKF(want_rc == 0 ? rc == 0 : (rc != 0 && rc < 128), "laguna %s: exit %d\n%s", args, rc, out ? out : "");
    if (needle) CHECKF(out && strstr(out, needle), "laguna %s: output lacks '%s':\n%s", args, needle, out ? out : "");
    free(out);
}

static void test_verify_command(void) {
    expect("verify tests/fixtures/tiny-xs/bf16 tests/fixtures/tiny-xs/golden.safetensors", 0, "PASS: 3 of 3");
    expect("verify tests/fixtures/tiny-m tests/fixtures/tiny-m/golden.safetensors --threads 2 --load mmap", 0, "PASS");
    expect("verify tests/fixtures/tiny-xs tests/fixtures/tiny-xs/golden.safetensors --load copy", 0, "PASS");
    expect("verify tests/fixtures/tiny-xs tests/fixtures/tiny-xs/golden.safetensors --load maybe", 2, "--load");
    expect("verify tests/fixtures/tiny-xs tests/fixtures/tiny-xs/golden.safetensors --load mmap", 0, "PASS");
    expect("verify tests/fixtures/tiny-xs tests/fixtures/tiny-xs/golden.safetensors --load auto", 0, "PASS");
    /* --bf16-activations: the distribution bound where the CPU takes it, a note and the float bound elsewhere */
    expect("verify tests/fixtures/tiny-xs/bf16 tests/fixtures/tiny-xs/golden.safetensors --bf16-activations", 0,
           lg_bf16_dot_available() ? "PASS: bf16 activations tolerance" : "not taken");
    /* a GGUF under both load paths (bf16: exact to the float golden file) */
    char *d = tu_temp_dir(), cmd[1024];
    snprintf(cmd, sizeof cmd, "quantize tests/fixtures/tiny-xs %s/x.gguf --type bf16", d);
    expect(cmd, 0, NULL);
    const char *modes[] = {"copy", "mmap"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "verify %s/x.gguf tests/fixtures/tiny-xs/golden.safetensors --load %s", d, modes[i]);
        expect(cmd, 0, "PASS: 3 of 3");
    }
    tu_remove_dir(d);
    /* the wrong golden file for the model: shapes differ or results fail */
    expect("verify tests/fixtures/tiny-m tests/fixtures/tiny-xs/golden.safetensors", 1, NULL);
    expect("verify tests/fixtures/tiny-m /nonexistent.safetensors", 1, "nonexistent");
    expect("verify tests/fixtures/tiny-m", 2, "missing the golden file");
}

static void test_generate_command(void) {
    expect("generate -m tests/fixtures/tiny-xs --tokens 1,2,3 -n 5", 0, NULL);
    expect("generate -m tests/fixtures/tiny-xs --tokens 1,2,99999 -n 5", 1, "outside the vocabulary");
    expect("generate -m tests/fixtures/tiny-xs --tokens '' -n 5", 2, "empty");
    expect("generate -m tests/fixtures/tiny-xs --tokens 1,x,3", 2, "token ids");
    expect("generate -m tests/fixtures/tiny-xs --tokens 1 -n 300", 2, "context");
    expect("generate -m tests/fixtures/tiny-xs --tokens 1 --temp -1", 2, "--temp");
    expect("generate -m tests/fixtures/tiny-xs --tokens 1 --top-p 2", 2, "--top-p");
    expect("generate -m /nonexistent --tokens 1", 1, "/nonexistent");
    expect("generate --tokens 1", 2, "missing -m MODEL");
    expect("generate -m tests/fixtures/tiny-xs --tokens 1 --bogus", 2, "unknown option");
}

/* Text output streams exactly the decoding of the ids the same run samples. */
static void test_generate_text_matches_ids(void) {
    char *ids_out = NULL, *text_out = NULL;
    CHECK(tu_run_laguna("generate -m tests/fixtures/tiny-xs --tokens 5,6,7 -n 30 --ignore-eos --ids", &ids_out) == 0);
    CHECK(tu_run_laguna("generate -m tests/fixtures/tiny-xs --tokens 5,6,7 -n 30 --ignore-eos", &text_out) == 0);
    laguna_tokenizer *tok = NULL;
    CHECK(laguna_tokenizer_load("tests/fixtures/tiny-xs", &tok, NULL) == LAGUNA_OK);
    int32_t ids[64];
    size_t n = 0;
    for (char *p = ids_out; p && *p && n < 64;) {
        ids[n++] = (int32_t)strtol(p, &p, 10);
        while (*p == ',' || *p == '\n') p++;
    }
    CHECK(n == 30);
    char *text = NULL;
    size_t len = 0;
    if (tok) CHECK(laguna_tokenizer_decode(tok, ids, n, true, &text, &len, NULL) == LAGUNA_OK);
    CHECKF(text && text_out && strlen(text_out) == len + 1 && !memcmp(text_out, text, len), "decoded '%s' vs streamed '%s'",
           text ? text : "", text_out ? text_out : "");
    laguna_tokenizer_free_text(text);
    laguna_tokenizer_free(tok);
    free(ids_out);
    free(text_out);
    expect("generate -m tests/fixtures/tiny-xs -p 'def f(x):' -n 8", 0, NULL);
    expect("generate -m tests/fixtures/tiny-xs -p '' -n 8", 2, "empty");
    expect("generate -m tests/fixtures/tiny-xs --tokens 1 --ids --stop x", 2, "--stop");
}

/* The chat keeps its KV cache across turns: its transcript equals one that
 * re-reads the whole conversation each turn, and it feeds fewer tokens. */
static void test_chat_reuses_cache(void) {
    const char *script = "printf 'hello there\\nhow are you?\\n/think on\\nwhy?\\n/reset\\nagain\\n/quit\\n' | ";
    char cmd[1024], *with = NULL, *without = NULL, *stats = NULL;
    snprintf(cmd, sizeof cmd, "%s%s/laguna chat -m tests/fixtures/tiny-xs -n 20 2>/dev/null", script,
             getenv("BUILD") ? getenv("BUILD") : "build");
    FILE *p = popen(cmd, "r");
    char buf[8192];
    size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    buf[n] = 0;
    CHECK(p && pclose(p) == 0);
    with = strdup(buf);
    snprintf(cmd, sizeof cmd, "%s%s/laguna chat -m tests/fixtures/tiny-xs -n 20 --no-reuse 2>/dev/null", script,
             getenv("BUILD") ? getenv("BUILD") : "build");
    p = popen(cmd, "r");
    n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    buf[n] = 0;
    CHECK(p && pclose(p) == 0);
    without = strdup(buf);
    CHECKF(!strcmp(with, without), "transcripts differ:\n%s\n---\n%s", with, without);
    CHECK(strlen(with) > 10);
    snprintf(cmd, sizeof cmd, "%s%s/laguna chat -m tests/fixtures/tiny-xs -n 20 --stats 2>&1 >/dev/null", script,
             getenv("BUILD") ? getenv("BUILD") : "build");
    p = popen(cmd, "r");
    n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    buf[n] = 0;
    if (p) pclose(p);
    stats = buf;
    /* turn 2 must reuse the first turn's tokens */
    CHECKF(strstr(stats, "[seed ") && strstr(stats, "tok/s"), "stats: %s", stats);
    const char *first = strstr(stats, "[turn: prompt");
    const char *second = first ? strstr(first + 1, "]\n[turn: prompt") : NULL;
    int total = 0, reused = 0;
    CHECKF(second && sscanf(second, "]\n[turn: prompt %d tokens, %d reused", &total, &reused) == 2 && reused > 5,
           "stats: %s", stats);
    free(with);
    free(without);
    expect("chat -m tests/fixtures/tiny-xs --bogus", 2, "unknown option");
    expect("chat -m /nonexistent", 1, "/nonexistent");
    expect("chat", 2, "laguna chat: missing -m MODEL");
    expect("chat", 2, "--help");
}

/* Greedy chat replies with prompt-lookup drafts are the replies without them, turn after turn
 * (the session is taken back to what plain decoding leaves), and the drafts were checked. */
static void test_chat_drafts_same_transcript(void) {
    if (access("models/laguna-tiny-chat/config.json", R_OK)) {
        test_skip("models/laguna-tiny-chat is absent");
        return;
    }
    const char *script =
        "printf 'What is the capital of France?\\nAnd of Italy?\\nRepeat your first answer.\\n' | ";
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cmd[1024], buf[3][8192];
    const char *args[3] = {"", "--draft-lookup 4", "--draft-lookup 4 --stats"};
    for (int k = 0; k < 3; k++) {
        snprintf(cmd, sizeof cmd, "%s%s/laguna chat -m models/laguna-tiny-chat --temp 0 -n 64 %s %s",
                 script, build, args[k], k == 2 ? "2>&1 >/dev/null" : "2>/dev/null");
        FILE *p = popen(cmd, "r");
        size_t n = p ? fread(buf[k], 1, sizeof buf[k] - 1, p) : 0;
        buf[k][n] = 0;
        CHECK(p && pclose(p) == 0);
    }
    CHECKF(strlen(buf[0]) > 20 && !strcmp(buf[0], buf[1]), "transcripts differ:\n%s\n---\n%s",
           buf[0], buf[1]);
    int drafted = 0, accepted = 0, d, a;
    for (const char *at = buf[2]; (at = strstr(at, "[drafts: ")); at++)
        if (sscanf(at, "[drafts: %d tokens drafted, %d accepted]", &d, &a) == 2) drafted += d, accepted += a;
    CHECKF(drafted > 0 && accepted > 0 && accepted <= drafted, "stats: %s", buf[2]);
}

/* --json-schema / --json on generate and chat: the answer is JSON under the schema; a schema it
 * cannot follow, a missing file and --json-schema with drafts are clear errors. */
static void test_json_schema_options(void) {
    char *dir = tu_temp_dir();
    const char *schema = "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"},\"ok\":{\"type\":\"boolean\"}},"
                         "\"required\":[\"n\",\"ok\"]}";
    tu_write_file(dir, "s.json", schema, strlen(schema));
    tu_write_file(dir, "bad.json", "{\"if\":{}}", 9);
    char args[512], *out = NULL;
    snprintf(args, sizeof args, "generate -m models/laguna-tiny -p 'x = ' -n 200 --temp 1 -s 4 --json-schema %s/s.json", dir);
    CHECK(tu_run_laguna(args, &out) == 0);
    const char *end = NULL;
    cJSON *j = out ? cJSON_ParseWithOpts(out, &end, false) : NULL;
    CHECKF(cJSON_IsNumber(cJSON_GetObjectItem(j, "n")) && cJSON_IsBool(cJSON_GetObjectItem(j, "ok")) &&
               cJSON_GetArraySize(j) == 2,
           "%s", out ? out : "");
    cJSON_Delete(j);
    free(out);
    expect("generate -m models/laguna-tiny -p 'x' -n 40 --json", 0, "{");
    snprintf(args, sizeof args, "generate -m models/laguna-tiny -p 'x' --json-schema %s/bad.json", dir);
    expect(args, 1, "'if'");
    expect("generate -m models/laguna-tiny -p 'x' --json-schema /nonexistent/s.json", 2, "--json-schema");
    expect("generate -m models/laguna-tiny -p 'x' --json --draft-lookup 4", 1, "draft_lookup");
    if (!access("models/laguna-tiny-chat/config.json", R_OK)) {
        snprintf(args, sizeof args, "printf 'Count to three.\\n' | %s/laguna chat -m models/laguna-tiny-chat -n 200 "
                 "--json-schema %s/s.json 2>/dev/null", getenv("BUILD") ? getenv("BUILD") : "build", dir);
        FILE *p = popen(args, "r");
        char buf[4096] = "";
        size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
        buf[n] = 0;
        CHECK(p && pclose(p) == 0);
        const char *brace = strchr(buf, '{');
        cJSON *c = brace ? cJSON_ParseWithOpts(brace, &end, false) : NULL;
        CHECKF(cJSON_IsNumber(cJSON_GetObjectItem(c, "n")) && cJSON_IsBool(cJSON_GetObjectItem(c, "ok")), "%s", buf);
        cJSON_Delete(c);
    }
    tu_remove_dir(dir);
}

/* Runs `laguna chat ARGS` on the lines of `input` (printf format); stdout and stderr together. */
static char *chat_output(const char *input, const char *args, int want_rc) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "printf '%s' | %s/laguna chat %s 2>&1", input, getenv("BUILD") ? getenv("BUILD") : "build",
             args);
    FILE *p = popen(cmd, "r");
    static char buf[1 << 16];
    size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    buf[n] = 0;
    int rc = p ? pclose(p) : -1;
    CHECKF(p && WIFEXITED(rc) && WEXITSTATUS(rc) == want_rc, "%s: status %d\n%s", cmd, rc, buf);
    return buf;
}

/* A context below -n + 64 works (the rollback allowance is clamped); a full
 * context drops the oldest turns with a note and the chat goes on. */
static void test_chat_small_context(void) {
    const char *turns = "def add(a, b): return a + b\\nwrite a test for add\\n"
                        "def sub(a, b): return a - b\\nwrite a test for sub\\n/history\\n";
    char *out = chat_output(turns, "models/laguna-tiny --ctx-size 96 -n 24 --ignore-eos", 0);
    CHECKF(strstr(out, "is full: dropped the oldest"), "%s", out);
    /* the last message survives, the first is gone */
    const char *history = strstr(out, "user: write a test for sub");
    CHECKF(history && !strstr(out, "user: def add"), "%s", out);
    out = chat_output("hello\\n", "-m models/laguna-tiny -c 1024", 0);                /* -n 1024 + 64 > 1024 */
    CHECKF(!strstr(out, "rollback"), "%s", out);
    out = chat_output("hello\\nhello again\\n", "-m models/laguna-tiny -c 300 -n -1 --ignore-eos", 0);
    CHECKF(strstr(out, "context is full"), "%s", out);
    /* one message too long for the context is refused, and the chat goes on */
    out = chat_output("one two three four five six seven eight nine ten eleven twelve\\nhi\\n",
                      "-m models/laguna-tiny -c 24 -n 4", 1);
    CHECKF(strstr(out, "leaves no room for a reply"), "%s", out);
}


static void test_info_and_synth(void) {
    expect("info --preset xs2", 0, "33.44B");
    expect("info --preset xs2", 0, "3.02B");
    expect("info -m tests/fixtures/tiny-xs", 0, "sliding");
    expect("info models/laguna-tiny", 0, "parameters total             12204912 (12.20M)");
    expect("info -m models/laguna-tiny", 0, "weights                      BF16 x");
    expect("info -m models/laguna-tiny", 0, "size on disk");
    expect("info -m models/laguna-tiny -c 1024", 0, "memory (weights + f32 KV at 1024)");
    expect("info --preset nope", 2, "unknown preset");
    expect("info --preset s2.1", 0, "(117.56B)");  /* 118B total / ~8B active, as published */
    expect("info --preset s2.1", 0, "yarn x128");
    expect("info --preset xs2.1", 0, "yarn x32");
    expect("info --preset synth-tiny", 0, "(693.41K)");
    char *d = tu_temp_dir();
    char args[512];
    snprintf(args, sizeof args, "synth --preset tiny --layers 3 --dtype f16 --shard-mb 1 --out %s/m", d);
    expect(args, 0, "wrote");
    snprintf(args, sizeof args, "generate -m %s/m --tokens 5,6,7 -n 4 --temp 0.8 --seed 3", d);
    expect(args, 0, NULL);
    snprintf(args, sizeof args, "generate -m %s/m -p hello", d); /* no tokenizer.json */
    expect(args, 1, "tokenizer");
    snprintf(args, sizeof args, "info -m %s/m", d);
    expect(args, 0, "layers                       3");
    snprintf(args, sizeof args, "synth --preset tiny --dtype q3 --out %s/x", d);
    expect(args, 2, "--dtype");
    expect("synth --preset tiny --out /proc/laguna-cannot-write", 1, "cannot");
    tu_remove_dir(d);
}

/* serve's options reach the model: a device that does not exist is refused before listening */
static void test_serve_options(void) {
    expect("serve -m models/laguna-tiny --port 0 --device nonsense", 1, "nonsense");
    expect("serve -m models/laguna-tiny --device", 2, "--device");
    expect("serve --help", 0, "--device");
}

/* Every command takes -m MODEL (or the path first); tokenize, detokenize and
 * template read the tokenizer and template from a GGUF as from a folder. */
static void test_one_convention(void) {
    char *d = tu_temp_dir(), args[1024], *a = NULL, *b = NULL;
    snprintf(args, sizeof args, "quantize models/laguna-tiny %s/t.gguf --type q8_0", d);
    expect(args, 0, NULL);
    snprintf(args, sizeof args, "quantize %s/t.gguf %s/t2.gguf --type q4_k_m", d, d);
    expect(args, 0, "warning: ");
    expect(args, 0, "is already quantised (Q8_0)");
    snprintf(args, sizeof args, "quantize models/laguna-tiny %s/t3.gguf --type q8_0", d);
    CHECK(tu_run_laguna(args, &a) == 0 && a && !strstr(a, "warning")); /* BF16 weights: no warning */
    free(a);
    snprintf(args, sizeof args, "tokenize -m %s/t.gguf 'def f(x):'", d);
    CHECK(tu_run_laguna(args, &a) == 0);
    CHECK(tu_run_laguna("tokenize models/laguna-tiny 'def f(x):'", &b) == 0);
    CHECKF(a && b && !strcmp(a, b) && strlen(a) > 4, "GGUF '%s' vs folder '%s'", a ? a : "", b ? b : "");
    free(a);
    free(b);
    snprintf(args, sizeof args, "detokenize -m %s/t.gguf 357 312 395 339", d);
    expect(args, 0, "def f(x):");
    expect("detokenize -m models/laguna-tiny 357,312,395,339", 0, "def f(x):");
    snprintf(args, sizeof args, "detokenize -m %s/t.gguf 5 8192", d);
    expect(args, 1, "token id 8192 is not in the vocabulary");
    snprintf(args, sizeof args, "%s/r.json", d);
    FILE *f = fopen(args, "w");
    if (f) {
        fputs("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", f);
        fclose(f);
    }
    snprintf(args, sizeof args, "template -m %s/t.gguf %s/r.json", d, d);
    CHECK(tu_run_laguna(args, &a) == 0);
    snprintf(args, sizeof args, "template models/laguna-tiny %s/r.json", d);
    CHECK(tu_run_laguna(args, &b) == 0);
    CHECKF(a && b && !strcmp(a, b) && strstr(a, "<user>hi</user>"), "GGUF '%s' vs folder '%s'", a ? a : "",
           b ? b : "");
    free(a);
    free(b);
    snprintf(args, sizeof args, "generate %s/t.gguf -p 'def f(x):' -n 4 -t 0 -c 64", d);
    expect(args, 0, NULL);
    snprintf(args, sizeof args, "%s/p.txt", d);
    if ((f = fopen(args, "w"))) {
        fputs("def fibonacci(n):", f);
        fclose(f);
    }
    /* the same prompt from -p, -f and stdin gives the same greedy text */
    CHECK(tu_run_laguna("generate -m models/laguna-tiny -p 'def fibonacci(n):' -n 12", &a) == 0);
    snprintf(args, sizeof args, "generate -m models/laguna-tiny -f %s/p.txt -n 12", d);
    CHECK(tu_run_laguna(args, &b) == 0);
    CHECKF(a && b && !strcmp(a, b), "'%s' vs '%s'", a ? a : "", b ? b : "");
    free(b);
    snprintf(args, sizeof args, "generate -m models/laguna-tiny -p - -n 12 < %s/p.txt", d);
    CHECK(tu_run_laguna(args, &b) == 0);
    CHECKF(a && b && !strcmp(a, b), "'%s' vs '%s'", a ? a : "", b ? b : "");
    free(b);
    snprintf(args, sizeof args, "generate -m models/laguna-tiny -n 12 < %s/p.txt", d);
    CHECK(tu_run_laguna(args, &b) == 0);
    CHECKF(a && b && !strcmp(a, b), "'%s' vs '%s'", a ? a : "", b ? b : "");
    free(a);
    free(b);
    tu_remove_dir(d);
    /* the seed: random by default and printed by --stats; a given one reproduces */
    CHECK(tu_run_laguna("generate -m models/laguna-tiny -p def -n 16 --temp 1 --stats", &a) == 0);
    unsigned long long seed = 0;
    const char *at = a ? strstr(a, "seed ") : NULL;
    CHECKF(at && sscanf(at, "seed %llu", &seed) == 1, "%s", a ? a : "");
    char *text = a ? strndup(a, (size_t)(at - a)) : NULL;
    snprintf(args, sizeof args, "generate -m models/laguna-tiny -p def -n 16 --temp 1 --seed %llu", seed);
    CHECK(tu_run_laguna(args, &b) == 0);
    CHECKF(text && b && !strcmp(text, b), "seed %llu: '%s' vs '%s'", seed, text ? text : "", b ? b : "");
    free(text);
    free(a);
    free(b);
    expect("generate -m models/laguna-tiny --tokens 5,6 -n -1 --ignore-eos -c 24", 0, NULL);
    expect("--version", 0, "laguna ");
    expect("generate -m models/laguna-tiny -p def -n 2 --top-k 5", 0, "do nothing with greedy decoding");
}

/* A usage error is one line naming what is wrong, then a hint to --help. */
static void test_usage_errors(void) {
    const char *cases[][2] = {
        {"generate --tokens 1", "laguna generate: missing -m MODEL\nTry 'laguna generate --help'.\n"},
        {"chat", "laguna chat: missing -m MODEL\nTry 'laguna chat --help'.\n"},
        {"bench", "laguna bench: missing -m MODEL\nTry 'laguna bench --help'.\n"},
        {"perplexity", "laguna perplexity: missing -m MODEL\nTry 'laguna perplexity --help'.\n"},
        {"tokenize", "laguna tokenize: missing -m MODEL\nTry 'laguna tokenize --help'.\n"},
        {"detokenize", "laguna detokenize: missing -m MODEL\nTry 'laguna detokenize --help'.\n"},
        {"template", "laguna template: missing -m MODEL\nTry 'laguna template --help'.\n"},
        {"verify", "laguna verify: missing -m MODEL\nTry 'laguna verify --help'.\n"},
        {"quantize", "laguna quantize: missing -m MODEL (the model to quantize)\nTry 'laguna quantize --help'.\n"},
        {"info", "laguna info: missing -m MODEL (or --preset NAME)\nTry 'laguna info --help'.\n"},
        {"synth --out x", "laguna synth: missing --preset NAME\nTry 'laguna synth --help'.\n"},
        {"generate -m x --frob", "laguna generate: unknown option '--frob'\nTry 'laguna generate --help'.\n"},
        {"generate -m x --temp hot", "laguna generate: --temp: 'hot' is not a number in [0, 1e+06]\n"},
        {"frobnicate", "laguna: unknown command 'frobnicate'\nTry 'laguna --help'.\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        char args[256];
        snprintf(args, sizeof args, "%s </dev/null", cases[i][0]);
        int rc = tu_run_laguna(args, &out);
        CHECKF(rc == 2 && out && !strcmp(out, cases[i][1]), "laguna %s: exit %d, '%s'", cases[i][0], rc,
               out ? out : "");
        free(out);
    }
}

/* Number of samples in the "[a b c]" at the end of output line starting with `label`. */
static int samples_on_line(const char *out, const char *label) {
    const char *line = strstr(out, label), *open = line ? strchr(line, '[') : NULL;
    const char *close = open ? strchr(open, ']') : NULL, *eol = line ? strchr(line, '\n') : NULL;
    if (!close || (eol && close > eol)) return -1;
    int n = close > open + 1;
    for (const char *p = open; p < close; p++) n += *p == ' ';
    return n;
}

static void test_bench_output(void) {
    char *out = NULL;
    CHECK(tu_run_laguna("bench -m tests/fixtures/tiny-xs --prompt 8 --gen 4 --reps 2 --probe-mib 64 --kv-type bf16 "
                        "--load copy",
                        &out) == 0);
    const char *want[] = {"KV cache bf16", "copied into memory", "memory read bandwidth", "0.06 GiB buffer",
                          "decode sampled (t .8 k 40 p .95)", "faster than sorting", "decode roofline"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        CHECKF(out && strstr(out, want[i]), "no '%s' in:\n%s", want[i], out ? out : "");
    if (out) { /* every repeat printed: 2 runs, 5 probe repeats */
        CHECKF(samples_on_line(out, "prefill (8 tokens)") == 2, "%s", out);
        CHECKF(samples_on_line(out, "decode greedy (4 after 8)") == 2, "%s", out);
        CHECKF(samples_on_line(out, "decode sampled") == 2, "%s", out);
        CHECKF(samples_on_line(out, "memory read bandwidth") == 5, "%s", out);
    }
    free(out);
    /* one token picks top_k = 4 distinct experts of 16 in each sparse layer
     * (1-4; layer 0 is dense): 4 hit, the busiest with 1 token where the
     * even share is 4 / 16 */
    expect("bench -m tests/fixtures/tiny-xs --prompt 1 --gen 1 --reps 1 --probe-mib 0 --expert-spread", 0,
           "experts hit by the prompt                  4.0 of 16 a layer (fewest 4, layer 1; most 4, layer 1); "
           "busiest expert 4.0x its even share");
    expect("bench -m tests/fixtures/tiny-xs --prompt 8 --gen 2 --reps 1 --probe-mib 0 --load mmap", 0, "memory-mapped");
    expect("bench -m tests/fixtures/tiny-xs --load sometimes", 2, "is not auto, mmap or copy");
    expect("bench -m tests/fixtures/tiny-xs --probe-mib -5", 2, "--probe-mib");
    expect("synth --preset synth-tiny --out /tmp/never --tokenizer models/laguna-tiny", 2, "--tokenizer goes with --type");
}

/* LAGUNA_CPU_PROFILE leaves the first step of each kind out (its first
 * touches of the buffers are not what a step costs): generating 6 tokens
 * from 3 is one prompt step (left out: no table) and 5 one-row steps (4). */
static void test_cpu_profile_skips_first_steps(void) {
    setenv("LAGUNA_CPU_PROFILE", "1", 1);
    char *out = NULL;
    int rc = tu_run_laguna("generate -m tests/fixtures/tiny-xs --tokens 1,2,3 -n 6 --ignore-eos --ids", &out);
    unsetenv("LAGUNA_CPU_PROFILE");
    CHECKF(rc == 0, "exit %d\n%s", rc, out ? out : "");
    CHECKF(out && strstr(out, "laguna cpu profile: 4 steps of one row (after the first)"), "%s", out ? out : "");
    CHECKF(out && !strstr(out, "steps of several rows"), "%s", out ? out : "");
    free(out);
}

static void test_unknown_command(void) {
    expect("frobnicate", 2, "unknown command");
    expect("", 2, "usage");
    expect("--help", 0, "commands");
}

int main(void) {
    RUN(test_verify_command);
    RUN(test_generate_command);
    RUN(test_generate_text_matches_ids);
    RUN(test_chat_reuses_cache);
    RUN(test_chat_drafts_same_transcript);
    RUN(test_json_schema_options);
    RUN(test_chat_small_context);
    RUN(test_info_and_synth);
    RUN(test_serve_options);
    RUN(test_one_convention);
    RUN(test_usage_errors);
    RUN(test_bench_output);
    RUN(test_cpu_profile_skips_first_steps);
    RUN(test_unknown_command);
    return test_summary();
}
