/* PostgreSQL backend: DSN parsing, the asynchronous connection (resolve, connect, reconnect with
 * backoff), the request queue, batches sent as one pipeline with one sync (group commit) and the
 * delivery of results in order. The SQL of each operation is in store_pg_sql.c. */
#include "storage/store_pg.h"
#include "storage/store_pg_int.h"

#include "core/log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Requests sent in one pipeline, hence committed in one transaction. */
#define BATCH_MAX            5000
#define CONNECT_TIMEOUT_MS   10000
#define BACKOFF_FIRST_MS     100
#define BACKOFF_MAX_MS       5000
#define STORE_PG_MAX_OPTIONS 48
/* Spool records read back per batch, at most (and at most about this many bytes of them). */
#define REPLAY_CHUNK       2000
#define REPLAY_CHUNK_BYTES (8u * 1024 * 1024)

static const store_ops_t pg_ops;

/* ---- the DSN ---- */

bool store_pg_dsn_matches(const char *dsn)
{
    static const char *const keys[] = {"host", "hostaddr", "port", "dbname", "user", "service"};
    if (strncmp(dsn, "postgres://", 11) == 0 || strncmp(dsn, "postgresql://", 13) == 0)
        return true;
    while (isspace((unsigned char)*dsn))
        dsn++;
    for (size_t i = 0; i < CV_ARRAY_SIZE(keys); i++) {
        size_t n = strlen(keys[i]);
        const char *p = dsn + n;
        if (strncmp(dsn, keys[i], n) != 0)
            continue;
        while (*p == ' ')
            p++;
        if (*p == '=')
            return true;
    }
    return false;
}

/* Registers the password of a DSN before libpq sees it, so that not even a parse error can show
 * it: the user:password@ part of a URI, or a password= value. */
static void register_raw_password(const char *dsn)
{
    const char *p = strstr(dsn, "://"), *kv = strstr(dsn, "password");
    if (p != NULL) {
        p += 3;
        const char *at = strchr(p, '@'), *slash = strchr(p, '/');
        const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
        if (colon && (slash == NULL || slash > at)) {
            char *pw = cv_strndup(colon + 1, (size_t)(at - colon - 1));
            cv_secret_register(pw);
            free(pw);
        }
    }
    for (; kv != NULL; kv = strstr(kv + 1, "password")) {
        const char *v = kv + 8;
        while (*v == ' ' || *v == '=')
            v++;
        size_t n = strcspn(v, " &'");
        char *pw = cv_strndup(v, n);
        cv_secret_register(pw);
        free(pw);
    }
}

static void add_option(store_pg_t *s, size_t *n, const char *kw, const char *val)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(s->kw[i], kw) == 0) {
            free(s->val[i]);
            s->val[i] = store_strdup_opt(val);
            return;
        }
    }
    assert(*n + 1 < STORE_PG_MAX_OPTIONS);
    s->kw[*n] = cv_strdup(kw);
    s->val[*n] = store_strdup_opt(val);
    (*n)++;
}

static const char *option(store_pg_t *s, const char *kw)
{
    for (size_t i = 0; s->kw[i]; i++)
        if (strcmp(s->kw[i], kw) == 0)
            return s->val[i];
    return NULL;
}

static bool is_numeric_host(const char *h)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

/* Fills the option arrays from the parsed DSN, adds what cronvisor needs, and decides whether the
 * host must be resolved before connecting (libpq would resolve it blocking the loop). */
static void setup_options(store_pg_t *s, PQconninfoOption *opts, const store_config_t *cfg)
{
    size_t n = 0;
    s->kw = cv_calloc(STORE_PG_MAX_OPTIONS, sizeof(char *));
    s->val = cv_calloc(STORE_PG_MAX_OPTIONS, sizeof(char *));
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        if (strcmp(o->keyword, "password") == 0)
            cv_secret_register(o->val);
        add_option(s, &n, o->keyword, o->val);
    }
    if (option(s, "application_name") == NULL)
        add_option(s, &n, "application_name", "cronvisor");
    add_option(s, &n, "client_encoding", "UTF8");
    if (cfg->sync == STORE_SYNC_NORMAL) {
        const char *old = option(s, "options");
        char *v = cv_sprintf("%s%s-c synchronous_commit=off", old ? old : "", old ? " " : "");
        add_option(s, &n, "options", v);
        free(v);
    }
    const char *t = option(s, "connect_timeout");
    int secs = t ? atoi(t) : 0;
    s->connect_timeout_ms = secs > 0 ? secs * 1000 : CONNECT_TIMEOUT_MS;
    const char *host = option(s, "host"), *port = option(s, "port");
    const char *dbname = option(s, "dbname"), *user = option(s, "user");
    const char *shown = host ? host : option(s, "hostaddr");
    s->where = cv_sprintf("%s:%s/%s", shown ? shown : "local", port ? port : "5432",
                          dbname ? dbname
                          : user ? user
                                 : "postgres");
    if (host && !option(s, "hostaddr") && host[0] != '/' && host[0] != '@' &&
        strchr(host, ',') == NULL) {
        if (is_numeric_host(host)) {
            add_option(s, &n, "hostaddr", host);
        } else {
            s->resolve_host = cv_strdup(host);
            s->resolve_port = cv_strdup(port ? port : "5432");
            for (size_t i = 0; i < n; i++)
                if (strcmp(s->kw[i], "host") == 0)
                    s->host_slot = i;
            s->hostaddr_slot = n;
            add_option(s, &n, "hostaddr", NULL); /* filled per attempt */
        }
    }
}

static void pg_free(store_pg_t *s)
{
    for (size_t i = 0; s->kw && s->kw[i]; i++) {
        free(s->kw[i]);
        free(s->val[i]);
    }
    free(s->kw);
    free(s->val);
    free(s->where);
    free(s->instance);
    free(s->resolve_host);
    free(s->resolve_port);
    free(s->items);
    spool_close(s->spool);
    free(s->spool_path);
    free(s);
}

static void on_prepare(uv_prepare_t *h);

int store_pg_open(uv_loop_t *loop, const store_config_t *cfg, store_t **out)
{
    char *errmsg = NULL;
    register_raw_password(cfg->dsn);
    PQconninfoOption *opts = PQconninfoParse(cfg->dsn, &errmsg);
    if (opts == NULL) {
        size_t len = errmsg ? strcspn(errmsg, "\n") : 0;
        cv_error("store", "the PostgreSQL DSN cannot be parsed: %.*s", (int)len,
                 errmsg ? errmsg : "");
        PQfreemem(errmsg);
        return -EINVAL;
    }
    store_pg_t *s = cv_calloc(1, sizeof(*s));
    s->base.ops = &pg_ops;
    s->base.loop = loop;
    s->instance = cv_strdup(cfg->instance);
    setup_options(s, opts, cfg);
    PQconninfoFree(opts);
    cv_list_init(&s->queue);
    cv_list_init(&s->batch);
    cv_list_init(&s->rejected);
    cv_list_init(&s->spooled);
    s->boot_ms = cv_now_ms();
    s->queue_max = cfg->pending_max > 0 ? cfg->pending_max : STORE_PG_QUEUE_MAX;
    if (cfg->spool_path) {
        /* An existing spool means this daemon used the database before: it may then start while
         * the database is unreachable. A new one is created on the first connection. */
        struct stat st;
        s->spool_path = cv_strdup(cfg->spool_path);
        s->spool_max = cfg->spool_max;
        if (stat(cfg->spool_path, &st) == 0) {
            int rc = spool_open(cfg->spool_path, cfg->spool_max, &s->spool);
            if (rc < 0) {
                pg_free(s);
                return rc;
            }
            s->replay_off = spool_head(s->spool);
            if (spool_pending(s->spool) > 0)
                cv_warn("store",
                        "the outage spool %s holds %zu record(s) not yet in the database: "
                        "they are written first",
                        cfg->spool_path, spool_pending(s->spool));
        }
    }
    uv_timer_init(loop, &s->timer);
    uv_prepare_init(loop, &s->prepare);
    s->timer.data = s;
    s->prepare.data = s;
    s->handles_open = 2;
    uv_unref((uv_handle_t *)&s->timer); /* referenced only while requests are outstanding */
    cv_info("store", "PostgreSQL store %s (connects on first use)", s->where);
    *out = &s->base;
    return 0;
}

/* ---- handles ---- */

static void update_refs(store_pg_t *s)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&s->timer, (uv_handle_t *)s->poll};
    for (size_t i = 0; i < CV_ARRAY_SIZE(hs); i++) {
        if (hs[i] == NULL)
            continue;
        if (s->outstanding > 0)
            uv_ref(hs[i]);
        else
            uv_unref(hs[i]);
    }
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/* Watches fd for events, replacing the poll handle when libpq changed its socket. */
static void poll_set(store_pg_t *s, int fd, int events, uv_poll_cb cb)
{
    if (s->poll && s->poll_fd != fd) {
        uv_close((uv_handle_t *)s->poll, free_handle);
        s->poll = NULL;
    }
    if (s->poll == NULL) {
        s->poll = cv_calloc(1, sizeof(*s->poll));
        if (uv_poll_init(s->base.loop, s->poll, fd) != 0)
            abort(); /* libpq handed over a socket libuv cannot watch */
        s->poll->data = s;
        s->poll_fd = fd;
        update_refs(s);
    }
    s->poll_events = events;
    uv_poll_start(s->poll, events, cb);
}

/* Closes the poll handle first, then the connection (which closes the socket). */
static void drop_connection(store_pg_t *s)
{
    if (s->poll) {
        uv_close((uv_handle_t *)s->poll, free_handle);
        s->poll = NULL;
    }
    if (s->conn) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    if (s->gai) {
        uv_cancel((uv_req_t *)s->gai); /* its callback frees it */
        s->gai = NULL;
    }
    uv_timer_stop(&s->timer);
    s->state = PGC_IDLE;
    s->session_over = false;
}

/* ---- completing requests ---- */

static void deliver(store_pg_req_t *r);
static void req_free(store_pg_req_t *r);
static void pump(store_pg_t *s);

static const char *op_what(store_op_t op);

static void complete(store_pg_t *s, store_pg_req_t *r)
{
    if (r->from_spool) {
        s->replay_loaded--;
        s->commit_off = r->spool_next;
        s->commit_n++;
        s->replay_count++;
        if (r->status != 0 && r->status != -EEXIST)
            cv_warn("store", "a spooled record (%s) could not be written back: %s; dropped",
                    op_what(r->op), strerror(-r->status));
    }
    s->outstanding--;
    update_refs(s);
    deliver(r);
    req_free(r);
}

/* ---- the outage spool ---- */

static store_pg_req_t *req_new(store_op_t op, void *ud);

static void pg_get_state(store_t *base, store_state_t *out)
{
    store_pg_t *s = (store_pg_t *)base;
    out->health = s->degraded                               ? STORE_DEGRADED
                  : s->spool && spool_pending(s->spool) > 0 ? STORE_REPLAYING
                                                            : STORE_UP;
    out->spooled = s->spool ? spool_pending(s->spool) : 0;
    out->spool_bytes = s->spool ? spool_bytes(s->spool) - SPOOL_HEADER_SIZE : 0;
    out->dropped = s->dropped;
    out->queued = s->state != PGC_READY && s->ever_connected ? s->nqueued : 0;
    out->queue_refused = s->queue_refused;
}

/* Tells the watcher when the state or the spooled count changed. */
static void notify_state(store_pg_t *s)
{
    store_state_t st;
    pg_get_state(&s->base, &st);
    if (st.health == s->last_state.health && st.spooled == s->last_state.spooled &&
        st.dropped == s->last_state.dropped && st.queued == s->last_state.queued &&
        st.queue_refused == s->last_state.queue_refused)
        return;
    s->last_state = st;
    if (s->on_state)
        s->on_state(s->state_ud, &st);
}

static bool spool_mode(const store_pg_t *s)
{
    return s->spool && (s->degraded || spool_pending(s->spool) > 0);
}

/* Appends r to the spool; it is answered after the next sync (on_prepare). A full spool refuses
 * it: the caller hears -ENOSPC, the log says so once per outage. */
static void spool_req(store_pg_t *s, store_pg_req_t *r)
{
    size_t len = 0;
    char *rec = store_pg__spool_encode(r, &len);
    int rc = rec ? spool_append(s->spool, rec, len) : -EINVAL;
    free(rec);
    if (rc == 0) {
        if (r->op == STORE_OP_INSERT_RUN)
            r->result = r->u.run->id;
        cv_list_insert_tail(&s->spooled, &r->link);
        uv_prepare_start(&s->prepare, on_prepare);
        return;
    }
    s->dropped++;
    if (rc != -ENOSPC)
        cv_error("store", "cannot write to the outage spool %s: %s; a record (%s) is lost",
                 spool_path(s->spool), strerror(-rc), op_what(r->op));
    else if (!s->full_logged)
        cv_error("store",
                 "the outage spool %s is full (storage.spool_max: %llu bytes): records are "
                 "refused until the database is back; jobs keep running but their runs are not "
                 "recorded",
                 spool_path(s->spool), (unsigned long long)s->spool_max);
    s->full_logged = s->full_logged || rc == -ENOSPC;
    r->status = rc;
    cv_list_insert_tail(&s->rejected, &r->link);
    uv_prepare_start(&s->prepare, on_prepare);
}

/* Syncs the records appended during this loop pass, then answers them. */
static void flush_spooled(store_pg_t *s)
{
    if (cv_list_empty(&s->spooled))
        return;
    int rc = spool_sync(s->spool);
    if (rc < 0)
        cv_error("store", "cannot sync the outage spool %s: %s", spool_path(s->spool),
                 strerror(-rc));
    while (!cv_list_empty(&s->spooled)) {
        store_pg_req_t *r = cv_container_of(s->spooled.next, store_pg_req_t, link);
        cv_list_remove(&r->link);
        r->status = rc;
        complete(s, r);
    }
    notify_state(s);
}

/* Marks the records written back so far in the spool; logs the end of a replay. */
static void flush_commit(store_pg_t *s)
{
    if (s->commit_n == 0 || s->spool == NULL)
        return;
    int rc = spool_commit(s->spool, s->commit_off, s->commit_n);
    if (rc < 0)
        cv_error("store", "cannot mark records of the outage spool %s as written: %s",
                 spool_path(s->spool), strerror(-rc));
    s->commit_n = 0;
    if (spool_pending(s->spool) == 0) {
        double ms = (double)(cv_mono_ns() - s->replay_start_ns) / 1e6;
        cv_info("store",
                "the outage spool is written back: %llu record(s) in %.0f ms (%.0f records/s); "
                "the store is up",
                (unsigned long long)s->replay_count, ms,
                ms > 0 ? (double)s->replay_count * 1000.0 / ms : 0.0);
        s->replay_off = spool_head(s->spool);
        s->replay_count = 0;
        s->full_logged = false;
    }
    notify_state(s);
}

/* Reads the next records of the spool back into requests, ahead of every other request (after a
 * migration or a LISTEN at the head). */
static void load_replay(store_pg_t *s)
{
    if (s->spool == NULL || s->state != PGC_READY || s->replay_loaded > 0)
        return;
    if (s->replay_off < spool_head(s->spool))
        s->replay_off = spool_head(s->spool);
    if (s->replay_off >= spool_end(s->spool))
        return;
    if (s->replay_count == 0) {
        s->replay_start_ns = cv_mono_ns();
        cv_info("store", "writing back %zu record(s) of the outage spool to PostgreSQL %s",
                spool_pending(s->spool), s->where);
    }
    cv_list_t *at = &s->queue;
    for (cv_list_t *n = s->queue.next; n != &s->queue; n = n->next) {
        store_pg_req_t *q = cv_container_of(n, store_pg_req_t, link);
        if (q->op != STORE_OP_MIGRATE && q->op != STORE_OP_LISTEN)
            break;
        at = n;
    }
    size_t bytes = 0;
    for (size_t k = 0;
         k < REPLAY_CHUNK && bytes < REPLAY_CHUNK_BYTES && s->replay_off < spool_end(s->spool);
         k++) {
        char *data;
        size_t len;
        uint64_t next;
        int rc = spool_read(s->spool, s->replay_off, &data, &len, &next);
        if (rc < 0) {
            cv_error("store", "cannot read the outage spool %s at offset %llu: %s",
                     spool_path(s->spool), (unsigned long long)s->replay_off, strerror(-rc));
            break;
        }
        store_pg_req_t *r = store_pg__spool_decode(data, len);
        free(data);
        bytes += len;
        if (r == NULL) {
            cv_warn("store", "the outage spool record at offset %llu cannot be read: skipped",
                    (unsigned long long)s->replay_off);
            r = cv_calloc(1, sizeof(*r));
            r->op = STORE_OP_PING;
            r->status = -EINVAL;
        }
        r->from_spool = true;
        r->spool_next = next;
        r->link.next = at->next;
        r->link.prev = at;
        at->next->prev = &r->link;
        at->next = &r->link;
        at = &r->link;
        s->nqueued++;
        if (s->outstanding++ == 0)
            update_refs(s);
        s->replay_loaded++;
        s->replay_off = next;
    }
}

static void req_free(store_pg_req_t *r);

/* The database became unreachable: queued writes go to the spool, in order; what cannot wait
 * (reads, claims, heartbeats) fails with -EAGAIN; records read back from the spool are dropped
 * from memory (they are still in the file). A migration is answered now and run on reconnect. */
static void enter_degraded(store_pg_t *s)
{
    cv_list_t q;
    cv_list_init(&q);
    while (!cv_list_empty(&s->queue)) {
        cv_list_t *n = s->queue.next;
        cv_list_remove(n);
        cv_list_insert_tail(&q, n);
    }
    s->nqueued = 0;
    s->degraded = true;
    s->started_degraded = s->started_degraded || !s->ever_connected;
    while (!cv_list_empty(&q)) {
        store_pg_req_t *r = cv_container_of(q.next, store_pg_req_t, link);
        cv_list_remove(&r->link);
        if (r->from_spool) {
            s->replay_loaded--;
            s->outstanding--;
            req_free(r);
        } else if (r->op == STORE_OP_CLOSE || r->op == STORE_OP_LISTEN ||
                   (r->op == STORE_OP_MIGRATE && r->cb.count == NULL)) {
            cv_list_insert_tail(&s->queue, &r->link);
            s->nqueued++;
        } else if (r->op == STORE_OP_MIGRATE) {
            store_pg_req_t *m = req_new(STORE_OP_MIGRATE, NULL); /* runs on reconnect */
            cv_list_insert_tail(&s->queue, &m->link);
            s->nqueued++;
            s->outstanding++;
            r->step = STORE_PG_MIG_UNLOCK;
            cv_list_insert_tail(&s->rejected, &r->link); /* answered 0 now */
        } else if (r->status == 0 && store_pg__spoolable(r)) {
            spool_req(s, r);
        } else {
            if (r->status == 0)
                r->status = -EAGAIN;
            cv_list_insert_tail(&s->rejected, &r->link);
        }
    }
    s->replay_off = spool_head(s->spool);
    update_refs(s);
    uv_prepare_start(&s->prepare, on_prepare);
    cv_warn("store",
            "PostgreSQL %s is unreachable: the store is degraded; run records go to the outage "
            "spool %s (%zu waiting) until it is back",
            s->where, spool_path(s->spool), spool_pending(s->spool));
    notify_state(s);
}

/* Fails every request waiting to be sent (the close excepted). */
static void fail_waiting(store_pg_t *s, int err)
{
    cv_list_t waiting;
    cv_list_init(&waiting);
    while (!cv_list_empty(&s->queue)) {
        cv_list_t *n = s->queue.next;
        cv_list_remove(n);
        cv_list_insert_tail(&waiting, n);
    }
    s->nqueued = 0;
    while (!cv_list_empty(&waiting)) {
        store_pg_req_t *r = cv_container_of(waiting.next, store_pg_req_t, link);
        cv_list_remove(&r->link);
        if (r->op == STORE_OP_CLOSE) {
            cv_list_insert_tail(&s->queue, &r->link);
            s->nqueued++;
            continue;
        }
        if (r->status == 0 || r->op == STORE_OP_MIGRATE)
            r->status = err;
        complete(s, r);
    }
}

/* Puts the requests of the batch in flight back at the head of the queue, in order. */
static void requeue_batch(store_pg_t *s, bool solo)
{
    while (!cv_list_empty(&s->batch)) {
        store_pg_req_t *r = cv_container_of(s->batch.prev, store_pg_req_t, link);
        cv_list_remove(&r->link);
        store_pg__clear_results(r);
        r->solo = r->solo || solo;
        /* The migration lock went with the session; a migration whose commit was not seen is
         * looked up again under a new lock. */
        if (r->op == STORE_OP_MIGRATE && r->step == STORE_PG_MIG_APPLY)
            r->step = STORE_PG_MIG_LOCK;
        cv_list_t *head = &s->queue;
        r->link.next = head->next;
        r->link.prev = head;
        head->next->prev = &r->link;
        head->next = &r->link;
        s->nqueued++;
    }
    s->in_flight = false;
    s->nitems = s->item_next = 0;
    s->item_got = false;
}

/* ---- connecting ---- */

static void start_connect(store_pg_t *s);

static void on_backoff(uv_timer_t *t)
{
    start_connect(t->data);
}

static void backoff(store_pg_t *s)
{
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS)
        s->backoff_ms = BACKOFF_MAX_MS;
    s->state = PGC_BACKOFF;
    uv_timer_start(&s->timer, on_backoff, (uint64_t)s->backoff_ms, 0);
}

static void connect_failed(store_pg_t *s, int err, const char *why)
{
    char *msg = cv_strndup(why, strcspn(why, "\n"));
    drop_connection(s);
    bool spool = s->spool && (s->ever_connected || (s->started_degraded || err != -EACCES));
    if (spool) {
        if (!s->degraded)
            enter_degraded(s);
        if (s->closing) {
            cv_warn("store",
                    "PostgreSQL %s is unreachable at close: %s; %zu record(s) stay in "
                    "the outage spool for the next start",
                    s->where, msg, spool_pending(s->spool));
            fail_waiting(s, -EAGAIN); /* a deferred migration, a LISTEN */
            pump(s);
        } else {
            backoff(s);
            cv_warn("store", "cannot reach PostgreSQL %s: %s; next attempt in %d ms", s->where, msg,
                    s->backoff_ms);
        }
    } else if (!s->ever_connected || s->closing) {
        cv_error("store", "cannot connect to PostgreSQL %s: %s", s->where, msg);
        fail_waiting(s, err);
        pump(s);
    } else {
        backoff(s);
        cv_warn("store", "cannot reconnect to PostgreSQL %s: %s; next attempt in %d ms", s->where,
                msg, s->backoff_ms);
    }
    free(msg);
}

static int classify(const char *msg)
{
    if (strstr(msg, "authentication failed") || strstr(msg, "no password supplied") ||
        strstr(msg, "permission denied"))
        return -EACCES;
    return -EIO;
}

static void on_io(uv_poll_t *h, int status, int events);

/* Server notices (e.g. "relation already exists, skipping") go to the debug log, not stderr. */
static void on_notice(void *arg, const char *msg)
{
    store_pg_t *s = arg;
    cv_debug("store", "PostgreSQL %s: %.*s", s->where, (int)strcspn(msg, "\n"), msg);
}

static store_pg_req_t *req_new(store_op_t op, void *ud);

/* After a reconnect: LISTEN again ahead of everything, then tell the watcher to re-read. */
static void relisten(store_pg_t *s)
{
    store_pg_req_t *r = req_new(STORE_OP_LISTEN, s);
    r->result = 1; /* resync once it is listening */
    cv_list_insert_tail(s->queue.next, &r->link);
    s->nqueued++;
    if (s->outstanding++ == 0)
        update_refs(s);
}

static void connected(store_pg_t *s)
{
    uv_timer_stop(&s->timer);
    if (PQsetnonblocking(s->conn, 1) != 0 || !PQenterPipelineMode(s->conn)) {
        connect_failed(s, -EIO, PQerrorMessage(s->conn));
        return;
    }
    if (s->ever_connected)
        cv_info("store", "reconnected to PostgreSQL %s", s->where);
    else
        cv_info("store", "connected to PostgreSQL %s (server %d)", s->where,
                PQserverVersion(s->conn));
    if ((s->on_notify || s->on_event) && (s->ever_connected || s->started_degraded))
        relisten(s);
    if (s->spool == NULL && s->spool_path &&
        spool_open(s->spool_path, s->spool_max, &s->spool) == 0)
        s->replay_off = spool_head(s->spool);
    if (s->degraded)
        cv_info("store", "PostgreSQL %s is reachable again: %zu spooled record(s) to write back",
                s->where, spool_pending(s->spool));
    s->degraded = false;
    s->state = PGC_READY;
    s->ever_connected = true;
    s->backoff_ms = 0;
    memset(s->prepared, 0, sizeof(s->prepared));
    poll_set(s, PQsocket(s->conn), UV_READABLE, on_io);
    pump(s);
    notify_state(s);
}

static void on_connect_poll(uv_poll_t *h, int status, int events)
{
    store_pg_t *s = h->data;
    (void)status;
    (void)events;
    switch (PQconnectPoll(s->conn)) {
    case PGRES_POLLING_OK:
        connected(s);
        break;
    case PGRES_POLLING_FAILED:
        connect_failed(s, classify(PQerrorMessage(s->conn)), PQerrorMessage(s->conn));
        break;
    case PGRES_POLLING_READING:
        poll_set(s, PQsocket(s->conn), UV_READABLE, on_connect_poll);
        break;
    default:
        poll_set(s, PQsocket(s->conn), UV_WRITABLE, on_connect_poll);
        break;
    }
}

/* hostaddr: the resolved addresses, comma-separated (libpq tries them in order), each named
 * host for TLS and .pgpass; NULL when no resolution was needed. */
static void connect_to(store_pg_t *s, const char *hostaddr, size_t naddr)
{
    if (s->resolve_host) {
        cv_buf_t hosts = {0};
        for (size_t i = 0; i < naddr; i++)
            cv_buf_printf(&hosts, "%s%s", i ? "," : "", s->resolve_host);
        free(s->val[s->host_slot]);
        free(s->val[s->hostaddr_slot]);
        s->val[s->host_slot] = hosts.data;
        s->val[s->hostaddr_slot] = cv_strdup(hostaddr);
    }
    s->conn = PQconnectStartParams((const char *const *)s->kw, (const char *const *)s->val, 0);
    if (s->conn == NULL || PQstatus(s->conn) == CONNECTION_BAD || PQsocket(s->conn) < 0) {
        const char *why = s->conn ? PQerrorMessage(s->conn) : "out of memory";
        connect_failed(s, classify(why), why);
        return;
    }
    PQsetNoticeProcessor(s->conn, on_notice, s);
    s->state = PGC_CONNECTING;
    poll_set(s, PQsocket(s->conn), UV_WRITABLE, on_connect_poll);
}

static void maybe_finish_close(store_pg_t *s);

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    store_pg_t *s = req->data;
    bool current = s->gai == req;
    free(req);
    s->handles_open--;
    if (!current) { /* timed out or closed meanwhile */
        uv_freeaddrinfo(ai);
        maybe_finish_close(s);
        return;
    }
    s->gai = NULL;
    if (status < 0) {
        char *why = cv_sprintf("cannot resolve %s: %s", s->resolve_host, uv_strerror(status));
        connect_failed(s, -EIO, why);
        free(why);
        return;
    }
    cv_buf_t addrs = {0};
    size_t n = 0;
    for (struct addrinfo *a = ai; a != NULL && n < 8; a = a->ai_next) {
        char addr[INET6_ADDRSTRLEN] = "";
        if (a->ai_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)a->ai_addr, addr, sizeof(addr));
        else if (a->ai_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)a->ai_addr, addr, sizeof(addr));
        if (addr[0] == '\0')
            continue;
        cv_buf_printf(&addrs, "%s%s", n++ ? "," : "", addr);
    }
    uv_freeaddrinfo(ai);
    if (n == 0)
        connect_failed(s, -EIO, "the host name has no IPv4 or IPv6 address");
    else
        connect_to(s, addrs.data, n);
    cv_buf_free(&addrs);
}

static void on_connect_timeout(uv_timer_t *t)
{
    store_pg_t *s = t->data;
    char *why = cv_sprintf("no answer within %d ms", s->connect_timeout_ms);
    connect_failed(s, -ETIMEDOUT, why);
    free(why);
}

static void start_connect(store_pg_t *s)
{
    s->state = PGC_RESOLVING;
    uv_timer_start(&s->timer, on_connect_timeout, (uint64_t)s->connect_timeout_ms, 0);
    if (s->resolve_host == NULL) {
        connect_to(s, NULL, 0);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    uv_getaddrinfo_t *req = cv_calloc(1, sizeof(*req));
    req->data = s;
    int rc =
        uv_getaddrinfo(s->base.loop, req, on_resolved, s->resolve_host, s->resolve_port, &hints);
    if (rc < 0) {
        free(req);
        char *why = cv_sprintf("cannot resolve %s: %s", s->resolve_host, uv_strerror(rc));
        connect_failed(s, -EIO, why);
        free(why);
        return;
    }
    s->gai = req;
    s->handles_open++;
}

/* ---- the batch in flight ---- */

void store_pg__expect(store_pg_t *s, store_pg_req_t *req, int kind, int stmt)
{
    if (s->nitems == s->items_cap) {
        s->items_cap = s->items_cap ? s->items_cap * 2 : 256;
        s->items = cv_realloc(s->items, s->items_cap * sizeof(*s->items));
    }
    s->items[s->nitems++] = (store_pg_item_t){.req = req, .kind = kind, .stmt = stmt};
}

static void lost(store_pg_t *s, const char *why)
{
    char *msg = cv_strndup(why, strcspn(why, "\n"));
    cv_warn("store", "lost the connection to PostgreSQL %s: %s; reconnecting", s->where,
            msg[0] ? msg : "connection closed");
    free(msg);
    drop_connection(s);
    requeue_batch(s, false);
    backoff(s);
}

static void flush(store_pg_t *s)
{
    int rc = PQflush(s->conn);
    if (rc < 0)
        lost(s, PQerrorMessage(s->conn));
    else
        poll_set(s, s->poll_fd, rc == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE, on_io);
}

/* While the spool holds records, they go first: later requests wait behind them. */
static bool behind_spool(const store_pg_t *s, const store_pg_req_t *r)
{
    return !r->from_spool && r->op != STORE_OP_MIGRATE && r->op != STORE_OP_LISTEN && s->spool &&
           spool_pending(s->spool) > 0;
}

/* Sends r, which joined the batch, with the plain inserts queued right behind it (at most
 * STORE_PG_FOLD_MAX, within the batch's bound) in one multi-row statement. */
static int send_folded(store_pg_t *s, store_pg_req_t *r, size_t *nreq)
{
    store_pg_req_t *group[STORE_PG_FOLD_MAX];
    size_t n = 1;
    group[0] = r;
    while (n < STORE_PG_FOLD_MAX && *nreq < BATCH_MAX && !cv_list_empty(&s->queue)) {
        store_pg_req_t *q = cv_container_of(s->queue.next, store_pg_req_t, link);
        if (!store_pg__foldable(q) || behind_spool(s, q) || store_pg__fold_clash(group, n, q))
            break;
        cv_list_remove(&q->link);
        s->nqueued--;
        cv_list_insert_tail(&s->batch, &q->link);
        (*nreq)++;
        group[n++] = q;
    }
    return n == 1 ? store_pg__send(s, r) : store_pg__send_many(s, group, n);
}

static void send_batch(store_pg_t *s)
{
    size_t nreq = 0;
    s->batch_writes = false;
    s->batch_aborted = false;
    s->batch_err = 0;
    s->nitems = s->item_next = 0;
    s->item_got = false;
    while (!cv_list_empty(&s->queue) && nreq < BATCH_MAX) {
        store_pg_req_t *r = cv_container_of(s->queue.next, store_pg_req_t, link);
        bool alone = r->solo || r->op == STORE_OP_MIGRATE;
        if (r->op == STORE_OP_CLOSE || (alone && nreq > 0))
            break;
        if (behind_spool(s, r))
            break;
        cv_list_remove(&r->link);
        s->nqueued--;
        cv_list_insert_tail(&s->batch, &r->link);
        nreq++;
        if (r->status == 0 || r->op == STORE_OP_MIGRATE) {
            s->batch_writes |= STORE_OP_IS_WRITE(r->op);
            int rc =
                !alone && store_pg__foldable(r) ? send_folded(s, r, &nreq) : store_pg__send(s, r);
            if (rc < 0) {
                lost(s, PQerrorMessage(s->conn));
                return;
            }
        }
        if (alone)
            break;
    }
    if (nreq == 0)
        return;
    if (!PQpipelineSync(s->conn)) {
        lost(s, PQerrorMessage(s->conn));
        return;
    }
    s->batch_nreq = nreq;
    store_pg__expect(s, NULL, PGI_SYNC, -1);
    s->in_flight = true;
    flush(s);
}

static const char *op_what(store_op_t op)
{
    static const char *const what[] = {
        [STORE_OP_CLOSE] = "close",
        [STORE_OP_MIGRATE] = "migrate",
        [STORE_OP_PING] = "answer a ping",
        [STORE_OP_GET_RUN] = "read a run",
        [STORE_OP_QUERY_RUNS] = "query runs",
        [STORE_OP_JOB_STATS] = "compute job statistics",
        [STORE_OP_SUMMARY] = "summarise runs",
        [STORE_OP_OV_LIST] = "list overrides",
        [STORE_OP_AUDIT_LIST] = "list the audit",
        [STORE_OP_INSERT_RUN] = "insert a run",
        [STORE_OP_UPDATE_RUN] = "update a run",
        [STORE_OP_ABANDON] = "abandon stale runs",
        [STORE_OP_RETENTION] = "delete old runs",
        [STORE_OP_OV_SET] = "set an override",
        [STORE_OP_OV_DELETE] = "delete an override",
        [STORE_OP_AUDIT_APPEND] = "append to the audit",
        [STORE_OP_INSTANCES] = "list instances",
        [STORE_OP_LISTEN] = "listen for changes of other instances",
        [STORE_OP_HEARTBEAT] = "record a heartbeat",
        [STORE_OP_ABANDON_DEAD] = "abandon the runs of dead instances",
        [STORE_OP_NOTIFY] = "send a notification",
        [STORE_OP_NOTE_PUT] = "record a notification",
        [STORE_OP_NOTE_LIST] = "list notifications",
    };
    return what[op];
}

static void on_result(store_pg_t *s, store_pg_item_t *it, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (it->kind == PGI_QUERY) {
            store_pg_req_t *r = it->req;
            if (r->nres == r->res_cap) {
                r->res_cap = r->res_cap ? r->res_cap * 2 : 4;
                r->res = cv_realloc(r->res, r->res_cap * sizeof(*r->res));
            }
            r->res[r->nres++] = res;
            return;
        }
    } else {
        /* FATAL ends the session (shutdown, terminated backend): the socket may stay open with
         * nothing more to read, so do not wait for libpq to notice. */
        const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
        if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
            s->session_over = true;
        if (it->kind == PGI_PREPARE)
            s->prepared[it->stmt] = false;
        if (st != PGRES_PIPELINE_ABORTED && s->batch_err == 0 && !s->session_over)
            s->batch_err =
                store_pg__error(s, res, it->req ? op_what(it->req->op) : "prepare a statement",
                                s->batch_nreq == 1); /* else retried one by one */
        s->batch_aborted = true;
    }
    PQclear(res);
}

/* The batch's sync arrived: deliver or retry its requests. */
static void batch_done(store_pg_t *s)
{
    cv_list_t b, first;
    cv_list_init(&b);
    cv_list_init(&first);
    size_t nreq = 0;
    while (!cv_list_empty(&s->batch)) {
        cv_list_t *n = s->batch.next;
        cv_list_remove(n);
        cv_list_insert_tail(&b, n);
        nreq++;
    }
    s->in_flight = false;
    s->nitems = s->item_next = 0;
    if (s->batch_aborted && nreq > 1) {
        /* Everything was rolled back: send each request alone so only the faulty one fails. */
        cv_debug("store", "a batch of %zu requests failed; retrying them one by one", nreq);
        s->batch = b;
        b.next->prev = &s->batch;
        b.prev->next = &s->batch;
        requeue_batch(s, true);
        pump(s);
        return;
    }
    if (!s->batch_aborted && s->batch_writes)
        s->commits++;
    int err = s->batch_aborted ? (s->batch_err ? s->batch_err : -EIO) : 0;
    while (!cv_list_empty(&b)) {
        store_pg_req_t *r = cv_container_of(b.next, store_pg_req_t, link);
        cv_list_remove(&r->link);
        switch (store_pg__finish(s, r, err)) {
        case PG_DONE:
            complete(s, r);
            break;
        case PG_AGAIN_FIRST:
            cv_list_insert_tail(&first, &r->link);
            break;
        case PG_AGAIN_LAST:
            cv_list_insert_tail(&s->queue, &r->link);
            s->nqueued++;
            break;
        }
    }
    while (!cv_list_empty(&first)) {
        store_pg_req_t *r = cv_container_of(first.prev, store_pg_req_t, link);
        cv_list_remove(&r->link);
        r->link.next = s->queue.next;
        r->link.prev = &s->queue;
        s->queue.next->prev = &r->link;
        s->queue.next = &r->link;
        s->nqueued++;
    }
    pump(s);
}

/* Reads every result available without blocking. */
static void read_results(store_pg_t *s)
{
    while (s->in_flight && !s->session_over && s->item_next < s->nitems && !PQisBusy(s->conn)) {
        PGresult *res = PQgetResult(s->conn);
        store_pg_item_t *it = &s->items[s->item_next];
        if (res == NULL) {
            if (!s->item_got) {
                lost(s, PQstatus(s->conn) == CONNECTION_BAD ? PQerrorMessage(s->conn)
                                                            : "results out of step");
                return;
            }
            s->item_got = false;
            s->item_next++;
            continue;
        }
        if (it->kind == PGI_SYNC) {
            bool sync = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
            if (!sync && PQresultStatus(res) == PGRES_FATAL_ERROR)
                s->batch_err = store_pg__error(s, res, "finish a batch", true);
            PQclear(res);
            if (!sync) {
                lost(s, PQstatus(s->conn) == CONNECTION_BAD ? PQerrorMessage(s->conn)
                                                            : "results out of step");
                return;
            }
            batch_done(s);
            return;
        }
        s->item_got = true;
        on_result(s, it, res);
    }
    if (s->conn && (PQstatus(s->conn) == CONNECTION_BAD || s->session_over))
        lost(s, s->session_over ? "the server ended the session" : PQerrorMessage(s->conn));
}

static void drain_notifies(store_pg_t *s)
{
    PGnotify *nt;
    while ((nt = PQnotifies(s->conn)) != NULL) {
        if (s->on_notify && strcmp(nt->relname, STORE_PG_OV_CHANNEL) == 0)
            s->on_notify(s->notify_ud, nt->extra);
        else if (s->on_event && strcmp(nt->relname, STORE_PG_OV_CHANNEL) != 0)
            s->on_event(s->event_ud, nt->relname, nt->extra);
        PQfreemem(nt);
    }
}

static void on_io(uv_poll_t *h, int status, int events)
{
    store_pg_t *s = h->data;
    if (status < 0)
        events |= UV_READABLE; /* let libpq find out what happened */
    if (events & UV_WRITABLE) {
        flush(s);
        if (s->conn == NULL)
            return;
    }
    if (!(events & UV_READABLE))
        return;
    if (!PQconsumeInput(s->conn)) {
        lost(s, PQerrorMessage(s->conn));
        return;
    }
    drain_notifies(s);
    read_results(s);
    if (s->conn)
        drain_notifies(s); /* parsed while reading results */
}

/* ---- the queue ---- */

static void finish_close(store_pg_t *s, store_pg_req_t *r);

/* Answers what can be answered without the database, then sends the next batch (or connects). */
static void pump(store_pg_t *s)
{
    if (s->in_flight)
        return;
    flush_commit(s);
    load_replay(s);
    while (!cv_list_empty(&s->queue)) {
        store_pg_req_t *r = cv_container_of(s->queue.next, store_pg_req_t, link);
        if (r->op == STORE_OP_CLOSE &&
            (!cv_list_empty(&s->spooled) || !cv_list_empty(&s->rejected)))
            return; /* the spooled records are synced and answered first (on_prepare) */
        if (r->op == STORE_OP_CLOSE && r->link.next != &s->queue) {
            /* Unfinished work (retention) was queued again behind the close: let it drain. */
            cv_list_remove(&r->link);
            cv_list_insert_tail(&s->queue, &r->link);
            continue;
        }
        if (r->op != STORE_OP_CLOSE && (r->status == 0 || r->op == STORE_OP_MIGRATE))
            break;
        cv_list_remove(&r->link);
        s->nqueued--;
        if (r->op == STORE_OP_CLOSE) {
            finish_close(s, r);
            return;
        }
        complete(s, r);
    }
    if (cv_list_empty(&s->queue))
        return;
    if (s->state == PGC_READY)
        send_batch(s);
    else if (s->state == PGC_IDLE)
        start_connect(s);
}

static void on_prepare(uv_prepare_t *h)
{
    store_pg_t *s = h->data;
    uv_prepare_stop(h);
    flush_spooled(s);
    while (!cv_list_empty(&s->rejected)) {
        store_pg_req_t *r = cv_container_of(s->rejected.next, store_pg_req_t, link);
        cv_list_remove(&r->link);
        complete(s, r);
    }
    pump(s);
    if (s->spool)
        notify_state(s);
}

static store_pg_req_t *req_new(store_op_t op, void *ud)
{
    store_pg_req_t *r = cv_calloc(1, sizeof(*r));
    r->op = op;
    r->ud = ud;
    return r;
}

static void submit(store_t *base, store_pg_req_t *r)
{
    store_pg_t *s = (store_pg_t *)base;
    assert(!s->closing && "store request after store_close");
    if (s->outstanding++ == 0)
        update_refs(s);
    uv_prepare_start(&s->prepare, on_prepare);
    if (r->status == 0 && spool_mode(s) && store_pg__spoolable(r)) {
        spool_req(s, r);
        return;
    }
    if (s->degraded && r->op == STORE_OP_MIGRATE) { /* answered now, run on reconnect */
        store_pg_req_t *m = req_new(STORE_OP_MIGRATE, NULL);
        cv_list_insert_tail(&s->queue, &m->link);
        s->nqueued++;
        s->outstanding++;
        cv_list_insert_tail(&s->rejected, &r->link);
        return;
    }
    if (s->degraded && r->op != STORE_OP_CLOSE && r->op != STORE_OP_LISTEN) {
        if (r->status == 0)
            r->status = -EAGAIN; /* reads, claims, heartbeats: the database is unreachable */
        cv_list_insert_tail(&s->rejected, &r->link);
        return;
    }
    if (s->state != PGC_READY && s->ever_connected && s->nqueued >= s->queue_max) {
        if (r->status == 0 && s->spool && store_pg__spoolable(r)) {
            /* A record is never refused while the spool can take it: what waits goes there now,
             * in order, as if the connect attempt had failed, and this record after it. */
            cv_warn("store",
                    "PostgreSQL %s is unreachable and %zu requests wait (storage.pending_max): "
                    "the store turns degraded before the connect attempt ends",
                    s->where, s->queue_max);
            enter_degraded(s);
            spool_req(s, r);
            return;
        }
        if (s->queue_refused++ == 0 || cv_list_empty(&s->rejected))
            cv_warn("store",
                    "PostgreSQL %s is unreachable and %zu requests wait (storage.pending_max): "
                    "refusing more (%s)",
                    s->where, s->queue_max, op_what(r->op));
        r->status = -EAGAIN;
        cv_list_insert_tail(&s->rejected, &r->link);
    } else {
        cv_list_insert_tail(&s->queue, &r->link);
        s->nqueued++;
    }
}

/* ---- closing ---- */

static void maybe_finish_close(store_pg_t *s)
{
    if (!s->closing || s->handles_open > 0 || s->close_req == NULL)
        return;
    store_pg_req_t *r = s->close_req;
    if (r->cb.status)
        r->cb.status(r->ud, 0);
    free(r);
    pg_free(s);
}

static void on_closed(uv_handle_t *h)
{
    store_pg_t *s = h->data;
    s->handles_open--;
    maybe_finish_close(s);
}

static void finish_close(store_pg_t *s, store_pg_req_t *r)
{
    s->outstanding--;
    drop_connection(s);
    s->close_req = r;
    uv_close((uv_handle_t *)&s->timer, on_closed);
    uv_close((uv_handle_t *)&s->prepare, on_closed);
}

/* ---- making requests ---- */

/* PostgreSQL refuses text that is not UTF-8 (a job's output may be anything): each invalid byte
 * becomes U+FFFD, so a run is never lost to an encoding error. */
static size_t utf8_seq(const unsigned char *p)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t n = c >= 0xC2 && c <= 0xDF   ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    for (size_t i = 1; i < n; i++) {
        unsigned char b = p[i];
        if (i == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80)
            return 0;
    }
    return n;
}

static void fix_utf8(char **sp)
{
    const unsigned char *p = (const unsigned char *)*sp;
    size_t n;
    while (p && *p && (n = utf8_seq(p)) > 0)
        p += n;
    if (p == NULL || *p == '\0')
        return;
    cv_buf_t b = {0};
    cv_buf_append(&b, *sp, (size_t)((const char *)p - *sp));
    while (*p) {
        n = utf8_seq(p);
        if (n == 0) {
            cv_buf_appends(&b, "\xEF\xBF\xBD");
            p++;
        } else {
            cv_buf_append(&b, p, n);
            p += n;
        }
    }
    free(*sp);
    *sp = b.data;
}

static run_t *run_arg(const run_t *in)
{
    run_t *r = run_dup(in);
    for (size_t i = 0; i < RUN_NPARAMS; i++)
        if (run_fields[i].kind == RUN_K_TEXT)
            fix_utf8(RUN_FIELD_PTR(r, &run_fields[i], char *));
    return r;
}

static void pg_close(store_t *base, store_status_cb cb, void *ud)
{
    store_pg_t *s = (store_pg_t *)base;
    store_pg_req_t *r = req_new(STORE_OP_CLOSE, ud);
    r->cb.status = cb;
    submit(base, r);
    s->closing = true;
    if (s->state == PGC_BACKOFF) { /* try once more now rather than after the backoff */
        uv_timer_stop(&s->timer);
        s->state = PGC_IDLE;
    }
}

static void pg_migrate(store_t *base, store_count_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_MIGRATE, ud);
    r->cb.count = cb;
    submit(base, r);
}

static void pg_ping(store_t *base, store_status_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_PING, ud);
    r->cb.status = cb;
    submit(base, r);
}

/* The client key of a provisional (negative) run id: unique across instances and restarts. */
static char *run_key(const store_pg_t *s, int64_t id)
{
    return id < 0 ? cv_sprintf("%s:%lld:%lld", s->instance, (long long)s->boot_ms, (long long)-id)
                  : NULL;
}

static store_pg_req_t *run_req(store_t *base, store_op_t op, const run_t *run, void *ud)
{
    store_pg_t *s = (store_pg_t *)base;
    store_pg_req_t *r = req_new(op, ud);
    r->u.run = run_arg(run);
    r->key = run_key(s, run->id);
    r->retry_key = run_key(s, run->retry_of);
    if (run->job == NULL || run->trigger == NULL)
        r->status = -EINVAL;
    return r;
}

static void pg_insert_run(store_t *base, const run_t *run, store_id_cb cb, void *ud)
{
    store_pg_t *s = (store_pg_t *)base;
    store_pg_req_t *r = run_req(base, STORE_OP_INSERT_RUN, run, ud);
    r->cb.id = cb;
    if (r->u.run->instance == NULL)
        r->u.run->instance = cv_strdup(s->instance);
    submit(base, r);
}

static void pg_claim_run(store_t *base, const run_t *run, store_id_cb cb, void *ud)
{
    store_pg_t *s = (store_pg_t *)base;
    store_pg_req_t *r = run_req(base, STORE_OP_INSERT_RUN, run, ud);
    r->cb.id = cb;
    r->nospool = true;
    if (r->u.run->instance == NULL)
        r->u.run->instance = cv_strdup(s->instance);
    submit(base, r);
}

static void pg_update_run(store_t *base, const run_t *run, store_status_cb cb, void *ud)
{
    store_pg_req_t *r = run_req(base, STORE_OP_UPDATE_RUN, run, ud);
    r->cb.status = cb;
    submit(base, r);
}

static int pg_watch_state(store_t *base, store_state_cb cb, void *ud)
{
    store_pg_t *s = (store_pg_t *)base;
    if (s->spool_path == NULL)
        return -ENOTSUP;
    s->on_state = cb;
    s->state_ud = ud;
    return 0;
}

static void pg_get_run(store_t *base, int64_t id, store_run_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_GET_RUN, ud);
    r->cb.run = cb;
    r->u.id = id;
    submit(base, r);
}

static void pg_query_runs(store_t *base, const store_run_filter_t *f, store_page_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_QUERY_RUNS, ud);
    int64_t before;
    r->cb.page = cb;
    r->status = store_req_set_query(&r->u, f);
    fix_utf8((char **)&r->u.query.f.job);
    fix_utf8((char **)&r->u.query.f.trigger);
    if (f->cursor && store_cursor_decode(f->cursor, &before) < 0) {
        cv_warn("store", "run query: the cursor '%.40s' is not one this server made", f->cursor);
        r->status = -EINVAL;
    }
    if (f->status_mask >> RUN__COUNT)
        r->status = -EINVAL;
    submit(base, r);
}

static void pg_job_stats(store_t *base, const char *const *jobs, size_t njobs, int last_n,
                         store_stats_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_JOB_STATS, ud);
    r->cb.stats = cb;
    r->status = store_req_set_job_stats(&r->u, jobs, njobs, last_n);
    for (size_t i = 0; i < njobs; i++)
        fix_utf8(&r->u.stats.jobs[i]);
    submit(base, r);
}

static void pg_summary(store_t *base, int64_t since, store_summary_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_SUMMARY, ud);
    r->cb.summary = cb;
    r->u.summary.since = since;
    submit(base, r);
}

static void pg_abandon_stale(store_t *base, const char *instance, const char *reason,
                             store_count_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_ABANDON, ud);
    r->cb.count = cb;
    r->u.abandon.instance = store_strdup_opt(instance);
    r->u.abandon.reason = cv_strdup(reason ? reason : "abandoned");
    fix_utf8(&r->u.abandon.instance);
    fix_utf8(&r->u.abandon.reason);
    submit(base, r);
}

static void pg_retention(store_t *base, int days, int max_runs_per_job, store_count_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_RETENTION, ud);
    r->cb.count = cb;
    r->u.retention.days = days;
    r->u.retention.max_runs = max_runs_per_job;
    r->step = days > 0               ? STORE_PG_RET_AGE
              : max_runs_per_job > 0 ? STORE_PG_RET_COUNT
                                     : STORE_PG_RET_DONE;
    if (days < 0 || max_runs_per_job < 0)
        r->status = -EINVAL;
    submit(base, r);
}

/* The shared copy (store_req_set_override), then PostgreSQL's valid-UTF-8 rule. */
static int ov_copy(store_pg_req_t *r, store_op_t op, const store_override_t *src)
{
    int status = store_req_set_override(&r->u, op, src);
    store_override_t *o = &r->u.ov.ov;
    fix_utf8(&o->job);
    fix_utf8(&o->field);
    fix_utf8(&o->value);
    fix_utf8(&o->updated_by);
    return status;
}

static void pg_override_set(store_t *base, const store_override_t *ov, store_status_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_OV_SET, ud);
    r->cb.status = cb;
    r->status = ov_copy(r, STORE_OP_OV_SET, ov);
    submit(base, r);
}

static void pg_override_delete(store_t *base, const char *job, const char *field,
                               store_status_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_OV_DELETE, ud);
    r->cb.status = cb;
    r->status = ov_copy(r, STORE_OP_OV_DELETE,
                        &(store_override_t){.job = (char *)job, .field = (char *)field});
    submit(base, r);
}

static void pg_override_list(store_t *base, const char *job, store_overrides_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_OV_LIST, ud);
    r->cb.overrides = cb;
    r->status = ov_copy(r, STORE_OP_OV_LIST, &(store_override_t){.job = (char *)job});
    submit(base, r);
}

static void pg_audit_append(store_t *base, const store_audit_t *a, store_id_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_AUDIT_APPEND, ud);
    r->cb.id = cb;
    r->status = store_req_set_audit(&r->u, a);
    r->key = run_key((store_pg_t *)base, a->run_id);
    char **texts[] = {&r->u.audit.actor, &r->u.audit.action, &r->u.audit.job, &r->u.audit.before,
                      &r->u.audit.after};
    for (size_t i = 0; i < CV_ARRAY_SIZE(texts); i++)
        fix_utf8(texts[i]);
    submit(base, r);
}

static void pg_audit_list(store_t *base, const char *job, int limit, const char *cursor,
                          store_audit_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_AUDIT_LIST, ud);
    int64_t before;
    r->cb.audit = cb;
    r->status = store_req_set_audit_list(&r->u, job, limit, cursor);
    fix_utf8(&r->u.audit_list.job);
    if (cursor && store_cursor_decode(cursor, &before) < 0) {
        cv_warn("store", "audit list: the cursor '%.40s' is not one this server made", cursor);
        r->status = -EINVAL;
    }
    submit(base, r);
}

static void pg_note_put(store_t *base, const store_note_t *n, store_status_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_NOTE_PUT, ud);
    r->cb.status = cb;
    r->status = store_req_set_note(&r->u, n);
    char **texts[] = {&r->u.note.instance, &r->u.note.notifier, &r->u.note.event,
                      &r->u.note.subject, &r->u.note.last_error};
    for (size_t i = 0; i < CV_ARRAY_SIZE(texts); i++)
        fix_utf8(texts[i]);
    submit(base, r);
}

static void pg_note_list(store_t *base, int limit, store_notes_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_NOTE_LIST, ud);
    r->cb.notes = cb;
    r->status = store_req_set_note_list(&r->u, limit);
    submit(base, r);
}

static void pg_heartbeat(store_t *base, const store_instance_t *inst, store_status_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_HEARTBEAT, ud);
    store_instance_t *o = &r->u.inst.one;
    r->cb.status = cb;
    r->status = store_req_set_heartbeat(&r->u, inst);
    fix_utf8(&o->id);
    fix_utf8(&o->hostname);
    fix_utf8(&o->version);
    submit(base, r);
}

static void pg_abandon_dead(store_t *base, int64_t seen_before, store_count_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_ABANDON_DEAD, ud);
    r->cb.count = cb;
    r->u.abandon.seen_before = seen_before;
    submit(base, r);
}

static void pg_list_instances(store_t *base, store_instances_cb cb, void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_INSTANCES, ud);
    r->cb.instances = cb;
    submit(base, r);
}

/* One LISTEN request listens on every channel, for whichever watcher comes first. Once it is
 * listening the watchers are told to re-read (as after a reconnect): what another instance
 * changed between their first read and the LISTEN would otherwise be missed for good. */
static void listen_first(store_pg_t *s)
{
    store_pg_req_t *r = req_new(STORE_OP_LISTEN, s);
    r->result = 1;
    submit(&s->base, r);
}

static int pg_watch_overrides(store_t *base, store_notify_cb cb, void *ud)
{
    store_pg_t *s = (store_pg_t *)base;
    bool first = s->on_notify == NULL && s->on_event == NULL;
    s->on_notify = cb;
    s->notify_ud = ud;
    if (first)
        listen_first(s);
    return 0;
}

static int pg_watch_events(store_t *base, store_event_cb cb, void *ud)
{
    store_pg_t *s = (store_pg_t *)base;
    bool first = s->on_notify == NULL && s->on_event == NULL;
    s->on_event = cb;
    s->event_ud = ud;
    if (first)
        listen_first(s);
    return 0;
}

static void pg_notify(store_t *base, const char *channel, const char *payload, store_status_cb cb,
                      void *ud)
{
    store_pg_req_t *r = req_new(STORE_OP_NOTIFY, ud);
    r->cb.status = cb;
    r->u.notify.channel = store_strdup_opt(channel);
    r->u.notify.payload = store_strdup_opt(payload);
    if (channel == NULL || payload == NULL)
        r->status = -EINVAL;
    fix_utf8(&r->u.notify.payload);
    submit(base, r);
}

static uint64_t pg_commits(store_t *base)
{
    return ((store_pg_t *)base)->commits;
}

/* ---- delivering ---- */

static void req_free(store_pg_req_t *r)
{
    free(r->key);
    free(r->retry_key);
    store_pg__clear_results(r);
    free(r->res);
    store_req_args_free(r->op, &r->u, r->status);
    free(r);
}

static void deliver(store_pg_req_t *r)
{
    if (r->op == STORE_OP_LISTEN) {
        store_pg_t *s = r->ud;
        if (r->status == 0 && r->result && s->on_notify)
            s->on_notify(s->notify_ud, NULL);
        if (r->status == 0 && r->result && s->on_event)
            s->on_event(s->event_ud, NULL, NULL);
        return;
    }
    store_req_deliver(r->op, &r->cb, r->ud, r->status, r->result, &r->u);
}

static const store_ops_t pg_ops = {
    .name = "postgres",
    .close = pg_close,
    .migrate = pg_migrate,
    .ping = pg_ping,
    .insert_run = pg_insert_run,
    .update_run = pg_update_run,
    .get_run = pg_get_run,
    .query_runs = pg_query_runs,
    .job_stats = pg_job_stats,
    .summary = pg_summary,
    .abandon_stale = pg_abandon_stale,
    .retention = pg_retention,
    .override_set = pg_override_set,
    .override_delete = pg_override_delete,
    .override_list = pg_override_list,
    .audit_append = pg_audit_append,
    .audit_list = pg_audit_list,
    .note_put = pg_note_put,
    .note_list = pg_note_list,
    .commits = pg_commits,
    .shared = true,
    .heartbeat = pg_heartbeat,
    .abandon_dead = pg_abandon_dead,
    .list_instances = pg_list_instances,
    .watch_overrides = pg_watch_overrides,
    .watch_events = pg_watch_events,
    .notify = pg_notify,
    .claim_run = pg_claim_run,
    .get_state = pg_get_state,
    .watch_state = pg_watch_state,
};
