/* SQLite backend: the request queue, the worker thread with group commit, and delivery of results
 * on the loop thread. The SQL of each operation is in store_sqlite_exec.c. */
#include "storage/store_sqlite.h"
#include "storage/store_sqlite_int.h"

#include "core/log.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const store_ops_t sqlite_ops;

/* ---- opening ---- */

static int open_db(store_sqlite_t *s, const store_config_t *cfg)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
    int rc = sqlite3_open_v2(s->path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        cv_error("store", "cannot open database %s: %s", s->path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        return rc == SQLITE_CANTOPEN ? -EACCES : -EIO;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, cfg->busy_timeout_ms > 0 ? cfg->busy_timeout_ms : 5000);
    int err = store_sqlite__exec_sql(s, "PRAGMA journal_mode=WAL", "set WAL mode");
    if (err == 0)
        err = store_sqlite__exec_sql(s,
                                     cfg->sync == STORE_SYNC_NORMAL ? "PRAGMA synchronous=NORMAL"
                                                                    : "PRAGMA synchronous=FULL",
                                     "set synchronous");
    return err;
}

static void worker_main(void *arg);
static void on_async(uv_async_t *h);

static void sqlite_free(store_sqlite_t *s)
{
    free(s->path);
    free(s->instance);
    free(s);
}

int store_sqlite_open(uv_loop_t *loop, const store_config_t *cfg, store_t **out)
{
    store_sqlite_t *s = cv_calloc(1, sizeof(*s));
    const char *path = strncmp(cfg->dsn, "sqlite:", 7) == 0 ? cfg->dsn + 7 : cfg->dsn;
    int err = 0;
    s->base.ops = &sqlite_ops;
    s->base.loop = loop;
    s->path = cv_strdup(path);
    s->instance = cv_strdup(cfg->instance);
    cv_list_init(&s->queue);
    cv_list_init(&s->done);
    cv_list_init(&s->pending);
    if (strncmp(path, "file:", 5) != 0 && strcmp(path, ":memory:") != 0)
        err = cv_mkdir_parent(path, 0755);
    if (err < 0)
        cv_error("store", "cannot create the directory of database %s: %s", path, strerror(-err));
    if (err == 0)
        err = open_db(s, cfg);
    if (err < 0)
        goto fail;
    uv_mutex_init(&s->mu);
    uv_cond_init(&s->cond);
    uv_async_init(loop, &s->async, on_async);
    uv_prepare_init(loop, &s->prepare);
    s->handles_open = 2;
    uv_unref((uv_handle_t *)&s->async); /* referenced only while requests are outstanding */
    if (uv_thread_create(&s->thread, worker_main, s) != 0)
        abort(); /* cannot happen short of resource exhaustion at start-up */
    *out = &s->base;
    return 0;
fail:
    sqlite3_close(s->db);
    sqlite_free(s);
    return err;
}

/* ---- the worker ---- */

/* A batch: requests run so far inside the open transaction wait in txn until it commits. */
typedef struct batch {
    cv_list_t todo, txn, done, again;
    bool in_txn;
} batch_t;

static void fail_all(cv_list_t *list, int status)
{
    for (cv_list_t *n = list->next; n != list; n = n->next) {
        store_sqlite_req_t *r = cv_container_of(n, store_sqlite_req_t, link);
        if (r->status == 0)
            r->status = status;
    }
}

/* Moves every node of from to the tail of to, in order, in constant time. */
static void move_all(cv_list_t *to, cv_list_t *from)
{
    if (cv_list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    cv_list_init(from);
}

static void batch_commit(store_sqlite_t *s, batch_t *b)
{
    if (!b->in_txn)
        return;
    b->in_txn = false;
    int err = store_sqlite__exec_sql(s, "COMMIT", "commit");
    if (err == 0) {
        atomic_fetch_add(&s->commits, 1);
    } else {
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        fail_all(&b->txn, err);
    }
    move_all(&b->done, &b->txn);
}

/* Runs one write or read request of the batch. */
static void batch_run(store_sqlite_t *s, batch_t *b, store_sqlite_req_t *r)
{
    if (r->status == 0 && STORE_OP_IS_WRITE(r->op) && !b->in_txn) {
        int err = store_sqlite__exec_sql(s, "BEGIN IMMEDIATE", "begin a transaction");
        if (err < 0)
            r->status = err;
        else
            b->in_txn = true;
    }
    bool again = r->status == 0 && store_sqlite__exec(s, r);
    cv_list_insert_tail(again ? &b->again : b->in_txn ? &b->txn : &b->done, &r->link);
    if (b->in_txn && sqlite3_get_autocommit(s->db)) {
        /* SQLite rolled the whole transaction back (disk full, I/O error): everything run in it
         * is lost, and a request that is to run again must redo its step. */
        b->in_txn = false;
        fail_all(&b->txn, r->status < 0 ? r->status : -EIO);
        move_all(&b->done, &b->txn);
    }
}

/* The later update of the same run, if one follows r (just taken off the batch's todo list)
 * with only writes between:
 * nothing reads the row before it, so r's state need not be written (a short run's RUNNING and
 * its end often come in one batch). Looks a bounded way ahead. */
static store_sqlite_req_t *later_update(batch_t *b, const store_sqlite_req_t *r)
{
    if (r->op != STORE_OP_UPDATE_RUN || r->status != 0)
        return NULL;
    int left = 64;
    for (cv_list_t *n = b->todo.next; n != &b->todo && left-- > 0; n = n->next) {
        store_sqlite_req_t *q = cv_container_of(n, store_sqlite_req_t, link);
        if (!STORE_OP_IS_WRITE(q->op) || q->status != 0)
            return NULL;
        if (q->op == STORE_OP_UPDATE_RUN && q->u.run->id == r->u.run->id)
            return q;
    }
    return NULL;
}

/* Gives each replaced update the status of the one that replaced it (run later, or failed). */
static void settle_replaced(cv_list_t *done)
{
    for (cv_list_t *n = done->prev; n != done; n = n->prev) {
        store_sqlite_req_t *r = cv_container_of(n, store_sqlite_req_t, link);
        if (r->replaced_by)
            r->status = r->replaced_by->status;
    }
}

/* Returns true when the batch closed the store. */
static bool batch_process(store_sqlite_t *s, batch_t *b)
{
    while (!cv_list_empty(&b->todo)) {
        store_sqlite_req_t *r = cv_container_of(b->todo.next, store_sqlite_req_t, link);
        cv_list_remove(&r->link);
        r->replaced_by = NULL;
        if (r->op == STORE_OP_CLOSE && !cv_list_empty(&b->todo)) {
            /* A step of unfinished work (retention) was queued again behind the close. */
            cv_list_insert_tail(&b->todo, &r->link);
        } else if (r->op == STORE_OP_CLOSE && !cv_list_empty(&b->again)) {
            cv_list_insert_tail(&b->again, &r->link); /* let unfinished work drain first */
        } else if (r->op == STORE_OP_CLOSE) {
            batch_commit(s, b);
            cv_list_insert_tail(&b->done, &r->link);
            settle_replaced(&b->done);
            return true;
        } else if (r->op == STORE_OP_MIGRATE) {
            batch_commit(s, b);
            if (r->status == 0)
                store_sqlite__migrate(s, r);
            cv_list_insert_tail(&b->done, &r->link);
        } else if ((r->replaced_by = later_update(b, r)) != NULL) {
            cv_list_insert_tail(b->in_txn ? &b->txn : &b->done, &r->link);
        } else {
            batch_run(s, b, r);
        }
    }
    batch_commit(s, b);
    settle_replaced(&b->done);
    return false;
}

static void worker_main(void *arg)
{
    store_sqlite_t *s = arg;
    bool closed = false;
    uint64_t batch_ns = 0; /* when the previous batch began */
    while (!closed) {
        batch_t b = {.in_txn = false};
        cv_list_init(&b.todo);
        cv_list_init(&b.txn);
        cv_list_init(&b.done);
        cv_list_init(&b.again);
        uv_mutex_lock(&s->mu);
        while (cv_list_empty(&s->queue)) {
            s->worker_idle = true;
            uv_cond_wait(&s->cond, &s->mu);
        }
        s->worker_idle = false;
        /* Group commit: writes alone wait until STORE_SQLITE_GROUP_NS after the previous batch
         * began, and whatever arrives meanwhile shares their transaction (one fsync, and each
         * hot page written once). A read, or anything else, is served at once. */
        for (uint64_t now;
             s->queued_others == 0 && (now = uv_hrtime()) < batch_ns + STORE_SQLITE_GROUP_NS;)
            uv_cond_timedwait(&s->cond, &s->mu, batch_ns + STORE_SQLITE_GROUP_NS - now);
        batch_ns = uv_hrtime();
        s->queued_others = 0;
        move_all(&b.todo, &s->queue);
        uv_mutex_unlock(&s->mu);

        closed = batch_process(s, &b);
        if (closed) {
            store_sqlite__finalize(s);
            sqlite3_close(s->db);
            s->db = NULL;
        }
        uv_mutex_lock(&s->mu);
        move_all(&s->done, &b.done);
        move_all(&s->queue, &b.again);
        uv_mutex_unlock(&s->mu);
        uv_async_send(&s->async);
    }
}

/* ---- submitting (loop thread) ---- */

static store_sqlite_req_t *req_new(store_t *base, store_op_t op, void *ud)
{
    store_sqlite_req_t *r = cv_calloc(1, sizeof(*r));
    r->op = op;
    r->ud = ud;
    (void)base;
    return r;
}

/* Hands every request made during this loop pass to the worker at once, just before the loop
 * polls: a burst of writes from one callback becomes one batch, hence one transaction. */
static void on_prepare(uv_prepare_t *h)
{
    store_sqlite_t *s = cv_container_of(h, store_sqlite_t, prepare);
    uv_prepare_stop(h);
    uv_mutex_lock(&s->mu);
    /* Writes wake an idle worker; a worker gathering writes is woken only for something else. */
    bool wake = s->worker_idle || (s->pending_others && !s->queued_others);
    move_all(&s->queue, &s->pending);
    s->queued_others += s->pending_others;
    s->pending_others = 0;
    uv_mutex_unlock(&s->mu);
    if (wake)
        uv_cond_signal(&s->cond);
}

static void submit(store_t *base, store_sqlite_req_t *r)
{
    store_sqlite_t *s = (store_sqlite_t *)base;
    assert(!s->closing && "store request after store_close");
    if (s->outstanding++ == 0)
        uv_ref((uv_handle_t *)&s->async);
    if (cv_list_empty(&s->pending))
        uv_prepare_start(&s->prepare, on_prepare);
    cv_list_insert_tail(&s->pending, &r->link);
    s->pending_others += !STORE_OP_IS_WRITE(r->op);
}

static void sq_close(store_t *base, store_status_cb cb, void *ud)
{
    store_sqlite_t *s = (store_sqlite_t *)base;
    store_sqlite_req_t *r = req_new(base, STORE_OP_CLOSE, ud);
    r->cb.status = cb;
    submit(base, r);
    s->closing = true;
}

static void sq_migrate(store_t *base, store_count_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_MIGRATE, ud);
    r->cb.count = cb;
    submit(base, r);
}

static void sq_ping(store_t *base, store_status_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_PING, ud);
    r->cb.status = cb;
    submit(base, r);
}

static void sq_insert_run(store_t *base, const run_t *run, store_id_cb cb, void *ud)
{
    store_sqlite_t *s = (store_sqlite_t *)base;
    store_sqlite_req_t *r = req_new(base, STORE_OP_INSERT_RUN, ud);
    r->cb.id = cb;
    r->u.run = run_dup(run);
    if (r->u.run->instance == NULL)
        r->u.run->instance = cv_strdup(s->instance);
    submit(base, r);
}

static void sq_update_run(store_t *base, const run_t *run, store_status_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_UPDATE_RUN, ud);
    r->cb.status = cb;
    r->u.run = run_dup(run);
    submit(base, r);
}

static void sq_get_run(store_t *base, int64_t id, store_run_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_GET_RUN, ud);
    r->cb.run = cb;
    r->u.id = id;
    submit(base, r);
}

static void sq_query_runs(store_t *base, const store_run_filter_t *f, store_page_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_QUERY_RUNS, ud);
    r->cb.page = cb;
    r->status = store_req_set_query(&r->u, f);
    submit(base, r);
}

static void sq_job_stats(store_t *base, const char *const *jobs, size_t njobs, int last_n,
                         store_stats_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_JOB_STATS, ud);
    r->cb.stats = cb;
    r->status = store_req_set_job_stats(&r->u, jobs, njobs, last_n);
    submit(base, r);
}

static void sq_summary(store_t *base, int64_t since, store_summary_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_SUMMARY, ud);
    r->cb.summary = cb;
    r->u.summary.since = since;
    submit(base, r);
}

static void sq_abandon_stale(store_t *base, const char *instance, const char *reason,
                             store_count_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_ABANDON, ud);
    r->cb.count = cb;
    r->u.abandon.instance = store_strdup_opt(instance);
    r->u.abandon.reason = cv_strdup(reason ? reason : "abandoned");
    submit(base, r);
}

static void sq_retention(store_t *base, int days, int max_runs_per_job, store_count_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_RETENTION, ud);
    r->cb.count = cb;
    r->u.retention.days = days;
    r->u.retention.max_runs = max_runs_per_job;
    if (days < 0 || max_runs_per_job < 0)
        r->status = -EINVAL;
    submit(base, r);
}

static void sq_override_set(store_t *base, const store_override_t *ov, store_status_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_OV_SET, ud);
    r->cb.status = cb;
    r->status = store_req_set_override(&r->u, STORE_OP_OV_SET, ov);
    submit(base, r);
}

static void sq_override_delete(store_t *base, const char *job, const char *field,
                               store_status_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_OV_DELETE, ud);
    store_override_t ov = {.job = (char *)job, .field = (char *)field};
    r->cb.status = cb;
    r->status = store_req_set_override(&r->u, STORE_OP_OV_DELETE, &ov);
    submit(base, r);
}

static void sq_override_list(store_t *base, const char *job, store_overrides_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_OV_LIST, ud);
    store_override_t ov = {.job = (char *)job};
    r->cb.overrides = cb;
    r->status = store_req_set_override(&r->u, STORE_OP_OV_LIST, &ov);
    submit(base, r);
}

static void sq_audit_append(store_t *base, const store_audit_t *a, store_id_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_AUDIT_APPEND, ud);
    r->cb.id = cb;
    r->status = store_req_set_audit(&r->u, a);
    submit(base, r);
}

static void sq_audit_list(store_t *base, const char *job, int limit, const char *cursor,
                          store_audit_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_AUDIT_LIST, ud);
    r->cb.audit = cb;
    r->status = store_req_set_audit_list(&r->u, job, limit, cursor);
    submit(base, r);
}

static void sq_note_put(store_t *base, const store_note_t *n, store_status_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_NOTE_PUT, ud);
    r->cb.status = cb;
    r->status = store_req_set_note(&r->u, n);
    submit(base, r);
}

static void sq_note_list(store_t *base, int limit, store_notes_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_NOTE_LIST, ud);
    r->cb.notes = cb;
    r->status = store_req_set_note_list(&r->u, limit);
    submit(base, r);
}

static uint64_t sq_commits(store_t *base)
{
    return atomic_load(&((store_sqlite_t *)base)->commits);
}

/* ---- delivering (loop thread) ---- */

static void sq_heartbeat(store_t *base, const store_instance_t *inst, store_status_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_HEARTBEAT, ud);
    r->cb.status = cb;
    r->status = store_req_set_heartbeat(&r->u, inst);
    submit(base, r);
}

static void sq_abandon_dead(store_t *base, int64_t seen_before, store_count_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_ABANDON_DEAD, ud);
    r->cb.count = cb;
    r->u.abandon.seen_before = seen_before;
    submit(base, r);
}

static void sq_list_instances(store_t *base, store_instances_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_INSTANCES, ud);
    r->cb.instances = cb;
    submit(base, r);
}

static void req_free(store_sqlite_req_t *r)
{
    store_req_args_free(r->op, &r->u, r->status);
    free(r);
}

static void deliver(store_sqlite_req_t *r)
{
    store_req_deliver(r->op, &r->cb, r->ud, r->status, r->result, &r->u);
}

static void on_closed(uv_handle_t *h)
{
    store_sqlite_t *s = h->data;
    if (--s->handles_open > 0)
        return;
    if (s->close_cb)
        s->close_cb(s->close_ud, 0);
    uv_mutex_destroy(&s->mu);
    uv_cond_destroy(&s->cond);
    sqlite_free(s);
}

static void on_async(uv_async_t *h)
{
    store_sqlite_t *s = cv_container_of(h, store_sqlite_t, async);
    cv_list_t ready;
    cv_list_init(&ready);
    uv_mutex_lock(&s->mu);
    move_all(&ready, &s->done);
    uv_mutex_unlock(&s->mu);
    while (!cv_list_empty(&ready)) {
        store_sqlite_req_t *r = cv_container_of(ready.next, store_sqlite_req_t, link);
        cv_list_remove(&r->link);
        if (--s->outstanding == 0)
            uv_unref((uv_handle_t *)&s->async);
        if (r->op == STORE_OP_CLOSE) {
            /* The worker has closed the database and is leaving: join it, then release the
             * handle; the close callback runs once the handle is closed. */
            uv_thread_join(&s->thread);
            s->close_cb = r->cb.status;
            s->close_ud = r->ud;
            free(r);
            s->async.data = s;
            s->prepare.data = s;
            uv_close((uv_handle_t *)&s->async, on_closed);
            uv_close((uv_handle_t *)&s->prepare, on_closed);
            return;
        }
        deliver(r);
        req_free(r);
    }
}

static const store_ops_t sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .migrate = sq_migrate,
    .ping = sq_ping,
    .insert_run = sq_insert_run,
    .update_run = sq_update_run,
    .get_run = sq_get_run,
    .query_runs = sq_query_runs,
    .job_stats = sq_job_stats,
    .summary = sq_summary,
    .abandon_stale = sq_abandon_stale,
    .retention = sq_retention,
    .override_set = sq_override_set,
    .override_delete = sq_override_delete,
    .override_list = sq_override_list,
    .audit_append = sq_audit_append,
    .audit_list = sq_audit_list,
    .note_put = sq_note_put,
    .note_list = sq_note_list,
    .commits = sq_commits,
    .heartbeat = sq_heartbeat,
    .abandon_dead = sq_abandon_dead,
    .list_instances = sq_list_instances,
};
