/* SPDX-License-Identifier: MIT */
/*
 * notify.h — wake-ups for long-polls. Two topics:
 *   NOTIFY_RUNS_DUE   runs may have become claimable; the key is the task name (a
 *                     submission), or none at all (a hand-back, a retry, a lease expiry, runs
 *                     promoted from the delayed set: every claim waiter wakes);
 *   NOTIFY_RUN_FINAL  a run may have reached a final state; the key is the run id (a report,
 *                     a cancel), or none (the sweeper: every wait wakes).
 *
 * A long-poll listens before it first checks the store. When it finds nothing it *parks*
 * its waiter: no thread waits for it; a callback runs once, when a signal for one of its
 * keys (or the whole topic) comes, or when its time comes (its deadline, or the next
 * re-check), and hands the request back to a handler thread (work_pool.h) to check again.
 * A signal that comes between listening (or the last wake-up) and parking marks the waiter,
 * and the park is refused, so the caller checks again at once: a change between check and
 * park is never missed. A signal wakes only the waiters of its key (claims of that task,
 * waits on that run): the work per event does not grow with the number of long-polls held.
 * Keys are hashed into buckets; a waiter with several keys (a claim for several tasks) is
 * linked into each one's bucket. Times are kept in a binary heap served by one timer
 * thread, so 10,000 parked long-polls cost memory, not threads.
 *
 * Signals are hints, never the only trigger: waiters also re-check on a timer, which covers
 * changes made by another server sharing the store.
 *
 * Thread-safe: one mutex guards the buckets, the waiter lists, the heap and every waiter's
 * state; wake callbacks run after it is released.
 */
#ifndef ERRAND_SERVER_NOTIFY_H
#define ERRAND_SERVER_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum notify_topic { NOTIFY_RUNS_DUE = 0, NOTIFY_RUN_FINAL, NOTIFY_TOPIC_COUNT };

typedef struct notify notify;
typedef struct notify_waiter notify_waiter;

/* Called once for a parked waiter: signalled (a signal or shutdown) or its time came. It runs
 * on the signalling thread or the timer thread, without notify's lock, and must be quick (it
 * queues the request for a handler thread). The waiter stays as it is until the call. */
typedef void (*notify_wake_fn)(void *arg, bool signalled);

/* Starts the timer thread. NULL on failure (out of memory, no thread). */
notify *notify_new(void);
/* Stops the timer thread. Every waiter must have stopped listening. */
void notify_free(notify *n);

/* Starts listening on topic for the n_keys keys (which must outlive the waiter). NULL when
 * out of memory. */
notify_waiter *notify_listen(notify *n, enum notify_topic topic, const char *const *keys,
                             size_t n_keys);

/* Parks w until a signal for one of its keys (or its whole topic, or shutdown) or until the
 * monotonic clock reaches until_mono_ms, then calls wake(arg, signalled) once. Refuses, and
 * returns false without ever calling wake, when a signal came since w listened or last woke,
 * or notify is shut down: the caller checks again at once. w must not be parked already. */
bool notify_waiter_park(notify *n, notify_waiter *w, int64_t until_mono_ms, notify_wake_fn wake,
                        void *arg);

/* Stops listening and frees w (NULL is fine). A parked w is unparked without its wake call. */
void notify_unlisten(notify *n, notify_waiter *w);

/* Wakes the waiters of topic that listen for key. */
void notify_signal_key(notify *n, enum notify_topic topic, const char *key);
/* Wakes every waiter of topic. */
void notify_signal(notify *n, enum notify_topic topic);

/* Wakes every waiter for good: later parks are refused. */
void notify_shutdown(notify *n);
bool notify_is_shutdown(notify *n);

/* How many waiters are parked now (for tests and metrics). */
size_t notify_parked(notify *n);

#endif
