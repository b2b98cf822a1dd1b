/* The store actor through its messages (actors/store_actor.h): a real SQLite store in a temp
 * directory, the real runtime on a real loop. A test actor sends typed requests
 * (MSG_STORE_REQ) and records the replies (MSG_STORE_REPLY) and forwarded events it gets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "actors/store_actor.h"
#include "core/log.h"
#include "proto/msg.h"
#include "storage/schema.h"

#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GOT 64

/* What one reply said (the reply itself is freed after the handler). */
typedef struct {
    store_op_t op;
    uint64_t corr;
    int status;
    int64_t value;
    char *run_job; /* GET_RUN */
    int64_t run_id;
    size_t count; /* rows: page, stats, overrides, audit, notes, instances */
    int64_t stat_runs;
    int64_t summary_success;
} got_t;

typedef struct {
    uv_loop_t loop;
    char *dir, *path;
    store_t *st;
    cv_runtime_t *rt;
    store_actor_t *sa;
    cv_actor_t *store, *me;
    got_t got[MAX_GOT];
    size_t ngot;
    int64_t forwarded_id;     /* the MSG_RUN_EVENT(FINISHED) received, 0 before */
    char *durable_at_forward; /* the run's status in the database file when it was forwarded */
    int migrated;             /* 1: done */
} fx_t;

static char *db_status(const char *path, int64_t id)
{
    sqlite3 *db = NULL;
    char *out = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT status FROM runs WHERE id = ?", -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(s, 1, id);
    if (sqlite3_step(s) == SQLITE_ROW)
        out = cv_strdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
}

static void me_handle(cv_actor_t *self, cv_msg_t *msg)
{
    fx_t *f = cv_actor_state(self);
    if (msg->type == MSG_RUN_EVENT) {
        msg_run_event_t *e = (msg_run_event_t *)msg;
        assert_int_equal(e->kind, RUN_EV_FINISHED);
        f->forwarded_id = e->run->id;
        f->durable_at_forward = db_status(f->path, e->run->id); /* NULL: not committed yet */
        return;
    }
    assert_int_equal(msg->type, MSG_STORE_REPLY);
    msg_store_reply_t *r = (msg_store_reply_t *)msg;
    assert_true(f->ngot < MAX_GOT);
    got_t *g = &f->got[f->ngot++];
    *g = (got_t){.op = r->op, .corr = r->corr, .status = r->status, .value = r->value};
    if (r->run) {
        g->run_job = cv_strdup(r->run->job);
        g->run_id = r->run->id;
    }
    g->count =
        r->page.count + r->nstats + r->noverrides + r->audit.count + r->nnotes + r->ninstances;
    if (r->nstats)
        g->stat_runs = r->stats[0].runs;
    g->summary_success = r->summary.success;
}

static void on_migrated(void *ud, int status, int64_t n)
{
    assert_int_equal(status, 0);
    *(int *)ud = 1;
}

/* Runs the loop until cond(f) holds, for at most 10 s. */
static void run_until(fx_t *f, bool (*cond)(const fx_t *f, uint64_t arg), uint64_t arg)
{
    int64_t until = cv_now_ms() + 10000;
    while (!cond(f, arg) && cv_now_ms() < until)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(cond(f, arg));
}

static bool has_n_replies(const fx_t *f, uint64_t n)
{
    return f->ngot >= n;
}

static bool was_forwarded(const fx_t *f, uint64_t id)
{
    return f->forwarded_id == (int64_t)id;
}

static bool is_migrated(const fx_t *f, uint64_t unused)
{
    return f->migrated == 1;
}

static int setup(void **state)
{
    fx_t *f = cv_calloc(1, sizeof(*f));
    char dir[] = "/tmp/cv-store-actor-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    f->dir = cv_strdup(dir);
    f->path = cv_sprintf("%s/cronvisor.db", dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    store_config_t cfg = {.dsn = f->path, .instance = "test-1"};
    assert_int_equal(store_open(&f->loop, &cfg, &f->st), 0);
    store_migrate(f->st, on_migrated, &f->migrated);
    run_until(f, is_migrated, 0);
    int err = 0;
    f->rt = cv_runtime_create(&f->loop, &err);
    assert_non_null(f->rt);
    f->sa = store_actor_create(f->rt, f->st);
    f->store = store_actor_actor(f->sa);
    f->me = cv_actor_create(f->rt, "test", me_handle, f);
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void on_closed(void *ud, int status)
{
    *(int *)ud = 1;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->sa)
        store_actor_destroy(f->sa);
    cv_actor_destroy(f->me);
    int closed = 0;
    store_close(f->st, on_closed, &closed);
    cv_runtime_close(f->rt);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (size_t i = 0; i < f->ngot; i++)
        free(f->got[i].run_job);
    free(f->durable_at_forward);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

static run_t *a_run(int64_t id, const char *job, run_status_t status)
{
    run_t *r = run_new(job, "cron");
    r->id = id;
    r->status = status;
    r->scheduled_for = r->started_at = 1700000000000 + id;
    if (run_status_final(status))
        r->finished_at = r->started_at + 10;
    return r;
}

/* Posts one request of op from the test actor with corr. */
static msg_store_req_t *req(fx_t *f, store_op_t op, uint64_t corr)
{
    return store_req_new(op, f->me, corr, NULL, NULL);
}

static void post(fx_t *f, msg_store_req_t *q)
{
    cv_actor_post(f->store, &q->hdr);
}

static const got_t *reply_of(const fx_t *f, uint64_t corr)
{
    const got_t *found = NULL;
    for (size_t i = 0; i < f->ngot; i++) {
        if (f->got[i].corr == corr) {
            assert_null(found); /* answered once */
            found = &f->got[i];
        }
    }
    return found;
}

/* Every op, in one burst: each answered once, with its own corr and op, and the result of what
 * the requests before it did. */
static void every_op_is_answered_with_its_corr_status_and_result(void **state)
{
    fx_t *f = *state;
    msg_store_req_t *q;
    q = req(f, STORE_OP_INSERT_RUN, 101);
    q->a.run = a_run(1, "alpha", RUN_RUNNING);
    post(f, q);
    q = req(f, STORE_OP_UPDATE_RUN, 102);
    q->a.run = a_run(1, "alpha", RUN_SUCCESS);
    post(f, q);
    q = req(f, STORE_OP_GET_RUN, 103);
    q->a.id = 1;
    post(f, q);
    q = req(f, STORE_OP_GET_RUN, 104);
    q->a.id = 999;
    post(f, q);
    q = req(f, STORE_OP_QUERY_RUNS, 105);
    q->a.filter.job = cv_strdup("alpha");
    post(f, q);
    q = req(f, STORE_OP_JOB_STATS, 106);
    q->a.jobs = cv_calloc(1, sizeof(char *));
    q->a.jobs[0] = cv_strdup("alpha");
    q->a.njobs = 1;
    post(f, q);
    q = req(f, STORE_OP_SUMMARY, 107);
    q->a.since = 1;
    post(f, q);
    q = req(f, STORE_OP_OVERRIDE_SET, 108);
    q->a.override = (store_override_t){.job = cv_strdup("alpha"),
                                       .field = cv_strdup("enabled"),
                                       .value = cv_strdup("false"),
                                       .updated_by = cv_strdup("test")};
    post(f, q);
    q = req(f, STORE_OP_OVERRIDE_LIST, 109);
    post(f, q);
    q = req(f, STORE_OP_OVERRIDE_DELETE, 110);
    q->a.job = cv_strdup("alpha");
    q->a.field = cv_strdup("nope");
    post(f, q);
    q = req(f, STORE_OP_AUDIT_APPEND, 111);
    q->a.audit = (store_audit_t){.actor = cv_strdup("test"), .action = cv_strdup("run.cancel")};
    post(f, q);
    q = req(f, STORE_OP_AUDIT_LIST, 112);
    post(f, q);
    q = req(f, STORE_OP_NOTE_PUT, 113);
    q->a.note = (store_note_t){.id = 1,
                               .instance = cv_strdup("test-1"),
                               .notifier = cv_strdup("ops"),
                               .event = cv_strdup("run.failed"),
                               .created_at = 1};
    post(f, q);
    q = req(f, STORE_OP_NOTE_LIST, 114);
    post(f, q);
    q = req(f, STORE_OP_PING, 115);
    post(f, q);
    q = req(f, STORE_OP_NOTIFY, 116);
    q->a.channel = cv_strdup(STORE_CHANNEL_CANCEL);
    q->a.payload = cv_strdup("{}");
    post(f, q);
    q = req(f, STORE_OP_INSERT_RUN, 117);
    q->a.run = a_run(2, "beta", RUN_RUNNING);
    post(f, q);
    q = req(f, STORE_OP_RUNNING_AND_INSTANCES, 118);
    post(f, q);
    q = req(f, STORE_OP_ABANDON_STALE, 119);
    q->a.reason = cv_strdup("test");
    post(f, q);
    q = req(f, STORE_OP_RETENTION, 120);
    q->a.max_runs = 1000;
    post(f, q);
    q = req(f, STORE_OP_INSERT_RUN, 121); /* the same id again */
    q->a.run = a_run(2, "beta", RUN_RUNNING);
    post(f, q);
    run_until(f, has_n_replies, 21);

    const got_t *g;
    for (uint64_t corr = 101; corr <= 121; corr++)
        assert_non_null(reply_of(f, corr));
    assert_int_equal(reply_of(f, 101)->op, STORE_OP_INSERT_RUN);
    assert_int_equal(reply_of(f, 101)->status, 0);
    assert_int_equal(reply_of(f, 101)->value, 1);
    assert_int_equal(reply_of(f, 102)->status, 0);
    g = reply_of(f, 103);
    assert_int_equal(g->op, STORE_OP_GET_RUN);
    assert_int_equal(g->status, 0);
    assert_string_equal(g->run_job, "alpha");
    assert_int_equal(g->run_id, 1);
    assert_int_equal(reply_of(f, 104)->status, -ENOENT);
    assert_null(reply_of(f, 104)->run_job);
    assert_int_equal(reply_of(f, 105)->count, 1);
    g = reply_of(f, 106);
    assert_int_equal(g->count, 1);
    assert_int_equal(g->stat_runs, 1);
    assert_int_equal(reply_of(f, 107)->summary_success, 1);
    assert_int_equal(reply_of(f, 108)->status, 0);
    assert_int_equal(reply_of(f, 109)->count, 1);
    assert_int_equal(reply_of(f, 110)->status, -ENOENT);
    assert_int_equal(reply_of(f, 111)->status, 0);
    assert_true(reply_of(f, 111)->value > 0);
    assert_int_equal(reply_of(f, 112)->count, 1);
    assert_int_equal(reply_of(f, 113)->status, 0);
    assert_int_equal(reply_of(f, 114)->count, 1);
    assert_int_equal(reply_of(f, 115)->op, STORE_OP_PING);
    assert_int_equal(reply_of(f, 115)->status, 0);
    assert_int_equal(reply_of(f, 116)->status, -ENOTSUP); /* SQLite: nobody to notify */
    g = reply_of(f, 118);
    assert_int_equal(g->status, 0);
    assert_int_equal(g->count, 1);                /* run 2 RUNNING; no instances on SQLite */
    assert_int_equal(reply_of(f, 119)->value, 1); /* run 2 abandoned */
    assert_int_equal(reply_of(f, 120)->status, 0);
    assert_int_equal(reply_of(f, 121)->status, -EEXIST);
    assert_int_equal(store_actor_pending(f->sa), 0);
}

/* The requester's token ended before the store actor reached the request: the store work is
 * not done and no reply is posted (the requester may be gone: posting would touch it). */
static void a_request_of_an_ended_requester_is_neither_run_nor_answered(void **state)
{
    fx_t *f = *state;
    cv_live_t *live = cv_live_new();
    msg_store_req_t *q = store_req_new(STORE_OP_INSERT_RUN, f->me, 1, live, NULL);
    q->a.run = a_run(5, "alpha", RUN_SUCCESS);
    post(f, q);
    cv_live_end(live); /* the message holds the last reference */
    q = req(f, STORE_OP_GET_RUN, 2);
    q->a.id = 5;
    post(f, q);
    run_until(f, has_n_replies, 1);
    assert_int_equal(f->ngot, 1);
    assert_int_equal(f->got[0].corr, 2);
    assert_int_equal(f->got[0].status, -ENOENT); /* never inserted */
}

/* A request's cancel token (an HTTP request reset) ended before the store actor reached it: the
 * store work is not done, and the reply says -ECANCELED so the requester frees its state. */
static void a_cancelled_request_is_not_run_and_answered_cancelled(void **state)
{
    fx_t *f = *state;
    cv_live_t *cancel = cv_live_new();
    msg_store_req_t *q = store_req_new(STORE_OP_INSERT_RUN, f->me, 1, NULL, cancel);
    q->a.run = a_run(6, "alpha", RUN_SUCCESS);
    post(f, q);
    cv_live_end(cancel);
    q = req(f, STORE_OP_GET_RUN, 2);
    q->a.id = 6;
    post(f, q);
    run_until(f, has_n_replies, 2);
    assert_int_equal(reply_of(f, 1)->status, -ECANCELED);
    assert_int_equal(reply_of(f, 1)->op, STORE_OP_INSERT_RUN);
    assert_int_equal(reply_of(f, 2)->status, -ENOENT);
    /* a live cancel token changes nothing */
    cancel = cv_live_new();
    q = store_req_new(STORE_OP_PING, f->me, 3, NULL, cancel);
    post(f, q);
    run_until(f, has_n_replies, 3);
    assert_int_equal(reply_of(f, 3)->status, 0);
    cv_live_end(cancel);
}

/* The store actor destroyed with a request still in its mailbox: the requester is told. */
static void a_request_left_in_the_mailbox_is_answered_shutdown(void **state)
{
    fx_t *f = *state;
    post(f, req(f, STORE_OP_PING, 7));
    store_actor_destroy(f->sa);
    f->sa = NULL;
    run_until(f, has_n_replies, 1);
    assert_int_equal(f->got[0].corr, 7);
    assert_int_equal(f->got[0].status, -ESHUTDOWN);
}

/* A finished run reaches the subscribers once its record is committed: when the subscriber gets
 * the event, another connection already reads the final status from the database file. */
static void a_finished_run_is_forwarded_only_after_its_commit(void **state)
{
    fx_t *f = *state;
    store_actor_subscribe(f->sa, f->me);
    run_t *r = a_run(10, "alpha", RUN_RUNNING);
    msg_run_event_t *e = msg_run_event_new(RUN_EV_STARTED, r);
    e->insert = true;
    cv_actor_post(f->store, &e->hdr);
    r->status = RUN_FAILED;
    r->finished_at = r->started_at + 5;
    e = msg_run_event_new(RUN_EV_FINISHED, r);
    cv_actor_post(f->store, &e->hdr);
    run_free(r);
    assert_int_equal(f->forwarded_id, 0); /* nothing before the loop ran */
    run_until(f, was_forwarded, 10);
    assert_non_null(f->durable_at_forward);
    assert_string_equal(f->durable_at_forward, "FAILED");
    run_until(f, has_n_replies, 0);
    assert_int_equal(f->ngot, 0); /* the writes answer nobody */
}

int main(void)
{
    cv_log_setup(CV_LOG_ERROR, false);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_op_is_answered_with_its_corr_status_and_result, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_request_of_an_ended_requester_is_neither_run_nor_answered,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_cancelled_request_is_not_run_and_answered_cancelled,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_request_left_in_the_mailbox_is_answered_shutdown, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_finished_run_is_forwarded_only_after_its_commit, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
