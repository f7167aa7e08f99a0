/* Fuzzes OpenAI Responses bodies as POST /v1/responses takes them:
 * converted to the chat request the template takes and parsed
 * (lg_parse_responses), rendered and tokenized, then a made-up model reply
 * through the request's tools into the whole response and its stream of
 * events (fuzz_server.h). Input: byte 0 picks the template (bits 0-1), then
 * the body, then optionally FUZZ_SEP and the model's reply. */
#include "fuzz_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    lg_server *srv = fuzz_server(data[0] & 3);
    const uint8_t *body, *reply;
    size_t body_len, reply_len;
    fuzz_split_request(data + 1, size - 1, &body, &body_len, &reply, &reply_len);
    cJSON *json = cJSON_ParseWithLength((const char *)body, body_len);
    lg_job *job = lg_job_new();
    lg_reply_info info = {0};
    lg_req_error e = {0};
    if (lg_parse_responses(srv, json, job, &info, &e) == 0) {
        fuzz_reply(srv, job, &info, (const char *)reply, reply_len);
    } else {
        if (e.status < 400 || e.status > 599 || !e.message[0])
            fuzz_die("a refused request without a status and message", e.message);
        fuzz_check_json(lg_openai_error_json(&e));
    }
    lg_job_release(job);
    cJSON_Delete(json);
    return 0;
}
