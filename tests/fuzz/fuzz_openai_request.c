/* Fuzzes OpenAI request bodies as POST /v1/chat/completions and
 * /v1/completions take them: parsed and validated (lg_parse_chat,
 * lg_parse_completion), rendered with a chat template and tokenized, then a
 * made-up model reply through the request's tools, stop strings and
 * logprobs into the whole and streamed replies (fuzz_server.h). Input: byte
 * 0 picks the template (bits 0-1) and the endpoint (bit 2: completions),
 * then the body, then optionally FUZZ_SEP and the model's reply. */
#include "fuzz_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    lg_server *srv = fuzz_server(data[0] & 3);
    bool completion = data[0] & 4;
    const uint8_t *body, *reply;
    size_t body_len, reply_len;
    fuzz_split_request(data + 1, size - 1, &body, &body_len, &reply, &reply_len);
    cJSON *json = cJSON_ParseWithLength((const char *)body, body_len);
    lg_job *job = lg_job_new();
    lg_reply_info info = {0};
    lg_req_error e = {0};
    int rc = completion ? lg_parse_completion(srv, json, job, &info, &e)
                        : lg_parse_chat(srv, json, job, &info, &e);
    if (rc == 0) {
        fuzz_reply(srv, job, &info, (const char *)reply, reply_len);
    } else {
        if (e.status < 400 || e.status > 599 || !e.message[0])
            fuzz_die("a refused request without a status and message", e.message);
        char *err_json = lg_openai_error_json(&e);
        fuzz_check_json(err_json);
    }
    lg_job_release(job);
    cJSON_Delete(json);
    return 0;
}
