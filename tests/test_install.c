/* The library as a dependency: `make install` into a staging folder
 * (DESTDIR) puts the headers, both libraries, the program and laguna.pc in
 * place; the shared library exports the public API (every symbol declared in
 * a header under include/) and nothing else; examples/hello.c builds against
 * the installed copy through pkg-config and prints the same greedy
 * continuation as `laguna generate`. Runs make, cc and pkg-config as a user
 * would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "testutil.h"

#define PREFIX "/opt/laguna"

/* Compiler flags the example needs to link against this build's objects. */
#if defined(__SANITIZE_ADDRESS__)
#define SAN_FLAGS "-fsanitize=address,undefined"
#elif defined(__SANITIZE_THREAD__)
#define SAN_FLAGS "-fsanitize=thread"
#else
#define SAN_FLAGS ""
#endif

/* Runs a shell command; its output (stdout + stderr) in *out (caller frees). */
static int run(const char *cmd, char **out) {
    char full[8192];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && n + 1 < cap && (got = fread(buf + n, 1, cap - n - 1, p)) > 0)
        n += got;
    if (buf) buf[n] = 0;
    int status = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *stage;
static char root[1024]; /* stage + PREFIX */

static void test_make_install(void) {
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "make -s BUILD=%s install DESTDIR=%s PREFIX=%s", build, stage,
             PREFIX);
    CHECKF(run(cmd, &out) == 0, "%s:\n%s", cmd, out ? out : "");
    free(out);
    const char *files[] = {
        "include/laguna.h",      "include/laguna_generate.h", "include/laguna_tokenizer.h",
        "include/laguna_chat.h", "lib/liblaguna.a",           "lib/liblaguna.so.0",
        "lib/liblaguna.so",      "lib/pkgconfig/laguna.pc",   "bin/laguna"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s/%s", root, files[i]);
        FILE *f = fopen(cmd, "rb");
        CHECKF(f != NULL, "%s was not installed", files[i]);
        if (f) fclose(f);
    }
    snprintf(cmd, sizeof cmd, "%s/bin/laguna --version", root);
    CHECK(run(cmd, &out) == 0 && out && !strncmp(out, "laguna ", 7));
    free(out);
}

/* Every exported symbol is a laguna_* function declared in a public header,
 * and there are some. */
static void test_only_public_symbols(void) {
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "nm -D --defined-only %s/lib/liblaguna.so.0 | awk '{print $3}'",
             root);
    CHECK(run(cmd, &out) == 0 && out);
    int n = 0;
    for (char *line = out ? strtok(out, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        n++;
        CHECKF(!strncmp(line, "laguna_", 7), "exported: %s", line);
        snprintf(cmd, sizeof cmd, "grep -qw '%s' include/*.h", line);
        CHECKF(run(cmd, NULL) == 0, "%s is exported but declared in no public header", line);
    }
    CHECKF(n > 40, "only %d symbols exported", n);
    free(out);
}

/* examples/hello.c compiled with pkg-config's flags for the installed copy. */
static void test_example_builds_and_runs(void) {
    char cmd[4096], *out = NULL, *want = NULL;
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -Wall -Wextra -Werror %s examples/hello.c -o %s/hello "
             "$(PKG_CONFIG_PATH=%s/lib/pkgconfig pkg-config --define-variable=prefix=%s --cflags "
             "--libs laguna)",
             SAN_FLAGS, stage, root, root);
    CHECKF(run(cmd, &out) == 0, "%s:\n%s", cmd, out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd,
             "LD_LIBRARY_PATH=%s/lib %s/hello models/laguna-tiny 'def fibonacci(n):' 24", root,
             stage);
    CHECKF(run(cmd, &out) == 0, "%s:\n%s", cmd, out ? out : "");
    CHECK(tu_run_laguna("generate -m models/laguna-tiny -p 'def fibonacci(n):' -n 24", &want) == 0);
    CHECKF(out && want && !strcmp(out, want) && strlen(out) > 10,
           "hello: '%s'\nlaguna generate: '%s'", out ? out : "", want ? want : "");
    free(out);
    free(want);
    /* and it runs on the installed shared library, not a copy linked in */
    snprintf(cmd, sizeof cmd, "LD_LIBRARY_PATH=%s/lib ldd %s/hello", root, stage);
    CHECK(run(cmd, &out) == 0 && out && strstr(out, "liblaguna.so.0 => ") && strstr(out, stage));
    free(out);
}

int main(void) {
    stage = tu_temp_dir();
    snprintf(root, sizeof root, "%s%s", stage, PREFIX);
    RUN(test_make_install);
    RUN(test_only_public_symbols);
    RUN(test_example_builds_and_runs);
    tu_remove_dir(stage);
    return test_summary();
}
