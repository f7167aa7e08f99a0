/* Small file helpers shared by every loader: read a whole file, join paths. */
#ifndef LAGUNA_IO_FILE_UTIL_H
#define LAGUNA_IO_FILE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "laguna.h"

/* Reads a whole file into a NUL-terminated heap buffer (caller frees). Files
 * larger than max_bytes are refused so a wrong path cannot exhaust memory. */
laguna_status lg_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len,
                           laguna_error *err);

/* "dir/name" in a heap string (caller frees); NULL when out of memory. */
char *lg_path_join(const char *dir, const char *name);

bool lg_file_exists(const char *path);

/* Where lg_map_file puts a file. LG_PLACE_COPY_OR_MAP copies, but gives up
 * and maps the file instead when the available memory falls below half the
 * load headroom (lg_load_headroom_bytes) while it reads: other programs took
 * the room the copy was counting on, and a copy cannot be dropped under
 * pressure (the kernel kills a process) where mapped pages can. */
typedef enum { LG_PLACE_MAP = 0, LG_PLACE_COPY = 1, LG_PLACE_COPY_OR_MAP = 2 } lg_placement;

/* Maps a whole file read-only (with MADV_HUGEPAGE, which lets kernels and
 * file systems with large folios use 2 MiB pages). *addr is NULL for an
 * empty file. With a copy, the file is instead read into anonymous memory
 * backed by transparent huge pages where the kernel allows, dropping each
 * chunk from the page cache once read (POSIX_FADV_DONTNEED) so the file is
 * never held twice: it costs the file's size in RAM and a read, but kernels
 * then run 2-3x faster than on 4 KiB page-cache pages (measured in
 * docs/performance.md). Either way release with munmap(addr, len). */
laguna_status lg_map_file(const char *path, lg_placement place, void **addr, size_t *len, bool *copied,
                          laguna_error *err);

/* Progress of the copies lg_map_file makes on the calling thread: fn(user,
 * bytes read, bytes of the file) a few times a second while one runs. Set
 * by whoever opens a model around the open (thread-local, so loads on other
 * threads are not reported); NULL fn = none. */
void lg_map_file_set_progress(void (*fn)(void *user, uint64_t done, uint64_t total), void *user);

/* Bytes of memory the system reports available (MemAvailable), 0 if unknown. */
size_t lg_memory_available(void);
/* Bytes of installed memory (MemTotal), 0 if unknown. */
size_t lg_memory_total(void);

#endif
