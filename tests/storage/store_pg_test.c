/* The store suite (store_suite.h) against the PostgreSQL backend on a real PostgreSQL 15 server
 * started for this test (a fresh database per case), then cases only a server can show: a
 * restart mid-way, two instances racing for firings and migrations, a wrong password, a server
 * that never answers. */
#include "store_suite.h"

#include "core/log.h"
#include "storage/spool.h"
#include "storage/store_pg.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PG_BIN "/usr/lib/postgresql/15/bin"

static char pg_dir[64];
static int pg_port;
static const char *pg_user = "postgres"; /* the unprivileged system user running the server */
static bool pg_running;

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = cv_vsprintf(fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    free(cmd);
    return rc;
}

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

static int pg_ctl(const char *action)
{
    return run("runuser -u %s -- " PG_BIN "/pg_ctl -D %s/data -l %s/server.log -w -t 60 "
               "-m fast %s >/dev/null",
               pg_user, pg_dir, pg_dir, action);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void pg_server_stop(void)
{
    if (pg_running)
        pg_ctl("stop");
    pg_running = false;
    if (pg_dir[0])
        nftw(pg_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    pg_dir[0] = '\0';
}

/* initdb as an unprivileged user (PostgreSQL refuses root), trust on loopback except for the
 * role used by the wrong-password case, the socket in the temporary directory. */
static int pg_server_start(void)
{
    struct passwd *pw = getpwnam(pg_user);
    if (pw == NULL) {
        pg_user = "nobody";
        pw = getpwnam(pg_user);
    }
    snprintf(pg_dir, sizeof(pg_dir), "/tmp/cv-pg-test-XXXXXX");
    if (pw == NULL || mkdtemp(pg_dir) == NULL || chown(pg_dir, pw->pw_uid, pw->pw_gid) != 0)
        return -1;
    atexit(pg_server_stop);
    pg_port = free_port();
    if (run("runuser -u %s -- " PG_BIN "/initdb -D %s/data -U postgres -A trust -E UTF8 "
            "--locale=C --no-sync >%s/initdb.log 2>&1",
            pg_user, pg_dir, pg_dir) != 0)
        return -1;
    char *conf = cv_sprintf("%s/data/postgresql.conf", pg_dir);
    char *hba = cv_sprintf("%s/data/pg_hba.conf", pg_dir);
    FILE *c = fopen(conf, "a"), *h = fopen(hba, "w");
    if (c == NULL || h == NULL)
        return -1;
    fprintf(c,
            "port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n"
            "fsync = off\nmax_connections = 50\n",
            pg_port, pg_dir);
    fprintf(h, "local all all trust\nhost all cv_wrongpw 127.0.0.1/32 scram-sha-256\n"
               "host all all 127.0.0.1/32 trust\n");
    fclose(c);
    fclose(h);
    free(conf);
    free(hba);
    if (pg_ctl("start") != 0)
        return -1;
    pg_running = true;
    /* Stops the server even when this process is killed (a ctest timeout skips atexit). */
    run("setsid -f sh -c 'while kill -0 %d 2>/dev/null; do sleep 1; done; "
        "runuser -u %s -- " PG_BIN "/pg_ctl -D %s/data -m immediate stop; rm -rf %s' "
        ">/dev/null 2>&1 </dev/null",
        (int)getpid(), pg_user, pg_dir, pg_dir);
    return 0;
}

static char *dsn_for(const char *db)
{
    return cv_sprintf("postgresql://postgres@127.0.0.1:%d/%s", pg_port, db);
}

static int sql_on(const char *dsn, const char *sql)
{
    PGconn *c = PQconnectdb(dsn);
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -1;
        if (rc < 0)
            fprintf(stderr, "pg test: %s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

static char *admin_dsn(void)
{
    return dsn_for("postgres");
}

static int admin_exec(const char *sql)
{
    char *dsn = admin_dsn();
    int rc = sql_on(dsn, sql);
    free(dsn);
    return rc;
}

static char *pg_fresh_dsn(void)
{
    static int n;
    char db[32], sql[96];
    snprintf(db, sizeof(db), "cvtest_%d", ++n);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    assert_int_equal(admin_exec(sql), 0);
    return dsn_for(db);
}

static void pg_drop(const char *dsn)
{
    const char *db = strrchr(dsn, '/') + 1;
    char *sql = cv_sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    admin_exec(sql);
    free(sql);
}

static const store_backend_t pg_backend = {
    .name = "postgres",
    .fresh_dsn = pg_fresh_dsn,
    .drop = pg_drop,
    .raw_exec = sql_on,
    /* and migration 9, which replaced 6's insert and delete trigger (and 4's insert one) */
    .drop_run_counts =
        "DROP TABLE job_counts; DROP TABLE job_count_deltas;"
        " DROP TRIGGER runs_count_status ON runs; DROP FUNCTION cronvisor_run_count();"
        " DROP TRIGGER runs_inserted ON runs;"
        " DROP TRIGGER runs_deleted ON runs; DROP FUNCTION cronvisor_runs_inserted();"
        " DROP FUNCTION cronvisor_runs_deleted(); CREATE TRIGGER runs_notify_insert AFTER INSERT"
        " ON runs FOR EACH ROW EXECUTE FUNCTION cronvisor_run_notify();",
};

/* ---- cases only a server can show ---- */

/* Runs the loop for ms milliseconds (a timer wakes it), letting the store work meanwhile. */
static void on_wait(uv_timer_t *t)
{
    (void)t;
}

static void run_for(uv_loop_t *loop, int ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, on_wait, (uint64_t)ms, 0);
    while (uv_is_active((uv_handle_t *)&t))
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void requests_made_while_the_server_restarts_complete_once_it_is_back(void **state)
{
    fx_t *f = *state;
    add(f, "before", RUN_SUCCESS, "cron", 1000);
    assert_int_equal(pg_ctl("stop"), 0);
    enum { N = 50 };
    res_t r[N] = {{0}}, over = {0}, ping = {0};
    store_ping(f->store, on_status, &ping);
    run_for(&f->loop, 300); /* the store sees the connection go and retries in vain */
    assert_int_equal(ping.calls, 0);
    run_t *run = mk_run("during", RUN_SUCCESS, "cron", 0);
    for (int i = 0; i < N; i++) {
        run->scheduled_for = 2000 + i;
        store_insert_run(f->store, run, on_value, &r[i]);
    }
    /* Fill the queue to its bound: the next request is refused at once, the others wait. */
    res_t *filler = cv_calloc(STORE_PG_QUEUE_MAX, sizeof(*filler));
    for (int i = 0; i < STORE_PG_QUEUE_MAX - N - 1; i++)
        store_ping(f->store, on_status, &filler[i]);
    store_insert_run(f->store, run, on_value, &over);
    run_free(run);
    while (over.calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(over.status, -EAGAIN);
    assert_int_equal(r[0].calls, 0);
    store_state_t st; /* no spool here: the write is refused, counted */
    store_get_state(f->store, &st);
    assert_int_equal(st.queued, STORE_PG_QUEUE_MAX);
    assert_int_equal(st.queue_refused, 1);

    assert_int_equal(pg_ctl("start"), 0);
    drain(f);
    assert_int_equal(ping.status, 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, 0);
    }
    for (int i = 0; i < STORE_PG_QUEUE_MAX - N - 1; i++)
        assert_int_equal(filler[i].status, 0);
    free(filler);
    assert_int_equal(count_runs(f, "during"), N);
    assert_int_equal(count_runs(f, "before"), 1);
    store_get_state(f->store, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.queue_refused, 1);
}

static void two_stores_racing_for_many_firings_claim_each_exactly_once(void **state)
{
    fx_t *f = *state;
    store_t *first = f->store;
    store_t *second = open_store(f, STORE_SYNC_FULL);
    enum { N = 300 };
    res_t a[N] = {{0}}, b[N] = {{0}};
    run_t *r = mk_run("contended", RUN_QUEUED, "cron", 0);
    for (int i = 0; i < N; i++) {
        r->scheduled_for = 60000 * (i + 1);
        store_insert_run(first, r, on_value, &a[i]);
        store_insert_run(second, r, on_value, &b[i]);
    }
    run_free(r);
    drain(f);
    int wins = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(a[i].calls + b[i].calls, 2);
        assert_true((a[i].status == 0 && b[i].status == -EEXIST) ||
                    (a[i].status == -EEXIST && b[i].status == 0));
        wins += a[i].status == 0;
    }
    print_message("first store won %d of %d firings\n", wins, N);
    assert_int_equal(count_runs(f, "contended"), N);
    res_t closed = {0};
    store_close(second, on_status, &closed);
    drain(f);
    assert_int_equal(closed.calls, 1);
    f->store = first;
}

typedef struct notes {
    int calls, resyncs;
    char last[64];
} notes_t;

static void on_note(void *ud, const char *job)
{
    notes_t *n = ud;
    if (job == NULL) {
        n->resyncs++;
        return;
    }
    n->calls++;
    snprintf(n->last, sizeof(n->last), "%s", job);
}

/* Runs the loop until *counter reaches want, for at most 5 s. */
static void await_count(fx_t *f, const int *counter, int want)
{
    for (int waited = 0; *counter < want && waited < 5000; waited += 20)
        run_for(&f->loop, 20);
    assert_int_equal(*counter, want);
}

static void override_changes_made_by_another_store_reach_a_watcher(void **state)
{
    fx_t *f = *state;
    notes_t n = {0};
    assert_int_equal(store_watch_overrides(f->store, on_note, &n), 0);
    store_t *first = f->store;
    f->store = open_store(f, STORE_SYNC_FULL);
    res_t set = {0}, del = {0}, none = {0};
    store_override_t ov = {.job = "nightly", .field = "enabled", .value = "false"};
    run_for(&f->loop, 100); /* the watcher's LISTEN is committed */
    store_override_set(f->store, &ov, on_status, &set);
    drain(f);
    assert_int_equal(set.status, 0);
    await_count(f, &n.calls, 1);
    assert_string_equal(n.last, "nightly");

    store_override_delete(f->store, "nightly", "enabled", on_status, &del);
    store_override_delete(f->store, "nightly", "schedule", on_status, &none);
    drain(f);
    assert_int_equal(del.status, 0);
    assert_int_equal(none.status, -ENOENT); /* nothing changed: no notification */
    await_count(f, &n.calls, 2);
    run_for(&f->loop, 200);
    assert_int_equal(n.calls, 2);
    assert_int_equal(n.resyncs, 1); /* once, when the first LISTEN was done */

    /* After the server restarts, the watcher listens again and is told to re-read. */
    close_store(f);
    f->store = first;
    assert_int_equal(pg_ctl("restart"), 0);
    res_t ping = {0};
    store_ping(f->store, on_status, &ping);
    drain(f);
    await_count(f, &n.resyncs, 2);
}

typedef struct events {
    int runs, instances, cancels, resyncs;
    char last_run[96], last_cancel[96];
} events_t;

static void on_event(void *ud, const char *channel, const char *payload)
{
    events_t *e = ud;
    if (channel == NULL) {
        e->resyncs++;
    } else if (strcmp(channel, STORE_CHANNEL_RUNS) == 0) {
        e->runs++;
        snprintf(e->last_run, sizeof(e->last_run), "%s", payload);
    } else if (strcmp(channel, STORE_CHANNEL_INSTANCES) == 0) {
        e->instances++;
    } else if (strcmp(channel, STORE_CHANNEL_CANCEL) == 0) {
        e->cancels++;
        snprintf(e->last_cancel, sizeof(e->last_cancel), "%s", payload);
    }
}

static void runs_heartbeats_and_cancel_requests_of_another_store_reach_a_watcher(void **state)
{
    fx_t *f = *state;
    events_t e = {0};
    assert_int_equal(store_watch_events(f->store, on_event, &e), 0);
    store_t *first = f->store;
    f->store = open_store(f, STORE_SYNC_FULL);
    run_for(&f->loop, 100); /* the watcher's LISTEN is committed */

    /* A run inserted, then updated without and with a change of status. */
    res_t ins = {0}, same = {0}, done = {0};
    run_t *r = mk_run("announced", RUN_QUEUED, "cron", 0);
    free(r->instance);
    r->instance = cv_strdup("node-b");
    store_insert_run(f->store, r, on_value, &ins);
    drain(f);
    assert_int_equal(ins.status, 0);
    await_count(f, &e.runs, 1);
    char want[96];
    snprintf(want, sizeof(want), "%lld QUEUED node-b", (long long)ins.val);
    assert_string_equal(e.last_run, want);
    r->id = ins.val;
    r->progress = 0.5;
    store_update_run(f->store, r, on_status, &same);
    r->status = RUN_SUCCESS;
    store_update_run(f->store, r, on_status, &done);
    drain(f);
    await_count(f, &e.runs, 2);
    snprintf(want, sizeof(want), "%lld SUCCESS node-b", (long long)ins.val);
    assert_string_equal(e.last_run, want);
    run_free(r);

    /* A heartbeat; a cancel request. */
    res_t hb = {0}, sent = {0};
    store_instance_t in = {.id = "node-b", .hostname = "h", .pid = 1, .version = "t"};
    store_heartbeat(f->store, &in, on_status, &hb);
    store_notify(f->store, STORE_CHANNEL_CANCEL, "{\"run\":7}", on_status, &sent);
    drain(f);
    assert_int_equal(hb.status, 0);
    assert_int_equal(sent.status, 0);
    await_count(f, &e.instances, 1);
    await_count(f, &e.cancels, 1);
    assert_string_equal(e.last_cancel, "{\"run\":7}");
    run_for(&f->loop, 200);
    assert_int_equal(e.runs, 2);    /* the update that kept the status was not announced */
    assert_int_equal(e.resyncs, 1); /* once, when the first LISTEN was done */
    close_store(f);
    f->store = first;
}

static void a_catch_up_firing_is_claimed_once_and_not_after_its_cron_firing(void **state)
{
    fx_t *f = *state;
    store_t *second = open_store(f, STORE_SYNC_FULL);
    res_t a = {0}, b = {0}, c = {0}, retry = {0};
    run_t *r = mk_run("late", RUN_QUEUED, "catch_up", 0);
    r->scheduled_for = 120000;
    store_insert_run(f->store, r, on_value, &a);
    store_insert_run(second, r, on_value, &b);
    /* a firing whose cron run was recorded is not caught up */
    run_t *cron = mk_run("late", RUN_QUEUED, "cron", 0);
    cron->scheduled_for = 180000;
    store_insert_run(f->store, cron, on_value, &c);
    drain(f);
    assert_int_equal(c.status, 0);
    r->scheduled_for = 180000;
    res_t after_cron = {0};
    store_insert_run(second, r, on_value, &after_cron);
    /* a retry of a caught-up firing is no claim */
    r->scheduled_for = 120000;
    r->attempt = 2;
    store_insert_run(second, r, on_value, &retry);
    drain(f);
    assert_true((a.status == 0 && b.status == -EEXIST) || (a.status == -EEXIST && b.status == 0));
    assert_int_equal(after_cron.status, -EEXIST);
    assert_int_equal(retry.status, 0);
    assert_int_equal(count_runs(f, "late"), 3);
    /* retention takes the claims of its age with it: the firing could be claimed again */
    res_t kept = {0}, again = {0};
    store_retention(f->store, 1, 0, on_value, &kept);
    drain(f);
    assert_int_equal(kept.status, 0);
    r->attempt = 1;
    store_insert_run(second, r, on_value, &again);
    drain(f);
    assert_int_equal(again.status, 0);
    run_free(r);
    run_free(cron);
    res_t closed = {0};
    store_close(second, on_status, &closed);
    drain(f);
}

static void two_stores_migrating_a_new_database_together_apply_each_migration_once(void **state)
{
    fx_t *f = *state;
    close_store(f);
    B->drop(f->dsn);
    free(f->dsn);
    f->dsn = B->fresh_dsn();
    store_t *one = open_store(f, STORE_SYNC_FULL), *two = open_store(f, STORE_SYNC_FULL);
    res_t a = {0}, b = {0}, ca = {0};
    store_migrate(one, on_value, &a);
    store_migrate(two, on_value, &b);
    drain(f);
    assert_int_equal(a.status, 0);
    assert_int_equal(b.status, 0);
    assert_int_equal(a.val + b.val, (int64_t)store_migration_count);
    store_close(two, on_status, &ca);
    f->store = one;
    add(f, "after-race", RUN_SUCCESS, "cron", 1);
}

/* Captures what the store logs (stderr) while fn runs. */
static char *capture_stderr(void (*fn)(fx_t *, res_t *), fx_t *f, res_t *r)
{
    char path[] = "/tmp/cv-pg-log-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    fflush(stderr);
    dup2(fd, 2);
    fn(f, r);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = cv_calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, text, (size_t)len, 0), len);
    close(fd);
    unlink(path);
    fputs(text, stderr);
    return text;
}

static const char *other_dsn; /* the database migrate_with_dsn opens */

static void migrate_with_dsn(fx_t *f, res_t *r)
{
    store_t *s = NULL;
    store_config_t cfg = {.dsn = other_dsn, .instance = "test-1"};
    assert_int_equal(store_open(&f->loop, &cfg, &s), 0);
    int64_t t0 = cv_mono_ns();
    store_migrate(s, on_value, r);
    drain(f);
    r->val = (cv_mono_ns() - t0) / 1000000; /* ms until the answer */
    res_t closed = {0};
    store_close(s, on_status, &closed);
    drain(f);
    assert_int_equal(closed.calls, 1);
}

static void a_wrong_password_fails_clearly_without_showing_the_password(void **state)
{
    fx_t *f = *state;
    assert_int_equal(admin_exec("CREATE ROLE cv_wrongpw LOGIN PASSWORD 'right-one'"), 0);
    char *dsn =
        cv_sprintf("postgresql://cv_wrongpw:Wr0ngHorseBattery@127.0.0.1:%d/postgres", pg_port);
    other_dsn = dsn;
    res_t r = {0};
    char *log = capture_stderr(migrate_with_dsn, f, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, -EACCES);
    assert_non_null(strstr(log, "password authentication failed for user \"cv_wrongpw\""));
    assert_non_null(strstr(log, "127.0.0.1"));
    assert_null(strstr(log, "Wr0ngHorseBattery"));
    free(log);
    free(dsn);
    admin_exec("DROP ROLE cv_wrongpw");
}

static void a_server_that_accepts_but_never_answers_times_out(void **state)
{
    fx_t *f = *state;
    /* The kernel completes the handshake for a listening socket nobody accepts on. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    /* A conninfo string with a host name: resolved off the loop, then connected by address. */
    char *dsn =
        cv_sprintf("host=localhost port=%d dbname=x user=y connect_timeout=1", ntohs(a.sin_port));
    other_dsn = dsn;
    res_t r = {0};
    char *log = capture_stderr(migrate_with_dsn, f, &r);
    close(fd);
    assert_int_equal(r.status, -ETIMEDOUT);
    assert_true(r.val >= 900 && r.val < 5000);
    assert_non_null(strstr(log, "no answer within 1000 ms"));
    free(log);
    free(dsn);
}

static void a_conninfo_dsn_with_a_host_name_works_like_a_uri(void **state)
{
    fx_t *f = *state;
    add(f, "via-uri", RUN_SUCCESS, "cron", 1);
    close_store(f);
    char *uri = f->dsn;
    f->dsn = cv_sprintf("host=localhost port=%d dbname=%s user=postgres", pg_port,
                        strrchr(uri, '/') + 1);
    f->store = open_store(f, STORE_SYNC_NORMAL);
    assert_int_equal(migrate(f, 0), 0);
    assert_int_equal(count_runs(f, "via-uri"), 1);
    free(f->dsn);
    f->dsn = uri;
}

static void invalid_utf8_in_output_is_stored_with_replacement_characters(void **state)
{
    fx_t *f = *state;
    run_t *r = mk_run("binary", RUN_SUCCESS, "cron", 1);
    r->output_tail = cv_strdup("ok \xff\xfe end \xc3\xa9");
    int64_t id = 0;
    assert_int_equal(insert(f, r, &id), 0);
    int st = 1;
    run_t *g = get(f, id, &st);
    assert_int_equal(st, 0);
    assert_string_equal(g->output_tail, "ok \xef\xbf\xbd\xef\xbf\xbd end \xc3\xa9");
    run_free(g);
    run_free(r);
}

static void a_failing_request_in_a_batch_fails_alone(void **state)
{
    fx_t *f = *state;
    /* A value the column cannot hold makes the batch's transaction fail; the other requests of
     * the batch are sent again one by one and succeed. */
    res_t ok1 = {0}, bad = {0}, ok2 = {0}, ovr = {0};
    run_t *r = mk_run("mixed", RUN_SUCCESS, "cron", 1);
    store_insert_run(f->store, r, on_value, &ok1);
    store_override_t ov = {"mixed", "enabled", "true", 0, "bob"};
    store_override_set(f->store, &ov, on_status, &ovr);
    r->exit_code = 255;
    r->scheduled_for = 2;
    store_insert_run(f->store, r, on_value, &bad);
    r->exit_code = 0;
    r->scheduled_for = 3;
    store_insert_run(f->store, r, on_value, &ok2);
    run_free(r);
    /* Nothing was sent yet: the requests above go out together once the loop runs. */
    assert_int_equal(B->raw_exec(f->dsn, "ALTER TABLE runs ADD CONSTRAINT small_exit"
                                         " CHECK (exit_code < 100)"),
                     0);
    uint64_t commits = store_commits(f->store);
    drain(f);
    assert_int_equal(ok1.status, 0);
    assert_int_equal(ovr.status, 0);
    assert_int_equal(bad.status, -EINVAL);
    assert_int_equal(ok2.status, 0);
    assert_int_equal(count_runs(f, "mixed"), 2);
    assert_int_equal(store_commits(f->store) - commits, 3); /* one by one after the rollback */
}

/* ---- multi-row inserts ---- */

static int sql_value_is(fx_t *f, const char *sql, long long want);

/* Counts the INSERT statements run on the runs table (a statement-level trigger). */
static void count_insert_statements(fx_t *f)
{
    assert_int_equal(
        B->raw_exec(f->dsn,
                    "CREATE TABLE cv_statements (n INTEGER);"
                    " CREATE FUNCTION cv_count_statement() RETURNS trigger LANGUAGE plpgsql AS"
                    " $f$ BEGIN INSERT INTO cv_statements VALUES (1); RETURN NULL; END $f$;"
                    " CREATE TRIGGER cv_statements AFTER INSERT ON runs FOR EACH STATEMENT"
                    " EXECUTE FUNCTION cv_count_statement()"),
        0);
}

/* The text of run i of the burst: what an array literal must quote or escape, NULL, "NULL". */
static void tricky_texts(run_t *r, int i)
{
    static const char *const texts[] = {"NULL", "", "back\\slash \"quoted\" {a,b}, c\n\ttab",
                                        "  spaces  ", "\xc3\xa9t\xc3\xa9 \\\" }{ ,"};
    free(r->output_tail);
    r->output_tail = i % 7 == 6 ? NULL : cv_strdup(texts[i % 5]);
    free(r->error);
    r->error = i % 3 == 0 ? NULL : cv_strdup(texts[(i + 2) % 5]);
}

static void a_burst_of_inserts_is_one_statement_and_each_request_gets_its_own_row(void **state)
{
    fx_t *f = *state;
    count_insert_statements(f);
    enum { N = 300 };
    res_t r[N] = {{0}};
    run_t *runs[N];
    for (int i = 0; i < N; i++) {
        runs[i] = run_new(NULL, NULL);
        runf_fill(runs[i], i + 1);
        tricky_texts(runs[i], i);
        store_insert_run(f->store, runs[i], on_value, &r[i]);
    }
    drain(f);
    /* one statement for the whole burst (at most STORE_PG_FOLD_MAX rows each) */
    assert_int_equal(sql_value_is(f, "SELECT COUNT(*) FROM cv_statements", 1), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, 0);
        if (i > 0)
            assert_true(r[i].val > r[i - 1].val); /* ids in the order of the requests */
    }
    for (int i = 0; i < N; i++) {
        int st = 1;
        run_t *g = get(f, r[i].val, &st);
        assert_int_equal(st, 0);
        runs[i]->id = r[i].val;
        char **texts[][2] = {{&g->output_tail, &runs[i]->output_tail},
                             {&g->error, &runs[i]->error}};
        for (size_t k = 0; k < CV_ARRAY_SIZE(texts); k++) {
            if (*texts[k][1] != NULL)
                continue;
            assert_null(*texts[k][0]); /* NULL stays NULL, not the text "NULL" */
            *texts[k][0] = cv_strdup("-");
            *texts[k][1] = cv_strdup("-");
        }
        runf_assert_equal(g, runs[i]);
        run_free(g);
        run_free(runs[i]);
    }
    assert_int_equal(count_runs(f, "{\"field\": \"job\", \"seed\": 1, \"t\": \"\\u00e9\"}"), 1);
}

static void conflicting_claims_in_one_statement_are_answered_each(void **state)
{
    fx_t *f = *state;
    add(f, "claims", RUN_QUEUED, "cron", 60000); /* a firing claimed before */
    count_insert_statements(f);
    enum { N = 12 };
    res_t r[N] = {{0}};
    struct {
        const char *trigger;
        int64_t sched, id;
        int want;
    } req[N] = {
        {"cron", 60000, 0, -EEXIST},      /* claimed by an earlier statement */
        {"api:ops", 60000, 0, 0},         /* not a claim */
        {"cron", 120000, 0, 0},           /* wins... */
        {"cron", 120000, 0, -EEXIST},     /* ...over this one in the same batch */
        {"catch_up", 180000, 0, 0},       /* claimed in firing_claims */
        {"catch_up", 180000, 0, -EEXIST}, /* the loser of that claim */
        {"cron", 180000, 0, 0},        /* a cron run of the caught-up firing: a claim of its own */
        {"api:ops", 1, 5000, 0},       /* an explicit id... */
        {"api:ops", 2, 5000, -EEXIST}, /* ...taken */
        {"api:ops", 3, 0, 0},          /* an automatic id above it */
        {"cron", 240000, 0, 0},
        {"cron", 240000, 7000, -EEXIST}, /* the same firing under an explicit id */
    };
    for (int i = 0; i < N; i++) {
        run_t *run = mk_run("claims", RUN_QUEUED, req[i].trigger, req[i].sched);
        run->id = req[i].id;
        store_insert_run(f->store, run, on_value, &r[i]);
        run_free(run);
    }
    drain(f);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].calls, 1);
        if (r[i].status != req[i].want)
            fail_msg("request %d (%s at %lld): status %d, not %d", i, req[i].trigger,
                     (long long)req[i].sched, r[i].status, req[i].want);
    }
    assert_int_equal(r[7].val, 5000);
    assert_true(r[9].val > 5000);
    assert_int_equal(count_runs(f, "claims"), 1 + 7);
    /* fewer statements than requests: the plain inserts between the claims were folded */
    assert_int_equal(sql_value_is(f, "SELECT (COUNT(*) < 12)::int FROM cv_statements", 1), 0);
}

static void two_stores_claiming_in_opposite_orders_claim_each_firing_once(void **state)
{
    fx_t *f = *state;
    store_t *first = f->store;
    store_t *second = open_store(f, STORE_SYNC_FULL);
    enum { N = 200 };
    res_t a[N] = {{0}}, b[N] = {{0}}, pa = {0}, pb = {0};
    store_ping(first, on_status, &pa); /* both connected: their statements overlap */
    store_ping(second, on_status, &pb);
    drain(f);
    run_t *r = mk_run("opposite", RUN_QUEUED, "cron", 0);
    for (int i = 0; i < N; i++) {
        r->scheduled_for = 60000 * (i + 1);
        store_insert_run(first, r, on_value, &a[i]);
        r->scheduled_for = 60000 * (N - i);
        store_insert_run(second, r, on_value, &b[N - 1 - i]);
    }
    run_free(r);
    drain(f); /* a deadlock between the two statements fails one batch: retried one by one */
    int wins = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(a[i].calls + b[i].calls, 2);
        assert_true((a[i].status == 0 && b[i].status == -EEXIST) ||
                    (a[i].status == -EEXIST && b[i].status == 0));
        wins += a[i].status == 0;
    }
    print_message("first store won %d of %d firings\n", wins, N);
    assert_int_equal(count_runs(f, "opposite"), N);
    res_t closed = {0};
    store_close(second, on_status, &closed);
    drain(f);
    f->store = first;
}

/* ---- the outage spool ---- */

static uint64_t spool_max; /* for open_spooled; 0: no bound */

static store_t *open_spooled(fx_t *f, const char *path)
{
    store_config_t cfg = {
        .dsn = f->dsn, .instance = "spooler", .spool_path = path, .spool_max = spool_max};
    store_t *s = NULL;
    assert_int_equal(store_open(&f->loop, &cfg, &s), 0);
    return s;
}

static store_state_t state_of(store_t *s)
{
    store_state_t st;
    store_get_state(s, &st);
    return st;
}

/* Runs the loop until s is in state h, for at most 15 s (the reconnect backoff is 5 s). */
static void await_health(fx_t *f, store_t *s, store_health_t h)
{
    for (int waited = 0; state_of(s).health != h && waited < 15000; waited += 20)
        run_for(&f->loop, 20);
    assert_int_equal(state_of(s).health, h);
}

static void until_called(fx_t *f, const res_t *r)
{
    while (r->calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

typedef struct states {
    int calls;
    store_state_t last;
} states_t;

static void on_state(void *ud, const store_state_t *st)
{
    states_t *n = ud;
    n->calls++;
    n->last = *st;
}

static void
writes_during_an_outage_are_spooled_and_written_back_in_order_after_a_restart(void **state)
{
    fx_t *f = *state;
    char dir[] = "/tmp/cv-pg-spool-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = cv_sprintf("%s/spool.log", dir);
    store_t *main_store = f->store;
    f->store = open_spooled(f, path);
    states_t seen = {0};
    assert_int_equal(store_watch_state(f->store, on_state, &seen), 0);
    assert_int_equal(migrate(f, 0), 0); /* the first connection creates the spool */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    int64_t before = add(f, "spooled", RUN_SUCCESS, "cron", 1000);

    assert_int_equal(pg_ctl("stop"), 0);
    res_t ping = {0}, claim = {0}, ins = {0}, upd = {0}, retry = {0}, ov = {0}, au = {0};
    store_ping(f->store, on_status, &ping);
    until_called(f, &ping);
    assert_int_equal(ping.status, -EAGAIN); /* reads fail at once once degraded */
    assert_int_equal(state_of(f->store).health, STORE_DEGRADED);
    assert_int_equal(seen.last.health, STORE_DEGRADED);

    /* A claim is never spooled; a run with a provisional id is, and so are its updates. */
    run_t *r = mk_run("spooled", RUN_QUEUED, "cron", 2000);
    store_claim_run(f->store, r, on_value, &claim);
    r->id = -1;
    r->status = RUN_RUNNING;
    store_insert_run(f->store, r, on_value, &ins);
    r->status = RUN_FAILED;
    r->exit_code = 3;
    r->finished_at = 2500;
    r->output_tail = cv_strdup("real output");
    store_update_run(f->store, r, on_status, &upd);
    run_t *rt = mk_run("spooled", RUN_SUCCESS, "retry", 2000);
    rt->id = -2;
    rt->attempt = 2;
    rt->retry_of = -1;
    store_insert_run(f->store, rt, on_value, &retry);
    store_override_t o = {.job = "spooled", .field = "enabled", .value = "false"};
    store_override_set(f->store, &o, on_status, &ov);
    store_audit_t a = {.actor = "ops", .action = "job.disabled", .job = "spooled"};
    store_audit_append(f->store, &a, on_value, &au);
    drain(f); /* answered from the spool, the server still down */
    assert_int_equal(claim.status, -EAGAIN);
    assert_int_equal(ins.status, 0);
    assert_int_equal(ins.val, -1);
    assert_int_equal(upd.status, 0);
    assert_int_equal(retry.status, 0);
    assert_int_equal(ov.status, 0);
    assert_int_equal(au.status, 0);
    assert_int_equal(state_of(f->store).spooled, 5);
    assert_int_equal(seen.last.spooled, 5);
    page_t pg;
    store_run_filter_t flt = {.job = "spooled"};
    query(f, &flt, &pg);
    assert_int_equal(pg.status, -EAGAIN);

    /* The daemon restarts during the outage: the new store starts degraded on the same spool;
     * its provisional ids start again at -1 under a new key. */
    close_store(f);
    f->store = open_spooled(f, path);
    res_t m = {0}, ins2 = {0};
    store_migrate(f->store, on_value, &m);
    until_called(f, &m);
    assert_int_equal(m.status, 0);
    assert_int_equal(state_of(f->store).health, STORE_DEGRADED);
    assert_int_equal(state_of(f->store).spooled, 5);
    r->id = -1;
    r->scheduled_for = 3000;
    r->status = RUN_SUCCESS;
    r->exit_code = 0;
    store_insert_run(f->store, r, on_value, &ins2);
    until_called(f, &ins2);
    assert_int_equal(ins2.status, 0);
    assert_int_equal(state_of(f->store).spooled, 6);

    assert_int_equal(pg_ctl("start"), 0);
    await_health(f, f->store, STORE_UP);
    drain(f);
    assert_int_equal(state_of(f->store).spooled, 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, SPOOL_HEADER_SIZE);

    /* In the database, in the order they were made, with the final record of each. */
    query(f, &flt, &pg);
    assert_int_equal(pg.status, 0);
    assert_int_equal(pg.count, 4);
    int64_t ids[4];
    for (int i = 0; i < 4; i++)
        ids[i] = pg.ids[3 - i]; /* oldest first */
    assert_int_equal(ids[0], before);
    int gs;
    run_t *g = get(f, ids[1], &gs);
    assert_int_equal(g->status, RUN_FAILED);
    assert_int_equal(g->exit_code, 3);
    assert_int_equal(g->scheduled_for, 2000);
    assert_int_equal(g->finished_at, 2500);
    assert_string_equal(g->output_tail, "real output");
    run_free(g);
    g = get(f, ids[2], &gs);
    assert_string_equal(g->trigger, "retry");
    assert_int_equal(g->retry_of, ids[1]); /* the provisional id resolved by key */
    run_free(g);
    g = get(f, ids[3], &gs);
    assert_int_equal(g->scheduled_for, 3000);
    assert_int_equal(g->status, RUN_SUCCESS);
    run_free(g);
    assert_true(ids[0] < ids[1] && ids[1] < ids[2] && ids[2] < ids[3]);

    run_free(r);
    run_free(rt);
    close_store(f);
    f->store = main_store;
    unlink(path);
    rmdir(dir);
    free(path);
}

static void spool_until_full(fx_t *f, res_t *r)
{
    run_t *run = mk_run("full", RUN_SUCCESS, "api:ops", 1);
    for (int i = 0; i < 50; i++) {
        run->id = -(i + 1);
        run->scheduled_for = 1000 + i;
        store_insert_run(f->store, run, on_value, &r[i]);
    }
    run_free(run);
    drain(f);
}

static void a_full_spool_refuses_records_with_one_logged_error_and_keeps_the_rest(void **state)
{
    fx_t *f = *state;
    char dir[] = "/tmp/cv-pg-spool-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = cv_sprintf("%s/spool.log", dir);
    store_t *main_store = f->store;
    spool_max = 4096; /* room for a handful of runs */
    f->store = open_spooled(f, path);
    spool_max = 0;
    assert_int_equal(migrate(f, 0), 0);
    assert_int_equal(pg_ctl("stop"), 0);
    res_t ping = {0};
    store_ping(f->store, on_status, &ping);
    until_called(f, &ping);
    res_t r[50] = {{0}};
    char *log = capture_stderr(spool_until_full, f, r);
    int ok = 0;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(r[i].calls, 1);
        if (r[i].status == 0)
            assert_int_equal(ok++, i); /* the first ones fit, then nothing */
        else
            assert_int_equal(r[i].status, -ENOSPC);
    }
    assert_true(ok > 0 && ok < 50);
    store_state_t st = state_of(f->store);
    assert_int_equal(st.spooled, (uint64_t)ok);
    assert_int_equal(st.dropped, (uint64_t)(50 - ok));
    assert_true(st.spool_bytes + SPOOL_HEADER_SIZE <= 4096);
    char *first = strstr(log, "is full (storage.spool_max: 4096 bytes)");
    assert_non_null(first);
    assert_null(strstr(first + 1, "is full")); /* said once */
    free(log);

    assert_int_equal(pg_ctl("start"), 0);
    await_health(f, f->store, STORE_UP);
    drain(f);
    assert_int_equal(count_runs(f, "full"), ok);
    close_store(f);
    f->store = main_store;
    unlink(path);
    rmdir(dir);
    free(path);
}

/* 0 when the SQL's single value is want (a DO block raising otherwise). */
static int sql_value_is(fx_t *f, const char *sql, long long want)
{
    char *check = cv_sprintf("DO $$ BEGIN IF (%s) IS DISTINCT FROM %lld THEN RAISE EXCEPTION"
                             " 'not %lld'; END IF; END $$",
                             sql, want, want);
    int rc = B->raw_exec(f->dsn, check);
    free(check);
    return rc;
}

/* Two daemons write the same job's runs at once: the triggers only append deltas (one per run
 * that ends), a reader folds them into job_counts, and the counts stay exact before and after
 * the fold. */
static void counts_of_two_stores_writing_at_once_stay_exact_and_are_folded(void **state)
{
    fx_t *f = *state;
    store_t *first = f->store;
    store_t *second = open_store(f, STORE_SYNC_FULL);
    enum { N = 100 };
    res_t a[N] = {{0}}, b[N] = {{0}};
    run_t *r = mk_run("x", RUN_RUNNING, "api:x", 0);
    for (int i = 0; i < N; i++) {
        store_insert_run(first, r, on_value, &a[i]);
        store_insert_run(second, r, on_value, &b[i]);
    }
    drain(f);
    for (int i = 0; i < N; i++) {
        assert_int_equal(a[i].status + b[i].status, 0);
        r->id = i % 2 ? a[i].val : b[i].val;
        r->status = i % 4 == 1 ? RUN_FAILED : RUN_SUCCESS;
        store_update_run(i % 3 ? first : second, r, on_status, &a[i]);
    }
    drain(f);
    assert_int_equal(sql_value_is(f, "SELECT COUNT(*) FROM job_count_deltas", N), 0);
    store_job_stats_t s = stats_of(f, "x"); /* the first read of this store folds */
    assert_int_equal(s.runs, N);            /* the other N still run */
    assert_int_equal(s.failures, N / 4);
    assert_int_equal(s.successes, N - N / 4);
    assert_int_equal(sql_value_is(f, "SELECT COUNT(*) FROM job_count_deltas", 0), 0);
    assert_int_equal(sql_value_is(f, "SELECT SUM(n) FROM job_counts WHERE job = 'x'", N), 0);
    r->status = RUN_PARTIAL;
    r->id = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(insert(f, r, NULL), 0);
    s = stats_of(f, "x"); /* not folded again so soon: the deltas are counted */
    assert_int_equal(s.runs, N + 3);
    assert_int_equal(s.partials, 3);
    assert_int_equal(sql_value_is(f, "SELECT COUNT(*) FROM job_count_deltas", 3), 0);
    run_free(r);
    res_t closed = {0};
    store_close(second, on_status, &closed);
    drain(f);
    f->store = first;
}

/* The counts of job_counts plus job_count_deltas are those of the finished runs, job by job and
 * status by status. */
static int counts_match_the_runs(fx_t *f)
{
    return sql_value_is(
        f,
        "SELECT COUNT(*) FROM (SELECT job, status, SUM(n) AS n FROM (SELECT job, status, n FROM"
        " job_counts UNION ALL SELECT job, status, d FROM job_count_deltas) c GROUP BY job, status"
        " HAVING SUM(n) <> 0) a FULL JOIN (SELECT job, status, COUNT(*) AS n FROM runs WHERE"
        " status NOT IN ('QUEUED', 'RUNNING') GROUP BY job, status) b USING (job, status)"
        " WHERE a.n IS DISTINCT FROM b.n",
        0);
}

/* Migration 9: the runs' insert and delete triggers fire once per statement. A multi-row insert,
 * updates of many rows (the abandon of a dead daemon's runs; runs moved to another job and status)
 * and a retention delete keep the counts exact, and each run inserted or changing status is
 * announced once, "<id> <status> <instance>". */
static void statement_triggers_keep_counts_and_announcements_of_many_rows_exact(void **state)
{
    fx_t *f = *state;
    events_t e = {0};
    assert_int_equal(store_watch_events(f->store, on_event, &e), 0);
    run_for(&f->loop, 100); /* the watcher's LISTEN is committed */
    int64_t now = cv_now_ms();
    enum { N = 300 };
    burst(f, "m", RUN_SUCCESS, now - 30 * T_DAY, N);
    burst(f, "m", RUN_RUNNING, now, N);
    burst(f, "k", RUN_FAILED, now, 10);
    /* one delta for the N runs of the statement (a burst is one statement), not N */
    assert_int_equal(sql_value_is(f, "SELECT COUNT(*) FROM job_count_deltas WHERE job = 'm'", 1),
                     0);
    assert_int_equal(counts_match_the_runs(f), 0);
    store_job_stats_t s = stats_of(f, "m");
    assert_int_equal(s.runs, N);
    assert_int_equal(s.successes, N);
    await_count(f, &e.runs, 2 * N + 10);
    assert_non_null(strstr(e.last_run, " FAILED "));

    assert_int_equal(count_op(f, abandon, 0), N); /* one UPDATE of N rows */
    assert_int_equal(counts_match_the_runs(f), 0);
    assert_int_equal(stats_of(f, "m").runs, 2 * N);
    await_count(f, &e.runs, 3 * N + 10);
    /* 100 of them to another job and status; then a change of neither, announced nowhere */
    assert_int_equal(B->raw_exec(f->dsn, "UPDATE runs SET job = 'k', status = 'TIMED_OUT' WHERE"
                                         " id IN (SELECT id FROM runs WHERE status = 'ABANDONED'"
                                         " ORDER BY id LIMIT 100);"
                                         " UPDATE runs SET progress = 0.5, job = job"),
                     0);
    assert_int_equal(counts_match_the_runs(f), 0);
    s = stats_of(f, "k");
    assert_int_equal(s.runs, 110);
    assert_int_equal(s.failures, 110);
    assert_int_equal(stats_of(f, "m").runs, 2 * N - 100);
    await_count(f, &e.runs, 3 * N + 110);
    assert_non_null(strstr(e.last_run, " TIMED_OUT "));

    assert_int_equal(count_op(f, retention_7_days, 0), N); /* the old successes */
    assert_int_equal(counts_match_the_runs(f), 0);
    s = stats_of(f, "m");
    assert_int_equal(s.runs, N - 100);
    assert_int_equal(s.successes, 0);
    assert_int_equal(stats_of(f, "k").runs, 110);
    assert_int_equal(sql_value_is(f, "SELECT COUNT(*) FROM job_counts WHERE n < 0", 0), 0);
    run_for(&f->loop, 300);
    assert_int_equal(e.runs, 3 * N + 110); /* nothing more: deletes and progress are not news */
}

int main(void)
{
    if (pg_server_start() != 0) {
        fprintf(stderr,
                "store_pg_test: cannot start PostgreSQL 15 from " PG_BIN " (see %s/*.log)\n",
                pg_dir);
        return 1;
    }
    if (getenv("CV_TEST_FILTER")) /* e.g. CV_TEST_FILTER='*restart*' */
        cmocka_set_test_filter(getenv("CV_TEST_FILTER"));
    if (getenv("CV_TEST_DEBUG"))
        cv_log_setup(CV_LOG_DEBUG, false);
    int failed = run_suite(&pg_backend);
    const struct CMUnitTest pg_tests[] = {
        cmocka_unit_test_setup_teardown(
            requests_made_while_the_server_restarts_complete_once_it_is_back, setup, teardown),
        cmocka_unit_test_setup_teardown(two_stores_racing_for_many_firings_claim_each_exactly_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            two_stores_migrating_a_new_database_together_apply_each_migration_once, setup,
            teardown),
        cmocka_unit_test_setup_teardown(a_wrong_password_fails_clearly_without_showing_the_password,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_server_that_accepts_but_never_answers_times_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_conninfo_dsn_with_a_host_name_works_like_a_uri, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            invalid_utf8_in_output_is_stored_with_replacement_characters, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failing_request_in_a_batch_fails_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_burst_of_inserts_is_one_statement_and_each_request_gets_its_own_row, setup, teardown),
        cmocka_unit_test_setup_teardown(conflicting_claims_in_one_statement_are_answered_each,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            two_stores_claiming_in_opposite_orders_claim_each_firing_once, setup, teardown),
        cmocka_unit_test_setup_teardown(
            counts_of_two_stores_writing_at_once_stay_exact_and_are_folded, setup, teardown),
        cmocka_unit_test_setup_teardown(
            statement_triggers_keep_counts_and_announcements_of_many_rows_exact, setup, teardown),

        cmocka_unit_test_setup_teardown(
            runs_heartbeats_and_cancel_requests_of_another_store_reach_a_watcher, setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_catch_up_firing_is_claimed_once_and_not_after_its_cron_firing, setup, teardown),
        cmocka_unit_test_setup_teardown(override_changes_made_by_another_store_reach_a_watcher,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            writes_during_an_outage_are_spooled_and_written_back_in_order_after_a_restart, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            a_full_spool_refuses_records_with_one_logged_error_and_keeps_the_rest, setup, teardown),
    };
    failed += cmocka_run_group_tests_name("postgres-specific", pg_tests, NULL, NULL);
    pg_server_stop();
    return failed;
}
