/* Anonymous memory on 2 MiB pages where the kernel gives them, and a count of
 * how much of an address range really sits on huge pages.
 *
 * Weight copies (io/file_util.c) and the memory-bandwidth probe
 * (sys/mem_bandwidth.c) both want huge pages: on 4 KiB pages the TLB misses
 * of a streaming read cost a large share of the bandwidth (docs/performance.md).
 * Transparent huge pages only back 2 MiB-aligned stretches of a mapping, so
 * lg_huge_alloc aligns the start; the hugetlbfs pool (MAP_HUGETLB) is tried
 * first only where the caller can free a length rounded to 2 MiB. */
#ifndef LAGUNA_SYS_HUGE_PAGES_H
#define LAGUNA_SYS_HUGE_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LG_HUGE_PAGE_BYTES ((size_t)2 << 20)

typedef enum {
    LG_PAGES_THP = 0, /* ordinary pages with MADV_HUGEPAGE asked (the kernel may refuse) */
    LG_PAGES_HUGETLB, /* reserved 2 MiB pages from the hugetlbfs pool */
} lg_page_source;

/* Maps `bytes` of zero-filled read-write anonymous memory whose start is
 * 2 MiB-aligned, with MADV_HUGEPAGE. With try_hugetlb, first tries the
 * hugetlbfs pool (which most systems leave empty). *map_bytes receives the
 * length to give munmap: `bytes` rounded up to 4 KiB, or to 2 MiB from the
 * pool. Returns NULL when out of memory (or bytes == 0). */
void *lg_huge_alloc(size_t bytes, bool try_hugetlb, size_t *map_bytes, lg_page_source *source);

/* Bytes of [addr, addr + len) that the kernel currently backs with huge pages
 * (AnonHugePages, FilePmdMapped and hugetlb pages of the mappings that overlap
 * the range, from /proc/self/smaps, at most len); -1 when unknown. Pages not
 * touched yet count as small. */
int64_t lg_huge_bytes_in(const void *addr, size_t len);

#endif
