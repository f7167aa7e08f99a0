/* A growable byte buffer for building responses (JSON, SSE). Appends never
 * fail loudly: on out of memory the buffer is marked failed and later
 * appends do nothing; the caller checks `failed` once at the end. */
#ifndef LAGUNA_SERVER_BUF_H
#define LAGUNA_SERVER_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *p; /* NUL-terminated when non-NULL */
    size_t n, cap;
    bool failed;
} lg_sbuf;

void lg_sbuf_add(lg_sbuf *b, const char *s, size_t len);
void lg_sbuf_str(lg_sbuf *b, const char *s);
void lg_sbuf_printf(lg_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lg_sbuf_free(lg_sbuf *b);

/* A cJSON tree as compact JSON text (malloc'd; NULL when out of memory),
 * the tree freed either way: how every reply body and event is made. */
struct cJSON;
char *lg_json_print_free(struct cJSON *o);

#endif
