/* SPDX-License-Identifier: MIT */
/*
 * readiness.h — whether the server can do its work now: its store commits a write. The
 * answer of GET /api/health/ready, which a load balancer or orchestrator asks without
 * credentials, so it is cached for READINESS_CACHE_MS: however often it is asked, the store
 * sees at most one probe write per period. (GET /api/health is liveness: the process answers.)
 */
#ifndef ERRAND_SERVER_READINESS_H
#define ERRAND_SERVER_READINESS_H

#include <stdint.h>

#include "errand/errand.h"
#include "store/store.h"

#define READINESS_CACHE_MS 1000

typedef struct readiness readiness;

readiness *readiness_new(void);
void readiness_free(readiness *r);

/* 0 when ready; else the error of the last probe (ERR_NO_SPACE for a full disk). Probes the
 * store when the last answer is older than READINESS_CACHE_MS at now_ms (clock_mono_ms). */
int readiness_check(readiness *r, store *st, int64_t now_ms, errand_error *err);

#endif
