/* laguna serve driven by the official SDKs under Node: this program starts the server in
 * process on a free loopback port with models/laguna-tiny, runs tests/node/sdk_test.mjs (the
 * `openai` and `@anthropic-ai/sdk` npm packages: chat and completions, streamed and not,
 * messages streamed and not, thinking, tools, count_tokens, stop sequences, errors) against it
 * and passes its PASS / FAIL lines through, so tests/run.sh counts every SDK case. Skipped when node or the
 * packages are missing (tests/node_runner.h). */
#include <signal.h>
#include <unistd.h>

#include "harness.h"
#include "node_runner.h"

#define MODEL "models/laguna-tiny"

static void test_node_sdk(void) {
    node_run r = {.model_dir = MODEL, .model_name = "laguna-tiny", .script = "tests/node/sdk_test.mjs", .api_key = "sk-node-test",
                  .n_ctx = 1024, .min_pass = 8};
    run_node_script(&r);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    RUN(test_node_sdk);
    return test_summary();
}
