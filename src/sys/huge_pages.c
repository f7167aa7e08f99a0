/* Huge-page allocation and accounting (see huge_pages.h). */
#include "sys/huge_pages.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define SMALL_PAGE_BYTES ((size_t)4096)

static size_t round_up(size_t n, size_t to) {
    return (n + to - 1) / to * to;
}

void *lg_huge_alloc(size_t bytes, bool try_hugetlb, size_t *map_bytes, lg_page_source *source) {
    *map_bytes = 0;
    *source = LG_PAGES_THP;
    if (bytes == 0 || bytes > SIZE_MAX - 2 * LG_HUGE_PAGE_BYTES) return NULL;
#ifdef MAP_HUGETLB
    if (try_hugetlb) {
        size_t n = round_up(bytes, LG_HUGE_PAGE_BYTES);
        void *p =
            mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
        if (p != MAP_FAILED) {
            *map_bytes = n;
            *source = LG_PAGES_HUGETLB;
            return p;
        }
    }
#else
    (void)try_hugetlb;
#endif
    /* Over-map by one huge page, then trim both ends so the start is aligned:
     * the kernel only puts a transparent huge page on an aligned 2 MiB. */
    size_t n = round_up(bytes, SMALL_PAGE_BYTES), over = n + LG_HUGE_PAGE_BYTES;
    char *p = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    char *start = (char *)round_up((size_t)p, LG_HUGE_PAGE_BYTES);
    if (start > p) munmap(p, (size_t)(start - p));
    size_t tail = (size_t)(p + over - (start + n));
    if (tail) munmap(start + n, tail);
#ifdef MADV_HUGEPAGE
    madvise(start, n, MADV_HUGEPAGE); /* advice: fine if refused (THP off) */
#endif
    *map_bytes = n;
    return start;
}

int64_t lg_huge_bytes_in(const void *addr, size_t len) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    uintptr_t lo = (uintptr_t)addr, hi = lo + len;
    char line[512];
    bool seen_field = false;
    double share = 0; /* of the current mapping that lies in the range */
    double huge = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        unsigned long long kb;
        char c = line[0];
        if (((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) &&
            sscanf(line, "%lx-%lx", &a, &b) == 2) {
            /* a mapping may extend past the range (the kernel merges
             * neighbours with the same flags): count its huge pages in
             * proportion to the overlap */
            uintptr_t s = a > lo ? a : lo, e = b < hi ? b : hi;
            share = e > s && b > a ? (double)(e - s) / (double)(b - a) : 0;
            continue;
        }
        if (share == 0) continue;
        if (sscanf(line, "AnonHugePages: %llu kB", &kb) == 1 ||
            sscanf(line, "FilePmdMapped: %llu kB", &kb) == 1 ||
            sscanf(line, "Private_Hugetlb: %llu kB", &kb) == 1 ||
            sscanf(line, "Shared_Hugetlb: %llu kB", &kb) == 1) {
            huge += share * (double)kb * 1024;
            seen_field = true;
        }
    }
    fclose(f);
    if (!seen_field) return -1;
    return huge > (double)len ? (int64_t)len : (int64_t)huge;
}
