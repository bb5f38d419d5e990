/* SPDX-License-Identifier: MIT */
/*
 * progress.c — the progress bar of progress.h: a carriage return and a rewritten line.
 */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"

#define PROGRESS_REFRESH_MS 100
#define PROGRESS_BAR_WIDTH 30
#define ERASE_LINE "\r\033[K"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * MS_PER_S + ts.tv_nsec / NS_PER_MS;
}

void progress_init(struct progress *p)
{
    p->enabled = isatty(STDERR_FILENO) == 1;
    p->last_draw_ms = 0;
}

void progress_draw(struct progress *p, const char *label, long long done, long long total,
                   const char *note, bool force)
{
    if (!p->enabled)
        return;
    int64_t now = now_ms();
    if (!force && now - p->last_draw_ms < PROGRESS_REFRESH_MS)
        return;
    p->last_draw_ms = now;
    int filled = total > 0 ? (int)(done * PROGRESS_BAR_WIDTH / total) : 0;
    if (filled > PROGRESS_BAR_WIDTH)
        filled = PROGRESS_BAR_WIDTH;
    char bar[PROGRESS_BAR_WIDTH + 1];
    for (int i = 0; i < PROGRESS_BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[PROGRESS_BAR_WIDTH] = '\0';
    fprintf(stderr, ERASE_LINE "%-10s [%s] %lld/%lld %s", label, bar, done, total,
            note ? note : "");
    fflush(stderr);
}

void progress_clear(struct progress *p)
{
    if (!p->enabled)
        return;
    fprintf(stderr, ERASE_LINE);
    fflush(stderr);
}
