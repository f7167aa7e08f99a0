/* Small file helpers shared by every loader: read a whole file, join paths. */
#ifndef LAGUNA_IO_FILE_UTIL_H
#define LAGUNA_IO_FILE_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "laguna.h"

/* Reads a whole file into a NUL-terminated heap buffer (caller frees). Files
 * larger than max_bytes are refused so a wrong path cannot exhaust memory. */
laguna_status lg_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len,
                           laguna_error *err);

/* "dir/name" in a heap string (caller frees); NULL when out of memory. */
char *lg_path_join(const char *dir, const char *name);

bool lg_file_exists(const char *path);

/* Maps a whole file read-only. *addr is NULL for an empty file. */
laguna_status lg_map_file(const char *path, void **addr, size_t *len, laguna_error *err);

#endif
