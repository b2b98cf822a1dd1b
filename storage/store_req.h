/* What the storage backends share about a request: the operation, the caller's callback, the
 * arguments and results, how they are freed and how the result is handed to the callback. A
 * backend wraps these in its own request record (queueing, statements, connection state). */
#ifndef CV_STORAGE_STORE_REQ_H
#define CV_STORAGE_STORE_REQ_H

#include "storage/store.h"

typedef enum {
    STORE_OP_CLOSE,
    STORE_OP_MIGRATE,
    STORE_OP_PING,
    STORE_OP_GET_RUN,
    STORE_OP_QUERY_RUNS,
    STORE_OP_JOB_STATS,
    STORE_OP_SUMMARY,
    STORE_OP_OV_LIST,
    STORE_OP_AUDIT_LIST,
    STORE_OP_NOTE_LIST,
    STORE_OP_INSTANCES,
    STORE_OP_LISTEN, /* PostgreSQL: LISTEN on a (new) connection */
    /* writes from here on */
    STORE_OP_INSERT_RUN,
    STORE_OP_UPDATE_RUN,
    STORE_OP_ABANDON,
    STORE_OP_RETENTION,
    STORE_OP_OV_SET,
    STORE_OP_OV_DELETE,
    STORE_OP_AUDIT_APPEND,
    STORE_OP_HEARTBEAT,
    STORE_OP_ABANDON_DEAD,
    STORE_OP_NOTIFY, /* PostgreSQL: pg_notify, delivered when the batch commits */
    STORE_OP_NOTE_PUT,
} store_op_t;

#define STORE_OP_IS_WRITE(op) ((op) >= STORE_OP_INSERT_RUN)

/** The caller's callback; which member is set follows from the operation. */
typedef union store_req_cb {
    store_status_cb status;
    store_id_cb id;
    store_count_cb count;
    store_run_cb run;
    store_page_cb page;
    store_stats_cb stats;
    store_summary_cb summary;
    store_overrides_cb overrides;
    store_audit_cb audit;
    store_notes_cb notes;
    store_instances_cb instances;
} store_req_cb_t;

/** Arguments (strings owned by the request) and results of one operation. */
typedef union store_req_args {
    run_t *run; /* insert/update argument; get_run result */
    int64_t id;
    struct {
        store_run_filter_t f;
        store_run_page_t page;
    } query;
    struct {
        char **jobs;
        size_t njobs;
        int last_n;
        store_job_stats_t *out;
    } stats;
    struct {
        int64_t since;
        store_summary_t out;
    } summary;
    struct {
        char *instance, *reason;
        int64_t seen_before; /* abandon_dead */
    } abandon;
    struct {
        store_instance_t one; /* heartbeat argument */
        store_instance_t *list;
        size_t count;
    } inst;
    struct {
        int days, max_runs;
        int phase; /* SQLite: age, then count per job */
        int64_t last_id;
        char **jobs;
        size_t njobs, next_job;
    } retention;
    struct {
        store_override_t ov; /* set/delete argument */
        store_override_t *list;
        size_t count;
    } ov;
    store_audit_t audit; /* append argument */
    struct {
        char *job, *cursor;
        int limit;
        store_audit_page_t page;
    } audit_list;
    store_note_t note; /* put argument */
    struct {
        int limit;
        store_note_t *list;
        size_t count;
    } notes;
    struct {
        size_t next; /* PostgreSQL: the migration the current step applies */
    } migrate;
    struct {
        char *channel, *payload;
    } notify;
} store_req_args_t;

/** Frees what the arguments and results of op own (not the union itself). status is the
 * request's outcome: a failed get_run holds no run. */
void store_req_args_free(store_op_t op, store_req_args_t *u, int status);

/** Hands the outcome to the caller's callback (a NULL callback is allowed for writes whose
 * result nobody wants). A run the callback takes (get_run) is detached from u. STORE_OP_LISTEN
 * has no caller's callback: the backend handles it. */
void store_req_deliver(store_op_t op, const store_req_cb_t *cb, void *ud, int status,
                       int64_t result, store_req_args_t *u);

/* Argument setters shared by the backends' front functions: each copies the caller's arguments
 * into u (the request owns the copies) and returns 0, or -EINVAL when a required one is NULL. */
int store_req_set_query(store_req_args_t *u, const store_run_filter_t *f);
int store_req_set_job_stats(store_req_args_t *u, const char *const *jobs, size_t njobs, int last_n);
/** For STORE_OP_OV_SET (job, field, value required; updated_at 0 means now), STORE_OP_OV_DELETE
 * (job, field) and STORE_OP_OV_LIST (job may be NULL: every job). */
int store_req_set_override(store_req_args_t *u, store_op_t op, const store_override_t *ov);
/** actor and action required; at 0 means now. */
int store_req_set_audit(store_req_args_t *u, const store_audit_t *a);
int store_req_set_audit_list(store_req_args_t *u, const char *job, int limit, const char *cursor);
/** instance and notifier required. */
int store_req_set_note(store_req_args_t *u, const store_note_t *n);
int store_req_set_note_list(store_req_args_t *u, int limit);
/** id required; last_seen 0 means now. */
int store_req_set_heartbeat(store_req_args_t *u, const store_instance_t *inst);

/* ---- outage spool records (storage/spool_rec.c), one format for every backend ---- */

/** The spool record of a write (heap JSON text, *len bytes): the op, its arguments, and the
 * client keys of a provisional run (PostgreSQL; NULL otherwise). NULL when op is not spoolable. */
char *store_req_spool_encode(store_op_t op, const store_req_args_t *u, const char *key,
                             const char *retry_key, size_t *len);
/** Reads a record back into *op, *u (zeroed first; the caller frees it with store_req_args_free)
 * and the keys (heap or NULL). 0, or -EINVAL when the record cannot be read (nothing to free). */
int store_req_spool_decode(const char *data, size_t len, store_op_t *op, store_req_args_t *u,
                           char **key, char **retry_key);

/** A heap copy of s, or NULL for NULL. */
char *store_strdup_opt(const char *s);

#endif
