/* PostgreSQL backend, the SQL of every operation: what each request sends into the pipeline and
 * how its results are read once the batch committed. Loop thread only. */
#include "storage/schema.h"
#include "storage/store_pg_int.h"

#include "core/log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETENTION_BATCH 500
/* Session advisory lock held while migrating ("cronvisr"). */
#define MIGRATE_LOCK "7165061209011778418"

/* ---- parameters and results ---- */

#define MAX_PARAMS 32

typedef struct params {
    const char *v[MAX_PARAMS];
    char num[MAX_PARAMS][32];
    int n;
} params_t;

static void p_text(params_t *p, const char *v)
{
    p->v[p->n++] = v;
}

static void p_i64(params_t *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof(p->num[0]), "%" PRId64, v);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

static void p_dbl(params_t *p, double v)
{
    snprintf(p->num[p->n], sizeof(p->num[0]), "%.17g", v);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

static int64_t r_i64(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static char *r_text(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : cv_strdup(PQgetvalue(res, row, col));
}

static int64_t r_changes(const PGresult *res)
{
    return strtoll(PQcmdTuples((PGresult *)res), NULL, 10);
}

void store_pg__clear_results(store_pg_req_t *r)
{
    for (size_t i = 0; i < r->nres; i++)
        PQclear(r->res[i]);
    r->nres = 0;
    free(r->fold);
    r->fold = NULL;
    r->nfold = 0;
    r->folded = false;
}

int store_pg__error(store_pg_t *s, const PGresult *res, const char *what, bool log)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    int err = -EIO;
    if (state == NULL)
        state = "";
    if (strcmp(state, "23505") == 0)
        return -EEXIST; /* expected: a claim lost to another instance */
    if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0)
        err = -EINVAL;
    else if (strcmp(state, "53100") == 0)
        err = -ENOSPC;
    else if (strcmp(state, "53200") == 0)
        err = -ENOMEM;
    else if (strcmp(state, "25006") == 0)
        err = -EROFS;
    else if (strncmp(state, "40", 2) == 0 || strcmp(state, "55P03") == 0)
        err = -EBUSY;
    if (log)
        cv_warn("store", "database %s: cannot %s: %s (SQLSTATE %s)", s->where, what,
                msg ? msg : PQresultErrorMessage(res), state);
    return err;
}

/* The catch-up claim names these parameters by number. */
_Static_assert(RUN_COL_job == 1 && RUN_COL_scheduled_for == 4 && RUN_COL_instance == 23,
               "cv_insert_catch_up's parameter numbers");

/* Sends one query, prepared once per connection when stmt >= 0. */
static const struct {
    const char *name;
    const char *sql;
    int nparams;
} stmts[PGS__COUNT] = {
#define INSERT_COLS "INSERT INTO runs (@COLS@, id) VALUES (@VALS@, "
    /* An explicit id (the executor's) moves the identity sequence past it, so a later automatic
     * id neither collides with it nor reuses it after retention deleted it. */
    [PGS_INSERT_ID] = {"cv_insert_id",
                       "WITH ins AS (" INSERT_COLS "@K1@) ON CONFLICT DO NOTHING RETURNING id) "
                       "SELECT id, setval('runs_id_seq', GREATEST(id, (SELECT last_value FROM "
                       "runs_id_seq))) FROM ins",
                       RUN_NPARAMS + 1},
    /* An automatic id is above every id present, even one inserted by another instance that has
     * not moved the sequence yet. */
    [PGS_INSERT_AUTO] = {"cv_insert_auto",
                         INSERT_COLS "GREATEST(nextval('runs_id_seq'), (SELECT COALESCE(MAX(id), "
                                     "0) + 1 FROM runs))) ON CONFLICT DO NOTHING RETURNING id",
                         RUN_NPARAMS},
    /* A catch-up firing is claimed in firing_claims (a concurrent claim waits for the first
     * one's commit, then finds the row); none runs where the cron firing itself was recorded. */
    [PGS_INSERT_CATCH_UP] =
        {"cv_insert_catch_up",
         "WITH c AS (INSERT INTO firing_claims (job, scheduled_for, instance) VALUES ($1::text,"
         " $4::bigint, $23::text) ON CONFLICT DO NOTHING RETURNING 1)"
         " INSERT INTO runs (@COLS@, id) SELECT @CVALS@,"
         " GREATEST(nextval('runs_id_seq'), (SELECT COALESCE(MAX(id), 0) + 1 FROM"
         " runs)) WHERE EXISTS (SELECT 1 FROM c) AND NOT EXISTS (SELECT 1 FROM runs WHERE"
         " job = $1::text AND scheduled_for = $4::bigint AND \"trigger\" = 'cron' AND"
         " attempt = 1) RETURNING id",
         RUN_NPARAMS},
    /* A chain's follow-up ("chain:<run id>") is claimed in firing_claims as well, under the
     * target job and the parent run's id negated (@K1@; a firing's time is never negative): the
     * follow-up of one run's outcome runs once across instances. */
    [PGS_INSERT_CHAIN] =
        {"cv_insert_chain",
         "WITH c AS (INSERT INTO firing_claims (job, scheduled_for, instance) VALUES ($1::text,"
         " -(@K1@::bigint), $23::text) ON CONFLICT DO NOTHING RETURNING 1)"
         " INSERT INTO runs (@COLS@, id) SELECT @CVALS@,"
         " GREATEST(nextval('runs_id_seq'), (SELECT COALESCE(MAX(id), 0) + 1 FROM"
         " runs)) WHERE EXISTS (SELECT 1 FROM c) RETURNING id",
         RUN_NPARAMS + 1},
    /* A run recorded while the database was unreachable: @K1@ its client key, @K2@ the key of
     * the provisional run it retries (NULL when none). Inserting it again (a replay after a
     * crash) is a no-op; the second row tells that case apart from a firing another instance
     * claimed. */
    [PGS_INSERT_KEY] = {"cv_insert_key",
                        "WITH ins AS (INSERT INTO runs (@COLS@, ckey, id) VALUES (@KVALS@, "
                        "@K1@::text, GREATEST(nextval('runs_id_seq'), (SELECT COALESCE(MAX(id), 0)"
                        " + 1 FROM runs))) ON CONFLICT DO NOTHING RETURNING id) "
                        "SELECT id, 1 FROM ins UNION ALL SELECT id, 0 FROM runs WHERE ckey = "
                        "@K1@::text AND NOT EXISTS (SELECT 1 FROM ins)",
                        RUN_NPARAMS + 2},
    /* Consecutive plain inserts of a batch in one statement: one array per column (@AVALS@) and
     * the explicit ids (@K1@, 0 for none). The ids are chosen first (g, a): an automatic one from
     * the sequence, all of them shifted above every id present and every explicit id of the
     * statement (as cv_insert_auto's); the sequence is then moved past the highest id inserted
     * (sv, as cv_insert_id's). A row skipped by a conflict (a firing already claimed, an id
     * taken) does not come back: each row that does comes with its position, found by its id
     * (the ids of one statement are distinct: store_pg__fold_clash). */
    [PGS_INSERT_MANY] =
        {"cv_insert_many",
         "WITH g AS (SELECT gid, ord, CASE WHEN gid > 0 THEN NULL ELSE nextval('runs_id_seq') END"
         " AS n FROM unnest(@K1@::bigint[]) WITH ORDINALITY AS g(gid, ord)),"
         " o AS (SELECT GREATEST(0, GREATEST((SELECT COALESCE(MAX(id), 0) FROM runs),"
         " (SELECT COALESCE(MAX(gid), 0) FROM g)) + 1 - MIN(n)) AS off FROM g),"
         " a AS (SELECT array_agg(COALESCE(g.n + o.off, g.gid) ORDER BY g.ord) AS ids FROM g, o),"
         " ins AS (INSERT INTO runs (@COLS@, id) SELECT * FROM unnest(@AVALS@, (SELECT ids FROM a))"
         " ON CONFLICT DO NOTHING RETURNING id),"
         " sv AS (SELECT setval('runs_id_seq', m) FROM (SELECT MAX(id) AS m FROM ins) x"
         " WHERE m > (SELECT last_value FROM runs_id_seq))"
         " SELECT u.ord, u.id FROM ins JOIN unnest((SELECT ids FROM a)) WITH ORDINALITY AS"
         " u(id, ord) ON u.id = ins.id WHERE (SELECT COUNT(*) FROM sv) >= 0",
         RUN_NPARAMS + 1},
    [PGS_UPDATE_KEY] = {"cv_update_key", "UPDATE runs SET @KSET@ WHERE ckey = @K1@::text",
                        RUN_NPARAMS + 2},
#undef INSERT_COLS
    [PGS_UPDATE_RUN] = {"cv_update_run", "UPDATE runs SET @SET@ WHERE id = @K1@", RUN_NPARAMS + 1},
    [PGS_GET_RUN] = {"cv_get_run", "SELECT " STORE_RUN_COLUMNS " FROM runs WHERE id = $1", 1},
    /* $8: the client key of a provisional run id (NULL otherwise): the run's real id */
    [PGS_AUDIT_APPEND] = {"cv_audit_append",
                          "INSERT INTO audit (at, actor, action, job, run_id, \"before\", "
                          "\"after\") VALUES ($1, $2, $3, $4, COALESCE((SELECT id FROM runs "
                          "WHERE ckey = $8::text), $5::bigint), $6, $7) RETURNING id",
                          8},
};

static int send_stmt(store_pg_t *s, store_pg_req_t *r, store_pg_stmt_t st, const params_t *p)
{
    if (!s->prepared[st]) {
        /* the runs' statements are templates on the field table (store_run_sql_render) */
        char *sql = store_run_sql_render(stmts[st].sql);
        int ok = PQsendPrepare(s->conn, stmts[st].name, sql, stmts[st].nparams, NULL);
        free(sql);
        if (!ok)
            return -EIO;
        s->prepared[st] = true; /* confirmed or cleared by the prepare's result */
        store_pg__expect(s, NULL, PGI_PREPARE, st);
    }
    if (!PQsendQueryPrepared(s->conn, stmts[st].name, p->n, p->v, NULL, NULL, 0))
        return -EIO;
    store_pg__expect(s, r, PGI_QUERY, -1);
    return 0;
}

static int send_sql(store_pg_t *s, store_pg_req_t *r, const char *sql, const params_t *p)
{
    if (!PQsendQueryParams(s->conn, sql, p ? p->n : 0, NULL, p ? p->v : NULL, NULL, NULL, 0))
        return -EIO;
    store_pg__expect(s, r, PGI_QUERY, -1);
    return 0;
}

/* ---- runs ---- */

static void params_run(params_t *p, const run_t *r)
{
    for (int i = 0; i < RUN_NPARAMS; i++) {
        const run_field_t *f = &run_fields[i];
        switch (f->kind) {
        case RUN_K_I64:
            p_i64(p, *RUN_FIELD_CPTR(r, f, int64_t));
            break;
        case RUN_K_INT:
            p_i64(p, *RUN_FIELD_CPTR(r, f, int));
            break;
        case RUN_K_DBL:
            p_dbl(p, *RUN_FIELD_CPTR(r, f, double));
            break;
        case RUN_K_STATUS:
            p_text(p, run_status_name(*RUN_FIELD_CPTR(r, f, run_status_t)));
            break;
        case RUN_K_TEXT:
            p_text(p, *RUN_FIELD_CPTR(r, f, char *));
            break;
        }
    }
}

/* Reads a row selected with STORE_RUN_COLUMNS, from column c. */
static run_t *read_run(const PGresult *res, int row, int c)
{
    run_t *r = cv_calloc(1, sizeof(*r));
    r->refs = 1;
    r->id = r_i64(res, row, c + RUN_COL_id);
    for (int i = 0; i < RUN_NPARAMS; i++) {
        const run_field_t *f = &run_fields[i];
        int k = c + i + 1;
        switch (f->kind) {
        case RUN_K_I64:
            *RUN_FIELD_PTR(r, f, int64_t) = r_i64(res, row, k);
            break;
        case RUN_K_INT:
            *RUN_FIELD_PTR(r, f, int) = (int)r_i64(res, row, k);
            break;
        case RUN_K_DBL:
            *RUN_FIELD_PTR(r, f, double) = strtod(PQgetvalue(res, row, k), NULL);
            break;
        case RUN_K_STATUS:
            run_field_set_status(r, f, PQgetvalue(res, row, k));
            break;
        case RUN_K_TEXT:
            *RUN_FIELD_PTR(r, f, char *) = r_text(res, row, k);
            break;
        }
    }
    return r;
}

/* The parameters of the keyed statements: a provisional retry_of becomes 0 unless its key finds
 * the run it retries. */
static void params_keyed(params_t *p, const store_pg_req_t *r)
{
    params_run(p, r->u.run);
    if (r->u.run->retry_of < 0) {
        p->n = RUN_COL_retry_of - 1;
        p_i64(p, 0);
        p->n = RUN_NPARAMS;
    }
    p_text(p, r->key);
    p_text(p, r->retry_key);
}

/* A catch-up firing, or a monitored job's missed instant, claimed in firing_claims (a ping job is
 * never run by cronvisor: no cron run nor catch-up claim of its own shares the key). */
static bool is_catch_up_claim(const run_t *run)
{
    return (strcmp(run->trigger, "catch_up") == 0 || strcmp(run->trigger, "ping:missed") == 0) &&
           run->attempt == 1;
}

static bool is_cron_claim(const run_t *run)
{
    return strcmp(run->trigger, "cron") == 0 && run->attempt == 1;
}

static int send_insert_run(store_pg_t *s, store_pg_req_t *r)
{
    params_t p = {.n = 0};
    if (r->key) {
        params_keyed(&p, r);
        return send_stmt(s, r, PGS_INSERT_KEY, &p);
    }
    params_run(&p, r->u.run);
    if (r->u.run->id > 0) {
        p_i64(&p, r->u.run->id);
        return send_stmt(s, r, PGS_INSERT_ID, &p);
    }
    if (is_catch_up_claim(r->u.run))
        return send_stmt(s, r, PGS_INSERT_CATCH_UP, &p);
    int64_t parent = run_chain_parent(r->u.run->trigger);
    if (parent > 0 && r->u.run->attempt == 1) {
        p_i64(&p, parent);
        return send_stmt(s, r, PGS_INSERT_CHAIN, &p);
    }
    return send_stmt(s, r, PGS_INSERT_AUTO, &p);
}

/* ---- multi-row inserts ---- */

bool store_pg__foldable(const store_pg_req_t *r)
{
    return r->op == STORE_OP_INSERT_RUN && r->status == 0 && !r->solo && r->key == NULL &&
           !is_catch_up_claim(r->u.run) &&
           !(r->u.run->attempt == 1 && run_chain_parent(r->u.run->trigger) > 0);
}

bool store_pg__fold_clash(store_pg_req_t *const *group, size_t n, const store_pg_req_t *r)
{
    const run_t *x = r->u.run;
    bool claim = is_cron_claim(x);
    if (x->id <= 0 && !claim)
        return false;
    for (size_t i = 0; i < n; i++) {
        const run_t *y = group[i]->u.run;
        if (x->id > 0 && y->id == x->id)
            return true;
        if (claim && is_cron_claim(y) && y->scheduled_for == x->scheduled_for &&
            strcmp(y->job, x->job) == 0)
            return true;
    }
    return false;
}

/* Appends one element of an array literal: NULL, a number as it is, text double-quoted. */
static void array_elem(cv_buf_t *b, const char *v, bool quote)
{
    if (v == NULL) {
        cv_buf_appends(b, "NULL");
        return;
    }
    if (!quote) {
        cv_buf_appends(b, v);
        return;
    }
    cv_buf_append(b, "\"", 1);
    while (*v) {
        size_t n = strcspn(v, "\"\\");
        cv_buf_append(b, v, n);
        v += n;
        if (*v) {
            cv_buf_append(b, "\\", 1);
            cv_buf_append(b, v++, 1);
        }
    }
    cv_buf_append(b, "\"", 1);
}

int store_pg__send_many(store_pg_t *s, store_pg_req_t **group, size_t n)
{
    enum { NCOLS = RUN_NPARAMS + 1 };
    cv_buf_t cols[NCOLS];
    memset(cols, 0, sizeof(cols));
    for (size_t k = 0; k < n; k++) {
        params_t p = {.n = 0};
        params_run(&p, group[k]->u.run);
        p_i64(&p, group[k]->u.run->id > 0 ? group[k]->u.run->id : 0);
        for (int i = 0; i < NCOLS; i++) {
            run_kind_t kind = i < RUN_NPARAMS ? run_fields[i].kind : RUN_K_I64;
            cv_buf_append(&cols[i], k ? "," : "{", 1);
            array_elem(&cols[i], p.v[i], kind == RUN_K_TEXT || kind == RUN_K_STATUS);
        }
        group[k]->result = 0;
        group[k]->folded = k > 0;
    }
    params_t p = {.n = NCOLS};
    for (int i = 0; i < NCOLS; i++) {
        cv_buf_append(&cols[i], "}", 1);
        p.v[i] = cols[i].data;
    }
    int rc = send_stmt(s, group[0], PGS_INSERT_MANY, &p);
    for (int i = 0; i < NCOLS; i++)
        cv_buf_free(&cols[i]);
    free(group[0]->fold);
    group[0]->fold = cv_calloc(n, sizeof(*group));
    memcpy(group[0]->fold, group, n * sizeof(*group));
    group[0]->nfold = n;
    return rc;
}

/* The rows of a multi-row insert: each request gets its id, or "already claimed". */
static void finish_many(store_pg_req_t *r)
{
    const PGresult *res = r->res[0];
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t ord = r_i64(res, i, 0);
        if (ord >= 1 && (size_t)ord <= r->nfold)
            r->fold[ord - 1]->result = r_i64(res, i, 1);
    }
    for (size_t k = 0; k < r->nfold; k++) {
        store_pg_req_t *q = r->fold[k];
        if (q->result > 0)
            continue;
        q->status = -EEXIST;
        cv_debug("store", "run %s at %lld: id or firing already claimed", q->u.run->job,
                 (long long)q->u.run->scheduled_for);
    }
}

static void finish_insert_run(store_pg_t *s, store_pg_req_t *r)
{
    if (r->fold) {
        finish_many(r);
        return;
    }
    if (r->folded)
        return; /* answered by the first row of its statement */
    if (r->key) {
        const run_t *run = r->u.run;
        if (PQntuples(r->res[0]) == 1) {
            r->result = r_i64(r->res[0], 0, 0);
            if (r_i64(r->res[0], 0, 1) == 0)
                cv_debug("store", "run %s was already recorded as %lld", r->key,
                         (long long)r->result);
            return;
        }
        /* the firing's claim is taken: another instance ran it (too, on_store_outage: run) */
        if (run->status == RUN_SKIPPED) {
            cv_info("store",
                    "job %s's firing at %lld was run by another instance while this one could "
                    "not reach the database: its SKIPPED record is not needed",
                    run->job, (long long)run->scheduled_for);
            return;
        }
        cv_warn("store",
                "database %s: job %s's firing at %lld was also run by another instance while the "
                "database was unreachable; this instance's run (%s) is not recorded",
                s->where, run->job, (long long)run->scheduled_for, run_status_name(run->status));
        r->status = -EEXIST;
        return;
    }
    if (PQntuples(r->res[0]) == 1) {
        r->result = r_i64(r->res[0], 0, 0);
        return;
    }
    /* ON CONFLICT DO NOTHING: the id or the (job, scheduled_for) claim is taken. */
    r->status = -EEXIST;
    cv_debug("store", "run %s at %lld: id or firing already claimed", r->u.run->job,
             (long long)r->u.run->scheduled_for);
}

static int send_update_run(store_pg_t *s, store_pg_req_t *r)
{
    params_t p = {.n = 0};
    if (r->key) {
        params_keyed(&p, r);
        return send_stmt(s, r, PGS_UPDATE_KEY, &p);
    }
    params_run(&p, r->u.run);
    p_i64(&p, r->u.run->id);
    return send_stmt(s, r, PGS_UPDATE_RUN, &p);
}

static int send_get_run(store_pg_t *s, store_pg_req_t *r)
{
    params_t p = {.n = 0};
    p_i64(&p, r->u.id);
    return send_stmt(s, r, PGS_GET_RUN, &p);
}

static void finish_get_run(store_pg_req_t *r)
{
    if (PQntuples(r->res[0]) == 0)
        r->status = -ENOENT;
    else
        r->u.run = read_run(r->res[0], 0, 0);
}

static int send_query_runs(store_pg_t *s, store_pg_req_t *r)
{
    const store_run_filter_t *f = &r->u.query.f;
    int64_t before = 0;
    store_cursor_decode(f->cursor, &before); /* checked when the request was made */
    cv_buf_t sql = {0};
    params_t p = {.n = 0};
    cv_buf_appends(&sql, "SELECT " STORE_RUN_COLUMNS " FROM runs WHERE true");
    if (f->job) {
        p_text(&p, f->job);
        cv_buf_printf(&sql, " AND job = $%d", p.n);
    }
    for (int i = 0, first = 1; f->status_mask && i < RUN__COUNT; i++) {
        if (f->status_mask & (1u << i)) {
            cv_buf_printf(&sql, "%s'%s'", first ? " AND status IN (" : ", ",
                          run_status_name((run_status_t)i));
            first = 0;
        }
    }
    if (f->status_mask)
        cv_buf_appends(&sql, ")");
    if (f->trigger) {
        p_text(&p, f->trigger);
        cv_buf_printf(&sql, " AND \"trigger\" = $%d", p.n);
    }
    if (f->since) {
        p_i64(&p, f->since);
        cv_buf_printf(&sql, " AND started_at >= $%d::bigint", p.n);
    }
    if (f->until) {
        p_i64(&p, f->until);
        cv_buf_printf(&sql, " AND started_at < $%d::bigint", p.n);
    }
    if (before) {
        p_i64(&p, before);
        cv_buf_printf(&sql, " AND id < $%d::bigint", p.n);
    }
    if (f->above_id) {
        p_i64(&p, f->above_id);
        cv_buf_printf(&sql, " AND id > $%d::bigint", p.n);
    }
    cv_buf_printf(&sql, " ORDER BY id DESC LIMIT %d", store_page_limit(f->limit) + 1);
    int err = send_sql(s, r, sql.data, &p);
    cv_buf_free(&sql);
    return err;
}

static void finish_query_runs(store_pg_req_t *r)
{
    int limit = store_page_limit(r->u.query.f.limit), n = PQntuples(r->res[0]);
    store_run_page_t *page = &r->u.query.page;
    page->runs = cv_calloc((size_t)limit, sizeof(*page->runs));
    for (int i = 0; i < n && i < limit; i++)
        page->runs[page->count++] = read_run(r->res[0], i, 0);
    if (n > limit)
        page->next_cursor = store_cursor_encode(page->runs[limit - 1]->id);
}

/* ---- statistics ---- */

#define STATS_QUERIES          4
#define STATS_FOLD_INTERVAL_MS 10000

static int send_job_stats(store_pg_t *s, store_pg_req_t *r)
{
    static const char *const sql[STATS_QUERIES] = {
        /* the finished runs: job_counts and the deltas not folded yet (migration 6) */
        "SELECT COALESCE(SUM(n) FILTER (WHERE status <> 'SKIPPED'), 0), COALESCE(SUM(n) FILTER "
        "(WHERE status = 'SUCCESS'), 0),"
        " COALESCE(SUM(n) FILTER (WHERE status = 'PARTIAL'), 0),"
        " COALESCE(SUM(n) FILTER (WHERE status IN ('FAILED', 'TIMED_OUT')), 0) FROM"
        " (SELECT status, n FROM job_counts WHERE job = $1 UNION ALL"
        " SELECT status, d FROM job_count_deltas WHERE job = $1) c",
        "SELECT COUNT(*) FROM runs WHERE job = $1"
        " AND status IN ('FAILED', 'TIMED_OUT', 'ABANDONED') AND id > "
        "COALESCE((SELECT MAX(id) FROM runs WHERE job = $1"
        " AND status IN ('SUCCESS', 'PARTIAL')), 0)",
        "SELECT duration_ms FROM runs WHERE job = $1 AND status IN"
        " ('SUCCESS', 'PARTIAL', 'FAILED', 'TIMED_OUT') ORDER BY id DESC LIMIT $2::integer",
        "SELECT " STORE_RUN_COLUMNS " FROM runs WHERE job = $1 AND status <> 'SKIPPED'"
        " ORDER BY id DESC LIMIT 1",
    };
    for (size_t j = 0; j < r->u.stats.njobs; j++) {
        for (int q = 0; q < STATS_QUERIES; q++) {
            params_t p = {.n = 0};
            p_text(&p, r->u.stats.jobs[j]);
            if (q == 2)
                p_i64(&p, r->u.stats.last_n);
            int err = send_sql(s, r, sql[q], &p);
            if (err < 0)
                return err;
        }
    }
    /* Now and then, after the reads (which count the deltas anyway), the deltas are folded into
     * job_counts. Daemons folding at once each take the rows they deleted: none is counted twice,
     * and the counts are updated in key order. */
    int64_t now = cv_now_ms();
    if (now - s->counts_folded_ms < STATS_FOLD_INTERVAL_MS)
        return 0;
    s->counts_folded_ms = now;
    return send_sql(s, r,
                    "WITH d AS (DELETE FROM job_count_deltas RETURNING job, status, d)"
                    " INSERT INTO job_counts (job, status, n) SELECT job, status, SUM(d) FROM d"
                    " GROUP BY job, status ORDER BY job, status"
                    " ON CONFLICT (job, status) DO UPDATE SET n = job_counts.n + excluded.n",
                    NULL);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void stats_durations(store_job_stats_t *js, const PGresult *res)
{
    int n = PQntuples(res);
    if (n == 0)
        return;
    int64_t *d = cv_malloc((size_t)n * sizeof(*d));
    double sum = 0;
    for (int i = 0; i < n; i++) {
        d[i] = r_i64(res, i, 0);
        sum += (double)d[i];
    }
    qsort(d, (size_t)n, sizeof(*d), cmp_i64);
    size_t rank = (size_t)ceil(0.95 * (double)n); /* nearest rank, 1-based */
    js->p95_duration_ms = d[rank - 1];
    js->avg_duration_ms = sum / (double)n;
    js->duration_samples = n;
    free(d);
}

static void finish_job_stats(store_pg_req_t *r)
{
    size_t n = r->u.stats.njobs;
    store_job_stats_t *out = cv_calloc(n ? n : 1, sizeof(*out));
    r->u.stats.out = out;
    for (size_t i = 0; i < n; i++) {
        PGresult **res = &r->res[i * STATS_QUERIES];
        store_job_stats_t *js = &out[i];
        js->job = cv_strdup(r->u.stats.jobs[i]);
        js->runs = r_i64(res[0], 0, 0);
        js->successes = r_i64(res[0], 0, 1);
        js->partials = r_i64(res[0], 0, 2);
        js->failures = r_i64(res[0], 0, 3);
        int64_t judged = js->successes + js->partials + js->failures;
        js->success_rate = judged ? (double)(js->successes + js->partials) / (double)judged : 0;
        js->consecutive_failures = r_i64(res[1], 0, 0);
        stats_durations(js, res[2]);
        if (PQntuples(res[3]) == 1)
            js->last = read_run(res[3], 0, 0);
    }
}

static int send_summary(store_pg_t *s, store_pg_req_t *r)
{
    params_t p = {.n = 0};
    p_i64(&p, r->u.summary.since);
    return send_sql(s, r,
                    "SELECT COUNT(*) FILTER (WHERE status = 'RUNNING'),"
                    " COUNT(*) FILTER (WHERE status = 'QUEUED'),"
                    " COUNT(*) FILTER (WHERE status = 'SUCCESS' AND finished_at >= $1::bigint),"
                    " COUNT(*) FILTER (WHERE status = 'PARTIAL' AND finished_at >= $1::bigint),"
                    " COUNT(*) FILTER (WHERE status IN ('FAILED', 'TIMED_OUT')"
                    " AND finished_at >= $1::bigint) FROM runs"
                    " WHERE status IN ('RUNNING', 'QUEUED') OR (status IN ('SUCCESS', 'PARTIAL',"
                    " 'FAILED', 'TIMED_OUT') AND finished_at >= $1::bigint)",
                    &p);
}

static void finish_summary(store_pg_req_t *r)
{
    store_summary_t *o = &r->u.summary.out;
    o->running = r_i64(r->res[0], 0, 0);
    o->queued = r_i64(r->res[0], 0, 1);
    o->success = r_i64(r->res[0], 0, 2);
    o->partial = r_i64(r->res[0], 0, 3);
    o->failed = r_i64(r->res[0], 0, 4);
}

/* ---- maintenance ---- */

static int send_abandon(store_pg_t *s, store_pg_req_t *r)
{
    params_t p = {.n = 0};
    p_text(&p, r->u.abandon.reason);
    p_i64(&p, cv_now_ms());
    p_text(&p, r->u.abandon.instance);
    return send_sql(s, r,
                    "UPDATE runs SET status = 'ABANDONED', error = $1, finished_at = $2::bigint,"
                    " duration_ms = CASE WHEN started_at > 0 THEN $2::bigint - started_at"
                    " ELSE 0 END WHERE status IN ('RUNNING', 'QUEUED')"
                    " AND ($3::text IS NULL OR instance = $3::text)",
                    &p);
}

static int send_heartbeat(store_pg_t *s, store_pg_req_t *r)
{
    const store_instance_t *i = &r->u.inst.one;
    params_t p = {.n = 0};
    p_text(&p, i->id);
    p_text(&p, i->hostname);
    p_i64(&p, i->pid);
    p_i64(&p, i->started_at);
    p_i64(&p, i->last_seen);
    p_text(&p, i->version);
    return send_sql(s, r, store_sql_heartbeat, &p);
}

static int send_abandon_dead(store_pg_t *s, store_pg_req_t *r)
{
    params_t p = {.n = 0};
    p_i64(&p, cv_now_ms());
    p_i64(&p, r->u.abandon.seen_before);
    return send_sql(s, r, store_sql_abandon_dead, &p);
}

static void finish_instances(store_pg_req_t *r)
{
    const PGresult *res = r->res[0];
    size_t n = (size_t)PQntuples(res);
    store_instance_t *l = cv_calloc(n ? n : 1, sizeof(*l));
    for (size_t i = 0; i < n; i++) {
        l[i].id = r_text(res, (int)i, 0);
        l[i].hostname = r_text(res, (int)i, 1);
        l[i].pid = r_i64(res, (int)i, 2);
        l[i].started_at = r_i64(res, (int)i, 3);
        l[i].last_seen = r_i64(res, (int)i, 4);
        l[i].version = r_text(res, (int)i, 5);
    }
    r->u.inst.list = l;
    r->u.inst.count = n;
}

/* One step of retention deletes at most RETENTION_BATCH rows, in its own batch. */
static int send_retention(store_pg_t *s, store_pg_req_t *r)
{
    params_t p = {.n = 0};
    if (r->step == STORE_PG_RET_AGE) {
        p_i64(&p, cv_now_ms() - (int64_t)r->u.retention.days * 86400000);
        /* catch-up claims go with the runs of their age (a catch-up never reaches that far); a
         * chain's claim (negative) goes once its parent run is gone */
        return send_sql(s, r,
                        "WITH c AS (DELETE FROM firing_claims WHERE scheduled_for < $1::bigint"
                        " AND (scheduled_for >= 0 OR NOT EXISTS (SELECT 1 FROM runs WHERE id ="
                        " -firing_claims.scheduled_for))),"
                        " d AS (DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE"
                        " status NOT IN ('QUEUED', 'RUNNING') AND (CASE WHEN finished_at > 0"
                        " THEN finished_at ELSE scheduled_for END) < $1::bigint"
                        " ORDER BY id LIMIT 500) RETURNING 1) SELECT COUNT(*) FROM d",
                        &p);
    }
    p_i64(&p, r->u.retention.max_runs);
    return send_sql(s, r,
                    "WITH ranked AS (SELECT id, status, row_number() OVER (PARTITION BY job"
                    " ORDER BY id DESC) AS n FROM runs), d AS (DELETE FROM runs WHERE id IN"
                    " (SELECT id FROM ranked WHERE n > $1::bigint AND status NOT IN ('QUEUED',"
                    " 'RUNNING') ORDER BY id LIMIT 500) RETURNING 1) SELECT COUNT(*) FROM d",
                    &p);
}

static store_pg_next_t finish_retention(store_pg_req_t *r)
{
    if (r->nres == 0)
        return PG_DONE; /* nothing to do: no age and no count limit */
    int64_t n = r_i64(r->res[0], 0, 0);
    r->result += n;
    if (n < RETENTION_BATCH)
        r->step++;
    if (r->step == STORE_PG_RET_COUNT && r->u.retention.max_runs == 0)
        r->step = STORE_PG_RET_DONE;
    return r->step == STORE_PG_RET_DONE ? PG_DONE : PG_AGAIN_LAST;
}

/* ---- overrides and audit ---- */

static int send_override_set(store_pg_t *s, store_pg_req_t *r)
{
    const store_override_t *ov = &r->u.ov.ov;
    params_t p = {.n = 0};
    p_text(&p, ov->job);
    p_text(&p, ov->field);
    p_text(&p, ov->value);
    p_i64(&p, ov->updated_at);
    p_text(&p, ov->updated_by);
    /* The notification goes out when the batch commits, to every listening daemon. */
    return send_sql(s, r,
                    "WITH up AS (INSERT INTO job_overrides (job, field, value, updated_at,"
                    " updated_by) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job, field) DO UPDATE"
                    " SET value = excluded.value, updated_at = excluded.updated_at,"
                    " updated_by = excluded.updated_by RETURNING job)"
                    " SELECT pg_notify('" STORE_PG_OV_CHANNEL "', job) FROM up",
                    &p);
}

static int send_override_delete(store_pg_t *s, store_pg_req_t *r)
{
    params_t p = {.n = 0};
    p_text(&p, r->u.ov.ov.job);
    p_text(&p, r->u.ov.ov.field);
    return send_sql(s, r,
                    "WITH del AS (DELETE FROM job_overrides WHERE job = $1 AND field = $2"
                    " RETURNING job) SELECT pg_notify('" STORE_PG_OV_CHANNEL "', job) FROM del",
                    &p);
}

static int send_override_list(store_pg_t *s, store_pg_req_t *r)
{
    params_t p = {.n = 0};
    p_text(&p, r->u.ov.ov.job);
    return send_sql(s, r,
                    "SELECT job, field, value, updated_at, updated_by FROM job_overrides"
                    " WHERE $1::text IS NULL OR job = $1::text ORDER BY job, field",
                    &p);
}

static void finish_override_list(store_pg_req_t *r)
{
    const PGresult *res = r->res[0];
    int n = PQntuples(res);
    r->u.ov.list = cv_calloc(n ? (size_t)n : 1, sizeof(*r->u.ov.list));
    for (int i = 0; i < n; i++) {
        store_override_t *o = &r->u.ov.list[r->u.ov.count++];
        o->job = r_text(res, i, 0);
        o->field = r_text(res, i, 1);
        o->value = r_text(res, i, 2);
        o->updated_at = r_i64(res, i, 3);
        o->updated_by = r_text(res, i, 4);
    }
}

static int send_audit_append(store_pg_t *s, store_pg_req_t *r)
{
    const store_audit_t *a = &r->u.audit;
    params_t p = {.n = 0};
    p_i64(&p, a->at);
    p_text(&p, a->actor);
    p_text(&p, a->action);
    p_text(&p, a->job);
    p_i64(&p, a->run_id);
    p_text(&p, a->before);
    p_text(&p, a->after);
    p_text(&p, r->key);
    return send_stmt(s, r, PGS_AUDIT_APPEND, &p);
}

static int send_audit_list(store_pg_t *s, store_pg_req_t *r)
{
    int64_t before = 0;
    store_cursor_decode(r->u.audit_list.cursor, &before); /* checked when the request was made */
    params_t p = {.n = 0};
    p_text(&p, r->u.audit_list.job);
    p_i64(&p, before);
    char *sql = cv_sprintf("SELECT id, at, actor, action, job, run_id, \"before\", \"after\""
                           " FROM audit WHERE ($1::text IS NULL OR job = $1::text)"
                           " AND ($2::bigint = 0 OR id < $2::bigint) ORDER BY id DESC LIMIT %d",
                           store_page_limit(r->u.audit_list.limit) + 1);
    int err = send_sql(s, r, sql, &p);
    free(sql);
    return err;
}

static void finish_audit_list(store_pg_req_t *r)
{
    const PGresult *res = r->res[0];
    int limit = store_page_limit(r->u.audit_list.limit), n = PQntuples(res);
    store_audit_page_t *page = &r->u.audit_list.page;
    page->entries = cv_calloc((size_t)limit, sizeof(store_audit_t));
    for (int i = 0; i < n && i < limit; i++) {
        store_audit_t *a = &page->entries[page->count++];
        a->id = r_i64(res, i, 0);
        a->at = r_i64(res, i, 1);
        a->actor = r_text(res, i, 2);
        a->action = r_text(res, i, 3);
        a->job = r_text(res, i, 4);
        a->run_id = r_i64(res, i, 5);
        a->before = r_text(res, i, 6);
        a->after = r_text(res, i, 7);
    }
    if (n > limit)
        page->next_cursor = store_cursor_encode(page->entries[limit - 1].id);
}

/* ---- the notification history (migration 7) ---- */

static int send_note_put(store_pg_t *s, store_pg_req_t *r)
{
    const store_note_t *n = &r->u.note;
    params_t p = {.n = 0};
    p_text(&p, n->instance);
    p_i64(&p, n->id);
    p_text(&p, n->notifier);
    p_text(&p, n->event ? n->event : "");
    p_text(&p, n->subject ? n->subject : "");
    p_i64(&p, n->run_id);
    p_i64(&p, n->created_at);
    p_i64(&p, n->finished_at);
    p_i64(&p, n->attempts);
    p_i64(&p, n->pending);
    p_i64(&p, n->delivered);
    p_i64(&p, n->http_status);
    p_text(&p, n->last_error);
    int err = send_sql(s, r, store_sql_note_put, &p);
    if (err < 0 || n->keep <= 0 || n->id <= n->keep)
        return err;
    params_t q = {.n = 0};
    p_i64(&q, n->id - n->keep);
    return send_sql(s, r, store_sql_note_prune, &q);
}

static int send_note_list(store_pg_t *s, store_pg_req_t *r)
{
    params_t p = {.n = 0};
    p_i64(&p, r->u.notes.limit);
    return send_sql(s, r, store_sql_note_list, &p);
}

static void finish_note_list(store_pg_req_t *r)
{
    const PGresult *res = r->res[0];
    int n = PQntuples(res);
    typeof(r->u.notes) *nl = &r->u.notes;
    nl->list = cv_calloc(n > 0 ? (size_t)n : 1, sizeof(store_note_t));
    for (int i = 0; i < n; i++) {
        store_note_t *o = &nl->list[nl->count++];
        o->id = r_i64(res, i, 0);
        o->notifier = r_text(res, i, 1);
        o->event = r_text(res, i, 2);
        o->subject = r_text(res, i, 3);
        o->run_id = r_i64(res, i, 4);
        o->created_at = r_i64(res, i, 5);
        o->finished_at = r_i64(res, i, 6);
        o->attempts = (int)r_i64(res, i, 7);
        o->pending = r_i64(res, i, 8) != 0;
        o->delivered = r_i64(res, i, 9) != 0;
        o->http_status = (long)r_i64(res, i, 10);
        o->last_error = r_text(res, i, 11);
        o->instance = r_text(res, i, 12);
    }
}

/* ---- notifications ---- */

static int send_listen(store_pg_t *s, store_pg_req_t *r)
{
    static const char *const channels[] = {STORE_PG_OV_CHANNEL, STORE_CHANNEL_RUNS,
                                           STORE_CHANNEL_INSTANCES, STORE_CHANNEL_CANCEL};
    int err = 0;
    for (size_t i = 0; err == 0 && i < CV_ARRAY_SIZE(channels); i++) {
        char *sql = cv_sprintf("LISTEN %s", channels[i]);
        err = send_sql(s, r, sql, NULL);
        free(sql);
    }
    return err;
}

static int send_notify(store_pg_t *s, store_pg_req_t *r)
{
    params_t p = {.n = 0};
    p_text(&p, r->u.notify.channel);
    p_text(&p, r->u.notify.payload);
    return send_sql(s, r, "SELECT pg_notify($1, $2)", &p);
}

/* ---- migrations ----
 * Step LOCK takes a session advisory lock (two instances starting together migrate one after
 * the other), creates the version table and reads the version; each step MIGRATE applies one
 * migration in its own transaction; step UNLOCK releases the lock, also after a failure. */

static int send_migrate(store_pg_t *s, store_pg_req_t *r)
{
    int err = 0;
    if (r->step == STORE_PG_MIG_LOCK) {
        err = send_sql(s, r, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", NULL);
        if (err == 0)
            err = send_sql(s, r, store_sql_version_table, NULL);
        if (err == 0)
            err = send_sql(s, r, store_sql_version_get, NULL);
        return err;
    }
    if (r->step == STORE_PG_MIG_UNLOCK)
        return send_sql(s, r, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")", NULL);
    const store_migration_t *m = &store_migrations[r->u.migrate.next];
    for (const char *const *sql = m->statements; err == 0 && *sql; sql++) {
        char *text = store_schema_render(*sql, &store_dialect_postgres);
        err = send_sql(s, r, text, NULL);
        free(text);
    }
    for (const char *const *sql = m->postgres; m->postgres && err == 0 && *sql; sql++)
        err = send_sql(s, r, *sql, NULL);
    params_t p = {.n = 0};
    p_i64(&p, m->version);
    p_text(&p, m->name);
    p_i64(&p, cv_now_ms());
    return err < 0 ? err : send_sql(s, r, store_sql_version_put, &p);
}

/* The next migration after version current, or UNLOCK when none is missing. */
static void migrate_next(store_pg_req_t *r, int64_t current)
{
    r->step = STORE_PG_MIG_UNLOCK;
    for (size_t i = 0; i < store_migration_count; i++) {
        if (store_migrations[i].version > current) {
            r->u.migrate.next = i;
            r->step = STORE_PG_MIG_APPLY;
            return;
        }
    }
}

static store_pg_next_t finish_migrate(store_pg_t *s, store_pg_req_t *r, int err)
{
    if (r->step == STORE_PG_MIG_UNLOCK)
        return PG_DONE;
    if (err < 0) {
        if (r->step == STORE_PG_MIG_APPLY)
            cv_error("store", "database %s: migration %d (%s) failed; nothing of it was kept",
                     s->where, store_migrations[r->u.migrate.next].version,
                     store_migrations[r->u.migrate.next].name);
        r->status = err;
        r->step = STORE_PG_MIG_UNLOCK;
        return PG_AGAIN_FIRST;
    }
    if (r->step == STORE_PG_MIG_LOCK) {
        int64_t current = r_i64(r->res[2], 0, 0), latest = store_schema_latest();
        if (current > latest) {
            cv_error("store",
                     "database %s has schema version %lld, newer than version %lld, the newest "
                     "this cronvisor " CV_VERSION " knows: run a newer cronvisor or use another "
                     "database",
                     s->where, (long long)current, (long long)latest);
            r->status = -EPROTO;
            r->step = STORE_PG_MIG_UNLOCK;
        } else {
            migrate_next(r, current);
        }
        return PG_AGAIN_FIRST;
    }
    s->commits++;
    r->result++;
    migrate_next(r, store_migrations[r->u.migrate.next].version);
    return PG_AGAIN_FIRST;
}

/* ---- dispatch ---- */

int store_pg__send(store_pg_t *s, store_pg_req_t *r)
{
    switch (r->op) {
    case STORE_OP_MIGRATE:
        return send_migrate(s, r);
    case STORE_OP_PING:
        return send_sql(s, r, "SELECT 1", NULL);
    case STORE_OP_GET_RUN:
        return send_get_run(s, r);
    case STORE_OP_QUERY_RUNS:
        return send_query_runs(s, r);
    case STORE_OP_JOB_STATS:
        return send_job_stats(s, r);
    case STORE_OP_SUMMARY:
        return send_summary(s, r);
    case STORE_OP_OV_LIST:
        return send_override_list(s, r);
    case STORE_OP_AUDIT_LIST:
        return send_audit_list(s, r);
    case STORE_OP_INSERT_RUN:
        return send_insert_run(s, r);
    case STORE_OP_UPDATE_RUN:
        return send_update_run(s, r);
    case STORE_OP_ABANDON:
        return send_abandon(s, r);
    case STORE_OP_HEARTBEAT:
        return send_heartbeat(s, r);
    case STORE_OP_ABANDON_DEAD:
        return send_abandon_dead(s, r);
    case STORE_OP_INSTANCES:
        return send_sql(s, r, store_sql_list_instances, NULL);
    case STORE_OP_LISTEN:
        return send_listen(s, r);
    case STORE_OP_NOTIFY:
        return send_notify(s, r);
    case STORE_OP_RETENTION:
        return r->step == STORE_PG_RET_DONE ? 0 : send_retention(s, r);
    case STORE_OP_OV_SET:
        return send_override_set(s, r);
    case STORE_OP_OV_DELETE:
        return send_override_delete(s, r);
    case STORE_OP_AUDIT_APPEND:
        return send_audit_append(s, r);
    case STORE_OP_NOTE_PUT:
        return send_note_put(s, r);
    case STORE_OP_NOTE_LIST:
        return send_note_list(s, r);
    case STORE_OP_CLOSE:
        break;
    }
    return 0;
}

store_pg_next_t store_pg__finish(store_pg_t *s, store_pg_req_t *r, int err)
{
    store_pg_next_t next = PG_DONE;
    if (r->op == STORE_OP_MIGRATE) {
        next = finish_migrate(s, r, err);
    } else if (err < 0) {
        r->status = err;
    } else if (r->status == 0) {
        switch (r->op) {
        case STORE_OP_INSERT_RUN:
            finish_insert_run(s, r);
            break;
        case STORE_OP_UPDATE_RUN:
        case STORE_OP_OV_DELETE:
            if (r_changes(r->res[0]) == 0)
                r->status = -ENOENT;
            break;
        case STORE_OP_GET_RUN:
            finish_get_run(r);
            break;
        case STORE_OP_QUERY_RUNS:
            finish_query_runs(r);
            break;
        case STORE_OP_JOB_STATS:
            finish_job_stats(r);
            break;
        case STORE_OP_SUMMARY:
            finish_summary(r);
            break;
        case STORE_OP_OV_LIST:
            finish_override_list(r);
            break;
        case STORE_OP_AUDIT_APPEND:
            r->result = r_i64(r->res[0], 0, 0);
            break;
        case STORE_OP_AUDIT_LIST:
            finish_audit_list(r);
            break;
        case STORE_OP_NOTE_LIST:
            finish_note_list(r);
            break;
        case STORE_OP_ABANDON:
        case STORE_OP_ABANDON_DEAD:
            r->result = r_changes(r->res[0]);
            break;
        case STORE_OP_INSTANCES:
            finish_instances(r);
            break;
        case STORE_OP_RETENTION:
            next = finish_retention(r);
            break;
        default:
            break;
        }
    }
    store_pg__clear_results(r);
    return next;
}
