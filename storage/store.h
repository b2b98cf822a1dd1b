/* The store: durable run history, runtime overrides of job settings and the audit trail.
 *
 * One interface, several backends. A store_t is a table of function pointers (store_ops_t) plus
 * backend state; the store_*() functions below dispatch through it. The SQLite backend runs every
 * call on a worker thread that owns the database handle and groups all queued writes into one
 * transaction per batch; a PostgreSQL backend plugs into the same table, schema and test suite.
 *
 * Threading and callbacks. Every function is called on the libuv loop thread the store was opened
 * on. Every request completes through its callback, exactly once, always later on that same loop
 * thread and never from inside the call that made it, in the order the requests were made. A
 * write whose callback reports 0 is committed (with synchronous=FULL: on disk).
 * Callbacks receive status 0 or a negative errno-style code:
 *   -EINVAL  bad argument (NULL job, bad cursor, unknown status), said in the log
 *   -ENOENT  the row does not exist (get_run, update_run, override_delete)
 *   -EEXIST  insert_run of a cron first attempt whose (job, scheduled_for) is already claimed
 *   -EPROTO  the database schema is newer than this binary (migrate)
 *   -EIO, -ENOSPC, -EBUSY, -EROFS, -ENOMEM  database failures, described in the log
 *
 * Ownership of results. Results handed to a callback (run_t, pages, stats, overrides, audit
 * entries) belong to the store and are freed right after the callback returns. A receiver that
 * wants to keep a run copies it (run_dup) or takes it: it may set the slot that holds it
 * (page->runs[i], stats[i].last, the run pointer of a store_run_cb through *taken) to NULL, and
 * the store then frees what is left. Arguments are copied when the call is made; the caller keeps
 * ownership of everything it passes. A published run (proto/run.h: immutable, ref-counted) is
 * not copied: the store takes a reference (run_share).
 *
 * Loop liveness. An open store keeps the loop alive only while it has requests outstanding, so a
 * test or a shutdown can uv_run() until everything it asked for has been answered. */
#ifndef CV_STORAGE_STORE_H
#define CV_STORAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proto/run.h"

typedef struct store store_t;

/** Durability of a commit. FULL: a commit is on disk when its callback fires (default).
 * NORMAL: SQLite WAL syncs at checkpoints only; a power loss may lose the latest commits (never
 * corrupt the database). */
typedef enum { STORE_SYNC_FULL = 0, STORE_SYNC_NORMAL } store_sync_t;

typedef struct store_config {
    /* "path/to/file.db", "sqlite:path" or "file:..." (SQLite); "postgres://..." or
     * "postgresql://..." (PostgreSQL). Required. */
    const char *dsn;
    const char *instance; /* this daemon's instance id, stamped on runs without one; required */
    store_sync_t sync;
    int busy_timeout_ms; /* how long to wait for another process's lock; 0 = 5000 */
    /* The outage spool file (storage/spool.h). PostgreSQL: writes made while the database is
     * unreachable; SQLite: a durable copy of the writes held after a storage failure, written
     * back on the next start when the daemon stopped first. NULL: no spool (PostgreSQL: writes
     * made while the database is unreachable wait in memory, up to pending_max). */
    const char *spool_path;
    uint64_t spool_max; /* bytes; 0: no bound */
    /* SQLite: writes kept in memory after a storage failure (disk full, I/O error, file deleted),
     * written in order once the database accepts writes again. PostgreSQL: requests waiting in
     * memory for a lost connection to come back (STORE_PG_QUEUE_MAX). 0: the default (10000). */
    size_t pending_max;
} store_config_t;

/** Whether the store reaches its database. DEGRADED: unreachable (PostgreSQL) or failing to write
 * (SQLite: disk full, I/O error, read-only, locked, file deleted or replaced); writes go to the
 * outage spool (PostgreSQL) or are held in memory (SQLite), and PostgreSQL reads fail with
 * -EAGAIN; REPLAYING: reachable again, what was kept is being written back (new writes queue
 * behind it). */
typedef enum { STORE_UP = 0, STORE_DEGRADED, STORE_REPLAYING } store_health_t;

typedef struct store_state {
    store_health_t health;
    uint64_t spooled;     /* records in the spool, not yet in the database */
    uint64_t spool_bytes; /* size of the spool file */
    uint64_t dropped;     /* writes refused since start because the spool (or queue) was full */
    /* PostgreSQL: requests waiting in memory for a lost connection (0 while connected), and the
     * requests refused -EAGAIN since start because pending_max of them waited already */
    uint64_t queued, queue_refused;
} store_state_t;

typedef void (*store_state_cb)(void *ud, const store_state_t *st);

/** "up", "degraded", "replaying". */
const char *store_health_name(store_health_t h);

/* ---- filters and results ---- */

#define STORE_PAGE_DEFAULT 50
#define STORE_PAGE_MAX     500

/** Which runs query_runs returns. Zero-initialise for "every run, newest first". */
typedef struct store_run_filter {
    const char *job;      /* exact job name, NULL = any */
    uint32_t status_mask; /* bit (1u << run_status_t) per wanted status, 0 = any */
    const char *trigger;  /* exact trigger ("cron", "api:ops"), NULL = any */
    int64_t since;        /* started_at >= since (ms), 0 = no bound; unstarted runs do not match */
    int64_t until;        /* started_at < until (ms), 0 = no bound */
    int64_t above_id;     /* id > above_id, 0 = no bound (a run's chained runs are newer) */
    int limit;            /* page size; <= 0 means STORE_PAGE_DEFAULT, capped at STORE_PAGE_MAX */
    const char *cursor;   /* next_cursor of the previous page, NULL for the first page */
} store_run_filter_t;

/** One page of runs, newest (highest id) first. next_cursor is NULL on the last page. */
typedef struct store_run_page {
    run_t **runs;
    size_t count;
    char *next_cursor;
} store_run_page_t;

/** Statistics of one job, over the runs the store still holds (the history: runs deleted by
 * retention no longer count). SKIPPED firings never ran and count nowhere. */
typedef struct store_job_stats {
    char *job;
    int64_t runs;      /* every run that ended (not queued, running or SKIPPED) */
    int64_t successes; /* SUCCESS */
    int64_t partials;  /* PARTIAL */
    int64_t failures;  /* FAILED and TIMED_OUT */
    /* FAILED, TIMED_OUT and ABANDONED runs after the latest SUCCESS or PARTIAL. CANCELLED and
     * SKIPPED runs neither extend nor break the streak. */
    int64_t consecutive_failures;
    /* (successes + partials) / (successes + partials + failures), 0 when none: a PARTIAL run
     * is not a failure; CANCELLED and ABANDONED runs are not judged */
    double success_rate;
    run_t *last; /* the latest run (highest id) that is not SKIPPED, NULL when there is none */
    int64_t duration_samples; /* finished runs the two figures below are computed over */
    double avg_duration_ms;
    int64_t p95_duration_ms; /* nearest-rank 95th percentile */
} store_job_stats_t;

/** Counts for the dashboard header. */
typedef struct store_summary {
    int64_t running, queued;          /* now */
    int64_t success, partial, failed; /* finished since the given time; failed includes TIMED_OUT */
} store_summary_t;

/** A runtime change of one job setting. value is JSON text. */
typedef struct store_override {
    char *job;
    char *field;
    char *value;
    int64_t updated_at; /* ms */
    char *updated_by;
} store_override_t;

/** One audit record. before/after are JSON text or NULL. */
typedef struct store_audit {
    int64_t id;
    int64_t at; /* ms */
    char *actor;
    char *action;
    char *job;      /* NULL when not about a job */
    int64_t run_id; /* 0 when not about a run */
    char *before;
    char *after;
} store_audit_t;

typedef struct store_audit_page {
    store_audit_t *entries; /* newest first */
    size_t count;
    char *next_cursor; /* NULL on the last page */
} store_audit_page_t;

/** One notification of one daemon and what became of it (the notifier's record, migration 7).
 * Times in ms; finished_at 0 while pending. */
typedef struct store_note {
    int64_t id; /* the notifier's, unique per instance */
    char *instance;
    char *notifier;
    char *event;
    char *subject;
    int64_t run_id; /* 0 when not about a run */
    int64_t created_at;
    int64_t finished_at;
    int attempts;
    bool pending;
    bool delivered;
    long http_status;
    char *last_error; /* secret-free, or NULL */
    int64_t keep;     /* put: the newest rows kept (ids above id - keep); 0: all */
} store_note_t;

/** One daemon sharing the store, as its heartbeat records it. Times in ms. */
typedef struct store_instance {
    char *id;
    char *hostname;
    int64_t pid;
    int64_t started_at;
    int64_t last_seen;
    char *version;
} store_instance_t;

/* ---- callbacks ---- */

typedef void (*store_status_cb)(void *ud, int status);
typedef void (*store_id_cb)(void *ud, int status, int64_t id);
typedef void (*store_count_cb)(void *ud, int status, int64_t count);
/** run is NULL unless status is 0; set *taken = true to keep it (then run_free it yourself). */
typedef void (*store_run_cb)(void *ud, int status, run_t *run, bool *taken);
typedef void (*store_page_cb)(void *ud, int status, store_run_page_t *page);
typedef void (*store_stats_cb)(void *ud, int status, store_job_stats_t *stats, size_t count);
typedef void (*store_summary_cb)(void *ud, int status, const store_summary_t *summary);
typedef void (*store_overrides_cb)(void *ud, int status, const store_override_t *ov, size_t count);
typedef void (*store_audit_cb)(void *ud, int status, const store_audit_page_t *page);
typedef void (*store_notify_cb)(void *ud, const char *job);
typedef void (*store_notes_cb)(void *ud, int status, const store_note_t *notes, size_t count);
/** channel is one of STORE_CHANNEL_* (storage/schema.h), payload its text; both NULL after
 * the connection came back (events may have been missed). */
typedef void (*store_event_cb)(void *ud, const char *channel, const char *payload);
typedef void (*store_instances_cb)(void *ud, int status, const store_instance_t *inst,
                                   size_t count);

/* ---- the backend table ---- */

typedef struct store_ops {
    const char *name; /* "sqlite", "postgres" */
    void (*close)(store_t *s, store_status_cb cb, void *ud);
    void (*migrate)(store_t *s, store_count_cb cb, void *ud);
    void (*ping)(store_t *s, store_status_cb cb, void *ud);
    void (*insert_run)(store_t *s, const run_t *r, store_id_cb cb, void *ud);
    void (*update_run)(store_t *s, const run_t *r, store_status_cb cb, void *ud);
    void (*get_run)(store_t *s, int64_t id, store_run_cb cb, void *ud);
    void (*query_runs)(store_t *s, const store_run_filter_t *f, store_page_cb cb, void *ud);
    void (*job_stats)(store_t *s, const char *const *jobs, size_t njobs, int last_n,
                      store_stats_cb cb, void *ud);
    void (*summary)(store_t *s, int64_t since, store_summary_cb cb, void *ud);
    void (*abandon_stale)(store_t *s, const char *instance, const char *reason, store_count_cb cb,
                          void *ud);
    void (*retention)(store_t *s, int days, int max_runs_per_job, store_count_cb cb, void *ud);
    void (*override_set)(store_t *s, const store_override_t *ov, store_status_cb cb, void *ud);
    void (*override_delete)(store_t *s, const char *job, const char *field, store_status_cb cb,
                            void *ud);
    void (*override_list)(store_t *s, const char *job, store_overrides_cb cb, void *ud);
    void (*audit_append)(store_t *s, const store_audit_t *a, store_id_cb cb, void *ud);
    void (*audit_list)(store_t *s, const char *job, int limit, const char *cursor,
                       store_audit_cb cb, void *ud);
    void (*note_put)(store_t *s, const store_note_t *n, store_status_cb cb, void *ud);
    void (*note_list)(store_t *s, int limit, store_notes_cb cb, void *ud);
    uint64_t (*commits)(store_t *s);
    /* true when several daemons may share the database (claims, heartbeats matter) */
    bool shared;
    void (*heartbeat)(store_t *s, const store_instance_t *inst, store_status_cb cb, void *ud);
    void (*abandon_dead)(store_t *s, int64_t seen_before, store_count_cb cb, void *ud);
    void (*list_instances)(store_t *s, store_instances_cb cb, void *ud);
    int (*watch_overrides)(store_t *s, store_notify_cb cb, void *ud); /* NULL: not supported */
    int (*watch_events)(store_t *s, store_event_cb cb, void *ud);     /* NULL: not supported */
    void (*notify)(store_t *s, const char *channel, const char *payload, store_status_cb cb,
                   void *ud); /* NULL: not supported */
    /* NULL: claims are plain inserts; the state is always up */
    void (*claim_run)(store_t *s, const run_t *r, store_id_cb cb, void *ud);
    void (*get_state)(store_t *s, store_state_t *out);
    int (*watch_state)(store_t *s, store_state_cb cb, void *ud);
} store_ops_t;

/** Every backend's state begins with this. */
struct store {
    const store_ops_t *ops;
    uv_loop_t *loop;
};

/* ---- opening and closing ---- */

/** Opens the store named by cfg->dsn on loop, choosing the backend from the DSN. For SQLite the
 * parent directory is created when missing and the database file is opened (not yet migrated:
 * call store_migrate before anything else). Returns 0 and *out, or a negative errno with the
 * reason logged (-EINVAL bad config, -ENOTSUP a backend not built, -EACCES/-ENOENT/-EIO
 * the file cannot be opened). Nothing is left allocated on failure. */
int store_open(uv_loop_t *loop, const store_config_t *cfg, store_t **out);

/** Runs the requests already made, then closes the database and calls cb(ud, 0) on the loop
 * thread; the store is freed after cb returns. No request may be made after store_close. */
void store_close(store_t *s, store_status_cb cb, void *ud);

/** Applies every migration the database lacks, each in its own transaction; cb gets the number
 * applied (0 when up to date). A database newer than this binary fails with -EPROTO and a log
 * line that names both versions. */
void store_migrate(store_t *s, store_count_cb cb, void *ud);

/** Readiness: 0 when the database answers a trivial query. */
void store_ping(store_t *s, store_status_cb cb, void *ud);

/** Number of transactions committed since open (group commit makes it far lower than the
 * number of writes). Loop thread. */
uint64_t store_commits(store_t *s);

/* ---- runs ---- */

/** Inserts a copy of r (instance defaults to the store's) and returns its id: r->id when positive
 * (the executor assigns ids so a child knows its run id before any database round trip), else
 * a new one from the database. An id already present fails with -EEXIST. A cron first attempt
 * (trigger "cron", attempt 1) whose (job, scheduled_for) already exists fails with -EEXIST: that is
 * how an instance claims a firing. */
void store_insert_run(store_t *s, const run_t *r, store_id_cb cb, void *ud);
/** store_insert_run for a claim (a firing that may run only once the insert committed): never
 * spooled. While the database is unreachable it fails at once with -EAGAIN, so the caller can
 * apply the job's on_store_outage choice. */
void store_claim_run(store_t *s, const run_t *r, store_id_cb cb, void *ud);
/** A run with a negative (provisional) id was started while the database was unreachable: the
 * PostgreSQL backend records it under a client key (instance, start time, -id) and the database
 * assigns its id when the record is written; later updates of the provisional id find it by that
 * key (store_update_run). */
/** Replaces every column of the run r->id. -ENOENT when no such run. */
void store_update_run(store_t *s, const run_t *r, store_status_cb cb, void *ud);
/** Reads one run. -ENOENT when no such run. */
void store_get_run(store_t *s, int64_t id, store_run_cb cb, void *ud);
/** One page of runs matching f, newest first (keyset pagination on id). -EINVAL on a cursor
 * that this store did not produce. */
void store_query_runs(store_t *s, const store_run_filter_t *f, store_page_cb cb, void *ud);
/** Statistics for each of jobs[0..njobs), in that order (jobs without runs get zeros). Durations
 * are taken over the last_n (<= 0: 20) finished runs that ran (SUCCESS, PARTIAL, FAILED,
 * TIMED_OUT). */
void store_job_stats(store_t *s, const char *const *jobs, size_t njobs, int last_n,
                     store_stats_cb cb, void *ud);
/** RUNNING and QUEUED counts, and SUCCESS/PARTIAL/FAILED(+TIMED_OUT) finished at or after since
 * (ms). */
void store_summary(store_t *s, int64_t since, store_summary_cb cb, void *ud);
/** Marks every RUNNING or QUEUED run ABANDONED, with reason in error and finished_at = now;
 * only those of instance when it is not NULL. cb gets the number of runs changed. */
void store_abandon_stale(store_t *s, const char *instance, const char *reason, store_count_cb cb,
                         void *ud);
/** Deletes finished runs older than days (by finished_at; 0 = no age limit) and, per job, all but
 * the newest max_runs_per_job runs (0 = no limit). Works in transactions of at most 500 rows,
 * letting other requests run in between. cb gets the number of runs deleted. */
void store_retention(store_t *s, int days, int max_runs_per_job, store_count_cb cb, void *ud);

/* ---- instances (several daemons on one database) ---- */

/** True when other daemons may use the same database (PostgreSQL): a cron firing must then be
 * claimed (store_insert_run before it runs) and run ids come from the database. SQLite: false. */
bool store_is_shared(const store_t *s);
/** Creates or replaces the row of inst->id in the instances table (hostname, pid, started_at,
 * last_seen, version; last_seen 0 means now). -EINVAL when inst->id is NULL. */
void store_heartbeat(store_t *s, const store_instance_t *inst, store_status_cb cb, void *ud);
/** Marks ABANDONED every RUNNING or QUEUED run whose instance has no heartbeat at or after
 * seen_before (ms): instances whose last_seen is older, and instances that never sent one. The
 * error says "instance X stopped heart-beating"; finished_at = now. cb gets the number changed.
 * The caller's own heartbeat must be recorded first, or its runs are abandoned too. */
void store_abandon_dead(store_t *s, int64_t seen_before, store_count_cb cb, void *ud);
/** Lists the instances table, most recently seen first. */
void store_list_instances(store_t *s, store_instances_cb cb, void *ud);
void store_instances_free(store_instance_t *inst, size_t n);
/** Calls cb(ud, job) on the loop thread, within about a round trip, whenever any daemon on the
 * database (this one included) committed an override_set or override_delete of job; and
 * cb(ud, NULL) after the connection came back (changes may have been missed: re-read them all).
 * One watcher per store; it does not keep the loop alive. PostgreSQL (LISTEN/NOTIFY); other
 * backends return -ENOTSUP. */
int store_watch_overrides(store_t *s, store_notify_cb cb, void *ud);
/** Calls cb(ud, channel, payload) on the loop thread for every notification on the runs,
 * instances and cancel channels (STORE_CHANNEL_*, storage/schema.h), those this daemon caused
 * included; cb(ud, NULL, NULL) after the connection came back. One watcher per store; it does
 * not keep the loop alive. PostgreSQL; other backends return -ENOTSUP. */
int store_watch_events(store_t *s, store_event_cb cb, void *ud);
/** Announces payload on channel to every listening daemon once the request commits. cb may be
 * NULL. PostgreSQL; other backends answer -ENOTSUP (through cb, later, like every request). */
void store_notify(store_t *s, const char *channel, const char *payload, store_status_cb cb,
                  void *ud);

/** The store's current state (always STORE_UP without a spool). Loop thread. */
void store_get_state(store_t *s, store_state_t *out);
/** Calls cb(ud, state) on the loop thread whenever the state or the spooled count changes. One
 * watcher per store; -ENOTSUP for backends without a spool. */
int store_watch_state(store_t *s, store_state_cb cb, void *ud);

/* ---- overrides and audit ---- */

/** Creates or replaces the override (ov->job, ov->field). updated_at 0 means now. */
void store_override_set(store_t *s, const store_override_t *ov, store_status_cb cb, void *ud);
/** Deletes one override; -ENOENT when there was none. */
void store_override_delete(store_t *s, const char *job, const char *field, store_status_cb cb,
                           void *ud);
/** Lists the overrides of job (NULL: of every job), ordered by job then field. */
void store_override_list(store_t *s, const char *job, store_overrides_cb cb, void *ud);
/** Appends an audit record (a->id ignored; a->at 0 means now) and returns its id. */
void store_audit_append(store_t *s, const store_audit_t *a, store_id_cb cb, void *ud);
/** One page of audit records, newest first, of job (NULL: all). limit as for runs. */
void store_audit_list(store_t *s, const char *job, int limit, const char *cursor, store_audit_cb cb,
                      void *ud);

/* ---- notifications ---- */

/** Creates or replaces the notification (n->instance, n->id); instance and notifier required
 * (-EINVAL). On PostgreSQL while the database is unreachable it fails with -EAGAIN (the caller
 * logs it; the notification history is not spooled). */
void store_note_put(store_t *s, const store_note_t *n, store_status_cb cb, void *ud);
/** The newest (highest id) limit (<= 0: 200) notifications, of every instance, newest first. */
void store_note_list(store_t *s, int limit, store_notes_cb cb, void *ud);
/** Frees the strings of n[0..count) and the array. */
void store_notes_free(store_note_t *n, size_t count);

/* ---- helpers shared by backends ---- */

/** Encodes a keyset position as an opaque cursor string (heap). */
char *store_cursor_encode(int64_t id);
/** Decodes a cursor made by store_cursor_encode. Returns 0 or -EINVAL. */
int store_cursor_decode(const char *cursor, int64_t *id);
/** The effective page size for a requested limit. */
int store_page_limit(int limit);
void store_run_page_free(store_run_page_t *p);
void store_job_stats_free(store_job_stats_t *st, size_t n);
void store_overrides_free(store_override_t *ov, size_t n);
void store_audit_page_free(store_audit_page_t *p);

#endif
