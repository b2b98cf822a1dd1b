/* The PostgreSQL store against the SQLite store, in the same run: run rows inserted and
 * acknowledged per second through the asynchronous interface (a burst of every row from one loop
 * pass, and a producer keeping 64 inserts in flight), and the latency of claiming a firing (the
 * insert of a cron first attempt, one at a time: p50/p99).
 *
 * usage: store_pg_bench [rows] [postgres DSN]
 * Without a DSN it starts a throw-away PostgreSQL 15 (fsync on, as in production) in /var/tmp as
 * the postgres user and stops it at the end. Defaults: 50000 rows. */
#include "core/util.h"
#include "storage/store.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PG_BIN "/usr/lib/postgresql/15/bin"

static char pg_dir[64];
static char sqlite_dir[64];

typedef struct bench {
    store_t *store;
    run_t *run;
    long to_submit, acked, failed;
    int64_t *lat_ns;
    int64_t t_sent;
} bench_t;

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
    if (status != 0)
        fprintf(stderr, "store_pg_bench: store failed: %d\n", status);
    (void)ud;
}

static void on_count(void *ud, int status, int64_t n)
{
    (void)n;
    on_done(ud, status);
}

static void on_ack(void *ud, int status, int64_t id)
{
    bench_t *b = ud;
    (void)id;
    if (b->lat_ns)
        b->lat_ns[b->acked] = cv_mono_ns() - b->t_sent;
    b->acked++;
    b->failed += status != 0;
    if (b->to_submit > 0) {
        b->to_submit--;
        if (b->lat_ns) { /* a claim of the next firing */
            b->run->scheduled_for += 60000;
            b->t_sent = cv_mono_ns();
        }
        store_insert_run(b->store, b->run, on_ack, b);
    }
}

static store_t *open_migrated(uv_loop_t *loop, const char *dsn)
{
    store_t *s = NULL;
    store_config_t cfg = {.dsn = dsn, .instance = "bench"};
    if (store_open(loop, &cfg, &s) != 0)
        exit(1);
    store_migrate(s, on_count, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return s;
}

static void close_store(uv_loop_t *loop, store_t *s)
{
    store_close(s, on_done, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
}

/* Keeps `window` inserts outstanding until rows are acknowledged; returns rows per second. */
static double bench_rate(const char *dsn, long rows, long window, uint64_t *commits)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bench_t b = {.run = sample_run(), .to_submit = rows};
    b.store = open_migrated(&loop, dsn);
    uint64_t c0 = store_commits(b.store);
    int64_t t0 = cv_mono_ns();
    for (long i = 0; i < window && b.to_submit > 0; i++, b.to_submit--)
        store_insert_run(b.store, b.run, on_ack, &b);
    uv_run(&loop, UV_RUN_DEFAULT);
    double secs = (double)(cv_mono_ns() - t0) / 1e9;
    *commits = store_commits(b.store) - c0;
    close_store(&loop, b.store);
    if (b.acked != rows || b.failed)
        fprintf(stderr, "store_pg_bench: %ld of %ld acknowledged, %ld failed\n", b.acked, rows,
                b.failed);
    run_free(b.run);
    return (double)rows / secs;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Claims n successive firings one at a time; p50/p99 of the time to the acknowledgement. */
static void bench_claims(const char *dsn, long n, double *p50_ms, double *p99_ms)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bench_t b = {.run = run_new("claimed", "cron"), .to_submit = n - 1};
    b.lat_ns = cv_calloc((size_t)n, sizeof(int64_t));
    b.run->status = RUN_QUEUED;
    b.run->scheduled_for = 60000;
    b.store = open_migrated(&loop, dsn);
    b.t_sent = cv_mono_ns();
    store_insert_run(b.store, b.run, on_ack, &b);
    uv_run(&loop, UV_RUN_DEFAULT);
    close_store(&loop, b.store);
    if (b.failed)
        fprintf(stderr, "store_pg_bench: %ld claims failed\n", b.failed);
    qsort(b.lat_ns, (size_t)n, sizeof(int64_t), cmp_i64);
    *p50_ms = (double)b.lat_ns[n / 2] / 1e6;
    *p99_ms = (double)b.lat_ns[(n * 99) / 100] / 1e6;
    free(b.lat_ns);
    run_free(b.run);
}

/* ---- a throw-away server ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        abort();
    close(fd);
    return ntohs(a.sin_port);
}

static int sh(const char *cmd)
{
    return system(cmd);
}

static void pg_stop(void)
{
    char *cmd = cv_sprintf("runuser -u postgres -- " PG_BIN "/pg_ctl -D %s/data -m fast -w stop "
                           ">/dev/null; rm -rf %s",
                           pg_dir, pg_dir);
    sh(cmd);
    free(cmd);
}

static char *pg_start(void)
{
    struct passwd *pw = getpwnam("postgres");
    snprintf(pg_dir, sizeof(pg_dir), "/var/tmp/cv-pg-bench-XXXXXX");
    if (pw == NULL || mkdtemp(pg_dir) == NULL || chown(pg_dir, pw->pw_uid, pw->pw_gid) != 0)
        return NULL;
    int port = free_port();
    char *cmd = cv_sprintf(
        "runuser -u postgres -- " PG_BIN "/initdb -D %s/data -U postgres -A trust -E UTF8 "
        "--locale=C >/dev/null && runuser -u postgres -- " PG_BIN "/pg_ctl -D %s/data -l "
        "%s/server.log -w -o \"-p %d -k %s -c listen_addresses=127.0.0.1\" start >/dev/null",
        pg_dir, pg_dir, pg_dir, port, pg_dir);
    int rc = sh(cmd);
    free(cmd);
    if (rc != 0)
        return NULL;
    atexit(pg_stop);
    return cv_sprintf("postgresql://postgres@127.0.0.1:%d/postgres", port);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* A fresh database per case: the runs table of the previous case would skew the next. */
static char *fresh(const char *pg_dsn, int *n, char **sqlite_out)
{
    (*n)++;
    *sqlite_out = cv_sprintf("%s/case%d/runs.db", sqlite_dir, *n);
    /* everything the migrations made: tables, functions, triggers */
    char *cmd = cv_sprintf("psql -q '%s' -c 'DROP SCHEMA public CASCADE' -c 'CREATE SCHEMA public'"
                           " >/dev/null 2>&1",
                           pg_dsn);
    sh(cmd);
    free(cmd);
    return cv_strdup(pg_dsn);
}

int main(int argc, char **argv)
{
    long rows = argc > 1 ? atol(argv[1]) : 50000, claims = 2000;
    char *dsn = argc > 2 ? cv_strdup(argv[2]) : pg_start();
    if (dsn == NULL) {
        fprintf(stderr, "store_pg_bench: cannot start PostgreSQL (run as root, postgresql 15)\n");
        return 1;
    }
    snprintf(sqlite_dir, sizeof(sqlite_dir), "/var/tmp/cv-sqlite-bench-XXXXXX");
    if (mkdtemp(sqlite_dir) == NULL)
        return 1;
    printf("store_pg_bench: %ld rows, %ld claims; PostgreSQL and SQLite both synchronous "
           "commit (FULL)\n",
           rows, claims);
    printf("%-34s %14s %12s %10s\n", "case", "backend", "rows/s", "commits");
    int n = 0;
    struct {
        const char *name;
        long window;
    } cases[] = {{"async, burst of all rows", 0}, {"async, 64 in flight", 64}};
    for (size_t i = 0; i < CV_ARRAY_SIZE(cases); i++) {
        char *lite = NULL, *pg = fresh(dsn, &n, &lite);
        uint64_t cp = 0, cl = 0;
        long w = cases[i].window ? cases[i].window : rows;
        double rp = bench_rate(pg, rows, w, &cp), rl = bench_rate(lite, rows, w, &cl);
        printf("%-34s %14s %12.0f %10llu\n", cases[i].name, "postgres", rp, (unsigned long long)cp);
        printf("%-34s %14s %12.0f %10llu\n", cases[i].name, "sqlite", rl, (unsigned long long)cl);
        printf("  postgres/sqlite: %.2fx\n", rp / rl);
        free(pg);
        free(lite);
    }
    char *lite = NULL, *pg = fresh(dsn, &n, &lite);
    double p50, p99, l50, l99;
    bench_claims(pg, claims, &p50, &p99);
    bench_claims(lite, claims, &l50, &l99);
    printf("claim latency (cron first attempt, one at a time): postgres p50 %.3f ms p99 %.3f "
           "ms; sqlite p50 %.3f ms p99 %.3f ms\n",
           p50, p99, l50, l99);
    free(pg);
    free(lite);
    free(dsn);
    nftw(sqlite_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}
