/* A small HTTP/1.0 client for the server tests: one request per connection on a loopback port,
 * read to the end, and the data payloads of a server-sent-event body. */
#ifndef LAGUNA_TESTS_HTTP_CLIENT_H
#define LAGUNA_TESTS_HTTP_CLIENT_H

#include <stdbool.h>

struct cJSON;

typedef struct {
    int status; /* 0 when the request could not be made */
    char *body; /* after the headers; NUL-terminated; caller frees */
} http_reply;

/* method path on 127.0.0.1:port with a JSON body (NULL: none); header: one extra header line
 * without CRLF ("Authorization: Bearer K", "x-api-key: K") or NULL. Reads with a 60 s timeout. */
http_reply http_request(int port, const char *method, const char *path, const char *header,
                        const char *body);

/* The JSON payloads of the "data: " lines of an SSE body, in order, as an array (caller
 * deletes); *done tells whether it ended with "data: [DONE]". A payload that is not JSON is
 * skipped. */
struct cJSON *sse_payloads(const char *body, bool *done);

#endif
