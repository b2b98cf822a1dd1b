/* Configuration: loading, validation and the resulting plain structs.
 *
 * A configuration is a YAML file (schema below, see examples/cronvisor.yaml) or a
 * supercronic-compatible crontab. Loading never stops at the first problem: every error is
 * collected with its position ("file:line:column: job 'x': what is wrong").
 *
 * Conventions for the loaded values (after cfg_load() returns 0, every default is applied and
 * every job has its effective values; nothing is "inherited" any more):
 *   - durations are int64 milliseconds; 0 means "none" / "off" (timeout, catch_up);
 *   - sizes are int64 bytes;
 *   - counts of 0 mean "unlimited" where the field says so (max_concurrent, max_runs_per_job);
 *   - strings are NUL-terminated heap strings owned by the cfg_t; an absent optional string is
 *     NULL; arrays come with a count.
 * Secret values (tokens, conninfo, webhook URLs, secret headers and env) are registered with
 * cv_secret_register() while loading so the logger never prints them. */
#ifndef CV_CORE_CONFIG_H
#define CV_CORE_CONFIG_H

#include "core/strmap.h"
#include "core/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    CFG_CONC_INHERIT = 0, /* only while loading: take the value from defaults */
    CFG_CONC_FORBID,      /* skip a firing while a run of the job is active (default) */
    CFG_CONC_ALLOW,       /* start another run */
    CFG_CONC_REPLACE,     /* cancel the active run, then start */
} cfg_concurrency_t;

/* What a firing does when the shared store (PostgreSQL) cannot be reached to claim it. */
typedef enum {
    CFG_OUTAGE_INHERIT = 0, /* only while loading: take the value from defaults */
    CFG_OUTAGE_SKIP,        /* record it SKIPPED (spooled); never a duplicate (default) */
    CFG_OUTAGE_RUN,         /* run it unclaimed; another instance may run it too */
} cfg_outage_t;

typedef enum { CFG_ROLE_VIEWER = 1, CFG_ROLE_OPERATOR, CFG_ROLE_ADMIN } cfg_role_t;

typedef enum {
    CFG_PROBE_HTTP = 1,
    CFG_PROBE_POSTGRES,
    CFG_PROBE_REDIS,
    CFG_PROBE_TCP,
    CFG_PROBE_EXEC,
} cfg_probe_type_t;

typedef enum { CFG_NOTIFY_JSON = 0, CFG_NOTIFY_SLACK = 1 } cfg_notify_format_t;

/* Bits of cfg_notify_t.events. */
enum {
    CFG_EV_RUN_FAILED = 1 << 0,
    CFG_EV_RUN_RECOVERED = 1 << 1,
    CFG_EV_RUN_TIMED_OUT = 1 << 2,
    CFG_EV_RUN_SLOW = 1 << 3,
    CFG_EV_JOB_AUTO_DISABLED = 1 << 4,
    CFG_EV_PROBE_UNHEALTHY = 1 << 5,
    CFG_EV_PROBE_RECOVERED = 1 << 6,
};
/* Events a notifier gets when its `events` list is absent: all but run.slow. */
#define CFG_EV_DEFAULT 0x77u

/** A position in the source: 1-based line and column; file points at cfg_t.source. */
typedef struct cfg_pos {
    const char *file;
    int line;
    int column;
} cfg_pos_t;

typedef struct cfg_kv {
    char *key;
    char *value;
} cfg_kv_t;

typedef struct cfg_retries {
    int max;                /* extra attempts after a failure (default 0) */
    int64_t backoff_ms;     /* first delay (default 1s), doubled per attempt */
    int64_t backoff_max_ms; /* cap of the delay (default 30s) */
} cfg_retries_t;

typedef struct cfg_http {
    char *method; /* upper case, default "GET" */
    char *url;
    cfg_kv_t *headers;
    unsigned n_headers;
    char *body; /* NULL: no body */
    int *expect_status;
    unsigned n_expect_status; /* 0: any 2xx */
    int64_t timeout_ms;       /* the job's timeout_ms when not set */
} cfg_http_t;

/* CFG_ACTION_PING: a monitored job, run elsewhere; it reports by POST /ping/{job} (no command). */
typedef enum {
    CFG_ACTION_SHELL = 1,
    CFG_ACTION_ARGV,
    CFG_ACTION_HTTP,
    CFG_ACTION_PING
} cfg_action_t;

/** `ping:` of a monitored job (action CFG_ACTION_PING). */
typedef struct cfg_ping {
    int64_t grace_ms; /* a scheduled instant without a ping within this is missed; default 5m */
    char *key;        /* the job's ping key (secret): what POST /ping/{job} must present */
} cfg_ping_t;

typedef struct cfg_tls {
    char *cert;
    char *key;
} cfg_tls_t;

typedef struct cfg_job {
    char *name; /* [a-z0-9_-]+, unique */
    char *title;
    char *description;
    char *schedule;       /* as written (after ${} expansion); "manual" for manual-only */
    bool manual;          /* schedule is "manual": fires only when triggered */
    char *schedule_human; /* NULL unless given */
    char *timezone;       /* effective (defaults.timezone when not given) */
    bool enabled;         /* default true */
    bool locked;          /* default false: true forbids runtime overrides from the API */
    cfg_action_t action;
    char *shell; /* CFG_ACTION_SHELL: run with /bin/sh -c */
    char **argv; /* CFG_ACTION_ARGV: NULL-terminated */
    unsigned argc;
    cfg_http_t http; /* CFG_ACTION_HTTP */
    cfg_ping_t ping; /* CFG_ACTION_PING */
    char *workdir;   /* NULL: the daemon's working directory */
    cfg_kv_t *env;
    unsigned n_env;
    int64_t timeout_ms; /* 0: none */
    int64_t kill_grace_ms;
    cfg_retries_t retries;
    cfg_concurrency_t concurrency;
    cfg_outage_t on_store_outage;
    int64_t max_output;     /* bytes of output kept */
    int64_t catch_up_ms;    /* 0: off; else catch up once on start if the miss is this young */
    int auto_disable_after; /* 0: never; else disable after this many consecutive failures */
    char **requires;        /* probe names that must be healthy */
    unsigned n_requires;
    char **tags;
    unsigned n_tags;
    /* chains: the jobs triggered ("chain:<run id>") once a run's final outcome is known (after
     * its last retry): on_success after SUCCESS, on_failure after FAILED or TIMED_OUT,
     * on_complete after any final status of a run that started (PARTIAL and CANCELLED too) */
    char **on_success;
    unsigned n_on_success;
    char **on_failure;
    unsigned n_on_failure;
    char **on_complete;
    unsigned n_on_complete;
    cfg_pos_t pos;          /* the job's entry */
    cfg_pos_t schedule_pos; /* first character of the schedule value */
} cfg_job_t;

typedef struct cfg_probe {
    char *name;
    cfg_probe_type_t type;
    int64_t interval_ms;       /* default 60s */
    int64_t timeout_ms;        /* default 5s */
    int64_t degraded_after_ms; /* slower than this is "degraded"; default 1s */
    int fail_after;            /* consecutive failures before unhealthy; default 1 */
    char *url;                 /* http, redis */
    char *method;              /* http, default GET */
    cfg_kv_t *headers;
    unsigned n_headers;
    int *expect_status;
    unsigned n_expect_status; /* 0: any 2xx */
    char *body_contains;
    bool tls_verify; /* default true */
    char *conninfo;  /* postgres */
    char *address;   /* tcp: host:port */
    char *shell;     /* exec, string form */
    char **argv;     /* exec, list form, NULL-terminated */
    unsigned argc;
    cfg_pos_t pos;
} cfg_probe_t;

typedef struct cfg_notify {
    char *name;
    char *url; /* secret */
    cfg_notify_format_t format;
    unsigned events; /* CFG_EV_* bits */
    char **jobs;     /* only these jobs; none: all */
    unsigned n_jobs;
    double slow_factor; /* run.slow when duration > factor x median; default 2.0 */
    cfg_pos_t pos;
} cfg_notify_t;

typedef struct cfg_token {
    char *name;
    cfg_role_t role;
    char *token;  /* plain token (secret), or NULL */
    char *sha256; /* 64 lower-case hex digits, or NULL */
    cfg_pos_t pos;
} cfg_token_t;

typedef struct cfg_link {
    char *title;
    char *url;
} cfg_link_t;

typedef struct cfg_defaults {
    char *timezone; /* default "UTC" */
    int64_t timeout_ms;
    int64_t kill_grace_ms; /* default 10s */
    cfg_concurrency_t concurrency;
    cfg_outage_t on_store_outage; /* default skip */
    cfg_retries_t retries;
    int64_t shutdown_grace_ms; /* default 30s */
    int64_t max_output;        /* default 1 MiB */
} cfg_defaults_t;

typedef struct cfg_sqlite {
    char *path;
} cfg_sqlite_t;

typedef struct cfg_storage {
    cfg_sqlite_t sqlite; /* path default "./data/cronvisor.db" when postgres is not set */
    char *postgres;      /* conninfo or URL (secret); NULL: use sqlite */
    char *spool_dir;     /* postgres: where the outage spool lives; default "./data" */
    int64_t spool_max;   /* postgres: bytes the outage spool may hold; default 64 MiB */
    /* sqlite: writes held in memory while the database refuses them (disk full, I/O error,
     * file deleted); postgres: requests waiting in memory for a lost connection; default 10000 */
    int pending_max;
} cfg_storage_t;

typedef struct cfg_server {
    char *listen;  /* default "127.0.0.1:8080" */
    cfg_tls_t tls; /* both NULL: plain HTTP */
    /* WebSocket (/api/events) bounds; see http/ws.h */
    int64_t max_body;             /* bytes of a request body; larger gets 413; default 64 KiB */
    int64_t request_timeout_ms;   /* HTTP/1 request read and keep-alive timeout; default 10 s */
    int64_t ws_max_queued_bytes;  /* bytes waiting for one client; default 1 MiB */
    int64_t ws_max_message_bytes; /* largest message from a client; default 4 KiB */
    int ws_max_clients;           /* connected clients; default 1000 */
    int ws_max_topics;            /* subscriptions per client; default 16 */
    int ws_max_tickets;           /* live WebSocket tickets, all callers; beyond: 429; 1024 */
    /* live tickets of one token or person; beyond: its oldest goes; 16 */
    int ws_max_tickets_per_caller;
    int max_connections; /* open connections at most; over it accepted and closed; 0: 1024 */
    int max_streams;     /* HTTP/2 concurrent requests per connection; 0: 16 */
    int max_resets;    /* HTTP/2 requests reset before their reply per connection in 10 s; 0: 100 */
    int max_pending;   /* requests waiting for the store, all clients; 0: 256 */
    int write_timeout; /* seconds a connection's writes may make no progress; 0: 30 */
    /* reloads (API, SIGHUP) applied and waiting for the store's overrides; 0: 8 */
    int max_pending_reloads;
    int jobs_cache_pages;     /* encoded pages of GET /api/jobs kept; 0: 16 */
    int64_t jobs_cache_bytes; /* their bytes (uncompressed) kept at most; default 1 MiB */
} cfg_server_t;

typedef struct cfg_limits {
    int max_concurrent;         /* 0: unlimited */
    int max_queued;             /* runs waiting for a slot; beyond, firings are skipped; 10000 */
    int notification_history;   /* notifications kept (memory and store); default 200 */
    int64_t output_read_budget; /* bytes read from one output pipe per loop pass; default 64 KiB */
    int live_output_lines;      /* lines of one read passed to live viewers; default 256 */
    int64_t live_log;           /* bytes of a running run's output kept for its /log; 1 MiB */
    int64_t ping_max_body;      /* bytes of a ping's body (kept as output); larger: 413; 16 KiB */
    int pings_per_minute;       /* pings accepted per job and minute (burst as many); default 60 */
    int ping_queue;     /* pings accepted, not yet recorded (all jobs); beyond: 429; default 1000 */
    int ping_checks;    /* a monitored job's instants waiting for their grace; beyond: unchecked;
                         * default 1000 */
    int notify_pending; /* webhook deliveries in flight or waiting for a retry (all notifiers);
                         * beyond: recorded failed, not attempted; default 1000 */
} cfg_limits_t;

typedef struct cfg_retention {
    int days;             /* default 90; 0: keep forever */
    int max_runs_per_job; /* 0: unlimited */
} cfg_retention_t;

typedef struct cfg_cluster {
    int64_t heartbeat_timeout_ms; /* default 30s: an instance silent this long is dead */
} cfg_cluster_t;

/** `auth.proxy`: people authenticated by a reverse proxy (oauth2-proxy, Pomerium, ...). Absent
 * when user_header is NULL. */
typedef struct cfg_proxy {
    char *user_header; /* e.g. "X-Forwarded-Email": who the person is */
    char **from;       /* the proxy's addresses: CIDRs or single addresses (checked on load) */
    unsigned n_from;
    char *role_header;       /* NULL: every person gets default_role */
    cfg_role_t default_role; /* default viewer */
    cfg_pos_t pos;
} cfg_proxy_t;

typedef struct cfg_auth {
    cfg_token_t *tokens;
    unsigned n_tokens;
    cfg_proxy_t proxy;
    int rate_per_second; /* rate-limited requests (triggers, edits) per token; default 5 */
    int rate_burst;      /* of which at once; default 20 */
} cfg_auth_t;

typedef struct cfg {
    char *source; /* the file name given to cfg_load (or the display name) */
    bool from_crontab;
    cfg_server_t server;
    cfg_storage_t storage;
    cfg_defaults_t defaults;
    cfg_limits_t limits;
    cfg_retention_t retention;
    cfg_cluster_t cluster;
    cfg_auth_t auth;
    cfg_link_t *links;
    unsigned n_links;
    char *instance; /* NULL unless given */
    cfg_job_t *jobs;
    unsigned n_jobs;
    cv_strmap_t job_index; /* name -> job, filled while the names are checked */
    /* the strings and arrays of every job, end to end, once loaded (core/config_compact.c); NULL:
     * each is allocated on its own (a configuration built by hand) */
    char *job_text;
    size_t job_text_len;
    cfg_probe_t *probes;
    unsigned n_probes;
    cfg_notify_t *notify;
    unsigned n_notify;
} cfg_t;

/** One problem found while loading. */
typedef struct cfg_error {
    char *file;
    int line;   /* 1-based; 0 when the problem has no position (unreadable file) */
    int column; /* 1-based */
    char *job;  /* the job the problem is in, or NULL */
    char *message;
} cfg_error_t;

/** The errors of a load. Zero-initialise before use; free with cfg_errors_free(). */
typedef struct cfg_errors {
    cfg_error_t *items;
    size_t count;
    size_t cap;
} cfg_errors_t;

typedef enum { CFG_FORMAT_AUTO = 0, CFG_FORMAT_YAML, CFG_FORMAT_CRONTAB } cfg_format_t;

typedef struct cfg_load_opts {
    /** File format; AUTO: YAML for names ending in .yaml or .yml, otherwise decided by the content.
     */
    cfg_format_t format;
    /** Environment lookup for ${VAR} (NULL: getenv). Returns NULL when unset. */
    const char *(*getenv)(void *ud, const char *name);
    /** Validates a schedule (NULL: not checked). Returns 0 if valid; otherwise writes a
     * message and the 1-based column in the schedule string where the problem is. */
    int (*check_schedule)(void *ud, const char *schedule, const char *zone_name,
                          const char *job_name, char *msg, size_t msglen, int *column);
    /** Validates a time zone name (NULL: not checked). Returns 0 if known. */
    int (*check_timezone)(void *ud, const char *tz, char *msg, size_t msglen);
    void *ud; /* passed to the three callbacks */
} cfg_load_opts_t;

/** Loads and validates the configuration file at path. opts may be NULL.
 * On success returns 0 and *out (free with cfg_free). On failure returns -EINVAL (invalid
 * configuration) or a negative errno (file unreadable), sets *out to NULL and appends every
 * problem to errs (may be NULL). */
int cfg_load(const char *path, const cfg_load_opts_t *opts, cfg_t **out, cfg_errors_t *errs);

/** Same as cfg_load() for a buffer of len bytes (any bytes: never crashes); name is used in
 * positions and for format detection. */
int cfg_load_string(const char *data, size_t len, const char *name, const cfg_load_opts_t *opts,
                    cfg_t **out, cfg_errors_t *errs);

/** Frees a configuration and everything in it. NULL is allowed. */
void cfg_free(cfg_t *cfg);

/** The job named name, or NULL. */
const cfg_job_t *cfg_find_job(const cfg_t *cfg, const char *name);

/** Formats one error as "file:line:column: job 'x': message" (registered secrets redacted).
 * Returns a heap string (caller frees). */
char *cfg_error_format(const cfg_error_t *e);

/** Appends every error, one per line, to out. */
void cfg_errors_format(const cfg_errors_t *errs, cv_buf_t *out);

/** Frees the errors and zeroes the list. */
void cfg_errors_free(cfg_errors_t *errs);

/** Parses a duration: "250ms", "90s", "5m", "1h30m", "2d", "0", "none"/"off" (0).
 * Returns 0 and *ms, or -EINVAL. */
int cfg_parse_duration(const char *s, int64_t *ms);

/** Parses a size: "1048576", "64KiB", "10MB", "1GiB", "512B". Returns 0 and *bytes, or -EINVAL. */
int cfg_parse_size(const char *s, int64_t *bytes);

#endif
