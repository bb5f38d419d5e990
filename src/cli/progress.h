/* SPDX-License-Identifier: MIT */
/*
 * progress.h — a one-line progress bar on stderr for long commands (errand bench), drawn
 * only when stderr is a terminal, so logs and pipes never see carriage returns.
 */
#ifndef ERRAND_CLI_PROGRESS_H
#define ERRAND_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
    bool enabled;
    int64_t last_draw_ms; /* redraws are throttled to PROGRESS_REFRESH_MS */
};

void progress_init(struct progress *p);
/* "label [#####.....]  done/total  note"; redrawn at most every PROGRESS_REFRESH_MS unless
 * force is true. */
void progress_draw(struct progress *p, const char *label, long long done, long long total,
                   const char *note, bool force);
/* Erases the line, so the next output starts clean. */
void progress_clear(struct progress *p);

#endif
