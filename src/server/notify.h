/*
 * notify.h — wake-ups for long-polls. Two topics:
 *   NOTIFY_RUNS_DUE   something may have become claimable (a submission, a hand-back, a
 *                     failure moved to AwaitingRetry, a lease expiry put a run back);
 *   NOTIFY_RUN_FINAL  some run may have reached a final state (report, cancel, sweep).
 *
 * Each topic is a generation counter plus a condition variable. A waiter reads the
 * generation, checks the store, and if it found nothing waits for the generation to move on;
 * reading the generation *before* the check is what makes a wake-up between check and wait
 * impossible to lose.
 *
 * Trade-off: a signal wakes every waiter of the topic, and each re-checks the store (one
 * cheap read or claim). That is a small thundering herd, fine for the hundreds of waiters a
 * server holds; a per-run or per-task wait table would wake only the interested ones at the
 * price of more bookkeeping. Signals are hints, never the only trigger: waiters also
 * re-check on a timer, which covers runs that become due by time alone and changes made by
 * another server sharing the store.
 *
 * Thread-safe: one mutex guards both generations and the shutdown flag.
 */
#ifndef ERRAND_SERVER_NOTIFY_H
#define ERRAND_SERVER_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

enum notify_topic { NOTIFY_RUNS_DUE = 0, NOTIFY_RUN_FINAL, NOTIFY_TOPIC_COUNT };

typedef struct notify notify;

/* NULL on failure (out of memory or pthread init failure). */
notify *notify_new(void);
void notify_free(notify *n);

uint64_t notify_generation(notify *n, enum notify_topic topic);
/* Moves the topic's generation on and wakes its waiters. */
void notify_signal(notify *n, enum notify_topic topic);

/* Waits until the topic's generation differs from seen, the monotonic clock reaches
 * deadline_mono_ms, or shutdown; true when the generation moved. */
bool notify_wait(notify *n, enum notify_topic topic, uint64_t seen, int64_t deadline_mono_ms);

/* Wakes every waiter for good: later waits return at once. */
void notify_shutdown(notify *n);
bool notify_is_shutdown(notify *n);

#endif
