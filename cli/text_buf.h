/* A growable NUL-terminated text buffer for the CLI (replies, pasted text). */
#ifndef LAGUNA_CLI_TEXT_BUF_H
#define LAGUNA_CLI_TEXT_BUF_H

#include <stddef.h>

typedef struct {
    char *buf; /* NUL-terminated when non-NULL */
    size_t len, cap;
} text_buf;

/* Appends len bytes; -1 (buffer unchanged) when out of memory. */
int text_add(text_buf *b, const char *text, size_t len);

#endif
