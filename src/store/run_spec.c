/* SPDX-License-Identifier: MIT */
/*
 * run_spec.c — freeing new-run specs (run_spec.h).
 */
#include "store/run_spec.h"

#include <string.h>

#include "core/mem.h"

void run_spec_clear(struct run_spec *spec)
{
    if (!spec)
        return;
    mem_free(spec->task);
    mem_free(spec->parameters);
    mem_free(spec->idempotency_key);
    mem_free(spec->tags);
    mem_free(spec->cache_key);
    mem_free(spec->retry_of);
    memset(spec, 0, sizeof *spec);
    spec->persist_result = -1;
}

void run_spec_free_array(struct run_spec *specs, size_t n)
{
    if (!specs)
        return;
    for (size_t i = 0; i < n; i++)
        run_spec_clear(&specs[i]);
    mem_free(specs);
}
