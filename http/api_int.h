/* Shared between the files of the http actor (http/api_*.c) only. */
#ifndef CV_HTTP_API_INT_H
#define CV_HTTP_API_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/cron.h"
#include "core/effjob.h"
#include "core/idmap.h"
#include "actors/store_actor.h"
#include "core/strmap.h"
#include "http/api.h"
#include "http/server.h"
#include "http/ws.h"
#include "proto/msg.h"

#define API_STATS_WINDOW     20 /* runs the average and p95 duration are taken over */
#define API_HIST_BUCKETS     12
#define API_JOBS_PAGE        100           /* GET /api/jobs: jobs per page without limit= */
#define API_JOBS_PAGE_MAX    1000          /* the largest limit= */
#define API_JOBS_CACHE       16            /* server.jobs_cache_pages when 0 */
#define API_JOBS_CACHE_BYTES (1024 * 1024) /* server.jobs_cache_bytes when 0 */
#define API_JOBS_TRIM_BYTES  (256 * 1024)  /* a page this large: the heap is trimmed after it */

extern const double api__hist_bounds[API_HIST_BUCKETS]; /* seconds */

/** What the job list shows of a job's latest run (its last_run, status filter and /metrics): a
 * copy of those fields rather than a reference to the whole record and its output. */
typedef struct api__last {
    int64_t id, started_at, finished_at, duration_ms, items_processed, items_failed;
    run_status_t status;
    char *error; /* NULL: none */
} api__last_t;

/** A job's counters since the daemon started, for /metrics. */
typedef struct api__job_ctr {
    uint64_t by_status[RUN__COUNT];
    uint64_t hist[API_HIST_BUCKETS];
    double dur_sum;
    uint64_t dur_count;
    int64_t last_start_ms, last_success_ms;
    uint64_t items_processed, items_failed;
    /* monitored jobs (api_ping.c): runs recorded from pings and missed instants */
    uint64_t pings, ping_missed;
} api__job_ctr_t;

/** The read model of one job. Entries outlive reloads (cfg is NULL while the job is not in the
 * configuration). */
typedef struct api__job {
    char *name;
    const cfg_job_t *cfg; /* in api->cfg, or NULL */
    /* cfg with api->overrides applied, and its next fire (core/effjob.h); zeroed while cfg is
     * NULL */
    effjob_t eff;
    /* from the store */
    store_job_stats_t stats; /* job and last unused: see last below */
    api__last_t *last;       /* the latest run seen (store or events), NULL: none */
    /* live: every instance's runs (shared store), and this instance's own (for /metrics) */
    int running, queued;
    int own_running, own_queued;
    /* counters since the daemon started, for /metrics: NULL until one of this instance's runs of
     * the job starts or ends (most jobs of a large configuration are idle) */
    api__job_ctr_t *ctr;
    bool auto_disabled; /* its latest "enabled" override is auto_disable_after's (by "system") */
    /* monitored jobs (api_ping.c): the job's ping rate bucket (limits.pings_per_minute) */
    double ping_tokens;
    uint64_t ping_refill_ms;
    bool ping_bucket_started;
    bool stats_dirty; /* waiting in api->stats_dirty for a statistics refresh */
    bool stats_asked; /* statistics asked for at least once */
} api__job_t;

/** One cached page of GET /api/jobs. */
typedef struct api__jobs_page {
    char *key;               /* the page's query, normalised; NULL: a free entry */
    api_shared_body_t *body; /* one reference */
    size_t bytes;            /* the body's length */
    int64_t until;           /* Unix s at which a next fire in it passes */
} api__jobs_page_t;

/** A run that is queued or running: its snapshot and its output so far. */
typedef struct api__active {
    cv_list_t link;
    run_t *run;
    cv_buf_t log;
    bool log_truncated;
    uint64_t lines; /* output lines so far: the line_no of the last output event */
} api__active_t;

typedef struct api__probe {
    char *name, *status, *error;
    int64_t latency_ms, checked_at;
} api__probe_t;

struct api {
    cv_actor_t *actor;
    cv_actor_t *store, *executor, *scheduler;
    cfgref_t *cfg;
    auth_t *auth;
    api_server_t *srv;
    ws_hub_t *hub;
    char *listen; /* the running listen address (a reload does not move it) */
    char *instance;
    int64_t started_ms;
    uint64_t store_calls_cancelled; /* store reads skipped: their client was gone */
    uint64_t reloads_refused;       /* POST /api/reload answered 429: server.max_pending_reloads */
    /* jobs in configuration order, and by name */
    api__job_t **jobs;
    size_t njobs;
    cv_strmap_t by_name; /* name -> api__job_t (every job ever seen) */
    api__job_t **all;    /* the same, for freeing */
    size_t nall;
    /* every runtime override known, of any job (even one not in the configuration) */
    effjob_overrides_t overrides;
    cv_list_t active;        /* api__active_t, oldest first */
    int64_t running, queued; /* of them, running and queued: over every job (GET /api/summary) */
    cv_idmap_t active_by_id; /* run id -> api__active_t */
    cv_list_t triggers;      /* api__trigger_t waiting for MSG_FIRE_REPLY */
    cv_list_t queries;       /* requests waiting for the prober or the notifier (api_health.c) */
    cv_actor_t *prober, *notifier;
    cv_actor_t *supervisor; /* POST /api/reload */
    uint64_t next_corr;
    api__probe_t *probes;
    size_t nprobes;
    /* pages of GET /api/jobs already encoded, by query (emptied when the model changes); a
     * response being written holds its own reference to its body */
    api__jobs_page_t *jobs_cache;       /* jobs_cache_max of them (server.jobs_cache_pages) */
    size_t njobs_cache, jobs_cache_max; /* entries used, and kept at most */
    size_t jobs_cache_next;             /* the one dropped next to make room */
    /* the bytes of their bodies, and the most kept (server.jobs_cache_bytes; a larger page is
     * answered and not kept) */
    size_t jobs_cache_bytes, jobs_cache_bytes_max;
    uint64_t jobs_cache_hits, jobs_cache_misses;
    api__job_t **jobs_sorted; /* the configured jobs by name (keyset order), NULL until asked */
    size_t pending;           /* store calls in flight that hold the api */
    cv_list_t store_calls;    /* api__store_call's waiting for their reply (api.c) */
    cv_live_t *live;          /* ended by api_close: the store actor drops late replies */
    /* jobs whose statistics are to be re-read after a run ended: one store call at a time, the
     * jobs that end meanwhile go together in the next one */
    char **stats_dirty;
    size_t nstats_dirty, stats_dirty_cap;
    bool stats_busy;
    /* While no WebSocket client listens, the dirty jobs wait for a reader: GET /api/jobs,
     * /api/jobs/{name} and /metrics first send them and answer once that call is back (stats_gen
     * counts the refresh calls sent, stats_gen_done those back). */
    uint64_t stats_gen, stats_gen_done;
    cv_list_t stats_waiters; /* api__stats_waiter_t */
    bool stats_waking;       /* calling the waiters: they are answered as they are */
    /* the store's state (MSG_STORE_STATE): health is a store_health_t, 0 = up */
    int store_health;
    uint64_t store_spooled, store_spool_bytes, store_dropped;
    uint64_t store_queued, store_queue_refused; /* PostgreSQL: waiting for a lost connection */
    uint64_t output_live_dropped; /* output lines not shown live (limits.live_output_lines) */
    /* the active runs' output kept for /log (each at most limits.live_log), and the runs whose
     * kept output reached it */
    uint64_t live_log_bytes, live_log_truncated;
    bool stopping; /* MSG_SHUTDOWN from the supervisor: /readyz answers 503 */
    /* pings refused (api_ping.c): unknown job or wrong key, body over limits.ping_max_body,
     * over limits.pings_per_minute, limits.ping_queue waiting */
    uint64_t ping_refused_key, ping_refused_size, ping_refused_rate, ping_refused_queue;
    size_t pings_waiting; /* posted to the executor, its MSG_PING_DONE not yet back */
    bool closed;
    void (*close_cb)(void *ud);
    void *close_ud;
};

/** Frees the actor's memory (after the server closed and no store call holds it). */
void api__free(api_t *a);

/* ---- api_model.c: the read model ---- */

/** j's counters (all zero while it has none). */
const api__job_ctr_t *api__job_ctr(const api__job_t *j);
/** The job named name that is in the configuration, or NULL. */
api__job_t *api__job_find(api_t *a, const char *name);
/** Rebuilds the job list from a (new) configuration. */
void api__model_config(api_t *a, cfgref_t *cfg);
/** After a reload applied by api__model_config: publishes job.added for each job not in old
 * (the previous a->jobs), job.removed for each job of old no longer configured, then
 * config.reloaded with summary (NULL: "no changes"). */
void api__model_reloaded(api_t *a, api__job_t *const *old, size_t nold, const char *summary);
/** Sets (value JSON text) or clears (NULL) an override in the model; true when that changed
 * the model's value. by: who set it ("system": auto_disable_after), or NULL. */
bool api__model_override(api_t *a, const char *job, const char *field, const char *value,
                         const char *by);
/** Shared store, after the database connection came back: finishes the other instances' runs
 * still active in the model whose end was missed, and re-reads the statistics. */
void api__model_resync(api_t *a);
/** Publishes instance.heartbeat (shared store). */
void api__model_instance_beat(api_t *a, const msg_instance_beat_t *b);
/** Applies a run event / output line to the model (and publishes it on the hub). */
void api__model_event(api_t *a, msg_run_event_t *e);
void api__model_output(api_t *a, const msg_run_output_t *o);
void api__model_health(api_t *a, const msg_health_t *h);
/* ---- api_health.c ---- */

int api__health_routes(api_t *a);
void api__health_replied(api_t *a, const msg_health_list_t *l);
void api__notifications_replied(api_t *a, const msg_notify_list_t *l);
/** Answers every request still waiting for the prober or the notifier 503 (closing). */
void api__queries_abort(api_t *a);
void api__reload_replied(api_t *a, const msg_reload_reply_t *r);

/** One probe result as the JSON of GET /api/health and health.changed events. */
json_t *api__health_json(const health_result_t *h);
/** A request waiting for fresh job statistics (api__stats_fresh). */
typedef struct api__stats_waiter {
    cv_list_t link;
    api_req_t *req;
    api_handler_fn handler; /* called again with the request once the statistics are read */
    uint64_t gen;           /* answered when stats_gen_done reaches it */
} api__stats_waiter_t;

/** true when every job's statistics are as fresh as the runs that ended; otherwise defers req,
 * sends the refresh, and calls handler(req, a) again once it is back, and returns false. */
bool api__stats_fresh(api_t *a, api_req_t *req, api_handler_fn handler);
/** Answers the requests waiting for statistics with 503 (shutdown). */
void api__stats_waiters_abort(api_t *a);
/** Reads the statistics of the configured jobs whose statistics were never asked for (the first
 * configuration, jobs a reload added). */
void api__model_refresh_new_stats(api_t *a);
/** True when r is another instance's run (shared store), known from the database's events. */
bool api__run_remote(const api_t *a, const run_t *r);
/** Applies a MSG_STORE_STATE and publishes store.changed when it changed. */
void api__store_state(api_t *a, const msg_store_state_t *m);
/** The active run with this id, or NULL. */
api__active_t *api__active_find(api_t *a, int64_t id);
/** The configured jobs sorted by name (bytewise), a->njobs of them; built once per
 * configuration. */
api__job_t **api__jobs_sorted(api_t *a);
/** Effective values. */
bool api__job_enabled(const api__job_t *j);
const char *api__job_schedule(const api__job_t *j);
const char *api__job_timezone(const api__job_t *j);
/** The next fire instant (Unix s), INT64_MAX when none. */
int64_t api__job_next(api_t *a, api__job_t *j, int64_t now);
/** Publishes job.updated for j. */
void api__publish_job(api_t *a, api__job_t *j);
void api__model_free(api_t *a);

/* ---- api_json.c: encodings ---- */

/** A string value of any bytes (invalid UTF-8 replaced by U+FFFD), secrets redacted. */
json_t *api__jstr(const char *s);
json_t *api__jstrn(const char *s, size_t len);
/** RFC 3339 UTC with milliseconds, or null for 0. */
json_t *api__jtime(int64_t ms);
/** A run; with_output adds output_tail. */
json_t *api__run_json(const run_t *r, bool with_output);
/** A job as listed by GET /api/jobs. */
json_t *api__job_json(api_t *a, api__job_t *j, int64_t now);
/** Parses RFC 3339 to ms. Returns 0 or -EINVAL. */
int api__parse_time(const char *s, int64_t *ms);

/* ---- store calls ---- */

/** Called on the http actor with the store actor's reply to an api__store_call. */
typedef void (*api__store_done_t)(api_t *a, void *ud, msg_store_reply_t *r);

/** Sends q (store_req_new(op, NULL, 0, NULL, NULL), its arguments filled) to the store actor;
 * done(a, ud, reply) runs once with the reply (done NULL: no reply wanted). Its status is
 * -ESHUTDOWN when the store actor or the api closed first; with req (a deferred request, or
 * NULL) -ECANCELED when the client was gone before the store actor reached the request (an
 * HTTP/2 reset, a closed connection): the store work was not done, counted in
 * cronvisor_http_store_calls_cancelled_total. */
void api__store_call(api_t *a, api_req_t *req, msg_store_req_t *q, api__store_done_t done,
                     void *ud);

/* ---- routes (api_jobs.c, api_runs.c, api_metrics.c) ---- */

int api__routes_jobs(api_t *a);
int api__routes_runs(api_t *a);
int api__routes_metrics(api_t *a);
/** POST /ping/{job}, /ping/{job}/start, /ping/{job}/fail (api_ping.c). */
int api__routes_ping(api_t *a);
/** Audit record and log line for a mutation by req's principal. */
void api__audit(api_t *a, const api_req_t *req, const char *action, const char *job, int64_t run_id,
                json_t *before, json_t *after);
/** Answers a pending trigger (MSG_FIRE_REPLY). */
void api__trigger_replied(api_t *a, const msg_fire_reply_t *r);
/** Answers every pending trigger 503 (closing). */
void api__triggers_abort(api_t *a);

/* the embedded OpenAPI document (generated at build time from proto/openapi.yaml) */
extern const unsigned char cv_openapi_yaml[];
extern const size_t cv_openapi_yaml_len;

#endif
