/* SPDX-License-Identifier: MIT */
/*
 * test_store_sqlite_bounds_upkeep.c — the store's upkeep, which must not grow with what it
 * holds nor hold up the commits: pruning the change feed reads the oldest page and stops
 * (many young events); commits go on while a reader holds the WAL, which starts over once
 * the reader is gone; the checkpointer is woken once per SQLITE_CHECKPOINT_FRAMES frames, not
 * after every commit.
 */
#include "statement_work.h"

#include <sys/stat.h>
#include <time.h>

#include "store/sqlite/sqlite_checkpointer.h"

/* SQLite's WAL file layout, with the store's 4 KiB pages. */
#define WAL_HEADER_BYTES 32
#define WAL_FRAME_BYTES (4096 + 24)
/* Parameters of about a page per run, so the WAL fills in a few batches. */
#define PAD_BYTES 3000
/* After the reader ends: commits spaced out while the checkpoints catch up (at most 30 s). */
#define RESTART_WAIT_ROUNDS 1500
#define RESTART_WAIT_PAUSE_MS 20
/* Submissions made one commit at a time by checkpoints_do_not_follow_every_commit. */
#define LONE_COMMITS 600

static void bind_feed_oldest(sqlite3_stmt *s, int64_t now)
{
    (void)now;
    sqlite3_bind_int(s, 1, SUBMIT_BATCH);
}

/* The work SQLite does until id's first row: pruning reads the oldest page, finds it young
 * and stops there. */
static struct work measure_first_row(struct fixture *fx, enum sql_id id,
                                     void (*bind)(sqlite3_stmt *s, int64_t now), int64_t now)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sqlite_sql_text(id), -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sqlite_sql_name(id), sqlite3_errmsg(db));
    bind(s, now);
    struct work w = {0};
    if (sqlite3_step(s) == SQLITE_ROW)
        w.rows = 1;
    w.vm_steps = sqlite3_stmt_status(s, SQLITE_STMTSTATUS_VM_STEP, 0);
    w.fullscan_steps = sqlite3_stmt_status(s, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return w;
}

/* The change feed holds one event per state change, in pages of a commit each; the sweeper
 * prunes the pages older than the retention. With none old enough it reads the oldest page
 * and stops, however many young ones follow (it used to walk every event, on the writer, at
 * every sweep). */
static void event_pruning_does_not_grow_with_young_events(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    /* More than a page at first: the work is a page's, then as after a thousandfold more. */
    submit_many(fx, t, "{\"task\": \"young\"}", 2 * SUBMIT_BATCH);
    struct work small = measure_first_row(fx, SQL_FEED_OLDEST, bind_feed_oldest, t);
    submit_many(fx, t, "{\"task\": \"young\"}", LARGE - 2 * SUBMIT_BATCH);
    struct work large = measure_first_row(fx, SQL_FEED_OLDEST, bind_feed_oldest, t);
    assert_int_equal(large.rows, 1);
    assert_same_work("SQL_FEED_OLDEST to its first page", small, large);
    int deleted = -1;
    errand_error err;
    assert_int_equal(store_prune_events(fx->st, t, 0, LARGE, &deleted, &err), 0);
    assert_int_equal(deleted, 0); /* none older than t */
    /* Old enough, they go about a batch at a time, and never the newest page. */
    assert_int_equal(store_prune_events(fx->st, t + 1, 0, SUBMIT_BATCH, &deleted, &err), 0);
    assert_int_equal(deleted, SUBMIT_BATCH);
    for (int left = LARGE - SUBMIT_BATCH; left > SUBMIT_BATCH; left -= deleted) {
        assert_int_equal(store_prune_events(fx->st, t + 1, 0, LARGE, &deleted, &err), 0);
        assert_true(deleted > 0);
    }
    assert_int_equal(store_prune_events(fx->st, t + 1, 0, LARGE, &deleted, &err), 0);
    assert_int_equal(deleted, 0);
    int64_t first = 0, last = 0;
    assert_int_equal(store_event_bounds(fx->st, &first, &last, &err), 0);
    assert_int_equal(last, LARGE);
    assert_int_equal(first, LARGE - SUBMIT_BATCH + 1); /* the newest page: the last submit */
}

/* The path of the store's WAL file. */
static void wal_path(const struct fixture *fx, char out[sizeof fx->path + 8])
{
    snprintf(out, sizeof fx->path + 8, "%s-wal", fx->path);
}

/* The WAL header's checkpoint sequence number: it changes each time the WAL starts over. */
static uint32_t wal_generation(struct fixture *fx)
{
    char wal[sizeof fx->path + 8];
    wal_path(fx, wal);
    unsigned char h[WAL_HEADER_BYTES] = {0};
    FILE *f = fopen(wal, "rb");
    assert_non_null(f);
    assert_int_equal(fread(h, 1, sizeof h, f), sizeof h);
    fclose(f);
    return (uint32_t)h[12] << 24 | (uint32_t)h[13] << 16 | (uint32_t)h[14] << 8 | h[15];
}

/* Frames the store's WAL file has room for (it grows, and shrinks only when it starts
 * over): its size less the header, over the size of a frame (a page and its header). */
static long wal_file_frames(struct fixture *fx)
{
    char wal[sizeof fx->path + 8];
    wal_path(fx, wal);
    struct stat st;
    if (stat(wal, &st) != 0)
        return 0;
    return st.st_size <= WAL_HEADER_BYTES ? 0 : (st.st_size - WAL_HEADER_BYTES) / WAL_FRAME_BYTES;
}

/* A reader holding an old snapshot (an online backup, a long listing) keeps the WAL from
 * starting over. The writer's checkpoint past SQLITE_CHECKPOINT_FRAMES_MAX used to wait for
 * it with the busy timeout, after every commit: each commit then took 5 s. */
static void commits_go_on_while_a_reader_holds_the_wal(void **state)
{
    struct fixture *fx = *state;
    int64_t t = fx->t0;
    sqlite3 *reader = NULL;
    assert_int_equal(sqlite3_open_v2(fx->path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM task_runs;", NULL, NULL, NULL),
        SQLITE_OK);

    char spec[PAD_BYTES + 64];
    int len = snprintf(spec, sizeof spec, "{\"task\": \"w\", \"parameters\": {\"pad\": \"");
    memset(spec + len, 'x', PAD_BYTES);
    snprintf(spec + len + PAD_BYTES, sizeof spec - (size_t)len - PAD_BYTES, "\"}}");
    submit_many(fx, t, spec, 1);
    uint32_t generation = wal_generation(fx);
    int64_t slowest_ms = 0;
    int batches = 0;
    /* Well past the limit, so the writer's checkpoint has been tried (and refused) twice. */
    while (wal_file_frames(fx) < SQLITE_CHECKPOINT_FRAMES_MAX + 2 * SQLITE_CHECKPOINT_FRAMES) {
        assert_true(++batches < 200);
        int64_t started = clock_mono_ms();
        submit_many(fx, t, spec, SUBMIT_BATCH);
        int64_t took = clock_mono_ms() - started;
        if (took > slowest_ms)
            slowest_ms = took;
    }
    /* A bound on the mechanism, not a speed claim: a commit that waited for the reader
       sleeps the whole busy timeout (and one that did not can take seconds under
       AddressSanitizer on a busy machine: 3.5 s was seen). */
    if (slowest_ms >= SQLITE_BUSY_TIMEOUT_MS * 9 / 10)
        fail_msg("a batch took %lld ms while a reader held the WAL", (long long)slowest_ms);
    assert_int_equal(wal_generation(fx), generation); /* the reader did hold it */

    assert_int_equal(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(reader);
    /* Once the reader is gone the WAL starts over: the checkpoints catch up, and the next
       commit after a complete one (or the writer's own RESTART) begins the WAL anew. */
    for (int i = 0; wal_generation(fx) == generation; i++) {
        if (i >= RESTART_WAIT_ROUNDS)
            fail_msg("the WAL did not start over within %d commits after the reader ended", i);
        submit_many(fx, t, "{\"task\": \"w\"}", 1);
        struct timespec pause = {.tv_sec = 0, .tv_nsec = RESTART_WAIT_PAUSE_MS * 1000000L};
        nanosleep(&pause, NULL);
    }
}

/* Submissions one commit at a time (light load): the checkpointer is woken once per
 * SQLITE_CHECKPOINT_FRAMES frames the WAL grows, not after every commit once the WAL holds
 * that many, when each background checkpoint copied a commit's pages and synced the
 * database file. */
static void checkpoints_do_not_follow_every_commit(void **state)
{
    struct fixture *fx = *state;
    struct store_sqlite *s = store_sqlite_of(fx->st);
    unsigned long wakes = sqlite_checkpointer_wakes(s->checkpointer);
    for (int i = 0; i < LONE_COMMITS; i++)
        json_decref(submit(fx, fx->t0 + i, "{\"task\": \"lone\", \"tags\": [\"t\"]}", NULL));
    /* Each commit adds a few frames (the run, its indexes, history, counts, feed): the WAL
       passes SQLITE_CHECKPOINT_FRAMES a few times, far fewer than once a commit. */
    unsigned long woken = sqlite_checkpointer_wakes(s->checkpointer) - wakes;
    if (woken > LONE_COMMITS / 20)
        fail_msg("the checkpointer was woken %lu times for %d commits", woken, LONE_COMMITS);
    assert_true(woken >= 1); /* the WAL did pass SQLITE_CHECKPOINT_FRAMES */
}

int main(void)
{
    mem_install_json();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(event_pruning_does_not_grow_with_young_events, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(commits_go_on_while_a_reader_holds_the_wal, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(checkpoints_do_not_follow_every_commit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
