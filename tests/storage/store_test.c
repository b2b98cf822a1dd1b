/* The store suite (store_suite.h) against the SQLite backend, on temporary files. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* unshare */
#endif
#include "store_suite.h"
#include "storage/store_sqlite_int.h"

#include <ftw.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include <unistd.h>

static char *sqlite_fresh_dsn(void)
{
    char dir[] = "/tmp/cv-store-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* Two missing levels: open must create the parent directories. */
    return cv_sprintf("%s/state/db/cronvisor.db", dir);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void sqlite_drop(const char *dsn)
{
    char *root = cv_strdup(dsn);
    *strstr(root, "/state/") = '\0';
    nftw(root, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(root);
}

static int sqlite_raw_exec(const char *dsn, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(dsn, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static const store_backend_t sqlite_backend = {
    .name = "sqlite",
    .fresh_dsn = sqlite_fresh_dsn,
    .drop = sqlite_drop,
    .raw_exec = sqlite_raw_exec,
    .drop_run_counts = "DROP TRIGGER runs_count_delete; DROP TABLE job_counts;",
};

/* ---- SQLite only ---- */

typedef struct {
    fx_t *f;
    uv_idle_t idle;
    int passes;
    res_t res[10];
    int64_t first_answer_ns; /* when the first of them was answered */
} spread_t;

static void on_spread_value(void *ud, int status, int64_t v)
{
    res_t *r = ud;
    spread_t *sp = cv_container_of(r, spread_t, res[0]);
    if (r == &sp->res[0])
        sp->first_answer_ns = cv_mono_ns();
    on_value(ud, status, v);
}

/* One insert per loop pass. */
static void on_pass(uv_idle_t *h)
{
    spread_t *sp = h->data;
    run_t *r = mk_run("grouped", RUN_SUCCESS, "cron", 1000 + sp->passes);
    store_insert_run(sp->f->store, r, sp->passes ? on_value : on_spread_value,
                     &sp->res[sp->passes]);
    run_free(r);
    if (++sp->passes == (int)CV_ARRAY_SIZE(sp->res)) {
        uv_idle_stop(h);
        uv_close((uv_handle_t *)h, NULL);
    }
}

/* Group commit: a write that follows a commit waits until STORE_SQLITE_GROUP_NS after that
 * batch began, and the writes of the passes meanwhile share its transaction. */
static void writes_after_a_commit_wait_and_share_the_next_one(void **state)
{
    fx_t *f = *state;
    uint64_t before = store_commits(f->store);
    int64_t t0 = cv_mono_ns();
    add(f, "grouped", RUN_SUCCESS, "cron", 999); /* its batch begins after t0 */
    spread_t sp = {.f = f};
    uv_idle_init(&f->loop, &sp.idle);
    sp.idle.data = &sp;
    uv_idle_start(&sp.idle, on_pass);
    drain(f);
    for (size_t i = 0; i < CV_ARRAY_SIZE(sp.res); i++) {
        assert_int_equal(sp.res[i].calls, 1);
        assert_int_equal(sp.res[i].status, 0);
    }
    assert_true(sp.first_answer_ns - t0 >= STORE_SQLITE_GROUP_NS);
    uint64_t used = store_commits(f->store) - before;
    assert_true(used >= 2);
    assert_true(used <= 3); /* 2 but on a machine so slow the passes span the window */
}

/* ---- storage failures (issue 13) ---- */

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

static store_state_t state_of(store_t *s)
{
    store_state_t st;
    store_get_state(s, &st);
    return st;
}

/* Runs the loop until the store is in state h, for at most 20 s (the retry backoff is 5 s). */
static void await_health(fx_t *f, store_health_t h)
{
    for (int waited = 0; state_of(f->store).health != h && waited < 20000; waited += 20)
        run_for(&f->loop, 20);
    assert_int_equal(state_of(f->store).health, h);
}

typedef struct states {
    int calls;
    int degraded;
    store_state_t last;
} states_t;

static void on_state(void *ud, const store_state_t *st)
{
    states_t *n = ud;
    n->calls++;
    n->degraded += st->health == STORE_DEGRADED;
    n->last = *st;
}

/* Reopens the fixture's store with a short busy timeout and a small held queue. */
static void reopen_impatient(fx_t *f, size_t pending_max)
{
    close_store(f);
    store_config_t cfg = {
        .dsn = f->dsn, .instance = "test-1", .busy_timeout_ms = 20, .pending_max = pending_max};
    assert_int_equal(store_open(&f->loop, &cfg, &f->store), 0);
    migrate(f, 0);
}

static void run_ops(fx_t *f, run_t *r, res_t *ins, res_t *upd)
{
    r->status = RUN_RUNNING;
    store_insert_run(f->store, r, on_value, ins);
    r->status = RUN_SUCCESS;
    r->finished_at = r->started_at + 100;
    store_update_run(f->store, r, on_status, upd);
}

/* Another process holds the write lock longer than the busy timeout: the writes fail (SQLITE_BUSY,
 * the same path as SQLITE_FULL or an I/O error). The store says so, keeps them, shows the final
 * state of the run meanwhile, and writes them once the lock is released. */
static void a_failed_write_degrades_the_store_and_is_written_when_it_recovers(void **state)
{
    fx_t *f = *state;
    reopen_impatient(f, 0);
    states_t seen = {0};
    assert_int_equal(store_watch_state(f->store, on_state, &seen), 0);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    run_t *r = mk_run("held", RUN_RUNNING, "cron", 5000);
    r->id = 77;
    res_t ins = {0}, upd = {0}, ping = {0}, au = {0};
    run_ops(f, r, &ins, &upd);
    drain(f);
    assert_int_equal(ins.status, 0); /* accepted: held */
    assert_int_equal(ins.val, 77);
    assert_int_equal(upd.status, 0);
    assert_int_equal(state_of(f->store).health, STORE_DEGRADED);
    assert_true(seen.degraded >= 1);
    assert_int_equal(seen.last.spooled, 2);
    store_ping(f->store, on_status, &ping);
    drain(f);
    assert_int_equal(ping.status, -EBUSY); /* not ready while writes fail */
    /* A write made while degraded waits behind the held ones. */
    store_audit_t a = {.actor = "ops", .action = "job.disabled", .job = "held"};
    store_audit_append(f->store, &a, on_value, &au);
    drain(f);
    assert_int_equal(au.status, 0);
    assert_int_equal(state_of(f->store).spooled, 3);
    /* Reads show the run as it ended, not RUNNING. */
    int status = 0;
    run_t *got = get(f, 77, &status);
    assert_int_equal(status, 0);
    assert_int_equal(got->status, RUN_SUCCESS);
    run_free(got);

    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    await_health(f, STORE_UP);
    assert_int_equal(seen.last.health, STORE_UP);
    assert_int_equal(seen.last.spooled, 0);
    got = get(f, 77, &status);
    assert_int_equal(status, 0);
    assert_int_equal(got->status, RUN_SUCCESS);
    assert_int_equal(got->finished_at, r->finished_at);
    run_free(got);
    ping = (res_t){0};
    store_ping(f->store, on_status, &ping);
    drain(f);
    assert_int_equal(ping.status, 0);
    assert_int_equal(count_runs(f, "held"), 1);
    run_free(r);
}

/* Past storage.pending_max, writes are refused and counted as dropped. */
static void writes_past_the_held_limit_are_refused_and_counted(void **state)
{
    fx_t *f = *state;
    reopen_impatient(f, 3);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    res_t ins[5] = {{0}};
    for (int i = 0; i < 5; i++) {
        run_t *r = mk_run("bounded", RUN_SUCCESS, "cron", 1000 + i);
        r->id = 100 + i;
        store_insert_run(f->store, r, on_value, &ins[i]);
        run_free(r);
        drain(f);
    }
    int refused = 0;
    for (int i = 0; i < 5; i++)
        refused += ins[i].status != 0;
    assert_int_equal(refused, 2);
    assert_int_equal(state_of(f->store).spooled, 3);
    assert_int_equal(state_of(f->store).dropped, 2);
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    await_health(f, STORE_UP);
    assert_int_equal(count_runs(f, "bounded"), 3);
}

/* A close while writes are held tries them once more and closes whatever the outcome. */
static void a_close_while_writes_are_held_completes(void **state)
{
    fx_t *f = *state;
    reopen_impatient(f, 0);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    run_t *r = mk_run("lost", RUN_SUCCESS, "cron", 1000);
    r->id = 5;
    res_t ins = {0};
    store_insert_run(f->store, r, on_value, &ins);
    run_free(r);
    drain(f);
    assert_int_equal(ins.status, 0);
    assert_int_equal(state_of(f->store).spooled, 1);
    close_store(f); /* the held write fails once more: logged as lost */
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    f->store = open_store(f, STORE_SYNC_FULL);
    migrate(f, 0);
    assert_int_equal(count_runs(f, "lost"), 0);
}

/* With a spool, held writes survive a stop: the next start writes them first, after the
 * migration (the same spool file format as PostgreSQL's outage spool). */
static void held_writes_in_the_spool_are_written_by_the_next_start(void **state)
{
    fx_t *f = *state;
    char *spool = cv_sprintf("%s.spool", f->dsn);
    close_store(f);
    store_config_t cfg = {
        .dsn = f->dsn, .instance = "test-1", .busy_timeout_ms = 20, .spool_path = spool};
    assert_int_equal(store_open(&f->loop, &cfg, &f->store), 0);
    migrate(f, 0);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(f->dsn, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    run_t *r = mk_run("spooled", RUN_RUNNING, "cron", 1000);
    r->id = 9;
    res_t ins = {0}, upd = {0}, ov = {0};
    run_ops(f, r, &ins, &upd);
    store_override_t o = {.job = "spooled", .field = "enabled", .value = "false"};
    store_override_set(f->store, &o, on_status, &ov);
    drain(f);
    assert_int_equal(ins.status + upd.status + ov.status, 0);
    assert_int_equal(state_of(f->store).spooled, 3);
    close_store(f); /* they fail once more: the spool keeps them */
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);

    assert_int_equal(store_open(&f->loop, &cfg, &f->store), 0);
    assert_int_equal(state_of(f->store).spooled, 3);
    close_store(f); /* closed before the migration: they wait for the next start */
    assert_int_equal(store_open(&f->loop, &cfg, &f->store), 0);
    assert_int_equal(state_of(f->store).spooled, 3);
    migrate(f, 0);
    await_health(f, STORE_UP);
    int status = 0;
    run_t *got = get(f, 9, &status);
    assert_int_equal(status, 0);
    assert_int_equal(got->status, RUN_SUCCESS);
    run_free(got);
    run_free(r);
    close_store(f);
    struct stat st;
    assert_int_equal(stat(spool, &st), 0);
    assert_int_equal(st.st_size, SPOOL_HEADER_SIZE); /* emptied once written */
    assert_int_equal(store_open(&f->loop, &cfg, &f->store), 0);
    assert_int_equal(state_of(f->store).spooled, 0);
    migrate(f, 0);
    free(spool);
}

/* The database file is removed while the daemon runs (rm cronvisor.db): the next write notices,
 * restores the file from the open handle, and no run is lost, after a restart too. */
static void a_database_file_deleted_while_in_use_is_restored_with_its_history(void **state)
{
    fx_t *f = *state;
    add(f, "kept", RUN_SUCCESS, "cron", 1000);
    assert_int_equal(unlink(f->dsn), 0);
    add(f, "kept", RUN_SUCCESS, "cron", 2000);
    struct stat st;
    assert_int_equal(stat(f->dsn, &st), 0);
    close_store(f);
    f->store = open_store(f, STORE_SYNC_FULL);
    assert_int_equal(migrate(f, 0), 0); /* the restored file has the whole schema */
    assert_int_equal(count_runs(f, "kept"), 2);
}

/* The file is replaced by another one (a backup restored over it): the store takes the new file,
 * migrates it when needed, and writes go there. */
static void a_database_file_replaced_while_in_use_is_taken_over(void **state)
{
    fx_t *f = *state;
    add(f, "old", RUN_SUCCESS, "cron", 1000);
    char *tmp = cv_sprintf("%s.new", f->dsn);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(tmp, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE x (a)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(rename(tmp, f->dsn), 0);
    free(tmp);
    add(f, "new", RUN_SUCCESS, "cron", 2000);
    assert_int_equal(state_of(f->store).health, STORE_UP);
    close_store(f);
    f->store = open_store(f, STORE_SYNC_FULL);
    assert_int_equal(migrate(f, 0), 0);
    assert_int_equal(count_runs(f, "new"), 1);
    assert_int_equal(count_runs(f, "old"), 0);
}

/* A real full disk: the database on a 1 MiB tmpfs (a private mount namespace; skipped where
 * mounting is not permitted). Writes fail with SQLITE_FULL, are held, and are written once room
 * is made. */
static void a_full_disk_degrades_the_store_and_nothing_is_lost_once_room_is_made(void **state)
{
    fx_t *f = *state;
    char dir[] = "/tmp/cv-full-XXXXXX";
    assert_non_null(mkdtemp(dir));
    if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", dir, "tmpfs", 0, "size=1m") != 0) {
        rmdir(dir);
        skip(); /* "mounting a tmpfs is not permitted here" */
    }
    close_store(f);
    char *dsn = cv_sprintf("%s/cronvisor.db", dir), *filler = cv_sprintf("%s/filler", dir);
    store_config_t cfg = {.dsn = dsn, .instance = "test-1"};
    assert_int_equal(store_open(&f->loop, &cfg, &f->store), 0);
    migrate(f, 0);
    FILE *fp = fopen(filler, "w");
    assert_non_null(fp);
    char block[4096] = {0};
    while (fwrite(block, 1, sizeof(block), fp) == sizeof(block) && fflush(fp) == 0)
        ;
    fclose(fp);
    res_t res[40] = {{0}};
    char *big = cv_calloc(1, 16 * 1024);
    memset(big, 'x', 16 * 1024 - 1);
    for (int i = 0; i < 40; i++) {
        run_t *r = mk_run("full", RUN_SUCCESS, "cron", 1000 + i);
        r->id = 1 + i;
        r->output_tail = cv_strdup(big);
        store_insert_run(f->store, r, on_value, &res[i]);
        run_free(r);
        drain(f);
        assert_int_equal(res[i].status, 0);
    }
    free(big);
    assert_int_equal(state_of(f->store).health, STORE_DEGRADED);
    assert_true(state_of(f->store).spooled > 0);
    assert_int_equal(unlink(filler), 0);
    await_health(f, STORE_UP);
    assert_int_equal(count_runs(f, "full"), 40);
    close_store(f);
    umount(dir);
    rmdir(dir);
    free(dsn);
    free(filler);
}

int main(void)
{
    int failed = run_suite(&sqlite_backend);
    const struct CMUnitTest sqlite_only[] = {
        cmocka_unit_test_setup_teardown(writes_after_a_commit_wait_and_share_the_next_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            a_failed_write_degrades_the_store_and_is_written_when_it_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(writes_past_the_held_limit_are_refused_and_counted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_close_while_writes_are_held_completes, setup, teardown),
        cmocka_unit_test_setup_teardown(held_writes_in_the_spool_are_written_by_the_next_start,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_database_file_deleted_while_in_use_is_restored_with_its_history, setup, teardown),
        cmocka_unit_test_setup_teardown(a_database_file_replaced_while_in_use_is_taken_over, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            a_full_disk_degrades_the_store_and_nothing_is_lost_once_room_is_made, setup, teardown),
    };
    failed += cmocka_run_group_tests_name("sqlite", sqlite_only, NULL, NULL);
    /* A PostgreSQL backend runs the same suite here, given a database to use. */
    return failed;
}
