/* SPDX-License-Identifier: MIT */
/*
 * mem.c — the allocation seam. Every allocation of errand (and of jansson, once
 * mem_install_json() ran) passes through here, so a test can make allocations fail from the
 * N-th one on (mem_fail_after) and check that each caller copes with NULL.
 *
 * The fail-after counter is one atomic: -1 means "never fail"; n >= 0 means "n more
 * allocations succeed, then every one fails". It is global on purpose (a test hook), and
 * atomic so worker threads may allocate while a test arms it.
 */
#include "core/mem.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEM_NEVER_FAIL (-1L)

static atomic_long fail_budget = MEM_NEVER_FAIL;

/* True when this allocation may go ahead; consumes one unit of an armed budget. */
static int mem_may_allocate(void)
{
    long cur = atomic_load(&fail_budget);
    for (;;) {
        if (cur < 0)
            return 1;
        if (cur == 0)
            return 0;
        if (atomic_compare_exchange_weak(&fail_budget, &cur, cur - 1))
            return 1;
    }
}

void mem_fail_after(long n)
{
    atomic_store(&fail_budget, n < 0 ? MEM_NEVER_FAIL : n);
}

void *mem_alloc(size_t n)
{
    if (!mem_may_allocate())
        return NULL;
    /* malloc(0) may return NULL, which callers would read as out of memory. */
    return malloc(n ? n : 1);
}

void *mem_calloc(size_t count, size_t size)
{
    if (!mem_may_allocate())
        return NULL;
    if (count == 0 || size == 0)
        count = size = 1;
    return calloc(count, size);
}

void *mem_realloc(void *p, size_t n)
{
    if (!mem_may_allocate())
        return NULL;
    return realloc(p, n ? n : 1);
}

char *mem_strdup(const char *s)
{
    if (!s)
        return NULL;
    return mem_strndup(s, strlen(s));
}

char *mem_strndup(const char *s, size_t n)
{
    if (!s)
        return NULL;
    size_t len = strnlen(s, n);
    char *copy = mem_alloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

char *mem_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0)
        return NULL;
    char *out = mem_alloc((size_t)len + 1);
    if (!out)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(out, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return out;
}

void mem_free(void *p)
{
    free(p);
}

static pthread_once_t json_once = PTHREAD_ONCE_INIT;

static void mem_install_json_once(void)
{
    json_set_alloc_funcs(mem_alloc, mem_free);
}

void mem_install_json(void)
{
    pthread_once(&json_once, mem_install_json_once);
}
