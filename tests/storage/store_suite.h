/* The store test suite, independent of the backend: every case runs on its own libuv loop against
 * a fresh database, waits for callbacks by running the loop (never by sleeping), closes the store
 * and checks that the loop closes cleanly. A backend's test file defines a store_backend_t and
 * calls run_suite() with it (see store_test.c for SQLite). Included by exactly one .c per backend.
 */
#ifndef CV_TESTS_STORAGE_STORE_SUITE_H
#define CV_TESTS_STORAGE_STORE_SUITE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/util.h"
#include "run_fields.h"
#include "storage/schema.h"
#include "storage/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- backends ---- */

typedef struct store_backend {
    const char *name;
    char *(*fresh_dsn)(void);                          /* a new, empty database (heap) */
    void (*drop)(const char *dsn);                     /* removes what fresh_dsn made */
    int (*raw_exec)(const char *dsn, const char *sql); /* SQL outside the store, 0 or -1 */
    const char *drop_run_counts;                       /* undoes migration 6 but its version */
} store_backend_t;

static const store_backend_t *B; /* the backend under test */

/* ---- fixture: a loop and an open, migrated store ---- */

typedef struct fx {
    uv_loop_t loop;
    store_t *store;
    char *dsn;
} fx_t;

typedef struct res {
    int calls;
    int status;
    int64_t val;
} res_t;

static void on_status(void *ud, int status)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
}

static void on_value(void *ud, int status, int64_t v)
{
    res_t *r = ud;
    r->calls++;
    r->status = status;
    r->val = v;
}

/* Runs the loop until the store has nothing outstanding; the store keeps it alive till then. */
static void drain(fx_t *f)
{
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static store_t *open_store(fx_t *f, store_sync_t sync)
{
    store_config_t cfg = {.dsn = f->dsn, .instance = "test-1", .sync = sync};
    store_t *s = NULL;
    assert_int_equal(store_open(&f->loop, &cfg, &s), 0);
    return s;
}

static int64_t migrate(fx_t *f, int expect_status)
{
    res_t r = {0};
    store_migrate(f->store, on_value, &r);
    drain(f);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, expect_status);
    return r.val;
}

static void close_store(fx_t *f)
{
    res_t r = {0};
    store_close(f->store, on_status, &r);
    drain(f);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    f->store = NULL;
}

static int setup(void **state)
{
    fx_t *f = cv_calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->dsn = B->fresh_dsn();
    f->store = open_store(f, STORE_SYNC_FULL);
    migrate(f, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->store)
        close_store(f);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    B->drop(f->dsn);
    free(f->dsn);
    free(f);
    return 0;
}

/* ---- synchronous wrappers for the cases ---- */

static run_t *mk_run(const char *job, run_status_t st, const char *trigger, int64_t sched)
{
    run_t *r = run_new(job, trigger);
    r->status = st;
    r->scheduled_for = sched;
    r->queued_at = sched;
    if (st != RUN_QUEUED) {
        r->started_at = sched + 5;
    }
    if (run_status_final(st) && st != RUN_QUEUED) {
        r->finished_at = sched + 105;
        r->duration_ms = 100;
        r->exit_code = st == RUN_SUCCESS || st == RUN_PARTIAL ? 0 : 1;
    }
    return r;
}

static int insert(fx_t *f, const run_t *run, int64_t *id)
{
    res_t r = {0};
    store_insert_run(f->store, run, on_value, &r);
    drain(f);
    assert_int_equal(r.calls, 1);
    if (id)
        *id = r.val;
    return r.status;
}

/* Inserts a run made by mk_run and returns its id. */
static int64_t add(fx_t *f, const char *job, run_status_t st, const char *trigger, int64_t sched)
{
    run_t *r = mk_run(job, st, trigger, sched);
    int64_t id = 0;
    assert_int_equal(insert(f, r, &id), 0);
    run_free(r);
    assert_true(id > 0);
    return id;
}

typedef struct got_run {
    int status;
    run_t *run;
} got_run_t;

static void on_run(void *ud, int status, run_t *run, bool *taken)
{
    got_run_t *g = ud;
    g->status = status;
    g->run = run;
    *taken = true;
}

static run_t *get(fx_t *f, int64_t id, int *status)
{
    got_run_t g = {.status = 1};
    store_get_run(f->store, id, on_run, &g);
    drain(f);
    assert_int_not_equal(g.status, 1);
    *status = g.status;
    return g.run;
}

typedef struct page {
    int status;
    int64_t ids[STORE_PAGE_MAX];
    size_t count;
    char *cursor;
} page_t;

static void on_page(void *ud, int status, store_run_page_t *p)
{
    page_t *pg = ud;
    pg->status = status;
    for (size_t i = 0; p && i < p->count; i++)
        pg->ids[pg->count++] = p->runs[i]->id;
    pg->cursor = p && p->next_cursor ? cv_strdup(p->next_cursor) : NULL;
}

static void query(fx_t *f, const store_run_filter_t *flt, page_t *pg)
{
    memset(pg, 0, sizeof(*pg));
    pg->status = 1;
    store_query_runs(f->store, flt, on_page, pg);
    drain(f);
    assert_int_not_equal(pg->status, 1);
}

static int64_t count_runs(fx_t *f, const char *job)
{
    int64_t total = 0;
    char *cursor = NULL;
    do {
        page_t pg;
        store_run_filter_t flt = {.job = job, .limit = STORE_PAGE_MAX, .cursor = cursor};
        query(f, &flt, &pg);
        assert_int_equal(pg.status, 0);
        total += (int64_t)pg.count;
        free(cursor);
        cursor = pg.cursor;
    } while (cursor);
    return total;
}

static int64_t count_op(fx_t *f, void (*op)(fx_t *, res_t *), int expect)
{
    res_t r = {0};
    op(f, &r);
    drain(f);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, expect);
    return r.val;
}

#define T_DAY (86400 * 1000LL)

/* ---- cases ---- */

static void migrations_run_once_and_are_idempotent_on_reopen(void **state)
{
    fx_t *f = *state;
    /* setup applied every migration; a second migrate on the same store and one after reopening
     * both find nothing to do. */
    assert_int_equal(migrate(f, 0), 0);
    close_store(f);
    f->store = open_store(f, STORE_SYNC_FULL);
    uint64_t before = store_commits(f->store);
    assert_int_equal(migrate(f, 0), 0);
    assert_int_equal(store_commits(f->store), before);
    add(f, "still-works", RUN_SUCCESS, "cron", 1000);
}

static void applies_every_migration_to_a_new_database(void **state)
{
    fx_t *f = *state;
    close_store(f);
    B->drop(f->dsn);
    free(f->dsn);
    f->dsn = B->fresh_dsn();
    f->store = open_store(f, STORE_SYNC_FULL);
    assert_int_equal(migrate(f, 0), (int64_t)store_migration_count);
    assert_int_equal(store_commits(f->store), store_migration_count);
}

static void refuses_a_database_newer_than_the_binary(void **state)
{
    fx_t *f = *state;
    close_store(f);
    assert_int_equal(B->raw_exec(f->dsn, "INSERT INTO schema_version (version, name, applied_at)"
                                         " VALUES (999, 'from the future', 0)"),
                     0);
    f->store = open_store(f, STORE_SYNC_FULL);
    migrate(f, -EPROTO);
}

static void round_trips_every_field_through_insert_update_and_get(void **state)
{
    fx_t *f = *state;
    run_t *r = run_new("backup", "api:ops");
    r->status = RUN_RUNNING;
    r->scheduled_for = 1700000000123;
    r->queued_at = 1700000000124;
    r->started_at = 1700000000125;
    r->attempt = 3;
    r->retry_of = 77;
    r->progress = 0.25;
    r->instance = cv_strdup("node-a");
    r->host = cv_strdup("build-7.example");
    int64_t id = 0;
    assert_int_equal(insert(f, r, &id), 0);

    r->id = id;
    r->status = RUN_PARTIAL;
    r->finished_at = 1700000009999;
    r->duration_ms = 9874;
    r->exit_code = 0;
    r->signal = 9;
    r->items_processed = 12345678901;
    r->items_failed = 3;
    r->progress = 1.0;
    r->summary_json = cv_strdup("{\"rows\": 10, \"note\": \"\\u00e9t\\u00e9\"}");
    r->error = cv_strdup("3 items failed: it's \"quoted\"");
    r->output_tail = cv_strdup("line 1\nline 2\n...\xe2\x80\xa6 [truncated]\n");
    r->output_bytes = 1 << 30;
    r->max_rss_kb = 204800;
    r->cpu_user_ms = 1500;
    r->cpu_sys_ms = 250;
    res_t u = {0};
    store_update_run(f->store, r, on_status, &u);
    drain(f);
    assert_int_equal(u.status, 0);

    int st = 1;
    run_t *g = get(f, id, &st);
    assert_int_equal(st, 0);
    assert_int_equal(g->id, id);
    assert_string_equal(g->job, "backup");
    assert_int_equal(g->status, RUN_PARTIAL);
    assert_string_equal(g->trigger, "api:ops");
    assert_int_equal(g->scheduled_for, r->scheduled_for);
    assert_int_equal(g->queued_at, r->queued_at);
    assert_int_equal(g->started_at, r->started_at);
    assert_int_equal(g->finished_at, r->finished_at);
    assert_int_equal(g->duration_ms, r->duration_ms);
    assert_int_equal(g->attempt, 3);
    assert_int_equal(g->retry_of, 77);
    assert_int_equal(g->exit_code, 0);
    assert_int_equal(g->signal, 9);
    assert_int_equal(g->items_processed, 12345678901);
    assert_int_equal(g->items_failed, 3);
    assert_true(g->progress == 1.0);
    assert_string_equal(g->summary_json, r->summary_json);
    assert_string_equal(g->error, r->error);
    assert_string_equal(g->output_tail, r->output_tail);
    assert_int_equal(g->output_bytes, r->output_bytes);
    assert_int_equal(g->max_rss_kb, 204800);
    assert_int_equal(g->cpu_user_ms, 1500);
    assert_int_equal(g->cpu_sys_ms, 250);
    assert_string_equal(g->instance, "node-a");
    assert_string_equal(g->host, "build-7.example");
    run_free(g);
    run_free(r);
}

/* Every field of the run's table (proto/run.h), host included, with a value of its own: what is
 * inserted is read back, and so is what an update changes (the fields fixed at insert stay). */
static void round_trips_every_field_of_the_table(void **state)
{
    fx_t *f = *state;
    run_t *r = run_new(NULL, NULL);
    runf_fill(r, 1);
    assert_string_equal(r->host, "{\"field\": \"host\", \"seed\": 1, \"t\": \"\\u00e9\"}");
    int64_t id = 0;
    assert_int_equal(insert(f, r, &id), 0);
    assert_true(id > 0);
    r->id = id;
    int st = 1;
    run_t *g = get(f, id, &st);
    assert_int_equal(st, 0);
    runf_assert_equal(g, r);
    run_free(g);

    run_t *u = run_dup(r);
    runf_fill(u, 2);
    for (int i = 0; i < RUN_NPARAMS; i++) { /* job, trigger, ...: fixed when a run is inserted */
        const run_field_t *fd = &run_fields[i];
        if (fd->life)
            continue;
        if (fd->kind == RUN_K_TEXT) {
            free(*RUN_FIELD_PTR(u, fd, char *));
            *RUN_FIELD_PTR(u, fd, char *) = cv_strdup(*RUN_FIELD_CPTR(r, fd, char *));
        } else {
            memcpy((char *)u + fd->off, (const char *)r + fd->off, runf_size(fd));
        }
    }
    assert_string_not_equal(u->host, r->host);
    res_t up = {0};
    store_update_run(f->store, u, on_status, &up);
    drain(f);
    assert_int_equal(up.status, 0);
    g = get(f, id, &st);
    assert_int_equal(st, 0);
    runf_assert_equal(g, u);
    run_free(g);
    run_free(u);
    run_free(r);
}

static void stamps_the_store_instance_and_keeps_absent_strings_null(void **state)
{
    fx_t *f = *state;
    int64_t id = add(f, "j", RUN_QUEUED, "cron", 5000);
    int st = 1;
    run_t *g = get(f, id, &st);
    assert_int_equal(st, 0);
    assert_string_equal(g->instance, "test-1");
    assert_null(g->summary_json);
    assert_null(g->error);
    assert_null(g->output_tail);
    assert_int_equal(g->exit_code, -1);
    assert_true(g->progress == -1);
    run_free(g);
}

static void reports_missing_runs_and_bad_arguments(void **state)
{
    fx_t *f = *state;
    int st = 0;
    assert_null(get(f, 424242, &st));
    assert_int_equal(st, -ENOENT);

    run_t *r = mk_run("j", RUN_SUCCESS, "cron", 1);
    r->id = 424242;
    res_t u = {0};
    store_update_run(f->store, r, on_status, &u);
    drain(f);
    assert_int_equal(u.status, -ENOENT);
    free(r->job);
    r->job = NULL;
    assert_int_equal(insert(f, r, NULL), -EINVAL);
    run_free(r);

    page_t pg;
    store_run_filter_t bad = {.cursor = "not-a-cursor"};
    query(f, &bad, &pg);
    assert_int_equal(pg.status, -EINVAL);
}

/* Updates of one run made in one go: the last state is what stays, a read between two updates
 * sees the first, and every update is answered with the outcome of the write that stood for it. */
static void updates_in_one_pass_keep_the_last_state_and_answer_each(void **state)
{
    fx_t *f = *state;
    int64_t id = add(f, "u", RUN_QUEUED, "cron", 1000);
    run_t *r = mk_run("u", RUN_RUNNING, "cron", 1000);
    r->id = id;
    res_t up[4] = {{0}};
    got_run_t mid = {.status = 1};
    store_update_run(f->store, r, on_status, &up[0]); /* RUNNING */
    store_get_run(f->store, id, on_run, &mid);        /* must see RUNNING */
    r->items_processed = 5;
    store_update_run(f->store, r, on_status, &up[1]); /* RUNNING, 5 items */
    r->status = RUN_SUCCESS;
    r->finished_at = 1105;
    r->duration_ms = 100;
    r->items_processed = 9;
    store_update_run(f->store, r, on_status, &up[2]); /* SUCCESS, 9 items */
    r->id = 424243;                                   /* no such run: both updates of it fail */
    store_update_run(f->store, r, on_status, &up[3]);
    res_t missing = {0};
    store_update_run(f->store, r, on_status, &missing);
    drain(f);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(up[i].calls, 1);
        assert_int_equal(up[i].status, 0);
    }
    assert_int_equal(up[3].status, -ENOENT);
    assert_int_equal(missing.status, -ENOENT);
    assert_int_equal(mid.status, 0);
    assert_int_equal(mid.run->status, RUN_RUNNING);
    assert_int_equal(mid.run->items_processed, 0);
    run_free(mid.run);
    int st = 0;
    run_t *got = get(f, id, &st);
    assert_int_equal(st, 0);
    assert_int_equal(got->status, RUN_SUCCESS);
    assert_int_equal(got->items_processed, 9);
    assert_int_equal(got->finished_at, 1105);
    assert_string_equal(got->job, "u");
    assert_int_equal(got->scheduled_for, 1000);
    run_free(got);
    run_free(r);
}

static void keeps_an_explicit_run_id_and_refuses_a_duplicate(void **state)
{
    fx_t *f = *state;
    run_t *r = mk_run("j", RUN_RUNNING, "api:ops", 1);
    r->id = 5000;
    int64_t id = 0;
    assert_int_equal(insert(f, r, &id), 0);
    assert_int_equal(id, 5000);
    assert_int_equal(insert(f, r, &id), -EEXIST);
    r->id = 0;
    assert_int_equal(insert(f, r, &id), 0);
    assert_int_equal(id, 5001);
    run_free(r);
}

static void callbacks_never_run_inside_the_call(void **state)
{
    fx_t *f = *state;
    res_t r = {0};
    store_ping(f->store, on_status, &r);
    assert_int_equal(r.calls, 0);
    drain(f);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
}

static void query_filters_by_job_status_trigger_and_time(void **state)
{
    fx_t *f = *state;
    int64_t a1 = add(f, "a", RUN_SUCCESS, "cron", 1000);
    int64_t a2 = add(f, "a", RUN_FAILED, "cron", 2000);
    int64_t a3 = add(f, "a", RUN_FAILED, "api:ops", 3000);
    int64_t b1 = add(f, "b", RUN_TIMED_OUT, "cron", 4000);
    int64_t b2 = add(f, "b", RUN_QUEUED, "cron", 5000); /* never started: started_at 0 */
    page_t pg;

    query(f, &(store_run_filter_t){.job = "a"}, &pg);
    assert_int_equal(pg.count, 3);
    assert_int_equal(pg.ids[0], a3);
    assert_int_equal(pg.ids[2], a1);
    assert_null(pg.cursor);

    uint32_t failed = 1u << RUN_FAILED | 1u << RUN_TIMED_OUT;
    query(f, &(store_run_filter_t){.status_mask = failed}, &pg);
    assert_int_equal(pg.count, 3);
    assert_int_equal(pg.ids[0], b1);

    query(f, &(store_run_filter_t){.job = "a", .status_mask = failed, .trigger = "cron"}, &pg);
    assert_int_equal(pg.count, 1);
    assert_int_equal(pg.ids[0], a2);

    /* started_at is scheduled_for + 5 in mk_run. */
    query(f, &(store_run_filter_t){.since = 2000, .until = 4000}, &pg);
    assert_int_equal(pg.count, 2);
    assert_int_equal(pg.ids[0], a3);
    assert_int_equal(pg.ids[1], a2);

    query(f, &(store_run_filter_t){.status_mask = 1u << RUN_QUEUED}, &pg);
    assert_int_equal(pg.count, 1);
    assert_int_equal(pg.ids[0], b2);

    query(f, &(store_run_filter_t){.job = "nobody"}, &pg);
    assert_int_equal(pg.status, 0);
    assert_int_equal(pg.count, 0);
}

static void pages_through_runs_without_duplicates_or_gaps(void **state)
{
    fx_t *f = *state;
    enum { N = 237 };
    int64_t ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = add(f, i % 3 ? "paged" : "other", RUN_SUCCESS, "cron", 1000 + i);
    /* Runs inserted while paging do not shift later pages. */
    int64_t seen_prev = INT64_MAX;
    size_t total = 0, pages = 0;
    char *cursor = NULL;
    do {
        page_t pg;
        query(f, &(store_run_filter_t){.limit = 50, .cursor = cursor}, &pg);
        assert_int_equal(pg.status, 0);
        for (size_t i = 0; i < pg.count; i++) {
            assert_true(pg.ids[i] < seen_prev);              /* strictly decreasing: no duplicate */
            assert_int_equal(pg.ids[i], ids[N - 1 - total]); /* no gap */
            seen_prev = pg.ids[i];
            total++;
        }
        if (pages == 0)
            add(f, "paged", RUN_SUCCESS, "cron", 99999);
        pages++;
        free(cursor);
        cursor = pg.cursor;
    } while (cursor);
    assert_int_equal(total, N);
    assert_int_equal(pages, 5);

    page_t pg;
    query(f, &(store_run_filter_t){.limit = 100000}, &pg);
    assert_int_equal(pg.count, N + 1 > STORE_PAGE_MAX ? STORE_PAGE_MAX : N + 1);
    query(f, &(store_run_filter_t){0}, &pg);
    assert_int_equal(pg.count, STORE_PAGE_DEFAULT);
    free(pg.cursor);
}

static void claims_a_cron_firing_once_but_not_retries_or_manual_runs(void **state)
{
    fx_t *f = *state;
    int64_t first = add(f, "claim", RUN_QUEUED, "cron", 60000);
    run_t *r = mk_run("claim", RUN_QUEUED, "cron", 60000);
    assert_int_equal(insert(f, r, NULL), -EEXIST);

    r->attempt = 2;
    r->retry_of = first;
    assert_int_equal(insert(f, r, NULL), 0); /* a retry of the same firing */
    run_free(r);
    r = mk_run("claim", RUN_QUEUED, "retry", 60000);
    r->attempt = 2;
    assert_int_equal(insert(f, r, NULL), 0);
    run_free(r);
    add(f, "claim", RUN_QUEUED, "api:ops", 60000); /* manual run at the same instant */
    add(f, "claim", RUN_QUEUED, "api:ops", 60000);
    add(f, "other", RUN_QUEUED, "cron", 60000);  /* another job */
    add(f, "claim", RUN_QUEUED, "cron", 120000); /* the next firing */
    assert_int_equal(count_runs(f, "claim"), 6);
}

static void two_stores_on_one_database_claim_a_firing_once(void **state)
{
    fx_t *f = *state;
    store_t *first = f->store;
    f->store = open_store(f, STORE_SYNC_FULL);
    store_t *second = f->store;
    run_t *r = mk_run("shared", RUN_QUEUED, "cron", 90000);
    res_t a = {0}, b = {0};
    store_insert_run(first, r, on_value, &a);
    store_insert_run(second, r, on_value, &b);
    drain(f);
    run_free(r);
    assert_int_equal(a.calls + b.calls, 2);
    assert_true((a.status == 0 && b.status == -EEXIST) || (a.status == -EEXIST && b.status == 0));
    close_store(f);
    f->store = first;
}

static void abandon(fx_t *f, res_t *r)
{
    store_abandon_stale(f->store, NULL, "daemon restarted", on_value, r);
}

static void abandons_runs_left_running_or_queued(void **state)
{
    fx_t *f = *state;
    int64_t running = add(f, "a", RUN_RUNNING, "cron", 1000);
    int64_t queued = add(f, "b", RUN_QUEUED, "cron", 2000);
    int64_t done = add(f, "c", RUN_SUCCESS, "cron", 3000);
    run_t *other = mk_run("d", RUN_RUNNING, "cron", 4000);
    other->instance = cv_strdup("node-b");
    int64_t other_id = 0;
    assert_int_equal(insert(f, other, &other_id), 0);
    run_free(other);

    res_t r = {0};
    store_abandon_stale(f->store, "test-1", "instance restarted", on_value, &r);
    drain(f);
    assert_int_equal(r.val, 2); /* only this instance's */
    assert_int_equal(count_op(f, abandon, 0), 1);
    assert_int_equal(count_op(f, abandon, 0), 0);

    int st;
    int64_t before = cv_now_ms() - 60000;
    run_t *g = get(f, running, &st);
    assert_int_equal(g->status, RUN_ABANDONED);
    assert_string_equal(g->error, "instance restarted");
    assert_true(g->finished_at > before);
    assert_int_equal(g->duration_ms, g->finished_at - g->started_at);
    run_free(g);
    g = get(f, queued, &st);
    assert_int_equal(g->status, RUN_ABANDONED);
    assert_int_equal(g->duration_ms, 0);
    run_free(g);
    g = get(f, other_id, &st);
    assert_string_equal(g->error, "daemon restarted");
    run_free(g);
    g = get(f, done, &st);
    assert_int_equal(g->status, RUN_SUCCESS);
    assert_null(g->error);
    run_free(g);
}

typedef struct got_instances {
    int status;
    size_t count;
    char ids[4][32];
    int64_t last_seen[4], pid[4];
    char version[32];
} got_instances_t;

static void on_instances(void *ud, int status, const store_instance_t *inst, size_t count)
{
    got_instances_t *g = ud;
    g->status = status;
    g->count = count;
    for (size_t i = 0; i < count && i < 4; i++) {
        snprintf(g->ids[i], sizeof(g->ids[i]), "%s", inst[i].id);
        g->last_seen[i] = inst[i].last_seen;
        g->pid[i] = inst[i].pid;
    }
    if (count > 0)
        snprintf(g->version, sizeof(g->version), "%s", inst[0].version ? inst[0].version : "");
}

static void beat(fx_t *f, const char *id, int64_t pid, int64_t last_seen)
{
    store_instance_t in = {.id = (char *)id,
                           .hostname = "host",
                           .pid = pid,
                           .started_at = 1000,
                           .last_seen = last_seen,
                           .version = "9.9"};
    res_t r = {0};
    store_heartbeat(f->store, &in, on_status, &r);
    drain(f);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
}

static int64_t add_on(fx_t *f, const char *job, run_status_t st, const char *instance)
{
    run_t *run = mk_run(job, st, "api:x", 1000);
    run->instance = cv_strdup(instance);
    int64_t id = 0;
    assert_int_equal(insert(f, run, &id), 0);
    run_free(run);
    return id;
}

static void runs_of_instances_that_stopped_heart_beating_are_abandoned(void **state)
{
    fx_t *f = *state;
    int64_t now = cv_now_ms();
    assert_int_equal(store_is_shared(f->store), strcmp(B->name, "sqlite") != 0);
    if (!store_is_shared(f->store))
        assert_int_equal(store_watch_overrides(f->store, NULL, NULL), -ENOTSUP);
    beat(f, "node-a", 11, now);
    beat(f, "node-b", 22, now - 60000);
    int64_t alive = add_on(f, "a", RUN_RUNNING, "node-a");
    int64_t dead = add_on(f, "b", RUN_RUNNING, "node-b");
    int64_t never = add_on(f, "c", RUN_QUEUED, "node-c");
    int64_t done = add_on(f, "d", RUN_SUCCESS, "node-b");

    res_t r = {0};
    store_abandon_dead(f->store, now - 30000, on_value, &r);
    drain(f);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.val, 2);

    int st;
    run_t *g = get(f, dead, &st);
    assert_int_equal(g->status, RUN_ABANDONED);
    assert_string_equal(g->error, "instance node-b stopped heart-beating");
    assert_true(g->finished_at >= now);
    run_free(g);
    g = get(f, never, &st);
    assert_int_equal(g->status, RUN_ABANDONED);
    assert_string_equal(g->error, "instance node-c stopped heart-beating");
    run_free(g);
    g = get(f, alive, &st);
    assert_int_equal(g->status, RUN_RUNNING);
    run_free(g);
    g = get(f, done, &st);
    assert_int_equal(g->status, RUN_SUCCESS);
    run_free(g);
}

static void heartbeats_replace_the_row_of_an_instance_and_list_newest_first(void **state)
{
    fx_t *f = *state;
    got_instances_t g = {.status = 1};
    store_list_instances(f->store, on_instances, &g);
    drain(f);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.count, 0);

    beat(f, "node-a", 11, 5000);
    beat(f, "node-b", 22, 6000);
    beat(f, "node-a", 33, 7000); /* a restart under the same id */
    memset(&g, 0, sizeof(g));
    g.status = 1;
    store_list_instances(f->store, on_instances, &g);
    drain(f);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.count, 2);
    assert_string_equal(g.ids[0], "node-a");
    assert_int_equal(g.last_seen[0], 7000);
    assert_int_equal(g.pid[0], 33);
    assert_string_equal(g.ids[1], "node-b");
    assert_string_equal(g.version, "9.9");

    res_t r = {0};
    store_heartbeat(f->store, &(store_instance_t){.hostname = "h"}, on_status, &r);
    drain(f);
    assert_int_equal(r.status, -EINVAL);
}

static void retention_7_days(fx_t *f, res_t *r)
{
    store_retention(f->store, 7, 0, on_value, r);
}

static void retention_keep_100(fx_t *f, res_t *r)
{
    store_retention(f->store, 0, 100, on_value, r);
}

/* Inserts n runs in one burst (one loop pass), all acknowledged. */
static void burst(fx_t *f, const char *job, run_status_t st, int64_t sched, int n)
{
    res_t *r = cv_calloc((size_t)n, sizeof(*r));
    run_t *run = mk_run(job, st, "api:burst", sched);
    for (int i = 0; i < n; i++)
        store_insert_run(f->store, run, on_value, &r[i]);
    drain(f);
    for (int i = 0; i < n; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, 0);
    }
    run_free(run);
    free(r);
}

static void retention_deletes_old_finished_runs_in_small_transactions(void **state)
{
    fx_t *f = *state;
    int64_t now = cv_now_ms();
    burst(f, "old", RUN_SUCCESS, now - 30 * T_DAY, 1200);
    add(f, "old", RUN_RUNNING, "cron", now - 30 * T_DAY); /* still running: kept */
    burst(f, "new", RUN_FAILED, now - 1 * T_DAY, 10);
    run_t *skipped = mk_run("old", RUN_SKIPPED, "cron", now - 20 * T_DAY);
    skipped->finished_at = 0; /* never started: judged by scheduled_for */
    assert_int_equal(insert(f, skipped, NULL), 0);
    run_free(skipped);

    uint64_t commits = store_commits(f->store);
    assert_int_equal(count_op(f, retention_7_days, 0), 1201);
    assert_true(store_commits(f->store) - commits >= 3); /* 1201 rows, 500 per transaction */
    assert_int_equal(count_runs(f, "old"), 1);
    assert_int_equal(count_runs(f, "new"), 10);
    assert_int_equal(count_op(f, retention_7_days, 0), 0);
}

static void retention_keeps_the_newest_runs_of_each_job(void **state)
{
    fx_t *f = *state;
    burst(f, "busy", RUN_SUCCESS, 1000, 700);
    burst(f, "quiet", RUN_SUCCESS, 1000, 10);
    page_t newest;
    query(f, &(store_run_filter_t){.job = "busy", .limit = 100}, &newest);

    assert_int_equal(count_op(f, retention_keep_100, 0), 600);
    assert_int_equal(count_runs(f, "quiet"), 10);
    page_t kept;
    query(f, &(store_run_filter_t){.job = "busy", .limit = 500}, &kept);
    assert_int_equal(kept.count, 100);
    assert_memory_equal(kept.ids, newest.ids, 100 * sizeof(int64_t));
    free(newest.cursor);
    assert_int_equal(count_op(f, retention_keep_100, 0), 0);
}

static void retention_lets_other_requests_run_between_its_batches(void **state)
{
    fx_t *f = *state;
    burst(f, "busy", RUN_SUCCESS, 1000, 2000);
    res_t ret = {0}, ins = {0};
    store_retention(f->store, 0, 1, on_value, &ret);
    run_t *r = mk_run("late", RUN_QUEUED, "api:x", 5);
    store_insert_run(f->store, r, on_value, &ins);
    run_free(r);
    /* The insert made after the retention request is answered first: retention yields. */
    while (ins.calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(ret.calls, 0);
    drain(f);
    assert_int_equal(ret.status, 0);
    assert_int_equal(ret.val, 1999);
}

typedef struct got_stats {
    int status;
    store_job_stats_t st[4];
    size_t n;
} got_stats_t;

static void on_stats(void *ud, int status, store_job_stats_t *st, size_t n)
{
    got_stats_t *g = ud;
    g->status = status;
    g->n = n;
    for (size_t i = 0; i < n; i++) {
        g->st[i] = st[i];
        g->st[i].job = cv_strdup(st[i].job);
        st[i].last = NULL; /* taken */
    }
}

static void add_dur(fx_t *f, const char *job, run_status_t st, int64_t duration)
{
    run_t *r = mk_run(job, st, "cron", 0);
    r->scheduled_for = 1000 + duration; /* unique per job in these cases */
    r->duration_ms = duration;
    assert_int_equal(insert(f, r, NULL), 0);
    run_free(r);
}

/* The statistics of one job, its last run freed. */
static store_job_stats_t stats_of(fx_t *f, const char *job)
{
    got_stats_t g = {.status = 1};
    store_job_stats(f->store, &job, 1, 0, on_stats, &g);
    drain(f);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.n, 1);
    free(g.st[0].job);
    run_free(g.st[0].last);
    g.st[0].job = NULL;
    g.st[0].last = NULL;
    return g.st[0];
}

static void update_to(fx_t *f, run_t *r, run_status_t st)
{
    res_t u = {0};
    r->status = st;
    store_update_run(f->store, r, on_status, &u);
    drain(f);
    assert_int_equal(u.status, 0);
}

/* The counts follow every status change and every deletion, however the history got there. */
static void stats_counts_follow_status_changes_and_retention(void **state)
{
    fx_t *f = *state;
    int64_t now = cv_now_ms();
    burst(f, "c", RUN_SUCCESS, now - 30 * T_DAY, 5);
    run_t *r = mk_run("c", RUN_QUEUED, "cron", now);
    assert_int_equal(insert(f, r, &r->id), 0);
    store_job_stats_t s = stats_of(f, "c");
    assert_int_equal(s.runs, 5); /* the ones that ended */
    assert_int_equal(s.successes, 5);
    update_to(f, r, RUN_RUNNING);
    update_to(f, r, RUN_FAILED);
    /* one more run whose start and end are written in one pass */
    run_t *q = mk_run("c", RUN_RUNNING, "cron", now + 1);
    assert_int_equal(insert(f, q, &q->id), 0);
    res_t u1 = {0}, u2 = {0};
    store_update_run(f->store, q, on_status, &u1);
    q->status = RUN_PARTIAL;
    store_update_run(f->store, q, on_status, &u2);
    drain(f);
    assert_int_equal(u1.status + u2.status, 0);
    s = stats_of(f, "c");
    assert_int_equal(s.runs, 7);
    assert_int_equal(s.successes, 5);
    assert_int_equal(s.partials, 1);
    assert_int_equal(s.failures, 1);
    /* a run left running by a daemon that died: now it ended, ABANDONED */
    add(f, "c", RUN_RUNNING, "cron", now + 2);
    assert_int_equal(stats_of(f, "c").runs, 7);
    assert_int_equal(count_op(f, abandon, 0), 1);
    s = stats_of(f, "c");
    assert_int_equal(s.runs, 8);
    assert_int_equal(s.failures, 1);
    assert_int_equal(count_op(f, retention_7_days, 0), 5);
    s = stats_of(f, "c");
    assert_int_equal(s.runs, 3);
    assert_int_equal(s.successes, 0);
    assert_int_equal(s.partials, 1);
    assert_int_equal(s.failures, 1);
    assert_float_equal(s.success_rate, 0.5, 1e-9); /* the PARTIAL one is not a failure */
    run_free(r);
    run_free(q);
}

/* A history written before migration 6 is counted by it, and the counts follow from there. */
static void migration_6_counts_an_existing_history(void **state)
{
    fx_t *f = *state;
    burst(f, "h", RUN_SUCCESS, 1000, 3);
    close_store(f);
    /* the later migrations go too, so that 6 is the next to apply (the others then again) */
    char *sql = cv_sprintf("%s DROP TABLE notifications; ALTER TABLE runs DROP COLUMN host;"
                           " DELETE FROM schema_version WHERE version >= 6;"
                           " INSERT INTO runs (job, status, \"trigger\") VALUES"
                           " ('h', 'FAILED', 'manual'), ('h', 'RUNNING', 'manual'),"
                           " ('other', 'TIMED_OUT', 'manual')",
                           B->drop_run_counts);
    assert_int_equal(B->raw_exec(f->dsn, sql), 0);
    free(sql);
    f->store = open_store(f, STORE_SYNC_FULL);
    assert_int_equal(migrate(f, 0), (int)store_migration_count - 5);
    store_job_stats_t s = stats_of(f, "h");
    assert_int_equal(s.runs, 4); /* not the running one */
    assert_int_equal(s.successes, 3);
    assert_int_equal(s.failures, 1);
    s = stats_of(f, "other");
    assert_int_equal(s.runs, 1);
    assert_int_equal(s.failures, 1);
    add(f, "other", RUN_SUCCESS, "cron", 5);
    s = stats_of(f, "other");
    assert_int_equal(s.runs, 2);
    assert_int_equal(s.successes, 1);
}

static void stats_count_outcomes_consecutive_failures_and_p95(void **state)
{
    fx_t *f = *state;
    for (int i = 1; i <= 20; i++) /* durations 10..200 */
        add_dur(f, "s", RUN_SUCCESS, i * 10);
    add_dur(f, "s", RUN_PARTIAL, 5000);
    add_dur(f, "s", RUN_FAILED, 3);
    add_dur(f, "s", RUN_CANCELLED, 4); /* neutral: neither breaks nor extends the streak */
    add_dur(f, "s", RUN_TIMED_OUT, 6);
    add_dur(f, "s", RUN_ABANDONED, 7);
    add_dur(f, "s", RUN_SKIPPED, 8);
    add_dur(f, "s", RUN_RUNNING, 9);

    got_stats_t g = {.status = 1};
    const char *jobs[] = {"s", "never"};
    store_job_stats(f->store, jobs, 2, 0, on_stats, &g);
    drain(f);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.n, 2);
    store_job_stats_t *s = &g.st[0];
    assert_string_equal(s->job, "s");
    assert_int_equal(s->runs, 25); /* neither the running one nor the SKIPPED firing */
    assert_int_equal(s->successes, 20);
    assert_int_equal(s->partials, 1);
    assert_int_equal(s->failures, 2);
    assert_int_equal(s->consecutive_failures, 3);
    assert_float_equal(s->success_rate, 21.0 / 23.0, 1e-9); /* PARTIAL is not a failure */
    assert_non_null(s->last);
    assert_int_equal(s->last->status, RUN_RUNNING);
    /* Last 20 that ran: 5000, 3, 6, and 40..200 (17 successes). */
    assert_int_equal(s->duration_samples, 20);
    assert_int_equal(s->p95_duration_ms, 200); /* rank ceil(0.95 * 20) = 19 of 20 */
    double sum = 5000 + 3 + 6;
    for (int i = 4; i <= 20; i++)
        sum += i * 10;
    assert_float_equal(s->avg_duration_ms, sum / 20, 1e-9);
    run_free(s->last);

    store_job_stats_t *n = &g.st[1];
    assert_string_equal(n->job, "never");
    assert_int_equal(n->runs, 0);
    assert_null(n->last);
    assert_int_equal(n->duration_samples, 0);
    assert_true(n->success_rate == 0);
    free(g.st[0].job);
    free(g.st[1].job);

    add_dur(f, "s", RUN_SUCCESS, 11);
    g = (got_stats_t){.status = 1};
    store_job_stats(f->store, jobs, 1, 5, on_stats, &g);
    drain(f);
    assert_int_equal(g.st[0].consecutive_failures, 0);
    assert_int_equal(g.st[0].duration_samples, 5);
    assert_int_equal(g.st[0].p95_duration_ms, 5000);
    run_free(g.st[0].last);
    free(g.st[0].job);
}

/* A SKIPPED firing never ran: it counts nowhere and never hides the job's last real outcome. */
static void stats_leave_skipped_firings_out_and_keep_the_last_real_outcome(void **state)
{
    fx_t *f = *state;
    add_dur(f, "k", RUN_PARTIAL, 10);
    add_dur(f, "k", RUN_SUCCESS, 20);
    add_dur(f, "k", RUN_SKIPPED, 30);
    add_dur(f, "k", RUN_SKIPPED, 40);
    got_stats_t g = {.status = 1};
    const char *job = "k";
    store_job_stats(f->store, &job, 1, 0, on_stats, &g);
    drain(f);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.st[0].runs, 2);
    assert_float_equal(g.st[0].success_rate, 1.0, 1e-9);
    assert_non_null(g.st[0].last);
    assert_int_equal(g.st[0].last->status, RUN_SUCCESS);
    assert_int_equal(g.st[0].last->duration_ms, 20);
    run_free(g.st[0].last);
    free(g.st[0].job);
}

/* Statistics describe the history: after retention they count exactly the runs still held. */
static void stats_count_the_runs_retention_keeps(void **state)
{
    fx_t *f = *state;
    int64_t now = cv_now_ms();
    burst(f, "r", RUN_FAILED, now - 30 * T_DAY, 120);
    burst(f, "r", RUN_SKIPPED, now - 29 * T_DAY, 30);
    burst(f, "r", RUN_PARTIAL, now - 20 * T_DAY, 50);
    burst(f, "r", RUN_SUCCESS, now - T_DAY, 60);
    store_job_stats_t s = stats_of(f, "r");
    assert_int_equal(s.runs, 230);
    assert_int_equal(count_op(f, retention_keep_100, 0), 160);
    s = stats_of(f, "r");
    assert_int_equal(s.runs, 100);
    assert_int_equal(s.successes, 60);
    assert_int_equal(s.partials, 40);
    assert_int_equal(s.failures, 0);
    assert_float_equal(s.success_rate, 1.0, 1e-9);
    assert_int_equal(count_op(f, retention_7_days, 0), 40);
    s = stats_of(f, "r");
    assert_int_equal(s.runs, 60);
    assert_int_equal(s.partials, 0);
    assert_true(s.runs >= 0 && s.failures >= 0);
}

typedef struct got_notes {
    int status, calls;
    size_t count;
    int64_t ids[8];
    bool pending[8];
    char last_error[64];
    char instance[32];
} got_notes_t;

static void on_notes(void *ud, int status, const store_note_t *notes, size_t count)
{
    got_notes_t *g = ud;
    g->status = status;
    g->calls++;
    g->count = count;
    for (size_t i = 0; i < count && i < 8; i++) {
        g->ids[i] = notes[i].id;
        g->pending[i] = notes[i].pending;
    }
    if (count > 0) {
        snprintf(g->last_error, sizeof(g->last_error), "%s",
                 notes[0].last_error ? notes[0].last_error : "");
        snprintf(g->instance, sizeof(g->instance), "%s", notes[0].instance);
    }
}

static void put_note(fx_t *f, const char *instance, int64_t id, bool pending, int64_t keep)
{
    store_note_t n = {.id = id,
                      .instance = (char *)instance,
                      .notifier = "hook",
                      .event = "run.failed",
                      .subject = "job",
                      .run_id = id * 10,
                      .created_at = 1000 + id,
                      .finished_at = pending ? 0 : 2000 + id,
                      .attempts = 2,
                      .pending = pending,
                      .delivered = !pending,
                      .http_status = pending ? 0 : 200,
                      .last_error = pending ? NULL : "HTTP 500 then 200",
                      .keep = keep};
    res_t r = {0};
    store_note_put(f->store, &n, on_status, &r);
    drain(f);
    assert_int_equal(r.status, 0);
}

/* The notification history (migration 7): a record is written when made and again when its
 * delivery ends, read back newest first whatever instance wrote it, and kept to the newest. */
static void notifications_are_replaced_listed_newest_first_and_pruned(void **state)
{
    fx_t *f = *state;
    put_note(f, "host-1", 1, true, 3);
    put_note(f, "host-1", 1, false, 3); /* its delivery ended */
    put_note(f, "host-1", 2, false, 3);
    put_note(f, "host-2", 3, true, 3); /* a restart: another instance id, numbering on */
    got_notes_t g = {0};
    store_note_list(f->store, 10, on_notes, &g);
    drain(f);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.count, 3);
    assert_int_equal(g.ids[0], 3);
    assert_true(g.pending[0]);
    assert_string_equal(g.instance, "host-2");
    assert_int_equal(g.ids[2], 1);
    assert_false(g.pending[2]);
    put_note(f, "host-2", 4, false, 3); /* keeps 2..4 */
    put_note(f, "host-2", 5, false, 3); /* keeps 3..5 */
    g = (got_notes_t){0};
    store_note_list(f->store, 2, on_notes, &g);
    drain(f);
    assert_int_equal(g.count, 2);
    assert_int_equal(g.ids[0], 5);
    assert_int_equal(g.ids[1], 4);
    assert_string_equal(g.last_error, "HTTP 500 then 200");
    g = (got_notes_t){0};
    store_note_list(f->store, 0, on_notes, &g);
    drain(f);
    assert_int_equal(g.count, 3);
    assert_int_equal(g.ids[2], 3);
}

static void on_summary(void *ud, int status, const store_summary_t *sum)
{
    store_summary_t *out = ud;
    assert_int_equal(status, 0);
    *out = *sum;
}

static void summary_counts_running_queued_and_recent_outcomes(void **state)
{
    fx_t *f = *state;
    add(f, "a", RUN_RUNNING, "cron", 1000);
    add(f, "b", RUN_RUNNING, "cron", 1000);
    add(f, "c", RUN_QUEUED, "cron", 1000);
    add(f, "a", RUN_SUCCESS, "cron", 100000); /* finished at 100105 */
    add(f, "a", RUN_SUCCESS, "cron", 1500);   /* finished before since */
    add(f, "b", RUN_PARTIAL, "cron", 200000);
    add(f, "c", RUN_FAILED, "cron", 300000);
    add(f, "c", RUN_TIMED_OUT, "cron", 400000);
    add(f, "c", RUN_CANCELLED, "cron", 500000);
    store_summary_t sum = {-1, -1, -1, -1, -1};
    store_summary(f->store, 50000, on_summary, &sum);
    drain(f);
    assert_int_equal(sum.running, 2);
    assert_int_equal(sum.queued, 1);
    assert_int_equal(sum.success, 1);
    assert_int_equal(sum.partial, 1);
    assert_int_equal(sum.failed, 2);
}

typedef struct got_ov {
    int status;
    size_t n;
    char text[8][96];
} got_ov_t;

static void on_overrides(void *ud, int status, const store_override_t *ov, size_t n)
{
    got_ov_t *g = ud;
    g->status = status;
    g->n = n;
    for (size_t i = 0; i < n && i < 8; i++)
        snprintf(g->text[i], sizeof(g->text[i]), "%s.%s=%s by %s at %lld", ov[i].job, ov[i].field,
                 ov[i].value, ov[i].updated_by ? ov[i].updated_by : "-",
                 (long long)ov[i].updated_at);
}

static void set_ov(fx_t *f, const char *job, const char *field, const char *value, int64_t at)
{
    res_t r = {0};
    store_override_t ov = {(char *)job, (char *)field, (char *)value, at, "alice"};
    store_override_set(f->store, &ov, on_status, &r);
    drain(f);
    assert_int_equal(r.status, 0);
}

static void overrides_are_set_replaced_listed_and_deleted(void **state)
{
    fx_t *f = *state;
    set_ov(f, "b", "enabled", "false", 10);
    set_ov(f, "a", "schedule", "\"*/5 * * * *\"", 20);
    set_ov(f, "a", "enabled", "true", 30);
    set_ov(f, "a", "enabled", "false", 40); /* replaces */
    got_ov_t g = {0};
    store_override_list(f->store, NULL, on_overrides, &g);
    drain(f);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.text[0], "a.enabled=false by alice at 40");
    assert_string_equal(g.text[1], "a.schedule=\"*/5 * * * *\" by alice at 20");
    assert_string_equal(g.text[2], "b.enabled=false by alice at 10");
    store_override_list(f->store, "b", on_overrides, &g);
    drain(f);
    assert_int_equal(g.n, 1);

    res_t d = {0}, again = {0};
    store_override_delete(f->store, "a", "enabled", on_status, &d);
    store_override_delete(f->store, "a", "enabled", on_status, &again);
    drain(f);
    assert_int_equal(d.status, 0);
    assert_int_equal(again.status, -ENOENT);
    store_override_list(f->store, "a", on_overrides, &g);
    drain(f);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.text[0], "a.schedule=\"*/5 * * * *\" by alice at 20");
}

typedef struct got_audit {
    int status;
    size_t n;
    int64_t ids[64];
    char actions[64][16];
    char *cursor;
} got_audit_t;

static void on_audit(void *ud, int status, const store_audit_page_t *p)
{
    got_audit_t *g = ud;
    g->status = status;
    g->n = p ? p->count : 0;
    for (size_t i = 0; i < g->n; i++) {
        g->ids[i] = p->entries[i].id;
        snprintf(g->actions[i], sizeof(g->actions[i]), "%s", p->entries[i].action);
    }
    g->cursor = p && p->next_cursor ? cv_strdup(p->next_cursor) : NULL;
}

static void audit_is_appended_and_listed_by_job_in_pages(void **state)
{
    fx_t *f = *state;
    int64_t ids[12];
    for (int i = 0; i < 12; i++) {
        char action[16];
        snprintf(action, sizeof(action), "act%d", i);
        store_audit_t a = {.actor = "token:ops",
                           .action = action,
                           .job = i % 2 ? "odd" : "even",
                           .run_id = i,
                           .before = "{\"enabled\":true}",
                           .after = "{\"enabled\":false}"};
        res_t r = {0};
        store_audit_append(f->store, &a, on_value, &r);
        drain(f);
        assert_int_equal(r.status, 0);
        ids[i] = r.val;
    }
    got_audit_t g = {0};
    store_audit_list(f->store, "odd", 4, NULL, on_audit, &g);
    drain(f);
    assert_int_equal(g.n, 4);
    assert_int_equal(g.ids[0], ids[11]);
    assert_string_equal(g.actions[3], "act5");
    assert_non_null(g.cursor);
    char *cursor = g.cursor;
    store_audit_list(f->store, "odd", 4, cursor, on_audit, &g);
    drain(f);
    free(cursor);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.actions[1], "act1");
    assert_null(g.cursor);

    store_audit_list(f->store, NULL, 0, NULL, on_audit, &g);
    drain(f);
    assert_int_equal(g.n, 12);

    res_t bad = {0};
    store_audit_append(f->store, &(store_audit_t){.action = "no actor"}, on_value, &bad);
    drain(f);
    assert_int_equal(bad.status, -EINVAL);
}

static void acknowledged_writes_survive_close_and_reopen(void **state)
{
    fx_t *f = *state;
    burst(f, "durable", RUN_SUCCESS, 1000, 300);
    set_ov(f, "durable", "enabled", "false", 5);
    close_store(f);
    f->store = open_store(f, STORE_SYNC_FULL);
    assert_int_equal(migrate(f, 0), 0);
    assert_int_equal(count_runs(f, "durable"), 300);
    got_ov_t g = {0};
    store_override_list(f->store, "durable", on_overrides, &g);
    drain(f);
    assert_int_equal(g.n, 1);
}

static void close_answers_every_request_made_before_it(void **state)
{
    fx_t *f = *state;
    enum { N = 200 };
    res_t r[N] = {{0}}, closed = {0};
    run_t *run = mk_run("closing", RUN_SUCCESS, "api:x", 1);
    for (int i = 0; i < N; i++)
        store_insert_run(f->store, run, on_value, &r[i]);
    run_free(run);
    store_close(f->store, on_status, &closed);
    f->store = NULL;
    drain(f);
    assert_int_equal(closed.calls, 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, 0);
    }
    f->store = open_store(f, STORE_SYNC_FULL);
    assert_int_equal(count_runs(f, "closing"), N);
}

static void close_waits_for_a_retention_in_progress(void **state)
{
    fx_t *f = *state;
    burst(f, "busy", RUN_SUCCESS, 1000, 1600);
    res_t ret = {0}, closed = {0};
    store_retention(f->store, 0, 1, on_value, &ret);
    store_close(f->store, on_status, &closed);
    f->store = NULL;
    drain(f);
    assert_int_equal(closed.calls, 1);
    assert_int_equal(ret.calls, 1);
    assert_int_equal(ret.val, 1599);
}

static void a_burst_of_10000_inserts_commits_in_few_transactions(void **state)
{
    fx_t *f = *state;
    uint64_t before = store_commits(f->store);
    burst(f, "burst", RUN_SUCCESS, 1000, 10000);
    uint64_t used = store_commits(f->store) - before;
    print_message("10000 inserts committed in %llu transactions\n", (unsigned long long)used);
    assert_true(used >= 1);
    assert_true(used <= 3); /* handed over in one loop pass: one batch */
    assert_int_equal(count_runs(f, "burst"), 10000);
}

static void refuses_bad_configs_and_a_malformed_postgres_dsn(void **state)
{
    fx_t *f = *state;
    store_t *s = NULL;
    store_config_t pg = {.dsn = "postgres://u:secret@127.0.0.1:notaport/db?bogus=1",
                         .instance = "x"};
    assert_int_equal(store_open(&f->loop, &pg, &s), -EINVAL);
    assert_null(s);
    store_config_t none = {.dsn = "", .instance = "x"};
    assert_int_equal(store_open(&f->loop, &none, &s), -EINVAL);
    store_config_t noinst = {.dsn = f->dsn};
    assert_int_equal(store_open(&f->loop, &noinst, &s), -EINVAL);
    store_config_t blocked = {.dsn = "/proc/cannot/create/here.db", .instance = "x"};
    assert_int_not_equal(store_open(&f->loop, &blocked, &s), 0);
    assert_null(s);
}

/* ---- runner ---- */

static int run_suite(const store_backend_t *backend)
{
    B = backend;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(round_trips_every_field_of_the_table, setup, teardown),
        cmocka_unit_test_setup_teardown(
            stats_leave_skipped_firings_out_and_keep_the_last_real_outcome, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_count_the_runs_retention_keeps, setup, teardown),
        cmocka_unit_test_setup_teardown(notifications_are_replaced_listed_newest_first_and_pruned,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(migrations_run_once_and_are_idempotent_on_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(applies_every_migration_to_a_new_database, setup, teardown),
        cmocka_unit_test_setup_teardown(refuses_a_database_newer_than_the_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(round_trips_every_field_through_insert_update_and_get,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(stamps_the_store_instance_and_keeps_absent_strings_null,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(reports_missing_runs_and_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(updates_in_one_pass_keep_the_last_state_and_answer_each,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(keeps_an_explicit_run_id_and_refuses_a_duplicate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(callbacks_never_run_inside_the_call, setup, teardown),
        cmocka_unit_test_setup_teardown(query_filters_by_job_status_trigger_and_time, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(pages_through_runs_without_duplicates_or_gaps, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(claims_a_cron_firing_once_but_not_retries_or_manual_runs,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(two_stores_on_one_database_claim_a_firing_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(abandons_runs_left_running_or_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(runs_of_instances_that_stopped_heart_beating_are_abandoned,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            heartbeats_replace_the_row_of_an_instance_and_list_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(retention_deletes_old_finished_runs_in_small_transactions,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(retention_keeps_the_newest_runs_of_each_job, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(retention_lets_other_requests_run_between_its_batches,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(stats_counts_follow_status_changes_and_retention, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(migration_6_counts_an_existing_history, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_count_outcomes_consecutive_failures_and_p95, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(summary_counts_running_queued_and_recent_outcomes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(overrides_are_set_replaced_listed_and_deleted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(audit_is_appended_and_listed_by_job_in_pages, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(acknowledged_writes_survive_close_and_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(close_answers_every_request_made_before_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(close_waits_for_a_retention_in_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(a_burst_of_10000_inserts_commits_in_few_transactions, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(refuses_bad_configs_and_a_malformed_postgres_dsn, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name(backend->name, tests, NULL, NULL);
}

#endif
