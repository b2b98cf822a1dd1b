/* Private to the SQLite backend: the request record shared by its queue (store_sqlite.c) and its
 * SQL (store_sqlite_exec.c). */
#ifndef CV_STORAGE_STORE_SQLITE_INT_H
#define CV_STORAGE_STORE_SQLITE_INT_H

#include "storage/spool.h"
#include "storage/store.h"
#include "storage/store_req.h"
#include "core/strmap.h"
#include "core/util.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/types.h>

/* Statements prepared once and kept for the life of the handle. */
typedef enum {
    SQS_INSERT_RUN,
    SQS_UPDATE_RUN,
    SQS_GET_RUN,
    SQS_AUDIT_APPEND,
    SQS_STATS_COUNTS, /* the statistics of one job, re-read after each of its runs */
    SQS_STATS_FAILURES,
    SQS_STATS_DURATIONS,
    SQS_STATS_LAST,
    SQS_RUN_STATUS, /* a run's status before an update, for job_counts */
    SQS_COUNT_ADD,  /* job_counts += */
    SQS__COUNT
} store_sqlite_stmt_t;

typedef struct store_sqlite_req {
    cv_list_t link;
    store_op_t op;
    int status;   /* set < 0 before queueing: fail without running */
    bool held;    /* kept after a storage failure: already answered, written on recovery */
    bool spooled; /* held, and its record is in the spool */
    /* an update of a run that a later update of the same batch replaced: not run, it takes the
     * later one's status (worker only) */
    struct store_sqlite_req *replaced_by;
    int64_t result; /* id or count */
    void *ud;
    store_req_cb_t cb;
    store_req_args_t u;
} store_sqlite_req_t;

/* Writes wait this long after the previous batch began (group commit), ns. */
#define STORE_SQLITE_GROUP_NS (5 * 1000 * 1000)

typedef struct store_sqlite {
    store_t base;
    char *path;     /* for messages */
    char *instance; /* default instance of inserted runs */
    sqlite3 *db;    /* owned by the worker once it started */
    sqlite3_stmt *stmts[SQS__COUNT];
    cv_strmap_t stmt_cache;      /* SQL text -> statement prepared once (worker thread only) */
    sqlite3_stmt *stmt_kept[64]; /* the same statements, to tell them apart without hashing */
    size_t nstmt_cache;
    atomic_uint_least64_t commits;
    /* worker only: the file opened, to notice it being deleted or replaced */
    dev_t file_dev;
    ino_t file_ino;
    bool file_known;
    store_sync_t sync;
    int busy_timeout_ms;

    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cond;
    cv_list_t queue;      /* loop -> worker, under mu */
    size_t queued_others; /* how many requests in queue are not writes, under mu */
    bool worker_idle;     /* the worker waits for a first request, under mu */
    cv_list_t done;       /* worker -> loop, under mu */
    uv_async_t async;

    /* loop thread only */
    cv_list_t pending;     /* made during this loop pass, handed to the worker before polling */
    size_t pending_others; /* how many of them are not writes */
    uv_prepare_t prepare;  /* started while pending is not empty */
    int handles_open;      /* async and prepare, until both are closed */
    size_t outstanding;
    bool closing;
    store_status_cb close_cb;
    void *close_ud;

    /* Writes that failed for a storage reason (disk full, I/O error, read-only, locked, file
     * deleted or replaced), loop thread only: answered, kept in order, written on recovery. */
    cv_list_t held;
    size_t nheld, held_max;
    cv_list_t held_new;     /* made while degraded, answered and held in on_prepare */
    size_t replay_inflight; /* held requests handed to the worker */
    bool replay_failed;
    bool degraded;    /* the last write failed; writes are held */
    int last_err;     /* its error */
    uint64_t dropped; /* writes refused: the held queue was full */
    uint64_t lost;    /* held writes that failed once more at close */
    uint64_t kept;    /* ... of which the spool keeps a copy */
    bool full_logged;
    uint64_t held_total;   /* held since the store went degraded, for the recovery line */
    spool_t *spool;        /* a durable copy of the held writes; NULL: memory only */
    bool spool_dirty;      /* appended, not yet synced */
    bool spool_failed;     /* an append failed (logged once per outage) */
    bool awaiting_migrate; /* held writes read from the spool wait for the migration */
    uv_timer_t retry;
    int backoff_ms;
    store_state_cb on_state;
    void *state_ud;
    store_state_t last_state;
} store_sqlite_t;

/* Held writes, by default (storage.pending_max). */
#define STORE_SQLITE_HELD_DEFAULT 10000

/** Runs one request on the worker, inside the batch transaction for writes. Sets req->status
 * and the results. Returns true when the request has more work (retention) and must be queued
 * again for a later batch. */
bool store_sqlite__exec(store_sqlite_t *s, store_sqlite_req_t *req);
/** Applies the missing migrations, each in its own transaction (outside any batch). */
void store_sqlite__migrate(store_sqlite_t *s, store_sqlite_req_t *req);
/** Executes a statement without results (BEGIN, COMMIT, pragmas). Returns 0 or a mapped errno,
 * logging what failed. */
int store_sqlite__exec_sql(store_sqlite_t *s, const char *sql, const char *what);
/** Finalizes the cached statements (worker, before sqlite3_close). */
void store_sqlite__finalize(store_sqlite_t *s);

#endif
