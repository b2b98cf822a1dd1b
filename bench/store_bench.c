/* Run rows inserted and acknowledged per second: through the store's asynchronous interface (the
 * worker groups writes into one transaction per batch) with synchronous=FULL and NORMAL, against
 * raw sqlite3 on the same schema with one transaction per row and with 100 rows per transaction.
 *
 * usage: store_bench [directory on the disk to measure] [rows]   (defaults: /var/tmp, 50000) */
#include "core/util.h"
#include "storage/schema.h"
#include "storage/store.h"

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench {
    store_t *store;
    run_t *run;
    long to_submit, acked, failed;
} bench_t;

static char *base_dir;
static int case_no;

static char *fresh_path(void)
{
    return cv_sprintf("%s/case%d/runs.db", base_dir, ++case_no);
}

static run_t *sample_run(void)
{
    run_t *r = run_new("nightly-report", "api:bench");
    r->status = RUN_SUCCESS;
    r->scheduled_for = cv_now_ms();
    r->started_at = r->scheduled_for + 3;
    r->finished_at = r->started_at + 1234;
    r->duration_ms = 1234;
    r->exit_code = 0;
    r->items_processed = 1000;
    r->summary_json = cv_strdup("{\"rows\": 1000, \"files\": 3}");
    r->output_tail = cv_strdup("processing batch 1\nprocessing batch 2\nprocessing batch 3\n"
                               "wrote /var/reports/2026-03-29.csv (1000 rows)\ndone\n");
    r->max_rss_kb = 20480;
    return r;
}

static void on_done(void *ud, int status)
{
    (void)ud;
    if (status != 0)
        fprintf(stderr, "store_bench: store failed: %d\n", status);
}

static void on_count(void *ud, int status, int64_t n)
{
    on_done(ud, status);
}

static void on_ack(void *ud, int status, int64_t id)
{
    bench_t *b = ud;
    b->acked++;
    b->failed += status != 0;
    if (b->to_submit > 0) {
        b->to_submit--;
        store_insert_run(b->store, b->run, on_ack, b);
    }
}

/* Keeps `window` inserts outstanding until rows are acknowledged; returns rows per second. */
static double bench_async(store_sync_t sync, long rows, long window, uint64_t *commits)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char *path = fresh_path();
    store_config_t cfg = {.dsn = path, .instance = "bench", .sync = sync};
    bench_t b = {.run = sample_run(), .to_submit = rows};
    if (store_open(&loop, &cfg, &b.store) != 0)
        exit(1);
    store_migrate(b.store, on_count, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t c0 = store_commits(b.store);
    int64_t t0 = cv_mono_ns();
    for (long i = 0; i < window && b.to_submit > 0; i++, b.to_submit--)
        store_insert_run(b.store, b.run, on_ack, &b);
    uv_run(&loop, UV_RUN_DEFAULT);
    double secs = (double)(cv_mono_ns() - t0) / 1e9;
    *commits = store_commits(b.store) - c0;
    store_close(b.store, on_done, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (b.acked != rows || b.failed)
        fprintf(stderr, "store_bench: %ld of %ld acknowledged, %ld failed\n", b.acked, rows,
                b.failed);
    run_free(b.run);
    free(path);
    return (double)rows / secs;
}

/* Creates the schema through the store, then returns a raw handle on the same file. */
static sqlite3 *raw_open(store_sync_t sync)
{
    char *path = fresh_path();
    uv_loop_t loop;
    uv_loop_init(&loop);
    store_t *s = NULL;
    store_config_t cfg = {.dsn = path, .instance = "bench", .sync = sync};
    if (store_open(&loop, &cfg, &s) != 0)
        exit(1);
    store_migrate(s, on_count, NULL);
    store_close(s, on_done, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    sqlite3 *db = NULL;
    sqlite3_open(path, &db);
    sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    sqlite3_exec(db,
                 sync == STORE_SYNC_FULL ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                 NULL, NULL, NULL);
    free(path);
    return db;
}

static void raw_bind(sqlite3_stmt *st, const run_t *r)
{
    sqlite3_bind_text(st, 1, r->job, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, run_status_name(r->status), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->trigger, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, r->scheduled_for);
    sqlite3_bind_int64(st, 5, r->queued_at);
    sqlite3_bind_int64(st, 6, r->started_at);
    sqlite3_bind_int64(st, 7, r->finished_at);
    sqlite3_bind_int64(st, 8, r->duration_ms);
    sqlite3_bind_int(st, 9, r->attempt);
    sqlite3_bind_int64(st, 10, r->retry_of);
    sqlite3_bind_int(st, 11, r->exit_code);
    sqlite3_bind_int(st, 12, r->signal);
    sqlite3_bind_int64(st, 13, r->items_processed);
    sqlite3_bind_int64(st, 14, r->items_failed);
    sqlite3_bind_double(st, 15, r->progress);
    sqlite3_bind_text(st, 16, r->summary_json, -1, SQLITE_STATIC);
    sqlite3_bind_null(st, 17);
    sqlite3_bind_text(st, 18, r->output_tail, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 19, r->output_bytes);
    sqlite3_bind_int64(st, 20, r->max_rss_kb);
    sqlite3_bind_int64(st, 21, r->cpu_user_ms);
    sqlite3_bind_int64(st, 22, r->cpu_sys_ms);
    sqlite3_bind_text(st, 23, "bench", -1, SQLITE_STATIC);
}

/* Raw sqlite3 on the calling thread, per_txn rows per transaction; returns rows per second. */
static double bench_raw(store_sync_t sync, long rows, long per_txn)
{
    sqlite3 *db = raw_open(sync);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, store_run_sql(STORE_RUN_SQL_INSERT), -1, &st, NULL);
    run_t *r = sample_run();
    int64_t t0 = cv_mono_ns();
    for (long i = 0; i < rows; i += per_txn) {
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        for (long k = 0; k < per_txn && i + k < rows; k++) {
            raw_bind(st, r);
            if (sqlite3_step(st) != SQLITE_DONE)
                fprintf(stderr, "store_bench: raw insert: %s\n", sqlite3_errmsg(db));
            sqlite3_reset(st);
        }
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    double secs = (double)(cv_mono_ns() - t0) / 1e9;
    sqlite3_finalize(st);
    sqlite3_close(db);
    run_free(r);
    return (double)rows / secs;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void row(const char *what, const char *sync, double rate, uint64_t commits)
{
    char name[64];
    snprintf(name, sizeof(name), "%s, %s", what, sync);
    printf("%-42s %12.0f %10llu\n", name, rate, (unsigned long long)commits);
}

int main(int argc, char **argv)
{
    const char *parent = argc > 1 ? argv[1] : "/var/tmp";
    long rows = argc > 2 ? atol(argv[2]) : 50000;
    /* One transaction per row with FULL is slow: measure it on fewer rows. */
    long slow_rows = rows / 10 > 0 ? rows / 10 : 1;
    base_dir = cv_sprintf("%s/cv-store-bench-XXXXXX", parent);
    if (mkdtemp(base_dir) == NULL) {
        perror(parent);
        return 1;
    }
    printf("store_bench: %ld rows (%ld for one row per transaction) in %s, SQLite %s\n", rows,
           slow_rows, parent, sqlite3_libversion());
    printf("%-42s %12s %10s\n", "case", "rows/s", "commits");
    struct {
        const char *name;
        store_sync_t sync;
    } syncs[] = {{"FULL", STORE_SYNC_FULL}, {"NORMAL", STORE_SYNC_NORMAL}};
    for (size_t i = 0; i < CV_ARRAY_SIZE(syncs); i++) {
        uint64_t c_burst = 0, c_win = 0;
        double burst = bench_async(syncs[i].sync, rows, rows, &c_burst);
        double win = bench_async(syncs[i].sync, rows, 64, &c_win);
        double raw1 = bench_raw(syncs[i].sync, slow_rows, 1);
        double raw100 = bench_raw(syncs[i].sync, rows, 100);
        row("store async, burst of all rows", syncs[i].name, burst, c_burst);
        row("store async, 64 in flight", syncs[i].name, win, c_win);
        row("raw sqlite3, 1 row per txn", syncs[i].name, raw1, (uint64_t)slow_rows);
        row("raw sqlite3, 100 rows per txn", syncs[i].name, raw100, (uint64_t)(rows / 100));
        printf("  ratios (%s): burst/raw1 %.1fx, burst/raw100 %.2fx, 64-in-flight/raw1 %.1fx\n",
               syncs[i].name, burst / raw1, burst / raw100, win / raw1);
    }
    nftw(base_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(base_dir);
    return 0;
}
