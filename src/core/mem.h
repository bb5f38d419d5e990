/* SPDX-License-Identifier: MIT */
/*
 * mem.h — the one allocation seam of errand. Every allocation in src/ goes through these, so
 * tests can make the N-th allocation fail (mem_fail_after) and check that nothing crashes or
 * leaks. jansson is pointed at the same seam by mem_install_json().
 * Failure returns NULL; library code never aborts on out-of-memory.
 */
#ifndef ERRAND_CORE_MEM_H
#define ERRAND_CORE_MEM_H

#include <stddef.h>

void *mem_alloc(size_t n);
void *mem_calloc(size_t count, size_t size);
void *mem_realloc(void *p, size_t n);
char *mem_strdup(const char *s);
char *mem_strndup(const char *s, size_t n);
/* printf into a new string; NULL on failure. */
char *mem_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mem_free(void *p);

/* Test hook: after n more successful allocations, every allocation fails (n < 0: never). */
void mem_fail_after(long n);

/* Points jansson's allocator at this seam (idempotent, call before other jansson use). */
void mem_install_json(void);

#endif
