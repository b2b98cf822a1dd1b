/* The run record: what one execution of a job is, from the moment it is queued to its end.
 * The executor fills it, the store persists it, the API and the WebSocket hub show it.
 * Field names match the columns of the runs table and the keys of the JSON API. */
#ifndef CV_PROTO_RUN_H
#define CV_PROTO_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    RUN_QUEUED,    /* waiting for a slot under limits.max_concurrent */
    RUN_RUNNING,   /* started, not finished */
    RUN_SUCCESS,   /* exit 0 (HTTP: expected status) */
    RUN_PARTIAL,   /* exit 0 but items_failed > 0 */
    RUN_FAILED,    /* non-zero exit, killed by a signal, not startable (126/127) */
    RUN_TIMED_OUT, /* killed at its timeout */
    RUN_CANCELLED, /* cancelled by a person, a replace policy or shutdown */
    RUN_SKIPPED,   /* not started: concurrency forbid, a required probe unhealthy */
    RUN_ABANDONED, /* found RUNNING or QUEUED by a daemon that did not start it */
    RUN__COUNT
} run_status_t;

/** "SUCCESS", "FAILED", ... */
const char *run_status_name(run_status_t s);
/** Parses an upper- or lower-case status name. Returns 0 or -EINVAL. */
int run_status_parse(const char *s, run_status_t *out);
/** True for every status a run cannot leave (everything but QUEUED and RUNNING). */
bool run_status_final(run_status_t s);
/** The run a chain's trigger names ("chain:<run id>"), or 0 when the trigger is not a chain's. */
int64_t run_chain_parent(const char *trigger);

/* The run's fields, declared once. Everything that moves a run field by field is driven by this
 * table: the struct below, run_dup/run_free, the SQLite and PostgreSQL binds, reads and column
 * lists (storage/), the outage spool's records (storage/spool_rec.c) and the API's JSON
 * (http/api_json.c). Adding a field touches four hand-written files: a line here, its migration
 * (storage/schema.c), the code that sets it and its API schema (proto/openapi.yaml); `host` was
 * added so (actors/executor.c sets it).
 *
 * X(name, kind, column, json, json_kind, life)
 *   kind       I64 int64_t, INT int, DBL double, TEXT char * (heap-owned, NULL when absent),
 *              STATUS run_status_t (stored as its name, spooled as its number)
 *   column     the runs table's column, as SQL (quoted when a keyword)
 *   json       the key in the API's run object
 *   json_kind  PLAIN the value, TIME RFC 3339 (null when 0), ZNULL null when 0, NNULL null when
 *              negative, JSONTEXT parsed JSON text, OUTPUT only with the output (never null)
 *   life       1 when a run's life changes it after its insert (SQLite updates only those)
 * id, the key, is not in the table: it is column 0 and the last parameter of inserts/updates.
 * Times are Unix milliseconds, 0 when not (yet) known. */
/* clang-format off */
#define RUN_FIELDS(X) \
    X(job,             TEXT,   "job",             "job",             PLAIN,    0) /* job name */ \
    X(status,          STATUS, "status",          "status",          PLAIN,    1) \
    X(trigger,         TEXT,   "\"trigger\"",     "trigger",         PLAIN,    0) /* "cron", "api:<token>", "retry", ... */ \
    X(scheduled_for,   I64,    "scheduled_for",   "scheduled_for",   TIME,     0) /* the fire instant, or the trigger instant */ \
    X(queued_at,       I64,    "queued_at",       "queued_at",       TIME,     1) \
    X(started_at,      I64,    "started_at",      "started_at",      TIME,     1) \
    X(finished_at,     I64,    "finished_at",     "finished_at",     TIME,     1) \
    X(duration_ms,     I64,    "duration_ms",     "duration_ms",     PLAIN,    1) \
    X(attempt,         INT,    "attempt",         "attempt",         PLAIN,    0) /* 1 for the first attempt */ \
    X(retry_of,        I64,    "retry_of",        "retry_of",        ZNULL,    0) /* id of the first attempt, 0 for one */ \
    X(exit_code,       INT,    "exit_code",       "exit_code",       PLAIN,    1) /* -1 when it did not exit normally */ \
    X(signal,          INT,    "signal",          "signal",          PLAIN,    1) /* signal that ended it, 0 when none */ \
    X(items_processed, I64,    "items_processed", "items_processed", PLAIN,    1) \
    X(items_failed,    I64,    "items_failed",    "items_failed",    PLAIN,    1) \
    X(progress,        DBL,    "progress",        "progress",        NNULL,    1) /* 0..1, -1 when never reported */ \
    X(summary_json,    TEXT,   "summary_json",    "summary",         JSONTEXT, 1) /* the last {"summary": ...} object */ \
    X(error,           TEXT,   "error",           "error",           PLAIN,    1) /* why it failed, for a person */ \
    X(output_tail,     TEXT,   "output_tail",     "output_tail",     OUTPUT,   1) /* head + marker + tail, see max_output */ \
    X(output_bytes,    I64,    "output_bytes",    "output_bytes",    PLAIN,    1) /* total bytes written, dropped ones included */ \
    X(max_rss_kb,      I64,    "max_rss_kb",      "max_rss_kb",      PLAIN,    1) \
    X(cpu_user_ms,     I64,    "cpu_user_ms",     "cpu_user_ms",     PLAIN,    1) \
    X(cpu_sys_ms,      I64,    "cpu_sys_ms",      "cpu_sys_ms",      PLAIN,    1) \
    X(instance,        TEXT,   "instance",        "instance",        PLAIN,    1) /* id of the instance that ran it */ \
    X(host,            TEXT,   "host",            "host",            PLAIN,    1) /* gethostname() of the machine it ran on */
/* clang-format on */

typedef enum { RUN_K_I64, RUN_K_INT, RUN_K_DBL, RUN_K_TEXT, RUN_K_STATUS } run_kind_t;
typedef enum {
    RUN_J_PLAIN,
    RUN_J_TIME,
    RUN_J_ZNULL,
    RUN_J_NNULL,
    RUN_J_JSONTEXT,
    RUN_J_OUTPUT
} run_json_kind_t;

#define RUN__CTYPE_I64                               int64_t
#define RUN__CTYPE_INT                               int
#define RUN__CTYPE_DBL                               double
#define RUN__CTYPE_TEXT                              char *
#define RUN__CTYPE_STATUS                            run_status_t
#define RUN__MEMBER(name, kind, col, json, jk, life) RUN__CTYPE_##kind name;

/** One run, immutable once published: it is shared by reference (run_ref/run_unref), not copied.
 * Whoever needs to change a published run changes a copy (run_dup), then publishes that. */
typedef struct run {
    int64_t id; /* the executor's counter; on a shared store the database's, 0 until claimed */
    RUN_FIELDS(RUN__MEMBER)
    int refs;       /* references; not a field of the record */
    bool published; /* shared once (run_ref): never to be changed again */
} run_t;

/** The column numbers of a row selected with STORE_RUN_COLUMNS: RUN_COL_id is 0, RUN_COL_<field>
 * the field's; the parameter number of a field in inserts and updates is its column number, and
 * the id's is RUN_NPARAMS + 1. */
#define RUN__COL(name, kind, col, json, jk, life) RUN_COL_##name,
enum { RUN_COL_id, RUN_FIELDS(RUN__COL) RUN_NCOLS };
#undef RUN__COL
#define RUN_NPARAMS (RUN_NCOLS - 1)

/** One entry of the table, for the code that walks it. */
typedef struct {
    const char *name; /* the C member's */
    run_kind_t kind;
    const char *column; /* SQL */
    const char *json;   /* the API's key */
    run_json_kind_t json_kind;
    bool life;
    size_t off; /* offsetof(run_t, name) */
} run_field_t;

/** The fields after id, in column order (run_fields[i] is column i + 1). */
extern const run_field_t run_fields[RUN_NPARAMS];

/* Typed access to a field of the table through its entry. */
#define RUN_FIELD_PTR(r, f, type)  ((type *)((char *)(r) + (f)->off))
#define RUN_FIELD_CPTR(r, f, type) ((const type *)((const char *)(r) + (f)->off))

/** Sets the RUN_K_STATUS field f of r from its stored name; an unknown or missing name is
 * logged and read as FAILED. */
void run_field_set_status(run_t *r, const run_field_t *f, const char *name);

/** Allocates a zeroed run (one reference) with exit_code -1 and progress -1. */
run_t *run_new(const char *job, const char *trigger);
/** Deep copy, with one reference: the copy-on-write of a published run. */
run_t *run_dup(const run_t *r);
/** Takes one more reference to r and returns it; r is published from then on (not to be
 * changed: a writer changes a copy, run_dup). */
run_t *run_ref(const run_t *r);
/** What a receiver that keeps a run it was handed holds: a reference when the run is published
 * (immutable), else a copy (its owner may still change it). */
run_t *run_share(const run_t *r);
/** Drops one reference; the last one frees the record. NULL is ignored. */
void run_unref(run_t *r);
/** The same as run_unref (kept for the owners that never share). */
void run_free(run_t *r);

#endif
