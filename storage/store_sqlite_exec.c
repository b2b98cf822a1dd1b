/* SQLite backend, worker side: the SQL of every operation. Runs only on the worker thread, which
 * owns the handle; the batch transaction around writes is opened and committed by the caller. */
#include "storage/schema.h"
#include "storage/store_sqlite_int.h"

#include "core/log.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RETENTION_BATCH 500
/* A retention step that deleted nothing moves on to the next job, up to this many per step. */
#define RETENTION_JOBS_PER_STEP 64

/* ---- helpers ---- */

/* Maps an SQLite result code to a negative errno, logging what failed unless it is expected. */
static int store_sqlite__error(store_sqlite_t *s, int rc, const char *what)
{
    int err;
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return -EEXIST; /* expected: a claim lost to another instance */
    case SQLITE_CONSTRAINT_NOTNULL:
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        err = -EINVAL;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        err = -EBUSY;
        break;
    case SQLITE_FULL:
        err = -ENOSPC;
        break;
    case SQLITE_READONLY:
        err = -EROFS;
        break;
    case SQLITE_NOMEM:
        err = -ENOMEM;
        break;
    default:
        err = -EIO;
        break;
    }
    cv_warn("store", "database %s: cannot %s: %s", s->path, what, sqlite3_errmsg(s->db));
    return err;
}

int store_sqlite__exec_sql(store_sqlite_t *s, const char *sql, const char *what)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : store_sqlite__error(s, sqlite3_extended_errcode(s->db), what);
}

/* Parsing a statement costs more than running it (sqlite3_prepare was 83% of the worker's
 * instructions with one statistics query per finished run), so every statement is prepared
 * once per SQL text and kept, up to STMT_CACHE_MAX texts (the run queries build their text from
 * the filters); release() resets a kept statement and finalizes any other. A kept statement
 * still in use (not reset) is not handed out twice: the caller gets a fresh one. */
#define STMT_CACHE_MAX CV_ARRAY_SIZE(((store_sqlite_t *)0)->stmt_kept)

static sqlite3_stmt *prepare(store_sqlite_t *s, const char *sql, int *err, const char *what)
{
    sqlite3_stmt *st = cv_strmap_get(&s->stmt_cache, sql);
    if (st != NULL && !sqlite3_stmt_busy(st)) {
        sqlite3_clear_bindings(st);
        return st;
    }
    bool keep = st == NULL && s->nstmt_cache < STMT_CACHE_MAX;
    st = NULL;
    int rc = sqlite3_prepare_v3(s->db, sql, -1, keep ? SQLITE_PREPARE_PERSISTENT : 0, &st, NULL);
    if (rc != SQLITE_OK) {
        *err = store_sqlite__error(s, rc, what);
        return NULL;
    }
    if (keep) {
        cv_strmap_put(&s->stmt_cache, sql, st);
        s->stmt_kept[s->nstmt_cache++] = st;
    }
    return st;
}

/* Ends the use of a statement from prepare(). */
static void release(store_sqlite_t *s, sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < SQS__COUNT; i++)
        if (s->stmts[i] == st) {
            sqlite3_reset(st);
            return;
        }
    for (size_t i = 0; i < s->nstmt_cache; i++)
        if (s->stmt_kept[i] == st) {
            sqlite3_reset(st);
            return;
        }
    sqlite3_finalize(st);
}

static void finalize_value(void *st)
{
    sqlite3_finalize(st);
}

/* A statement prepared once per handle; reset and unbound before it is handed out. */
static sqlite3_stmt *cached(store_sqlite_t *s, store_sqlite_stmt_t slot, const char *sql, int *err,
                            const char *what)
{
    if (s->stmts[slot] == NULL) {
        int rc =
            sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[slot], NULL);
        if (rc != SQLITE_OK) {
            *err = store_sqlite__error(s, rc, what);
            return NULL;
        }
    }
    sqlite3_reset(s->stmts[slot]);
    sqlite3_clear_bindings(s->stmts[slot]);
    return s->stmts[slot];
}

void store_sqlite__finalize(store_sqlite_t *s)
{
    for (int i = 0; i < SQS__COUNT; i++) {
        sqlite3_finalize(s->stmts[i]);
        s->stmts[i] = NULL;
    }
    cv_strmap_free(&s->stmt_cache, finalize_value);
    memset(&s->stmt_cache, 0, sizeof(s->stmt_cache));
    s->nstmt_cache = 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? cv_strdup((const char *)t) : NULL;
}

/* Steps a statement that returns no rows. */
static int step_done(store_sqlite_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW)
        return 0;
    return store_sqlite__error(s, sqlite3_extended_errcode(s->db), what);
}

/* Runs a one-off statement: text (when not NULL) is bound first, then args, in parameter order.
 * The first column of the first row (0 when none) goes to *out when out is not NULL. */
static int query_int(store_sqlite_t *s, const char *sql, const char *text, const int64_t *args,
                     int nargs, int64_t *out, const char *what)
{
    int err = 0, i = 1;
    sqlite3_stmt *st = prepare(s, sql, &err, what);
    if (st == NULL)
        return err;
    if (text)
        bind_text(st, i++, text);
    for (int k = 0; k < nargs; k++)
        sqlite3_bind_int64(st, i++, args[k]);
    int rc = sqlite3_step(st);
    if (out)
        *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = store_sqlite__error(s, sqlite3_extended_errcode(s->db), what);
    release(s, st);
    return err;
}

/* ---- runs ---- */

/* Binds the columns after id as $1..$RUN_NPARAMS (the field table's order). */
static void bind_run(sqlite3_stmt *st, const run_t *r)
{
    for (int i = 0; i < RUN_NPARAMS; i++) {
        const run_field_t *f = &run_fields[i];
        int k = i + 1;
        switch (f->kind) {
        case RUN_K_I64:
            sqlite3_bind_int64(st, k, *RUN_FIELD_CPTR(r, f, int64_t));
            break;
        case RUN_K_INT:
            sqlite3_bind_int(st, k, *RUN_FIELD_CPTR(r, f, int));
            break;
        case RUN_K_DBL:
            sqlite3_bind_double(st, k, *RUN_FIELD_CPTR(r, f, double));
            break;
        case RUN_K_STATUS:
            bind_text(st, k, run_status_name(*RUN_FIELD_CPTR(r, f, run_status_t)));
            break;
        case RUN_K_TEXT:
            bind_text(st, k, *RUN_FIELD_CPTR(r, f, char *));
            break;
        }
    }
}

/* Reads a row selected with STORE_RUN_COLUMNS. */
static run_t *read_run(sqlite3_stmt *st)
{
    run_t *r = cv_calloc(1, sizeof(*r));
    r->refs = 1;
    r->id = sqlite3_column_int64(st, RUN_COL_id);
    for (int i = 0; i < RUN_NPARAMS; i++) {
        const run_field_t *f = &run_fields[i];
        int k = i + 1;
        switch (f->kind) {
        case RUN_K_I64:
            *RUN_FIELD_PTR(r, f, int64_t) = sqlite3_column_int64(st, k);
            break;
        case RUN_K_INT:
            *RUN_FIELD_PTR(r, f, int) = sqlite3_column_int(st, k);
            break;
        case RUN_K_DBL:
            *RUN_FIELD_PTR(r, f, double) = sqlite3_column_double(st, k);
            break;
        case RUN_K_STATUS:
            run_field_set_status(r, f, (const char *)sqlite3_column_text(st, k));
            break;
        case RUN_K_TEXT:
            *RUN_FIELD_PTR(r, f, char *) = col_text(st, k);
            break;
        }
    }
    return r;
}

/* ---- job_counts (migration 6): finished runs per job and status ----
 * Kept here, in the transaction of the write that changes them, rather than by triggers: a table
 * with insert or update triggers makes SQLite journal every statement that writes it. */

static int count_add(store_sqlite_t *s, const char *job, const char *status, int64_t n)
{
    int err = 0;
    sqlite3_stmt *st = cached(s, SQS_COUNT_ADD,
                              "INSERT INTO job_counts (job, status, n) VALUES (?1, ?2, ?3)"
                              " ON CONFLICT (job, status) DO UPDATE SET n = n + excluded.n",
                              &err, "prepare counting runs");
    if (st == NULL)
        return err;
    bind_text(st, 1, job);
    bind_text(st, 2, status);
    sqlite3_bind_int64(st, 3, n);
    err = step_done(s, st, "count runs");
    sqlite3_reset(st);
    return err;
}

/* The status of run id before it is updated: 0 and *out set, -ENOENT, or an error. */
static int status_before(store_sqlite_t *s, int64_t id, run_status_t *out)
{
    int err = 0;
    sqlite3_stmt *st = cached(s, SQS_RUN_STATUS, "SELECT status FROM runs WHERE id = ?1", &err,
                              "prepare reading a run's status");
    if (st == NULL)
        return err;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    const char *name = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (rc == SQLITE_ROW)
        err = name && run_status_parse(name, out) == 0 ? 0 : -EPROTO;
    else if (rc == SQLITE_DONE)
        err = -ENOENT;
    else
        err = store_sqlite__error(s, sqlite3_extended_errcode(s->db), "read a run's status");
    sqlite3_reset(st);
    return err;
}

static void exec_insert_run(store_sqlite_t *s, store_sqlite_req_t *req)
{
    int err = 0;
    sqlite3_stmt *st =
        cached(s, SQS_INSERT_RUN, store_run_sql(STORE_RUN_SQL_INSERT), &err, "prepare");
    if (st == NULL) {
        req->status = err;
        return;
    }
    bind_run(st, req->u.run);
    if (req->u.run->id > 0)
        sqlite3_bind_int64(st, RUN_NPARAMS + 1, req->u.run->id);
    else
        sqlite3_bind_null(st, RUN_NPARAMS + 1); /* the database assigns it */
    req->status = step_done(s, st, "insert a run");
    if (req->status == 0)
        req->result = sqlite3_last_insert_rowid(s->db);
    if (req->status == 0 && run_status_final(req->u.run->status))
        req->status = count_add(s, req->u.run->job, run_status_name(req->u.run->status), 1);
    else if (req->status == -EEXIST)
        cv_debug("store", "firing of %s at %lld already claimed", req->u.run->job,
                 (long long)req->u.run->scheduled_for);
    sqlite3_reset(st);
}

static void exec_update_run(store_sqlite_t *s, store_sqlite_req_t *req)
{
    int err = 0;
    /* The columns a run's life changes (the field table's life flag), by bind_run's numbers */
    const char *sql = store_run_sql(STORE_RUN_SQL_UPDATE_LIFE);
    const run_t *r = req->u.run;
    run_status_t before = RUN_QUEUED;
    req->status = status_before(s, r->id, &before);
    if (req->status < 0)
        return;
    sqlite3_stmt *st = cached(s, SQS_UPDATE_RUN, sql, &err, "prepare");
    if (st == NULL) {
        req->status = err;
        return;
    }
    bind_run(st, r);
    sqlite3_bind_int64(st, RUN_NPARAMS + 1, r->id);
    req->status = step_done(s, st, "update a run");
    if (req->status == 0 && sqlite3_changes(s->db) == 0)
        req->status = -ENOENT;
    sqlite3_reset(st);
    if (req->status == 0 && before != r->status && run_status_final(before))
        req->status = count_add(s, r->job, run_status_name(before), -1);
    if (req->status == 0 && before != r->status && run_status_final(r->status))
        req->status = count_add(s, r->job, run_status_name(r->status), 1);
}

static void exec_get_run(store_sqlite_t *s, store_sqlite_req_t *req)
{
    int err = 0;
    sqlite3_stmt *st = cached(s, SQS_GET_RUN, store_run_sql(STORE_RUN_SQL_GET), &err, "prepare");
    if (st == NULL) {
        req->status = err;
        return;
    }
    int64_t id = req->u.id;
    req->u.run = NULL;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        req->u.run = read_run(st);
    else if (rc == SQLITE_DONE)
        req->status = -ENOENT;
    else
        req->status = store_sqlite__error(s, sqlite3_extended_errcode(s->db), "read a run");
    sqlite3_reset(st);
}

/* Appends " AND status IN ('A', 'B')" for the statuses of mask (names from a fixed table). */
static void append_status_in(cv_buf_t *sql, uint32_t mask)
{
    const char *sep = " AND status IN (";
    for (int i = 0; i < RUN__COUNT; i++) {
        if (mask & (1u << i)) {
            cv_buf_printf(sql, "%s'%s'", sep, run_status_name((run_status_t)i));
            sep = ", ";
        }
    }
    cv_buf_appends(sql, ")");
}

static int query_runs_prepare(store_sqlite_t *s, const store_run_filter_t *f, int64_t before,
                              int limit, sqlite3_stmt **out)
{
    cv_buf_t sql = {0};
    int err = 0, i = 1;
    cv_buf_appends(&sql, "SELECT " STORE_RUN_COLUMNS " FROM runs WHERE 1 = 1");
    if (f->job)
        cv_buf_printf(&sql, " AND job = $%d", i++);
    if (f->status_mask)
        append_status_in(&sql, f->status_mask);
    if (f->trigger)
        cv_buf_printf(&sql, " AND \"trigger\" = $%d", i++);
    if (f->since)
        cv_buf_printf(&sql, " AND started_at >= $%d", i++);
    if (f->until)
        cv_buf_printf(&sql, " AND started_at < $%d", i++);
    if (before)
        cv_buf_printf(&sql, " AND id < $%d", i++);
    if (f->above_id)
        cv_buf_printf(&sql, " AND id > $%d", i++);
    cv_buf_printf(&sql, " ORDER BY id DESC LIMIT %d", limit + 1);
    sqlite3_stmt *st = prepare(s, sql.data, &err, "prepare a run query");
    cv_buf_free(&sql);
    if (st == NULL)
        return err;
    i = 1;
    if (f->job)
        bind_text(st, i++, f->job);
    if (f->trigger)
        bind_text(st, i++, f->trigger);
    if (f->since)
        sqlite3_bind_int64(st, i++, f->since);
    if (f->until)
        sqlite3_bind_int64(st, i++, f->until);
    if (before)
        sqlite3_bind_int64(st, i++, before);
    if (f->above_id)
        sqlite3_bind_int64(st, i++, f->above_id);
    *out = st;
    return 0;
}

static void exec_query_runs(store_sqlite_t *s, store_sqlite_req_t *req)
{
    const store_run_filter_t *f = &req->u.query.f;
    store_run_page_t *page = &req->u.query.page;
    int64_t before = 0;
    int limit = store_page_limit(f->limit);
    sqlite3_stmt *st = NULL;
    if (f->cursor && store_cursor_decode(f->cursor, &before) < 0) {
        cv_warn("store", "run query: the cursor '%.40s' is not one this server made", f->cursor);
        req->status = -EINVAL;
        return;
    }
    if (f->status_mask >> RUN__COUNT) {
        req->status = -EINVAL;
        return;
    }
    req->status = query_runs_prepare(s, f, before, limit, &st);
    if (st == NULL)
        return;
    page->runs = cv_calloc((size_t)limit, sizeof(*page->runs));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (page->count == (size_t)limit) {
            page->next_cursor = store_cursor_encode(page->runs[limit - 1]->id);
            break;
        }
        page->runs[page->count++] = read_run(st);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        req->status = store_sqlite__error(s, sqlite3_extended_errcode(s->db), "query runs");
    release(s, st);
}

/* ---- statistics ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int stats_counts(store_sqlite_t *s, store_job_stats_t *js)
{
    int err = 0;
    /* job_counts (migration 6): a few rows, whatever the length of the history */
    sqlite3_stmt *st =
        cached(s, SQS_STATS_COUNTS,
               "SELECT COALESCE(SUM(CASE WHEN status <> 'SKIPPED' THEN n ELSE 0 END), 0),"
               " COALESCE(SUM(CASE WHEN status = 'SUCCESS' THEN n ELSE 0 END), 0),"
               " COALESCE(SUM(CASE WHEN status = 'PARTIAL' THEN n ELSE 0 END), 0),"
               " COALESCE(SUM(CASE WHEN status IN ('FAILED', 'TIMED_OUT') THEN n"
               " ELSE 0 END), 0)"
               " FROM job_counts WHERE job = $1",
               &err, "prepare job statistics");
    if (st == NULL)
        return err;
    bind_text(st, 1, js->job);
    if (sqlite3_step(st) == SQLITE_ROW) {
        js->runs = sqlite3_column_int64(st, 0);
        js->successes = sqlite3_column_int64(st, 1);
        js->partials = sqlite3_column_int64(st, 2);
        js->failures = sqlite3_column_int64(st, 3);
    } else {
        err = store_sqlite__error(s, sqlite3_extended_errcode(s->db), "count runs");
    }
    release(s, st);
    int64_t judged = js->successes + js->partials + js->failures;
    js->success_rate = judged ? (double)(js->successes + js->partials) / (double)judged : 0;
    return err;
}

static int stats_failures(store_sqlite_t *s, store_job_stats_t *js)
{
    int err = 0;
    sqlite3_stmt *st = cached(s, SQS_STATS_FAILURES,
                              "SELECT COUNT(*) FROM runs WHERE job = $1"
                              " AND status IN ('FAILED', 'TIMED_OUT', 'ABANDONED') AND id > "
                              "COALESCE((SELECT MAX(id) FROM runs WHERE job = $1"
                              " AND status IN ('SUCCESS', 'PARTIAL')), 0)",
                              &err, "prepare counting consecutive failures");
    if (st == NULL)
        return err;
    bind_text(st, 1, js->job);
    int rc = sqlite3_step(st);
    js->consecutive_failures = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = store_sqlite__error(s, sqlite3_extended_errcode(s->db), "count consecutive failures");
    release(s, st);
    return err;
}

static int stats_durations(store_sqlite_t *s, store_job_stats_t *js, int last_n)
{
    int err = 0;
    sqlite3_stmt *st = cached(s, SQS_STATS_DURATIONS,
                              "SELECT duration_ms FROM runs WHERE job = $1 AND status IN"
                              " ('SUCCESS', 'PARTIAL', 'FAILED', 'TIMED_OUT')"
                              " ORDER BY id DESC LIMIT $2",
                              &err, "prepare run durations");
    if (st == NULL)
        return err;
    bind_text(st, 1, js->job);
    sqlite3_bind_int(st, 2, last_n);
    int64_t *d = cv_malloc((size_t)last_n * sizeof(*d));
    size_t n = 0;
    double sum = 0;
    while (n < (size_t)last_n && sqlite3_step(st) == SQLITE_ROW) {
        d[n] = sqlite3_column_int64(st, 0);
        sum += (double)d[n++];
    }
    if (n > 0) {
        qsort(d, n, sizeof(*d), cmp_i64);
        size_t rank = (size_t)ceil(0.95 * (double)n); /* nearest rank, 1-based */
        js->p95_duration_ms = d[rank - 1];
        js->avg_duration_ms = sum / (double)n;
    }
    js->duration_samples = (int64_t)n;
    free(d);
    release(s, st);
    return err;
}

static int stats_last(store_sqlite_t *s, store_job_stats_t *js)
{
    int err = 0;
    sqlite3_stmt *st =
        cached(s, SQS_STATS_LAST,
               "SELECT " STORE_RUN_COLUMNS " FROM runs WHERE job = $1 AND status <> 'SKIPPED'"
               " ORDER BY id DESC LIMIT 1",
               &err, "prepare the last run");
    if (st == NULL)
        return err;
    bind_text(st, 1, js->job);
    if (sqlite3_step(st) == SQLITE_ROW)
        js->last = read_run(st);
    release(s, st);
    return 0;
}

static void exec_job_stats(store_sqlite_t *s, store_sqlite_req_t *req)
{
    size_t n = req->u.stats.njobs;
    store_job_stats_t *out = cv_calloc(n ? n : 1, sizeof(*out));
    req->u.stats.out = out;
    for (size_t i = 0; i < n && req->status == 0; i++) {
        out[i].job = cv_strdup(req->u.stats.jobs[i]);
        int err = stats_counts(s, &out[i]);
        if (err == 0)
            err = stats_failures(s, &out[i]);
        if (err == 0)
            err = stats_durations(s, &out[i], req->u.stats.last_n);
        if (err == 0)
            err = stats_last(s, &out[i]);
        req->status = err;
    }
}

static void exec_summary(store_sqlite_t *s, store_sqlite_req_t *req)
{
    store_summary_t *o = &req->u.summary.out;
    int err = 0;
    sqlite3_stmt *st = prepare(s,
                               "SELECT status, COUNT(*) FROM runs WHERE status IN"
                               " ('RUNNING', 'QUEUED') GROUP BY status UNION ALL "
                               "SELECT status, COUNT(*) FROM runs WHERE status IN ('SUCCESS',"
                               " 'PARTIAL', 'FAILED', 'TIMED_OUT') AND finished_at >= $1"
                               " GROUP BY status",
                               &err, "prepare the summary");
    if (st == NULL) {
        req->status = err;
        return;
    }
    sqlite3_bind_int64(st, 1, req->u.summary.since);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        int64_t c = sqlite3_column_int64(st, 1);
        run_status_t stt;
        if (run_status_parse(name, &stt) < 0)
            continue;
        o->running += stt == RUN_RUNNING ? c : 0;
        o->queued += stt == RUN_QUEUED ? c : 0;
        o->success += stt == RUN_SUCCESS ? c : 0;
        o->partial += stt == RUN_PARTIAL ? c : 0;
        o->failed += stt == RUN_FAILED || stt == RUN_TIMED_OUT ? c : 0;
    }
    if (rc != SQLITE_DONE)
        req->status = store_sqlite__error(s, sqlite3_extended_errcode(s->db), "summarise runs");
    release(s, st);
}

/* ---- maintenance ---- */

/* The runs to abandon, with the instance (NULL: any) as parameter inst. */
#define STALE_RUNS(inst)                                                                           \
    " status IN ('RUNNING', 'QUEUED') AND (" inst " IS NULL OR instance = " inst ")"
/* job_counts += the runs matching where, which are about to become ABANDONED. */
#define COUNT_ABANDONED(where)                                                                     \
    "INSERT INTO job_counts (job, status, n) SELECT job, 'ABANDONED', COUNT(*) FROM runs "         \
    "WHERE" where                                                                                  \
    " GROUP BY job ORDER BY job ON CONFLICT (job, status) DO UPDATE SET n = n + excluded.n"

static void exec_abandon(store_sqlite_t *s, store_sqlite_req_t *req)
{
    int err = 0;
    int64_t now = cv_now_ms();
    sqlite3_stmt *st = prepare(s,
                               "UPDATE runs SET status = 'ABANDONED', error = $1, finished_at = $2,"
                               " duration_ms = CASE WHEN started_at > 0 THEN $2 - started_at"
                               " ELSE 0 END"
                               " WHERE" STALE_RUNS("$3"),
                               &err, "prepare abandoning stale runs");
    if (st == NULL) {
        req->status = err;
        return;
    }
    bind_text(st, 1, req->u.abandon.reason);
    sqlite3_bind_int64(st, 2, now);
    bind_text(st, 3, req->u.abandon.instance);
    err = query_int(s, COUNT_ABANDONED(STALE_RUNS("$1")), req->u.abandon.instance, NULL, 0, NULL,
                    "count abandoned runs");
    req->status = err < 0 ? err : step_done(s, st, "abandon stale runs");
    if (req->status == 0)
        req->result = sqlite3_changes(s->db);
    release(s, st);
}

static void exec_heartbeat(store_sqlite_t *s, store_sqlite_req_t *req)
{
    const store_instance_t *i = &req->u.inst.one;
    int err = 0;
    sqlite3_stmt *st = prepare(s, store_sql_heartbeat, &err, "prepare a heartbeat");
    if (st == NULL) {
        req->status = err;
        return;
    }
    bind_text(st, 1, i->id);
    bind_text(st, 2, i->hostname);
    sqlite3_bind_int64(st, 3, i->pid);
    sqlite3_bind_int64(st, 4, i->started_at);
    sqlite3_bind_int64(st, 5, i->last_seen);
    bind_text(st, 6, i->version);
    req->status = step_done(s, st, "record a heartbeat");
    release(s, st);
}

static void exec_abandon_dead(store_sqlite_t *s, store_sqlite_req_t *req)
{
    int err = query_int(s, COUNT_ABANDONED(STORE_SQL_DEAD_RUNS("$1")), NULL,
                        (int64_t[]){req->u.abandon.seen_before}, 1, NULL,
                        "count the abandoned runs of dead instances");
    if (err >= 0)
        err = query_int(s, store_sql_abandon_dead, NULL,
                        (int64_t[]){cv_now_ms(), req->u.abandon.seen_before}, 2, NULL,
                        "abandon the runs of dead instances");
    req->status = err < 0 ? err : 0;
    if (err >= 0)
        req->result = sqlite3_changes(s->db);
}

static void exec_instances(store_sqlite_t *s, store_sqlite_req_t *req)
{
    int err = 0, rc;
    size_t cap = 0;
    sqlite3_stmt *st = prepare(s, store_sql_list_instances, &err, "prepare listing instances");
    if (st == NULL) {
        req->status = err;
        return;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (req->u.inst.count == cap) {
            cap = cap ? cap * 2 : 8;
            req->u.inst.list = cv_realloc(req->u.inst.list, cap * sizeof(store_instance_t));
        }
        store_instance_t *i = &req->u.inst.list[req->u.inst.count++];
        i->id = col_text(st, 0);
        i->hostname = col_text(st, 1);
        i->pid = sqlite3_column_int64(st, 2);
        i->started_at = sqlite3_column_int64(st, 3);
        i->last_seen = sqlite3_column_int64(st, 4);
        i->version = col_text(st, 5);
    }
    if (rc != SQLITE_DONE)
        req->status = store_sqlite__error(s, sqlite3_extended_errcode(s->db), "list instances");
    release(s, st);
}

/* Deletes up to RETENTION_BATCH finished runs older than the cutoff, in id order from where the
 * previous step stopped. Returns the number deleted or a negative errno. */
static int64_t retention_by_age(store_sqlite_t *s, store_sqlite_req_t *req)
{
#define OLD_FINISHED                                                                               \
    " status NOT IN ('QUEUED', 'RUNNING') AND"                                                     \
    " (CASE WHEN finished_at > 0 THEN finished_at ELSE scheduled_for END) < $2"
    int64_t cutoff = cv_now_ms() - (int64_t)req->u.retention.days * 86400000;
    int64_t from = req->u.retention.last_id, hi = 0;
    int err = query_int(s,
                        "SELECT MAX(id) FROM (SELECT id FROM runs WHERE id > $1 AND" OLD_FINISHED
                        " ORDER BY id LIMIT 500) AS batch",
                        NULL, (int64_t[]){from, cutoff}, 2, &hi, "find old runs");
    if (err < 0 || hi == 0)
        return err;
    err = query_int(s, "DELETE FROM runs WHERE id > $1 AND" OLD_FINISHED " AND id <= $3", NULL,
                    (int64_t[]){from, cutoff, hi}, 3, NULL, "delete old runs");
    req->u.retention.last_id = hi;
    return err < 0 ? err : sqlite3_changes(s->db);
#undef OLD_FINISHED
}

static int retention_load_jobs(store_sqlite_t *s, store_sqlite_req_t *req)
{
    int err = 0;
    sqlite3_stmt *st = prepare(s, "SELECT DISTINCT job FROM runs ORDER BY job", &err, "list jobs");
    if (st == NULL)
        return err;
    size_t cap = 16;
    req->u.retention.jobs = cv_calloc(cap, sizeof(char *));
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (req->u.retention.njobs == cap) {
            cap *= 2;
            req->u.retention.jobs = cv_realloc(req->u.retention.jobs, cap * sizeof(char *));
        }
        req->u.retention.jobs[req->u.retention.njobs++] = col_text(st, 0);
    }
    release(s, st);
    return 0;
}

/* Deletes up to RETENTION_BATCH runs of one job beyond its newest max_runs, moving to the next job
 * once one is within its limit. Returns the number deleted or a negative errno. */
static int64_t retention_by_count(store_sqlite_t *s, store_sqlite_req_t *req)
{
    typeof(req->u.retention) *rt = &req->u.retention;
    for (int k = 0; k < RETENTION_JOBS_PER_STEP && rt->next_job < rt->njobs; k++) {
        const char *job = rt->jobs[rt->next_job];
        int64_t newest_doomed = 0;
        int err = query_int(
            s, "SELECT id FROM runs WHERE job = $1 ORDER BY id DESC LIMIT 1 OFFSET $2", job,
            (int64_t[]){rt->max_runs}, 1, &newest_doomed, "find the runs beyond a job's limit");
        if (err == 0 && newest_doomed > 0)
            err = query_int(s,
                            "DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE job = $1"
                            " AND id <= $2 AND status NOT IN ('QUEUED', 'RUNNING')"
                            " ORDER BY id LIMIT 500)",
                            job, (int64_t[]){newest_doomed}, 1, NULL, "delete a job's old runs");
        if (err < 0)
            return err;
        int64_t n = newest_doomed > 0 ? sqlite3_changes(s->db) : 0;
        if (n < RETENTION_BATCH)
            rt->next_job++;
        if (n > 0)
            return n;
    }
    return 0;
}

enum { RET_AGE, RET_LOAD_JOBS, RET_COUNT, RET_DONE };

/* One step of retention: at most RETENTION_BATCH rows deleted. Returns true when more remain. */
static bool exec_retention(store_sqlite_t *s, store_sqlite_req_t *req)
{
    typeof(req->u.retention) *rt = &req->u.retention;
    int64_t n = 0;
    if (rt->phase == RET_AGE) {
        n = rt->days > 0 ? retention_by_age(s, req) : 0;
        if (n >= 0 && n < RETENTION_BATCH)
            rt->phase = RET_LOAD_JOBS;
    }
    if (n == 0 && rt->phase == RET_LOAD_JOBS) {
        n = rt->max_runs > 0 ? retention_load_jobs(s, req) : 0;
        rt->phase = rt->max_runs > 0 ? RET_COUNT : RET_DONE;
    }
    if (n == 0 && rt->phase == RET_COUNT) {
        n = retention_by_count(s, req);
        if (rt->next_job >= rt->njobs)
            rt->phase = RET_DONE;
    }
    if (n < 0) {
        req->status = (int)n;
        return false;
    }
    req->result += n;
    return rt->phase != RET_DONE;
}

/* ---- overrides and audit ---- */

static void exec_override_set(store_sqlite_t *s, store_sqlite_req_t *req)
{
    const store_override_t *ov = &req->u.ov.ov;
    int err = 0;
    sqlite3_stmt *st = prepare(s,
                               "INSERT INTO job_overrides (job, field, value, updated_at,"
                               " updated_by) VALUES ($1, $2, $3, $4, $5)"
                               " ON CONFLICT (job, field) DO UPDATE SET value = excluded.value,"
                               " updated_at = excluded.updated_at,"
                               " updated_by = excluded.updated_by",
                               &err, "prepare setting an override");
    if (st == NULL) {
        req->status = err;
        return;
    }
    bind_text(st, 1, ov->job);
    bind_text(st, 2, ov->field);
    bind_text(st, 3, ov->value);
    sqlite3_bind_int64(st, 4, ov->updated_at);
    bind_text(st, 5, ov->updated_by);
    req->status = step_done(s, st, "set an override");
    release(s, st);
}

static void exec_override_delete(store_sqlite_t *s, store_sqlite_req_t *req)
{
    int err = 0;
    sqlite3_stmt *st = prepare(s, "DELETE FROM job_overrides WHERE job = $1 AND field = $2", &err,
                               "prepare deleting an override");
    if (st == NULL) {
        req->status = err;
        return;
    }
    bind_text(st, 1, req->u.ov.ov.job);
    bind_text(st, 2, req->u.ov.ov.field);
    req->status = step_done(s, st, "delete an override");
    if (req->status == 0 && sqlite3_changes(s->db) == 0)
        req->status = -ENOENT;
    release(s, st);
}

static void exec_override_list(store_sqlite_t *s, store_sqlite_req_t *req)
{
    int err = 0;
    const char *job = req->u.ov.ov.job;
    sqlite3_stmt *st = prepare(s,
                               job ? "SELECT job, field, value, updated_at, updated_by FROM"
                                     " job_overrides WHERE job = $1 ORDER BY job, field"
                                   : "SELECT job, field, value, updated_at, updated_by FROM"
                                     " job_overrides ORDER BY job, field",
                               &err, "prepare listing overrides");
    if (st == NULL) {
        req->status = err;
        return;
    }
    if (job)
        bind_text(st, 1, job);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (req->u.ov.count == cap) {
            cap = cap ? cap * 2 : 8;
            req->u.ov.list = cv_realloc(req->u.ov.list, cap * sizeof(*req->u.ov.list));
        }
        store_override_t *o = &req->u.ov.list[req->u.ov.count++];
        o->job = col_text(st, 0);
        o->field = col_text(st, 1);
        o->value = col_text(st, 2);
        o->updated_at = sqlite3_column_int64(st, 3);
        o->updated_by = col_text(st, 4);
    }
    if (rc != SQLITE_DONE)
        req->status = store_sqlite__error(s, sqlite3_extended_errcode(s->db), "list overrides");
    release(s, st);
}

static void exec_audit_append(store_sqlite_t *s, store_sqlite_req_t *req)
{
    const store_audit_t *a = &req->u.audit;
    int err = 0;
    sqlite3_stmt *st = cached(s, SQS_AUDIT_APPEND,
                              "INSERT INTO audit (at, actor, action, job, run_id, \"before\","
                              " \"after\") VALUES ($1, $2, $3, $4, $5, $6, $7)",
                              &err, "prepare appending to the audit");
    if (st == NULL) {
        req->status = err;
        return;
    }
    sqlite3_bind_int64(st, 1, a->at);
    bind_text(st, 2, a->actor);
    bind_text(st, 3, a->action);
    bind_text(st, 4, a->job);
    sqlite3_bind_int64(st, 5, a->run_id);
    bind_text(st, 6, a->before);
    bind_text(st, 7, a->after);
    req->status = step_done(s, st, "append to the audit");
    if (req->status == 0)
        req->result = sqlite3_last_insert_rowid(s->db);
    sqlite3_reset(st);
}

static void read_audit(sqlite3_stmt *st, store_audit_t *a)
{
    a->id = sqlite3_column_int64(st, 0);
    a->at = sqlite3_column_int64(st, 1);
    a->actor = col_text(st, 2);
    a->action = col_text(st, 3);
    a->job = col_text(st, 4);
    a->run_id = sqlite3_column_int64(st, 5);
    a->before = col_text(st, 6);
    a->after = col_text(st, 7);
}

static void exec_audit_list(store_sqlite_t *s, store_sqlite_req_t *req)
{
    typeof(req->u.audit_list) *al = &req->u.audit_list;
    int64_t before = 0;
    int limit = store_page_limit(al->limit), err = 0;
    if (al->cursor && store_cursor_decode(al->cursor, &before) < 0) {
        cv_warn("store", "audit list: the cursor '%.40s' is not one this server made", al->cursor);
        req->status = -EINVAL;
        return;
    }
    char *sql = cv_sprintf("SELECT id, at, actor, action, job, run_id, \"before\", \"after\""
                           " FROM audit WHERE ($1 IS NULL OR job = $1) AND ($2 = 0 OR id < $2)"
                           " ORDER BY id DESC LIMIT %d",
                           limit + 1);
    sqlite3_stmt *st = prepare(s, sql, &err, "prepare listing the audit");
    free(sql);
    if (st == NULL) {
        req->status = err;
        return;
    }
    bind_text(st, 1, al->job);
    sqlite3_bind_int64(st, 2, before);
    al->page.entries = cv_calloc((size_t)limit, sizeof(store_audit_t));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (al->page.count == (size_t)limit) {
            al->page.next_cursor = store_cursor_encode(al->page.entries[limit - 1].id);
            break;
        }
        read_audit(st, &al->page.entries[al->page.count++]);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        req->status = store_sqlite__error(s, sqlite3_extended_errcode(s->db), "list the audit");
    release(s, st);
}

/* ---- notifications (migration 7) ---- */

static void bind_note(sqlite3_stmt *st, const store_note_t *n)
{
    bind_text(st, 1, n->instance);
    sqlite3_bind_int64(st, 2, n->id);
    bind_text(st, 3, n->notifier);
    bind_text(st, 4, n->event ? n->event : "");
    bind_text(st, 5, n->subject ? n->subject : "");
    sqlite3_bind_int64(st, 6, n->run_id);
    sqlite3_bind_int64(st, 7, n->created_at);
    sqlite3_bind_int64(st, 8, n->finished_at);
    sqlite3_bind_int(st, 9, n->attempts);
    sqlite3_bind_int(st, 10, n->pending);
    sqlite3_bind_int(st, 11, n->delivered);
    sqlite3_bind_int64(st, 12, n->http_status);
    bind_text(st, 13, n->last_error);
}

static void exec_note_put(store_sqlite_t *s, store_sqlite_req_t *req)
{
    const store_note_t *n = &req->u.note;
    int err = 0;
    sqlite3_stmt *st = prepare(s, store_sql_note_put, &err, "prepare recording a notification");
    if (st == NULL) {
        req->status = err;
        return;
    }
    bind_note(st, n);
    req->status = step_done(s, st, "record a notification");
    release(s, st);
    if (req->status == 0 && n->keep > 0 && n->id > n->keep) {
        int64_t args[1] = {n->id - n->keep};
        req->status =
            query_int(s, store_sql_note_prune, NULL, args, 1, NULL, "delete old notifications");
    }
}

static void exec_note_list(store_sqlite_t *s, store_sqlite_req_t *req)
{
    typeof(req->u.notes) *nl = &req->u.notes;
    int err = 0;
    sqlite3_stmt *st = prepare(s, store_sql_note_list, &err, "prepare listing notifications");
    if (st == NULL) {
        req->status = err;
        return;
    }
    sqlite3_bind_int(st, 1, nl->limit);
    nl->list = cv_calloc((size_t)nl->limit, sizeof(store_note_t));
    int rc;
    while (nl->count < (size_t)nl->limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_note_t *o = &nl->list[nl->count++];
        o->id = sqlite3_column_int64(st, 0);
        o->notifier = col_text(st, 1);
        o->event = col_text(st, 2);
        o->subject = col_text(st, 3);
        o->run_id = sqlite3_column_int64(st, 4);
        o->created_at = sqlite3_column_int64(st, 5);
        o->finished_at = sqlite3_column_int64(st, 6);
        o->attempts = sqlite3_column_int(st, 7);
        o->pending = sqlite3_column_int(st, 8) != 0;
        o->delivered = sqlite3_column_int(st, 9) != 0;
        o->http_status = sqlite3_column_int(st, 10);
        o->last_error = col_text(st, 11);
        o->instance = col_text(st, 12);
    }
    if (nl->count < (size_t)nl->limit && rc != SQLITE_DONE)
        req->status = store_sqlite__error(s, sqlite3_extended_errcode(s->db), "list notifications");
    release(s, st);
}

/* ---- migrations ---- */

static int migration_apply(store_sqlite_t *s, const store_migration_t *m, bool *applied)
{
    int64_t now = cv_now_ms(), current = 0;
    int err = store_sqlite__exec_sql(s, "BEGIN IMMEDIATE", "begin a migration");
    if (err < 0)
        return err;
    /* Another process may have migrated while this one waited for the lock. */
    err = query_int(s, store_sql_version_get, NULL, NULL, 0, &current, "read the schema version");
    *applied = err == 0 && current < m->version;
    for (const char *const *sql = m->statements; *applied && err == 0 && *sql; sql++) {
        char *text = store_schema_render(*sql, &store_dialect_sqlite);
        err = store_sqlite__exec_sql(s, text, "apply a migration");
        free(text);
    }
    for (const char *const *sql = m->sqlite; m->sqlite && *applied && err == 0 && *sql; sql++)
        err = store_sqlite__exec_sql(s, *sql, "apply a migration");
    if (err == 0 && *applied) {
        sqlite3_stmt *st = prepare(s, store_sql_version_put, &err, "record a migration");
        if (st) {
            sqlite3_bind_int64(st, 1, m->version);
            bind_text(st, 2, m->name);
            sqlite3_bind_int64(st, 3, now);
            err = step_done(s, st, "record a migration");
            release(s, st);
        }
    }
    if (err == 0)
        err = store_sqlite__exec_sql(s, "COMMIT", "commit a migration");
    if (err == 0)
        atomic_fetch_add(&s->commits, 1);
    else if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

void store_sqlite__migrate(store_sqlite_t *s, store_sqlite_req_t *req)
{
    int64_t current = 0;
    int latest = store_schema_latest();
    int err = store_sqlite__exec_sql(s, store_sql_version_table, "create the schema_version table");
    if (err == 0)
        err =
            query_int(s, store_sql_version_get, NULL, NULL, 0, &current, "read the schema version");
    if (err == 0 && current > latest) {
        cv_error("store",
                 "database %s has schema version %lld, newer than version %d, the newest this "
                 "cronvisor " CV_VERSION " knows: run a newer cronvisor or use another database",
                 s->path, (long long)current, latest);
        err = -EPROTO;
    }
    for (size_t i = 0; err == 0 && i < store_migration_count; i++) {
        const store_migration_t *m = &store_migrations[i];
        bool applied = false;
        if (m->version <= current)
            continue;
        err = migration_apply(s, m, &applied);
        if (err < 0)
            cv_error("store", "database %s: migration %d (%s) failed; nothing of it was kept",
                     s->path, m->version, m->name);
        else if (applied)
            req->result++;
    }
    req->status = err;
}

/* ---- dispatch ---- */

bool store_sqlite__exec(store_sqlite_t *s, store_sqlite_req_t *req)
{
    switch (req->op) {
    case STORE_OP_PING: {
        int64_t one = 0;
        req->status = query_int(s, "SELECT 1", NULL, NULL, 0, &one, "answer a ping");
        break;
    }
    case STORE_OP_GET_RUN:
        exec_get_run(s, req);
        break;
    case STORE_OP_QUERY_RUNS:
        exec_query_runs(s, req);
        break;
    case STORE_OP_JOB_STATS:
        exec_job_stats(s, req);
        break;
    case STORE_OP_SUMMARY:
        exec_summary(s, req);
        break;
    case STORE_OP_OV_LIST:
        exec_override_list(s, req);
        break;
    case STORE_OP_AUDIT_LIST:
        exec_audit_list(s, req);
        break;
    case STORE_OP_INSERT_RUN:
        exec_insert_run(s, req);
        break;
    case STORE_OP_UPDATE_RUN:
        exec_update_run(s, req);
        break;
    case STORE_OP_ABANDON:
        exec_abandon(s, req);
        break;
    case STORE_OP_HEARTBEAT:
        exec_heartbeat(s, req);
        break;
    case STORE_OP_ABANDON_DEAD:
        exec_abandon_dead(s, req);
        break;
    case STORE_OP_INSTANCES:
        exec_instances(s, req);
        break;
    case STORE_OP_RETENTION:
        return exec_retention(s, req);
    case STORE_OP_OV_SET:
        exec_override_set(s, req);
        break;
    case STORE_OP_OV_DELETE:
        exec_override_delete(s, req);
        break;
    case STORE_OP_AUDIT_APPEND:
        exec_audit_append(s, req);
        break;
    case STORE_OP_NOTE_PUT:
        exec_note_put(s, req);
        break;
    case STORE_OP_NOTE_LIST:
        exec_note_list(s, req);
        break;
    case STORE_OP_CLOSE:
    case STORE_OP_MIGRATE:
        break; /* handled by the batch loop */
    case STORE_OP_LISTEN:
    case STORE_OP_NOTIFY:
        req->status = -ENOTSUP; /* PostgreSQL only */
        break;
    }
    return false;
}
