/* Private to the PostgreSQL backend: the request record and backend state shared by the
 * connection and pipeline engine (store_pg.c) and the SQL of each operation (store_pg_sql.c). */
#ifndef CV_STORAGE_STORE_PG_INT_H
#define CV_STORAGE_STORE_PG_INT_H

#include "storage/store_pg.h"
#include "storage/spool.h"
#include "storage/store_req.h"
#include "core/util.h"

#include <libpq-fe.h>

/* Statements prepared once per connection, on first use. */
typedef enum {
    PGS_INSERT_ID,
    PGS_INSERT_AUTO,
    PGS_INSERT_CATCH_UP,
    PGS_INSERT_CHAIN, /* a chain's first attempt, claimed by its parent run and job */
    PGS_UPDATE_RUN,
    PGS_GET_RUN,
    PGS_AUDIT_APPEND,
    PGS_INSERT_KEY, /* a run with a provisional id, by its client key */
    PGS_UPDATE_KEY,
    PGS_INSERT_MANY, /* consecutive plain inserts of a batch, one array per column */
    PGS__COUNT
} store_pg_stmt_t;

/* The steps of retention: by age, then by count per job. */
enum { STORE_PG_RET_AGE, STORE_PG_RET_COUNT, STORE_PG_RET_DONE };

/* The steps of a migration: lock and read the version, apply one, unlock. */
enum { STORE_PG_MIG_LOCK, STORE_PG_MIG_APPLY, STORE_PG_MIG_UNLOCK };

/* What finishing a step of a request leads to. */
typedef enum { PG_DONE, PG_AGAIN_FIRST, PG_AGAIN_LAST } store_pg_next_t;

typedef struct store_pg_req {
    cv_list_t link;
    store_op_t op;
    int status;     /* set < 0 before queueing: fail without a round trip */
    int64_t result; /* id or count */
    void *ud;
    bool solo;           /* send alone in its own transaction (its batch failed) */
    bool rejected;       /* answered -EAGAIN ahead of the queue */
    bool nospool;        /* a claim: never spooled */
    bool from_spool;     /* read back from the outage spool (no caller) */
    uint64_t spool_next; /* from_spool: the offset after its record */
    char *key;           /* a run with a provisional id: its client key */
    char *retry_key;     /* ... and the key of the provisional run it retries */
    int step;            /* multi-step requests: migrate, retention */
    PGresult **res;      /* results of the current step, in order */
    size_t nres, res_cap;
    store_req_cb_t cb;
    store_req_args_t u;
    /* a multi-row insert (store_pg__send_many): its first request holds all of its rows */
    struct store_pg_req **fold;
    size_t nfold;
    bool folded; /* one of the other rows: answered by the first */
} store_pg_req_t;

typedef enum { PGC_IDLE, PGC_RESOLVING, PGC_CONNECTING, PGC_READY, PGC_BACKOFF } store_pg_conn_t;

/* One expected result of the batch in flight. */
typedef struct store_pg_item {
    store_pg_req_t *req; /* NULL for a prepare or the sync */
    enum { PGI_QUERY, PGI_PREPARE, PGI_SYNC } kind;
    int stmt;
} store_pg_item_t;

typedef struct store_pg {
    store_t base;
    char *instance;   /* default instance of inserted runs */
    char *where;      /* host:port/dbname, for messages (no credentials) */
    char **kw, **val; /* connection options, NULL-terminated; hostaddr filled per attempt */
    size_t host_slot, hostaddr_slot;   /* both filled per attempt when resolve_host is set */
    char *resolve_host, *resolve_port; /* set when host must be resolved before connecting */
    int connect_timeout_ms;

    PGconn *conn;
    uv_poll_t *poll; /* heap: replaced when PQsocket changes during connect */
    int poll_fd, poll_events;
    uv_timer_t timer; /* connect timeout, then reconnect backoff */
    uv_getaddrinfo_t *gai;
    uv_prepare_t prepare; /* started while requests wait to be sent or answered */
    store_pg_conn_t state;
    bool ever_connected;
    int backoff_ms;
    bool prepared[PGS__COUNT];
    int64_t counts_folded_ms; /* last fold of job_count_deltas (send_job_stats) */

    cv_list_t queue;    /* waiting to be sent, in order */
    cv_list_t batch;    /* sent in the batch in flight, in order */
    cv_list_t rejected; /* answered -EAGAIN on the next loop pass */
    size_t nqueued;
    size_t queue_max;       /* storage.pending_max: requests that may wait for a lost connection */
    uint64_t queue_refused; /* refused -EAGAIN because queue_max of them waited */
    store_pg_item_t *items;
    size_t nitems, items_cap, item_next;
    bool item_got; /* the current item's result arrived; its NULL terminator has not */
    bool in_flight;
    int batch_err; /* first SQL error of the batch in flight, 0 if none */
    bool batch_aborted;
    bool batch_writes;
    size_t batch_nreq;
    bool session_over;         /* the server sent FATAL: the connection is gone */
    store_notify_cb on_notify; /* override changes (LISTEN cronvisor_overrides) */
    void *notify_ud;
    store_event_cb on_event; /* runs, instances, cancel requests (store_watch_events) */
    void *event_ud;

    /* the outage spool (NULL when not configured or not created yet) */
    spool_t *spool;
    char *spool_path;
    uint64_t spool_max;
    int64_t boot_ms;       /* part of the client key of provisional runs */
    bool degraded;         /* unreachable: writes go to the spool */
    bool started_degraded; /* the database was unreachable at start */
    cv_list_t spooled;     /* appended, answered after the next sync */
    uint64_t replay_off;   /* the next spool record to read back */
    size_t replay_loaded;  /* records read back and not yet completed */
    uint64_t commit_off;   /* records up to here were written back... */
    size_t commit_n;       /* ...this many, not yet marked in the spool */
    uint64_t replay_count; /* written back in the current replay */
    uint64_t replay_start_ns;
    uint64_t dropped; /* refused: the spool was full */
    bool full_logged;
    store_state_cb on_state;
    void *state_ud;
    store_state_t last_state;

    uint64_t commits;
    size_t outstanding;
    bool closing;
    store_pg_req_t *close_req;
    int handles_open;
} store_pg_t;

/** The channel override changes are announced on; the payload is the job name. */
#define STORE_PG_OV_CHANNEL "cronvisor_overrides"

/** Queues the queries of the request's current step on the connection (pipeline mode), adding
 * one item per expected result. Returns 0, or -EIO when libpq refused to queue (connection). */
int store_pg__send(store_pg_t *s, store_pg_req_t *r);
/** Rows of one multi-row insert statement, at most. */
#define STORE_PG_FOLD_MAX 1000
/** True for an insert that may share a multi-row statement with its neighbours in a batch (not
 * a keyed run, a catch-up or a chain claim: those keep their own statements). */
bool store_pg__foldable(const store_pg_req_t *r);
/** True when r cannot join the n inserts of group in one statement: the same explicit id or the
 * same cron firing (it must be answered after them, as "already claimed"). */
bool store_pg__fold_clash(store_pg_req_t *const *group, size_t n, const store_pg_req_t *r);
/** Queues one multi-row insert of the n foldable requests of group (n >= 2); the first request
 * answers the others when the batch is finished. Returns 0 or -EIO as store_pg__send. */
int store_pg__send_many(store_pg_t *s, store_pg_req_t **group, size_t n);
/** Finishes the current step once its batch committed (err 0) or failed alone (err < 0): reads
 * the results into the request, sets its status, and says whether another step follows. */
store_pg_next_t store_pg__finish(store_pg_t *s, store_pg_req_t *r, int err);
/** Adds an expected result. */
void store_pg__expect(store_pg_t *s, store_pg_req_t *req, int kind, int stmt);
/** Maps a failed result to a negative errno, logging it (when log) unless it is expected. */
int store_pg__error(store_pg_t *s, const PGresult *res, const char *what, bool log);
/** The spool record of a write (heap, *len bytes), or NULL when the request cannot be spooled. */
char *store_pg__spool_encode(const store_pg_req_t *r, size_t *len);
/** A request (no caller) from a spool record, or NULL when the record cannot be read. */
store_pg_req_t *store_pg__spool_decode(const char *data, size_t len);
/** True for the writes that go to the spool while the database is unreachable. */
bool store_pg__spoolable(const store_pg_req_t *r);
/** Frees the step's results. */
void store_pg__clear_results(store_pg_req_t *r);

#endif
