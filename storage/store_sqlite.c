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
#include <unistd.h>

static const store_ops_t sqlite_ops;

/* ---- opening ---- */

/* Remembers which file the path names now (a plain file only), to notice it being deleted or
 * replaced later (check_file). */
static void note_file(store_sqlite_t *s)
{
    struct stat st;
    s->file_known = strncmp(s->path, "file:", 5) != 0 && strcmp(s->path, ":memory:") != 0 &&
                    stat(s->path, &st) == 0;
    if (s->file_known) {
        s->file_dev = st.st_dev;
        s->file_ino = st.st_ino;
    }
}

static int open_db(store_sqlite_t *s)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
    int rc = sqlite3_open_v2(s->path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        cv_error("store", "cannot open database %s: %s", s->path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        return rc == SQLITE_CANTOPEN ? -EACCES : -EIO;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, s->busy_timeout_ms > 0 ? s->busy_timeout_ms : 5000);
    int err = store_sqlite__exec_sql(s, "PRAGMA journal_mode=WAL", "set WAL mode");
    if (err == 0)
        err = store_sqlite__exec_sql(s,
                                     s->sync == STORE_SYNC_NORMAL ? "PRAGMA synchronous=NORMAL"
                                                                  : "PRAGMA synchronous=FULL",
                                     "set synchronous");
    if (err == 0)
        note_file(s);
    return err;
}

static void worker_main(void *arg);
static void on_async(uv_async_t *h);

/* Opens the spool of held writes and holds again, in order, what a previous life left in it
 * (written back after the migration). Without a usable spool, writes are held in memory only. */
static void open_spool(store_sqlite_t *s, const store_config_t *cfg)
{
    if (spool_open(cfg->spool_path, cfg->spool_max, &s->spool) < 0) {
        cv_warn("store",
                "database %s: no spool for held writes (%s unusable): writes that fail "
                "are held in memory only",
                s->path, cfg->spool_path);
        s->spool = NULL;
        return;
    }
    for (uint64_t off = spool_head(s->spool), next; off < spool_end(s->spool); off = next) {
        char *data = NULL, *key = NULL, *retry_key = NULL;
        size_t len = 0;
        if (spool_read(s->spool, off, &data, &len, &next) < 0)
            break;
        store_sqlite_req_t *r = cv_calloc(1, sizeof(*r));
        int rc = store_req_spool_decode(data, len, &r->op, &r->u, &key, &retry_key);
        free(data);
        free(key);
        free(retry_key);
        if (rc < 0) {
            cv_warn("store", "spool %s: the record at offset %llu cannot be read: skipped",
                    cfg->spool_path, (unsigned long long)off);
            free(r);
            continue;
        }
        r->held = r->spooled = true;
        cv_list_insert_tail(&s->held, &r->link);
        s->nheld++;
    }
    s->awaiting_migrate = s->nheld > 0;
    if (s->nheld > 0)
        cv_warn("store",
                "database %s: the spool %s holds %zu write(s) not yet in the database: they are "
                "written first",
                s->path, cfg->spool_path, s->nheld);
}

static void req_free(store_sqlite_req_t *r);

static void sqlite_free(store_sqlite_t *s)
{
    /* held writes never handed over (closed before the migration): the spool keeps them */
    while (s->held.next != NULL && !cv_list_empty(&s->held)) {
        store_sqlite_req_t *r = cv_container_of(s->held.next, store_sqlite_req_t, link);
        cv_list_remove(&r->link);
        req_free(r);
    }
    spool_close(s->spool);
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
    cv_list_init(&s->held);
    cv_list_init(&s->held_new);
    s->held_max = cfg->pending_max > 0 ? cfg->pending_max : STORE_SQLITE_HELD_DEFAULT;
    s->sync = cfg->sync;
    s->busy_timeout_ms = cfg->busy_timeout_ms;
    if (strncmp(path, "file:", 5) != 0 && strcmp(path, ":memory:") != 0)
        err = cv_mkdir_parent(path, 0755);
    if (err < 0)
        cv_error("store", "cannot create the directory of database %s: %s", path, strerror(-err));
    if (err == 0)
        err = open_db(s);
    if (err < 0)
        goto fail;
    if (cfg->spool_path)
        open_spool(s, cfg);
    uv_mutex_init(&s->mu);
    uv_cond_init(&s->cond);
    uv_async_init(loop, &s->async, on_async);
    uv_prepare_init(loop, &s->prepare);
    uv_timer_init(loop, &s->retry);
    uv_unref((uv_handle_t *)&s->retry); /* held writes do not keep the loop alive */
    s->handles_open = 3;
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

/* ---- the database file (worker) ---- */

/* Closes the handle and opens the path again (migrating a new or older file). 0 or -ESTALE. */
/* Closes the handle after emptying its WAL (the WAL file is named after the path, which may now
 * name another database: none of this one's pages may be left in it). */
static void close_handle(store_sqlite_t *s)
{
    store_sqlite__finalize(s);
    if (s->db)
        sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    sqlite3_close_v2(s->db);
    s->db = NULL;
}

static int reopen(store_sqlite_t *s)
{
    close_handle(s);
    int err = cv_mkdir_parent(s->path, 0755);
    if (err == 0)
        err = open_db(s);
    if (err < 0) {
        sqlite3_close_v2(s->db);
        s->db = NULL;
        return -ESTALE;
    }
    store_sqlite_req_t m = {.op = STORE_OP_MIGRATE};
    store_sqlite__migrate(s, &m);
    return m.status < 0 ? -ESTALE : 0;
}

/* The file was deleted while open: only this handle still reaches its content. Copies it (the
 * backup API reads through the handle, the WAL included) into a new file beside the path, then
 * moves that into place and reopens it: no history is lost. 0 or -ESTALE. */
static int restore_deleted(store_sqlite_t *s)
{
    char *tmp = cv_sprintf("%s.restore", s->path);
    sqlite3 *dst = NULL;
    int rc = cv_mkdir_parent(s->path, 0755) == 0 ? SQLITE_OK : SQLITE_CANTOPEN;
    unlink(tmp);
    if (rc == SQLITE_OK)
        rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_backup *b = sqlite3_backup_init(dst, "main", s->db, "main");
        rc = b ? sqlite3_backup_step(b, -1) : sqlite3_errcode(dst);
        int fin = b ? sqlite3_backup_finish(b) : SQLITE_OK;
        rc = rc == SQLITE_DONE ? fin : rc;
    }
    if (rc != SQLITE_OK)
        cv_error("store",
                 "database %s: cannot restore the deleted file from the open handle: %s; "
                 "writes are held until it can be",
                 s->path, dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
    sqlite3_close_v2(dst);
    int err = rc == SQLITE_OK ? 0 : -ESTALE;
    if (err == 0) {
        /* The old handle goes first: closing it removes the WAL and shm files of its name. */
        close_handle(s);
        if (rename(tmp, s->path) != 0)
            cv_error("store", "database %s: cannot move the restored copy %s into place: %s",
                     s->path, tmp, strerror(errno));
        err = reopen(s);
        if (err == 0)
            cv_warn("store", "database %s restored from the open handle: its history is kept",
                    s->path);
    }
    unlink(tmp);
    free(tmp);
    return err;
}

/* Checks, before a batch that writes, that the path still names the file the handle has open.
 * Deleted: restored from the handle. Replaced by another file (a restored backup, say): that
 * file is taken as the database (migrated when needed) and the writes go to it. Returns 0, or
 * -ESTALE when the database cannot be reached (the batch's writes are then held). */
static int check_file(store_sqlite_t *s)
{
    if (s->db == NULL)
        return reopen(s);
    if (!s->file_known)
        return 0;
    struct stat st;
    int rc = stat(s->path, &st) == 0 ? 0 : errno;
    if (rc == 0 && st.st_dev == s->file_dev && st.st_ino == s->file_ino)
        return 0;
    if (rc == ENOENT || rc == ENOTDIR) {
        cv_error("store",
                 "database %s was deleted while in use: the store is degraded; restoring it "
                 "from the open handle",
                 s->path);
        return restore_deleted(s);
    }
    cv_error("store",
             "database %s was replaced by another file while in use (inode %llu, now %llu): "
             "the store is degraded; switching to the new file (migrated when needed); the runs "
             "recorded in the old one since it was copied are not in it",
             s->path, (unsigned long long)s->file_ino, (unsigned long long)st.st_ino);
    return reopen(s);
}

/* Fails what the batch cannot run when the file check failed: its writes, and everything but
 * the close when there is no handle at all. */
static void batch_check_file(store_sqlite_t *s, batch_t *b)
{
    bool writes = s->db == NULL;
    for (cv_list_t *n = b->todo.next; n != &b->todo && !writes; n = n->next) {
        store_sqlite_req_t *r = cv_container_of(n, store_sqlite_req_t, link);
        writes = r->status == 0 && STORE_OP_IS_WRITE(r->op);
    }
    int err = writes ? check_file(s) : 0;
    for (cv_list_t *n = b->todo.next; err < 0 && n != &b->todo; n = n->next) {
        store_sqlite_req_t *r = cv_container_of(n, store_sqlite_req_t, link);
        if (r->status == 0 && r->op != STORE_OP_CLOSE && (STORE_OP_IS_WRITE(r->op) || !s->db))
            r->status = err;
    }
}

/* Returns true when the batch closed the store. */
static bool batch_process(store_sqlite_t *s, batch_t *b)
{
    batch_check_file(s, b);
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
            if (r->status == 0 && s->db != NULL)
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

/* ---- writes held after a storage failure (loop thread) ----
 * A write that fails for a storage reason (the disk is full, an I/O error, a read-only or locked
 * database, a deleted or replaced file) turns the store degraded: the write is answered as
 * accepted and held, in order, in memory (up to held_max; past it writes are refused and counted
 * as dropped), every later write is held behind it, and a timer retries with a backoff from
 * 100 ms to 5 s. When the held writes commit, the store is up again. */

#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS   5000

static bool holdable(const store_sqlite_req_t *r)
{
    switch (r->op) {
    case STORE_OP_INSERT_RUN:
    case STORE_OP_UPDATE_RUN:
    case STORE_OP_ABANDON:
    case STORE_OP_OV_SET:
    case STORE_OP_OV_DELETE:
    case STORE_OP_AUDIT_APPEND:
        return true;
    default: /* reads, heartbeats, sweeps and retention make no sense later */
        return false;
    }
}

static bool storage_failure(int status)
{
    return status == -ENOSPC || status == -EIO || status == -EROFS || status == -EBUSY ||
           status == -ENOMEM || status == -ESTALE;
}

/* Whether new writes must wait behind held ones. */
static bool keeping(const store_sqlite_t *s)
{
    return s->degraded || s->nheld > 0 || s->replay_inflight > 0;
}

static void sq_get_state(store_t *base, store_state_t *out)
{
    store_sqlite_t *s = (store_sqlite_t *)base;
    out->health = s->degraded ? STORE_DEGRADED : keeping(s) ? STORE_REPLAYING : STORE_UP;
    out->spooled = s->nheld + s->replay_inflight;
    out->spool_bytes = 0;
    out->dropped = s->dropped;
    out->queued = out->queue_refused = 0;
}

static int sq_watch_state(store_t *base, store_state_cb cb, void *ud)
{
    store_sqlite_t *s = (store_sqlite_t *)base;
    s->on_state = cb;
    s->state_ud = ud;
    return 0;
}

/* Tells the watcher when the state or the held count changed. */
static void notify_state(store_sqlite_t *s)
{
    store_state_t st;
    sq_get_state(&s->base, &st);
    if (st.health == s->last_state.health && st.spooled == s->last_state.spooled &&
        st.dropped == s->last_state.dropped)
        return;
    s->last_state = st;
    if (s->on_state)
        s->on_state(s->state_ud, &st);
}

static void req_free(store_sqlite_req_t *r);
static void deliver(store_sqlite_req_t *r);

static void one_done(store_sqlite_t *s)
{
    if (--s->outstanding == 0)
        uv_unref((uv_handle_t *)&s->async);
}

/* Appends a held write to the spool (synced once per loop pass, spool_flush). A spool that
 * cannot take it (the same full disk, say) leaves it in memory only, said once per outage. */
static void spool_held(store_sqlite_t *s, store_sqlite_req_t *r)
{
    if (s->spool == NULL)
        return;
    size_t len = 0;
    char *rec = store_req_spool_encode(r->op, &r->u, NULL, NULL, &len);
    int rc = rec ? spool_append(s->spool, rec, len) : -EINVAL;
    free(rec);
    r->spooled = rc == 0;
    s->spool_dirty = s->spool_dirty || rc == 0;
    if (rc < 0 && !s->spool_failed)
        cv_error("store",
                 "database %s: cannot write held records to the spool %s (%s): they are held in "
                 "memory only and are lost if the daemon stops before the database accepts "
                 "writes again",
                 s->path, spool_path(s->spool), strerror(-rc));
    s->spool_failed = s->spool_failed || rc < 0;
}

/* Syncs the records appended during this pass; empties the spool once nothing is held. */
static void spool_flush(store_sqlite_t *s)
{
    if (s->spool == NULL)
        return;
    if (s->spool_dirty && spool_sync(s->spool) < 0)
        cv_error("store", "cannot sync the spool %s: %s", spool_path(s->spool), strerror(EIO));
    s->spool_dirty = false;
    if (s->nheld == 0 && s->replay_inflight == 0 && spool_pending(s->spool) > 0) {
        if (spool_commit(s->spool, spool_end(s->spool), spool_pending(s->spool)) < 0)
            cv_error("store", "cannot empty the spool %s: its records may be written twice",
                     spool_path(s->spool));
        s->spool_failed = false;
    }
}

/* Answers r as accepted and keeps it at the tail of into; refuses it when the queue is full. */
static void hold(store_sqlite_t *s, store_sqlite_req_t *r, cv_list_t *into)
{
    if (s->nheld + s->replay_inflight >= s->held_max) {
        s->dropped++;
        if (!s->full_logged)
            cv_error("store",
                     "database %s: %zu writes are held already (storage.pending_max): further "
                     "records are refused until the database accepts writes again; jobs keep "
                     "running but their runs are not recorded",
                     s->path, s->held_max);
        s->full_logged = true;
        r->status = storage_failure(r->status) ? r->status : -ENOSPC;
        deliver(r);
        req_free(r);
        return;
    }
    int64_t result = r->op == STORE_OP_INSERT_RUN && r->u.run->id > 0 ? r->u.run->id : 0;
    store_req_deliver(r->op, &r->cb, r->ud, 0, result, &r->u);
    memset(&r->cb, 0, sizeof(r->cb));
    r->ud = NULL;
    r->held = true;
    r->status = 0;
    r->result = 0;
    cv_list_insert_tail(into, &r->link);
    s->nheld++;
    s->held_total++;
    spool_held(s, r);
}

static void send_held(store_sqlite_t *s);
static void on_prepare(uv_prepare_t *h);

static void on_retry(uv_timer_t *t)
{
    store_sqlite_t *s = cv_container_of(t, store_sqlite_t, retry);
    if (!s->closing && s->replay_inflight == 0)
        send_held(s);
}

static void enter_degraded(store_sqlite_t *s, int err)
{
    if (!s->degraded)
        cv_error("store",
                 "database %s: a write failed (%s): the store is degraded; records are held in "
                 "memory (at most %zu, storage.pending_max) and written once the database "
                 "accepts writes again",
                 s->path, strerror(-err), s->held_max);
    if (!s->degraded)
        s->held_total = 0;
    s->degraded = true;
    s->last_err = err;
    if (s->closing || uv_is_active((uv_handle_t *)&s->retry))
        return;
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : RETRY_FIRST_MS;
    if (s->backoff_ms > RETRY_MAX_MS)
        s->backoff_ms = RETRY_MAX_MS;
    uv_timer_start(&s->retry, on_retry, (uint64_t)s->backoff_ms, 0);
}

/* Hands every held write to the worker, ahead of anything not yet handed over. */
static void send_held(store_sqlite_t *s)
{
    if (s->nheld == 0 || s->awaiting_migrate)
        return;
    cv_list_t l;
    cv_list_init(&l);
    move_all(&l, &s->held);
    move_all(&l, &s->pending);
    move_all(&s->pending, &l);
    s->replay_inflight += s->nheld;
    if (s->outstanding == 0)
        uv_ref((uv_handle_t *)&s->async);
    s->outstanding += s->nheld;
    s->nheld = 0;
    uv_prepare_start(&s->prepare, on_prepare);
}

/* Answers and holds the writes made while writes are held. */
static void hold_new(store_sqlite_t *s)
{
    while (!cv_list_empty(&s->held_new)) {
        store_sqlite_req_t *r = cv_container_of(s->held_new.next, store_sqlite_req_t, link);
        cv_list_remove(&r->link);
        one_done(s);
        hold(s, r, &s->held);
    }
    if (!s->degraded && !s->closing && s->replay_inflight == 0)
        send_held(s);
    spool_flush(s);
    notify_state(s);
}

/* A held write came back from the worker: failed again (kept, in order, in back), written, or
 * refused for good (logged and dropped). */
static void held_back(store_sqlite_t *s, store_sqlite_req_t *r, cv_list_t *back)
{
    s->replay_inflight--;
    if (storage_failure(r->status) && !s->closing) {
        s->replay_failed = true;
        enter_degraded(s, r->status);
        r->status = 0;
        cv_list_insert_tail(back, &r->link);
        s->nheld++;
        return;
    }
    if (storage_failure(r->status) && r->spooled)
        s->kept++;
    else if (storage_failure(r->status) && s->lost++ == 0)
        cv_error("store",
                 "database %s: held records cannot be written before closing (%s): they are lost",
                 s->path, strerror(-r->status));
    else if (r->status != 0 && r->status != -EEXIST)
        cv_warn("store", "database %s: a held record could not be written: %s; dropped", s->path,
                strerror(-r->status));
    req_free(r);
}

/* After a pass of answers: the end of a replay (up again, or retry later). */
static void after_replay(store_sqlite_t *s, cv_list_t *back, size_t came_back)
{
    if (!cv_list_empty(back)) {
        move_all(back, &s->held);
        move_all(&s->held, back);
    }
    if (came_back == 0 || s->replay_inflight > 0)
        return;
    if (s->replay_failed) {
        s->replay_failed = false;
    } else if (s->degraded) {
        s->degraded = false;
        s->backoff_ms = 0;
        uv_timer_stop(&s->retry);
        if (s->nheld == 0)
            cv_info("store",
                    "database %s accepts writes again: %llu held record(s) written; "
                    "the store is up",
                    s->path, (unsigned long long)s->held_total);
    }
    if (!s->degraded && !s->closing)
        send_held(s); /* what was held meanwhile */
    if (!s->degraded && s->nheld == 0 && s->replay_inflight == 0)
        s->full_logged = false;
}

/* The newest held state of run id, or NULL: what reads show while its record waits. */
static const run_t *held_run(store_sqlite_t *s, int64_t id)
{
    if (id <= 0)
        return NULL;
    for (cv_list_t *n = s->held.prev; n != &s->held; n = n->prev) {
        store_sqlite_req_t *r = cv_container_of(n, store_sqlite_req_t, link);
        if ((r->op == STORE_OP_INSERT_RUN || r->op == STORE_OP_UPDATE_RUN) && r->u.run->id == id)
            return r->u.run;
    }
    return NULL;
}

/* Reads answered while writes are held show the held state of the runs they return: a run that
 * ended is never shown RUNNING because its record waits. */
static void overlay_held(store_sqlite_t *s, store_sqlite_req_t *r)
{
    if (s->nheld == 0 || (r->status != 0 && !(r->op == STORE_OP_GET_RUN && r->status == -ENOENT)))
        return;
    if (r->op == STORE_OP_GET_RUN) {
        const run_t *h = held_run(s, r->result); /* the id asked for */
        if (h) {
            run_free(r->u.run);
            r->u.run = run_ref(h);
            r->status = 0;
        }
    } else if (r->op == STORE_OP_QUERY_RUNS) {
        for (size_t i = 0; i < r->u.query.page.count; i++) {
            const run_t *h = held_run(s, r->u.query.page.runs[i]->id);
            if (h) {
                run_free(r->u.query.page.runs[i]);
                r->u.query.page.runs[i] = run_ref(h);
            }
        }
    } else if (r->op == STORE_OP_JOB_STATS) {
        for (size_t i = 0; i < r->u.stats.njobs; i++) {
            run_t *last = r->u.stats.out[i].last;
            const run_t *h = last ? held_run(s, last->id) : NULL;
            if (h) {
                run_free(last);
                r->u.stats.out[i].last = run_ref(h);
            }
        }
    }
}

/* Hands every request made during this loop pass to the worker at once, just before the loop
 * polls: a burst of writes from one callback becomes one batch, hence one transaction. */
static void on_prepare(uv_prepare_t *h)
{
    store_sqlite_t *s = cv_container_of(h, store_sqlite_t, prepare);
    uv_prepare_stop(h);
    hold_new(s);
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
    uv_prepare_start(&s->prepare, on_prepare);
    if (r->status == 0 && holdable(r) && keeping(s)) {
        cv_list_insert_tail(&s->held_new, &r->link); /* behind what is held, answered soon */
        return;
    }
    cv_list_insert_tail(&s->pending, &r->link);
    s->pending_others += !STORE_OP_IS_WRITE(r->op);
}

static void sq_close(store_t *base, store_status_cb cb, void *ud)
{
    store_sqlite_t *s = (store_sqlite_t *)base;
    store_sqlite_req_t *r = req_new(base, STORE_OP_CLOSE, ud);
    r->cb.status = cb;
    /* What is held gets one more try before the close, then the writes made meanwhile. */
    uv_timer_stop(&s->retry);
    if (s->replay_inflight == 0)
        send_held(s);
    move_all(&s->pending, &s->held_new);
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
    store_sqlite_t *s = (store_sqlite_t *)base;
    store_sqlite_req_t *r = req_new(base, STORE_OP_PING, ud);
    r->cb.status = cb;
    r->status = s->degraded ? s->last_err : 0; /* the store is not ready while writes fail */
    submit(base, r);
}

static void sq_insert_run(store_t *base, const run_t *run, store_id_cb cb, void *ud)
{
    store_sqlite_t *s = (store_sqlite_t *)base;
    store_sqlite_req_t *r = req_new(base, STORE_OP_INSERT_RUN, ud);
    r->cb.id = cb;
    r->u.run = run->instance ? run_share(run) : run_dup(run); /* copy-on-write */
    if (r->u.run->instance == NULL)
        r->u.run->instance = cv_strdup(s->instance);
    submit(base, r);
}

static void sq_update_run(store_t *base, const run_t *run, store_status_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_UPDATE_RUN, ud);
    r->cb.status = cb;
    r->u.run = run_share(run); /* a published run is shared, not copied */
    submit(base, r);
}

static void sq_get_run(store_t *base, int64_t id, store_run_cb cb, void *ud)
{
    store_sqlite_req_t *r = req_new(base, STORE_OP_GET_RUN, ud);
    r->cb.run = cb;
    r->u.id = id;
    r->result = id; /* for overlay_held: u.id becomes the result */
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
    cv_list_t ready, back;
    size_t came_back = 0;
    cv_list_init(&ready);
    cv_list_init(&back);
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
            if (s->lost > 0)
                cv_error("store", "database %s: %llu held record(s) were lost at close", s->path,
                         (unsigned long long)s->lost);
            if (s->kept > 0)
                cv_warn("store",
                        "database %s: %llu held record(s) stay in the spool %s for the next start",
                        s->path, (unsigned long long)s->kept, spool_path(s->spool));
            s->close_cb = r->cb.status;
            s->close_ud = r->ud;
            free(r);
            s->async.data = s;
            s->prepare.data = s;
            s->retry.data = s;
            uv_close((uv_handle_t *)&s->async, on_closed);
            uv_close((uv_handle_t *)&s->prepare, on_closed);
            uv_close((uv_handle_t *)&s->retry, on_closed);
            return;
        }
        if (r->held) {
            came_back++;
            held_back(s, r, &back);
            continue;
        }
        if (holdable(r) && storage_failure(r->status) && !s->closing) {
            enter_degraded(s, r->status);
            hold(s, r, &s->held);
            continue;
        }
        if (r->op == STORE_OP_MIGRATE && s->awaiting_migrate && r->status == 0) {
            s->awaiting_migrate = false; /* what the spool held goes first */
            send_held(s);
        }
        overlay_held(s, r);
        deliver(r);
        req_free(r);
    }
    after_replay(s, &back, came_back);
    spool_flush(s);
    notify_state(s);
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
    .get_state = sq_get_state,
    .watch_state = sq_watch_state,
};
