/* The server tests' HTTP client (http_client.h). */
#include "http_client.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int http_write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int http_connect(int port, int recv_timeout_s) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {.tv_sec = recv_timeout_s};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

http_reply http_read_reply(int fd) {
    http_reply r = {0};
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    if (!buf) return r;
    for (;;) {
        if (len + 4096 > cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) break;
            buf = b;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got <= 0) break;
        len += (size_t)got;
    }
    buf[len] = 0;
    sscanf(buf, "HTTP/1.%*d %d", &r.status);
    const char *b = strstr(buf, "\r\n\r\n");
    r.body = strdup(b ? b + 4 : "");
    free(buf);
    return r;
}

http_reply http_request(int port, const char *method, const char *path, const char *header,
                        const char *body) {
    http_reply r = {0};
    char head[512];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%s%sContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, header ? header : "", header ? "\r\n" : "", blen);
    if (n < 0 || (size_t)n >= sizeof head) return r;
    int fd = http_connect(port, 60);
    if (fd < 0) return r;
    if (!http_write_all(fd, head, (size_t)n) && !http_write_all(fd, body ? body : "", blen)) r = http_read_reply(fd);
    close(fd);
    return r;
}

cJSON *sse_payloads(const char *body, bool *done) {
    cJSON *out = cJSON_CreateArray();
    *done = false;
    const char *p = body;
    while (p && (p = strstr(p, "data: "))) {
        p += 6;
        const char *e = strstr(p, "\n\n");
        if (!e) break;
        if (!strncmp(p, "[DONE]", 6)) *done = true;
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(e - p));
        if (j) cJSON_AddItemToArray(out, j);
        p = e;
    }
    return out;
}
