/* Agent round trips with models/laguna-tiny-chat driven by the official SDKs under Node: starts
 * the server in process on a free loopback port, runs tests/node/tinychat_test.mjs (the `openai`
 * and `@anthropic-ai/sdk` npm packages: request with tools -> tool_calls / tool_use -> tool
 * result -> final answer, streamed and not, and the reasoning split) and passes its PASS / FAIL
 * lines through. Skipped while the model is absent, or node or the packages are (npm ci --prefix
 * tests/node). The server stops when node exits, which `timeout` bounds. */
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
#include "testutil.h"

#define MODEL "models/laguna-tiny-chat"
#define KEY "sk-node-tinychat"

static void test_node_tinychat(void) {
    if (access(MODEL "/config.json", R_OK)) {
        test_skip(MODEL " is absent");
        return;
    }
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
    laguna_model_options mo = {.n_threads = 2, .device = tu_test_device()};
    laguna_tokenizer *tok = NULL;
    laguna_chat_template *tmpl = NULL;
    laguna_model *model = NULL;
    lg_server *srv = NULL;
    lg_server_options so = {.api_key = KEY, .model_name = "laguna-tiny-chat", .n_ctx = 2048};
    if (laguna_tokenizer_load(MODEL, &tok, &err) || laguna_chat_template_load(MODEL, &tmpl, &err) ||
        laguna_model_open(MODEL, &mo, &model, &err) ||
        lg_server_start(model, tok, tmpl, &so, &srv, &err)) {
        CHECKF(0, "setup: %s", err.message);
        goto done;
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "timeout 300 node tests/node/tinychat_test.mjs %d %s 2>&1",
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
    CHECKF(n_pass >= 6, "only %d SDK cases passed", n_pass);
done:
    lg_server_stop(srv);
    laguna_model_free(model);
    laguna_chat_template_free(tmpl);
    laguna_tokenizer_free(tok);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    RUN(test_node_tinychat);
    return test_summary();
}
