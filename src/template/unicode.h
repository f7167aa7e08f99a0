/* UTF-8 and the Python string facts the Jinja interpreter needs: code point
 * counting and indexing (Python indexes strings by code point), which
 * characters str.isspace() accepts, case mapping and str.isprintable(). */
#ifndef LAGUNA_TEMPLATE_UNICODE_H
#define LAGUNA_TEMPLATE_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes the code point at s[*pos] and advances *pos. Invalid bytes decode
 * as themselves (0x80-0xFF) one at a time, so any byte string round-trips. */
int32_t jt_utf8_next(const char *s, size_t n, size_t *pos);
/* Writes cp as UTF-8 into out (4 bytes room); returns the byte count. */
size_t jt_utf8_put(int32_t cp, char *out);
/* Number of code points in s. */
size_t jt_utf8_count(const char *s, size_t n);
/* Byte offset of code point index cp_index (clamped to n). */
size_t jt_utf8_offset(const char *s, size_t n, size_t cp_index);
/* Byte length of the whitespace (Python str.isspace) that ends / starts s. */
size_t jt_space_suffix(const char *s, size_t n);
size_t jt_space_prefix(const char *s, size_t n);

bool jt_py_isspace(int32_t cp);
bool jt_py_isprintable(int32_t cp);
bool jt_py_isalnum(int32_t cp);
bool jt_py_isalpha(int32_t cp);
bool jt_is_upper(int32_t cp);
bool jt_is_lower(int32_t cp);
bool jt_is_cased(int32_t cp);
int32_t jt_to_upper(int32_t cp);
int32_t jt_to_lower(int32_t cp);
int32_t jt_to_title(int32_t cp);

#endif
