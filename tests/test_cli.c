/* The laguna program as a user runs it: good commands succeed with the
 * expected output, wrong input gives a message and a non-zero exit. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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
    /* the wrong golden file for the model: shapes differ or results fail */
    expect("verify tests/fixtures/tiny-m tests/fixtures/tiny-xs/golden.safetensors", 1, NULL);
    expect("verify tests/fixtures/tiny-m /nonexistent.safetensors", 1, "nonexistent");
    expect("verify tests/fixtures/tiny-m", 2, "usage");
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
    expect("generate --tokens 1", 2, "usage");
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
    expect("info --preset nope", 2, "unknown preset");
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
    RUN(test_chat_small_context);
    RUN(test_info_and_synth);
    RUN(test_unknown_command);
    return test_summary();
}
