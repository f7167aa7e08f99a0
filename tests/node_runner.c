/* The Node SDK tests' common part: see node_runner.h. */
#include "node_runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "served_model.h"
#include "testutil.h"

void run_node_script(const node_run *r) {
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
    served_model sm;
    lg_server_options so = {.api_key = r->api_key, .model_name = r->model_name, .n_ctx = r->n_ctx};
    if (served_model_open(&sm, r->model_dir, tu_test_device(), &so, &err)) {
        CHECKF(0, "setup: %s", err.message);
        goto done;
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "timeout 300 node %s %d %s 2>&1", r->script, lg_server_port(sm.srv), r->api_key);
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
    CHECKF(n_pass >= r->min_pass, "only %d SDK cases passed", n_pass);
done:
    served_model_close(&sm);
}
