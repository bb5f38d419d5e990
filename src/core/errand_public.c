/* SPDX-License-Identifier: MIT */
/*
 * errand_public.c — the small public functions of errand.h that belong to no client or
 * worker object: error strings, the version, errand_free, state names and the exponential
 * backoff helper. They wrap core modules so the public API stays one thin layer over them.
 */
#include "errand/errand.h"

#include <float.h>

#include "core/mem.h"
#include "core/state.h"

#ifndef ERRAND_VERSION
#error "ERRAND_VERSION must be defined by the build (CMake sets it from the project version)"
#endif

const char *errand_strerror(int code)
{
    switch (code) {
    case ERRAND_OK:
        return "success";
    case ERRAND_EINVAL:
        return "invalid argument";
    case ERRAND_ENOMEM:
        return "out of memory";
    case ERRAND_EIO:
        return "input/output error";
    case ERRAND_ENOTFOUND:
        return "not found";
    case ERRAND_ECONFLICT:
        return "conflict";
    case ERRAND_EUNAVAILABLE:
        return "server unavailable";
    case ERRAND_ETIMEDOUT:
        return "timed out";
    case ERRAND_EAUTH:
        return "unauthorized";
    case ERRAND_ESERVER:
        return "unexpected server error";
    case ERRAND_ESTORE:
        return "store error";
    case ERRAND_ETOOBIG:
        return "too large";
    case ERRAND_ECANCELLED:
        return "cancelled";
    case ERRAND_EFAILED:
        return "task run failed";
    default:
        return "unknown error";
    }
}

const char *errand_version(void)
{
    return ERRAND_VERSION;
}

void errand_free(void *p)
{
    mem_free(p);
}

const char *errand_state_type_name(errand_state s)
{
    const char *name = state_type_name(s);
    return name ? name : "UNKNOWN";
}

bool errand_state_is_final(errand_state s)
{
    return state_is_final(s);
}

int errand_exponential_backoff(double factor, size_t n, double *out)
{
    /* factor != factor is NaN; the upper bound also refuses +inf. */
    if (factor != factor || factor < 0 || factor > DBL_MAX || (n > 0 && !out))
        return ERRAND_EINVAL;
    /* Check the largest delay first, so a failure leaves out untouched. */
    double v = factor;
    for (size_t i = 1; i < n; i++) {
        v *= 2;
        if (v > DBL_MAX)
            return ERRAND_EINVAL;
    }
    v = factor;
    for (size_t i = 0; i < n; i++) {
        out[i] = v;
        v *= 2;
    }
    return 0;
}
