/* Agent round trips with models/laguna-tiny-chat driven by the official SDKs under Node: starts
 * the server in process on a free loopback port, runs tests/node/tinychat_test.mjs (the `openai`
 * and `@anthropic-ai/sdk` npm packages: request with tools -> tool_calls / tool_use -> tool
 * result -> final answer, streamed and not, and the reasoning split) and passes its PASS / FAIL
 * lines through. Skipped while the model is absent, or node or the packages are (tests/node_runner.h). */
#include <signal.h>
#include <unistd.h>

#include "harness.h"
#include "node_runner.h"

#define MODEL "models/laguna-tiny-chat"

static void test_node_tinychat(void) {
    if (access(MODEL "/config.json", R_OK)) {
        test_skip(MODEL " is absent");
        return;
    }
    node_run r = {.model_dir = MODEL, .model_name = "laguna-tiny-chat", .script = "tests/node/tinychat_test.mjs", .api_key = "sk-node-tinychat",
                  .n_ctx = 2048, .min_pass = 11};
    run_node_script(&r);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    RUN(test_node_tinychat);
    return test_summary();
}
