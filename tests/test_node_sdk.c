/* laguna serve driven by the official SDKs under Node: this program starts the server in
 * process on a free loopback port with models/laguna-tiny, runs tests/node/sdk_test.mjs (the
 * `openai` and `@anthropic-ai/sdk` npm packages: chat and completions, streamed and not,
 * messages streamed and not, thinking, tools, count_tokens, stop sequences, errors) against it
 * and passes its PASS / FAIL lines through, so tests/run.sh counts every SDK case. Skipped, with
 * a SKIP line, when node or the packages are missing (install them with
 * `npm ci --prefix tests/node`, as .ci/run does). The server stops when node exits, which
 * `timeout` bounds. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "laguna.h"
#include "laguna_chat.h"
#include "laguna_tokenizer.h"
#include "server/server.h"

#define MODEL "models/laguna-tiny"
#define KEY "sk-node-test"

static void test_node_sdk(void) {
    if (system("command -v node >/dev/null 2>&1") != 0) {
        test_skip("node is not installed");
        return;
    }
    if (access("tests/node/node_modules/openai/package.json", R_OK) ||
        access("tests/node/node_modules/@anthropic-ai/sdk/package.json", R_OK)) {
        test_skip("the SDKs are not installed (npm ci --prefix tests/node)");
        return;
    }
    laguna_error err = {0};
    laguna_model_options mo = {.n_threads = 2};
    laguna_tokenizer *tok = NULL;
    laguna_chat_template *tmpl = NULL;
    laguna_model *model = NULL;
    lg_server *srv = NULL;
    lg_server_options so = {.api_key = KEY, .model_name = "laguna-tiny", .n_ctx = 1024};
    if (laguna_tokenizer_load(MODEL, &tok, &err) || laguna_chat_template_load(MODEL, &tmpl, &err) ||
        laguna_model_open(MODEL, &mo, &model, &err) ||
        lg_server_start(model, tok, tmpl, &so, &srv, &err)) {
        CHECKF(0, "setup: %s", err.message);
        goto done;
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "timeout 300 node tests/node/sdk_test.mjs %d %s 2>&1",
             lg_server_port(srv), KEY);
    FILE *p = popen(cmd, "r");
    if (!p) {
        CHECKF(0, "cannot run node");
        goto done;
    }
    char line[4096];
    int n_pass = 0;
    while (fgets(line, sizeof line, p)) {
        if (!strncmp(line, "PASS ", 5)) n_pass++;
        fputs(line, stdout); /* PASS and FAIL lines count in tests/run.sh */
        fflush(stdout);
    }
    int status = pclose(p);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "node exited with status %d",
           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    CHECKF(n_pass >= 8, "only %d SDK cases passed", n_pass);
done:
    lg_server_stop(srv);
    laguna_model_free(model);
    laguna_chat_template_free(tmpl);
    laguna_tokenizer_free(tok);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    RUN(test_node_sdk);
    return test_summary();
}
