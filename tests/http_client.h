/* A small HTTP/1.0 client for the server tests: one request per connection on a loopback port,
 * read to the end, and the data payloads of a server-sent-event body. */
#ifndef LAGUNA_TESTS_HTTP_CLIENT_H
#define LAGUNA_TESTS_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

typedef struct {
    int status; /* 0 when the request could not be made */
    char *body; /* after the headers; NUL-terminated; caller frees */
} http_reply;

/* method path on 127.0.0.1:port with a JSON body (NULL: none); header: one extra header line
 * without CRLF ("Authorization: Bearer K", "x-api-key: K") or NULL. Reads with a 60 s timeout. */
http_reply http_request(int port, const char *method, const char *path, const char *header,
                        const char *body);

/* The pieces http_request is made of, for tests that drive a connection by hand (slow or
 * vanishing clients): a connection to 127.0.0.1:port with a receive timeout (-1 on failure);
 * all of n bytes written (-1 on failure); the reply read to EOF or the timeout, status 0 when
 * none came. */
int http_connect(int port, int recv_timeout_s);
int http_write_all(int fd, const char *p, size_t n);
http_reply http_read_reply(int fd);

/* The JSON payloads of the "data: " lines of an SSE body, in order, as an array (caller
 * deletes); *done tells whether it ended with "data: [DONE]". A payload that is not JSON is
 * skipped. */
struct cJSON *sse_payloads(const char *body, bool *done);

#endif
