/* SPDX-License-Identifier: MIT */
/*
 * store_throughput.c — the store alone, without HTTP: how fast the SQLite store submits,
 * claims and completes runs in batches, and how group commit gathers single-run submits from
 * many threads. Prints figures, asserts nothing; `errand bench` measures the whole system.
 *
 *   build/bench/store_throughput [RUNS] [BATCH]      (defaults 20000 and 1000)
 *   ERRAND_BENCH_SYNC=normal build/bench/store_throughput
 *
 * The database is a fresh file in a temporary directory, removed afterwards.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/mem.h"
#include "server/submission.h"
#include "store/sqlite/sqlite_writer.h"
#include "store/sqlite/store_sqlite.h"
#include "store/store.h"

#define DEFAULT_RUNS 20000
#define DEFAULT_BATCH 1000
#define GROUP_THREADS 8
#define GROUP_SUBMITS_PER_THREAD 250
#define RUN_TEXT                                                                                   \
    "{\"task\": \"bench\", \"parameters\": {\"payload\": \"hello world\", \"n\": 12345}}"
#define RESULT_TEXT "{\"ok\":true,\"text\":\"a short structured result\"}"

static void die(const char *what, const errand_error *err)
{
    fprintf(stderr, "store_throughput: %s: %s\n", what, err ? err->message : "failed");
    exit(1);
}

static void parse_spec(struct run_spec *spec, int64_t now, const char *text)
{
    json_t *obj = json_loads(text, 0, NULL);
    errand_error err;
    if (!obj || run_spec_parse(obj, NULL, now, spec, &err) != 0)
        die("run_spec_parse", obj ? &err : NULL);
    json_decref(obj);
}

struct submitter {
    store *st;
    int64_t now;
};

static void *submitter_main(void *p)
{
    struct submitter *sb = p;
    for (int i = 0; i < GROUP_SUBMITS_PER_THREAD; i++) {
        struct run_spec spec;
        parse_spec(&spec, sb->now, "{\"task\": \"single\"}");
        struct run_row run;
        errand_error err;
        if (store_submit(sb->st, &spec, 1, sb->now, &run, NULL, &err) != 0)
            die("submit", &err);
        run_row_clear(&run);
        run_spec_clear(&spec);
    }
    return NULL;
}

static struct sqlite_writer_stats writer_stats(store *st)
{
    struct sqlite_writer_stats s;
    sqlite_writer_get_stats(store_sqlite_of(st)->writer, &s);
    return s;
}

static void batches(store *st, int runs, int batch, int64_t t)
{
    struct run_spec *specs = calloc((size_t)runs, sizeof *specs);
    struct run_row *rows = calloc((size_t)batch, sizeof *rows);
    struct run_report *reps = calloc((size_t)batch, sizeof *reps);
    struct lease_answer *answers = calloc((size_t)batch, sizeof *answers);
    if (!specs || !rows || !reps || !answers)
        die("calloc", NULL);
    for (int i = 0; i < runs; i++)
        parse_spec(&specs[i], t, RUN_TEXT);
    errand_error err;
    struct sqlite_writer_stats w0 = writer_stats(st);
    int64_t m0 = clock_mono_ms();
    for (int b = 0; b < runs; b += batch) {
        int k = runs - b < batch ? runs - b : batch;
        if (store_submit(st, specs + b, (size_t)k, t, rows, NULL, &err) != 0)
            die("submit", &err);
        for (int i = 0; i < k; i++)
            run_row_clear(&rows[i]);
    }
    int64_t m1 = clock_mono_ms();
    struct sqlite_writer_stats w1 = writer_stats(st);
    int64_t claim_ms = 0, report_ms = 0;
    for (int done = 0; done < runs;) {
        const char *tasks[] = {"bench"};
        struct claim_request req = {
            .worker = "bench-w", .tasks = tasks, .n_tasks = 1, .limit = batch};
        struct run_list claimed;
        int64_t a = clock_mono_ms();
        if (store_claim(st, &req, t, &claimed, &err) != 0)
            die("claim", &err);
        int64_t b = clock_mono_ms();
        if (claimed.n == 0)
            die("claim found nothing", NULL);
        for (size_t i = 0; i < claimed.n; i++)
            reps[i] = (struct run_report){.id = claimed.rows[i].id,
                                          .lease_token = claimed.rows[i].lease_token,
                                          .state = ERRAND_STATE_COMPLETED,
                                          .result = RESULT_TEXT};
        if (store_report(st, "bench-w", NULL, reps, claimed.n, NULL, 0, t, answers, &err) != 0)
            die("report", &err);
        claim_ms += b - a;
        report_ms += clock_mono_ms() - b;
        done += (int)claimed.n;
        run_list_clear(&claimed);
    }
    int64_t m2 = clock_mono_ms();
    struct sqlite_writer_stats w2 = writer_stats(st);
    double total = (double)(m2 - m0);
    printf("%d runs submitted, claimed and COMPLETED in batches of %d: %.0f ms = %.0f runs/s "
           "(submit %lld ms, claim %lld ms, report %lld ms)\n",
           runs, batch, total, total > 0 ? runs * 1000.0 / total : 0.0, (long long)(m1 - m0),
           (long long)claim_ms, (long long)report_ms);
    printf("writer thread busy: submit %.0f ms, claim+report %.0f ms = %.1f us per run; of "
           "which CPU %.1f us per run\n",
           (double)(w1.busy_us - w0.busy_us) / 1000.0, (double)(w2.busy_us - w1.busy_us) / 1000.0,
           (double)(w2.busy_us - w0.busy_us) / runs, (double)(w2.cpu_us - w0.cpu_us) / runs);
    for (int i = 0; i < runs; i++)
        run_spec_clear(&specs[i]);
    free(specs);
    free(rows);
    free(reps);
    free(answers);
}

static void group_commit(store *st, int64_t t)
{
    struct sqlite_writer_stats s0 = writer_stats(st);
    struct submitter sb = {st, t};
    pthread_t th[GROUP_THREADS];
    int64_t g0 = clock_mono_ms();
    for (int i = 0; i < GROUP_THREADS; i++)
        pthread_create(&th[i], NULL, submitter_main, &sb);
    for (int i = 0; i < GROUP_THREADS; i++)
        pthread_join(th[i], NULL);
    int64_t g1 = clock_mono_ms();
    struct sqlite_writer_stats s1 = writer_stats(st);
    int singles = GROUP_THREADS * GROUP_SUBMITS_PER_THREAD;
    unsigned long long commits = s1.commits - s0.commits;
    printf("%d single-run submits from %d threads: %lld ms = %.0f submits/s, %llu commits "
           "(%.1f per commit)\n",
           singles, GROUP_THREADS, (long long)(g1 - g0),
           g1 > g0 ? singles * 1000.0 / (double)(g1 - g0) : 0.0, commits,
           (double)(s1.ops - s0.ops) / (double)(commits ? commits : 1));
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : DEFAULT_RUNS;
    int batch = argc > 2 ? atoi(argv[2]) : DEFAULT_BATCH;
    if (runs < 1 || batch < 1 || batch > 1000) {
        fprintf(stderr, "usage: store_throughput [RUNS >= 1] [BATCH 1-1000]\n");
        return 2;
    }
    mem_install_json();
    const char *sync = getenv("ERRAND_BENCH_SYNC");
    sync = sync && sync[0] ? sync : "full";
    char dir[] = "/tmp/errand-store-bench-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    char url[sizeof dir + 32], path[sizeof dir + 16];
    snprintf(path, sizeof path, "%s/errand.db", dir);
    snprintf(url, sizeof url, "sqlite://%s", path);
    struct store_options opt = {.sync = sync,
                                .default_lease_seconds = 30,
                                .max_redeliveries = STORE_DEFAULT_MAX_REDELIVERIES};
    store *st = NULL;
    errand_error err;
    if (store_open(url, &opt, &st, &err) != 0)
        die("store_open", &err);
    printf("SQLite store, synchronous=%s\n", sync);
    int64_t t = clock_now_ms();
    batches(st, runs, batch, t);
    group_commit(st, t);
    store_close(st);
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[sizeof path + 8];
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}
