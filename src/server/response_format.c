/* A chat request's `response_format` (OpenAI's structured output) into the
 * grammar the job's answer must follow (grammar/json_schema.h): "text" is
 * no constraint, "json_object" any JSON object, "json_schema" the JSON its
 * schema describes. The Responses API's text.format is converted to this
 * (responses_request.c). Bad or unsupported schemas are the client's error
 * (400), with the compiler's message; a schema whose grammar cannot run
 * (left recursion through $ref) is found here too, by starting a matcher. */
#include <stdlib.h>
#include <string.h>

#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "server/server_internal.h"

/* Whether g can start: 0, or -1 with *e. */
static int check_runs(lg_grammar *g, lg_req_error *e) {
    lg_matcher *m = NULL;
    laguna_error err = {0};
    if (lg_matcher_new(g, &m, &err)) return lg_req_fail(e, 500, NULL, "out of memory");
    int s = lg_matcher_start(m);
    int rc = s < 0 ? lg_req_fail(e, 400, "response_format", "response_format: %.200s", lg_matcher_error(m)) : 0;
    lg_matcher_free(m);
    return rc;
}

int lg_parse_response_format(const cJSON *body, lg_job *job, lg_req_error *e) {
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(body, "response_format");
    if (!rf || cJSON_IsNull(rf)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (!cJSON_IsObject(rf) || !cJSON_IsString(type))
        return lg_req_fail(e, 400, "response_format", "'response_format' must be an object with a string 'type'");
    const char *t = type->valuestring;
    const cJSON *schema = NULL;
    if (!strcmp(t, "text")) return 0;
    if (!strcmp(t, "json_schema")) {
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
        if (!cJSON_IsObject(js))
            return lg_req_fail(e, 400, "response_format", "response_format 'json_schema' needs a 'json_schema' object");
        schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
        if (!schema || cJSON_IsNull(schema)) schema = cJSON_GetObjectItemCaseSensitive(js, "json_schema");
        if (!cJSON_IsObject(schema) && !cJSON_IsBool(schema))
            return lg_req_fail(e, 400, "response_format", "response_format.json_schema needs a 'schema' object");
    } else if (strcmp(t, "json_object")) {
        return lg_req_fail(e, 400, "response_format",
                           "response_format type must be text, json_object or json_schema (got '%.40s')", t);
    }
    lg_grammar *g = calloc(1, sizeof *g);
    if (!g) return lg_req_fail(e, 500, NULL, "out of memory");
    laguna_error err = {0};
    laguna_status st = lg_json_schema_grammar(schema, g, &err);
    if (st) {
        free(g);
        return lg_req_fail(e, st == LAGUNA_ERR_NOMEM ? 500 : 400, "response_format", "response_format: %.240s",
                           err.message);
    }
    if (check_runs(g, e)) {
        lg_grammar_free(g);
        free(g);
        return -1;
    }
    job->grammar = g;
    return 0;
}
