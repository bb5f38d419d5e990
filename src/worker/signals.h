/* SPDX-License-Identifier: MIT */
/*
 * signals.h — SIGINT and SIGTERM stopping a serving worker (errand_worker_options.
 * handle_signals, errand_serve). One worker at a time owns the handlers; the handlers that
 * were there before are put back when serve() returns. The handler only calls
 * errand_worker_stop(), which is async-signal-safe.
 */
#ifndef ERRAND_WORKER_SIGNALS_H
#define ERRAND_WORKER_SIGNALS_H

#include <signal.h>

#include "errand/errand.h"

struct signals_saved {
    struct sigaction old_int, old_term;
    int installed;
};

int signals_install(errand_worker *w, struct signals_saved *saved, errand_error *err);
void signals_restore(struct signals_saved *saved);

#endif
