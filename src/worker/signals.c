/* SPDX-License-Identifier: MIT */
/*
 * signals.c — SIGINT/SIGTERM handlers for a serving worker (see signals.h).
 */
#include "worker/signals.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "core/error.h"

/* The worker the handlers stop; NULL when none is installed. */
static _Atomic(errand_worker *) signal_target;

static void on_signal(int sig)
{
    (void)sig;
    int saved_errno = errno;
    errand_worker *w = atomic_load(&signal_target);
    if (w)
        errand_worker_stop(w);
    errno = saved_errno;
}

int signals_install(errand_worker *w, struct signals_saved *saved, errand_error *err)
{
    memset(saved, 0, sizeof *saved);
    errand_worker *expected = NULL;
    if (!atomic_compare_exchange_strong(&signal_target, &expected, w))
        return error_set(err, ERRAND_EINVAL, "handle_signals",
                         "another worker in this process already handles SIGINT/SIGTERM");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, &saved->old_int) != 0 ||
        sigaction(SIGTERM, &sa, &saved->old_term) != 0) {
        int e = errno;
        sigaction(SIGINT, &saved->old_int, NULL);
        atomic_store(&signal_target, NULL);
        return error_set(err, ERRAND_EIO, "handle_signals", "cannot install signal handlers: %s",
                         strerror(e));
    }
    saved->installed = 1;
    return 0;
}

void signals_restore(struct signals_saved *saved)
{
    if (!saved->installed)
        return;
    sigaction(SIGINT, &saved->old_int, NULL);
    sigaction(SIGTERM, &saved->old_term, NULL);
    atomic_store(&signal_target, NULL);
    saved->installed = 0;
}
