/* Runs one Node script of tests/node/ against laguna serve: the server starts in process on
 * a free loopback port, the script gets the port and the API key, its PASS / FAIL lines are
 * passed through (tests/run.sh counts them) and at least min_pass of them must be PASS.
 * Skipped, with a SKIP line, when node or the SDK packages are missing (install them with
 * `npm ci --prefix tests/node`, as .ci/run does). The server stops when node exits, which
 * `timeout` bounds. */
#ifndef LAGUNA_TESTS_NODE_RUNNER_H
#define LAGUNA_TESTS_NODE_RUNNER_H

typedef struct {
    const char *model_dir;  /* opened on the device tu_test_device() names */
    const char *model_name; /* what /v1/models reports */
    const char *script;     /* tests/node/NAME.mjs */
    const char *api_key;
    int n_ctx;
    int min_pass;
} node_run;

void run_node_script(const node_run *r);

#endif
