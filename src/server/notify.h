/*
 * notify.h — wake-ups for long-polls. Two topics:
 *   NOTIFY_RUNS_DUE   runs may have become claimable; the key is the task name (a
 *                     submission), or none at all (a hand-back, a retry, a lease expiry, runs
 *                     promoted from the delayed set: every claim waiter wakes);
 *   NOTIFY_RUN_FINAL  a run may have reached a final state; the key is the run id (a report,
 *                     a cancel), or none (the sweeper: every wait wakes).
 *
 * A long-poll listens before it first checks the store and stops listening after its last
 * check: a signal for one of its keys that comes in between marks it, and its next wait
 * returns at once, so a change between check and wait is never missed. A signal wakes only
 * the waiters of its key (claims of that task, waits on that run): the work per event does
 * not grow with the number of long-polls held. Keys are hashed into buckets; a waiter with
 * several keys (a claim for several tasks) is linked into each one's bucket.
 *
 * Signals are hints, never the only trigger: waiters also re-check on a timer, which covers
 * changes made by another server sharing the store.
 *
 * Thread-safe: one mutex guards the buckets, the waiter list and every waiter's flag.
 */
#ifndef ERRAND_SERVER_NOTIFY_H
#define ERRAND_SERVER_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum notify_topic { NOTIFY_RUNS_DUE = 0, NOTIFY_RUN_FINAL, NOTIFY_TOPIC_COUNT };

typedef struct notify notify;
typedef struct notify_waiter notify_waiter;

/* NULL on failure (out of memory or pthread init failure). */
notify *notify_new(void);
/* Every waiter must have stopped listening. */
void notify_free(notify *n);

/* Starts listening on topic for the n_keys keys (which must outlive the waiter). NULL when
 * out of memory. */
notify_waiter *notify_listen(notify *n, enum notify_topic topic, const char *const *keys,
                             size_t n_keys);
/* Waits until a signal for one of w's keys (or for the whole topic) came since the last
 * wait returned, the monotonic clock reaches deadline_mono_ms, or shutdown; true when
 * signalled. */
bool notify_waiter_wait(notify *n, notify_waiter *w, int64_t deadline_mono_ms);
/* Stops listening and frees w (NULL is fine). */
void notify_unlisten(notify *n, notify_waiter *w);

/* Wakes the waiters of topic that listen for key. */
void notify_signal_key(notify *n, enum notify_topic topic, const char *key);
/* Wakes every waiter of topic. */
void notify_signal(notify *n, enum notify_topic topic);

/* Wakes every waiter for good: later waits return at once. */
void notify_shutdown(notify *n);
bool notify_is_shutdown(notify *n);

#endif
