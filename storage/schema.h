/* The database schema, in one place for every backend: versioned forward-only migrations and the
 * statements on the runs table whose column order the backends share.
 *
 * The SQL is portable between SQLite and PostgreSQL (BIGINT, TEXT, DOUBLE PRECISION, partial
 * indexes, ON CONFLICT upserts, $N parameters numbered in order of first use). The one thing the
 * two spell differently, an auto-assigned primary key, is written @ID_PK@ and replaced by
 * store_schema_render(). */
#ifndef CV_STORAGE_SCHEMA_H
#define CV_STORAGE_SCHEMA_H

#include "proto/run.h"

#include <stddef.h>

/** How a backend spells what standard SQL leaves open. */
typedef struct store_dialect {
    const char *id_pk; /* column type of an auto-assigned BIGINT primary key */
} store_dialect_t;

extern const store_dialect_t store_dialect_sqlite;
extern const store_dialect_t store_dialect_postgres;

/** One migration: its version (1, 2, ... without gaps), a name for the schema_version table and
 * a NULL-terminated list of statements to run in one transaction; postgres (NULL or
 * NULL-terminated) runs after them on PostgreSQL only (what only a shared database needs:
 * notifications, claims of catch-up firings), sqlite likewise on SQLite only. */
typedef struct store_migration {
    int version;
    const char *name;
    const char *const *statements;
    const char *const *postgres;
    const char *const *sqlite;
} store_migration_t;

extern const store_migration_t store_migrations[];
extern const size_t store_migration_count;

/** Highest version this binary knows. */
int store_schema_latest(void);

/** Notifications (migration 7): put binds $1 instance, $2 id, $3 notifier, $4 event, $5 subject,
 * $6 run_id, $7 created_at, $8 finished_at, $9 attempts, $10 pending, $11 delivered,
 * $12 http_status, $13 last_error; prune $1 the highest id deleted; list $1 limit, newest
 * first (of every instance). */
extern const char store_sql_note_put[];
extern const char store_sql_note_prune[];
extern const char store_sql_note_list[];

/** Creates the version table when missing (run before reading the version). */
extern const char store_sql_version_table[];
/** Reads the current version (one row, NULL when no migration has run). */
extern const char store_sql_version_get[];
/** Records a migration: $1 version, $2 name, $3 applied_at (ms). */
extern const char store_sql_version_put[];

/** The runs columns, from the field table (proto/run.h): RUN_COL_* index them (0 = id). */
#define STORE__RUN_COL(name, kind, col, json, jk, life) ", " col
#define STORE_RUN_COLUMNS                               "id" RUN_FIELDS(STORE__RUN_COL)
#define STORE_RUN_NCOLS                                 RUN_NCOLS

/** The run statements built from the field table. Parameters are numbered as the columns:
 * field i is $i (RUN_COL_<field>), the id (or a client key) $RUN_NPARAMS+1, what follows after. */
typedef enum {
    STORE_RUN_SQL_INSERT,      /* every column, id included (NULL: the database assigns it) */
    STORE_RUN_SQL_UPDATE,      /* every column by id (PostgreSQL) */
    STORE_RUN_SQL_UPDATE_LIFE, /* the columns a run's life changes, by id, ?N (SQLite) */
    STORE_RUN_SQL_GET,         /* one run by id ($1) */
    STORE_RUN_SQL__COUNT
} store_run_sql_t;
const char *store_run_sql(store_run_sql_t which);

/** Renders a statement template on the runs' columns: @COLS@ the columns after id, @VALS@ their
 * parameters ($1..$N), @CVALS@ the same cast to their types, @AVALS@ cast to arrays of their
 * types (one array per column, a multi-row insert), @KVALS@ / @KSET@ as @VALS@ / the
 * "column = $k" list with retry_of taken from the run of client key @K2@ when there is one,
 * @SET@ every column, @LSET@ the life columns with ?N, @K1@ $N+1, @K2@ $N+2. Free the result. */
char *store_run_sql_render(const char *tmpl);

/** The PostgreSQL channels a shared database announces changes on (LISTEN/NOTIFY). Payloads:
 * runs "<id> <status> <instance>" on insert and on every status change (a trigger);
 * instances "<last_seen> <id>" on every heartbeat (a trigger); cancel a JSON object
 * {"run": id, "instance": owner, "by": who} asking the owner to cancel a run. */
#define STORE_CHANNEL_RUNS      "cronvisor_runs"
#define STORE_CHANNEL_INSTANCES "cronvisor_instances"
#define STORE_CHANNEL_CANCEL    "cronvisor_cancel"

/** Upserts an instance: $1 id, $2 hostname, $3 pid, $4 started_at, $5 last_seen, $6 version. */
extern const char store_sql_heartbeat[];
/** Abandons the RUNNING/QUEUED runs of dead instances: $1 now (ms), $2 the oldest live last_seen.
 */
/** The unfinished runs of instances not seen since the parameter seen (Unix ms). */
#define STORE_SQL_DEAD_RUNS(seen)                                                                  \
    " status IN ('RUNNING', 'QUEUED') AND (instance IS NULL OR instance NOT IN"                    \
    " (SELECT id FROM instances WHERE last_seen >= CAST(" seen " AS BIGINT)))"
extern const char store_sql_abandon_dead[];
/** Lists the instances: id, hostname, pid, started_at, last_seen, version. */
extern const char store_sql_list_instances[];

/** Returns sql with @ID_PK@ replaced by the dialect's spelling (heap; caller frees). */
char *store_schema_render(const char *sql, const store_dialect_t *d);

#endif
