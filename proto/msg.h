/* The messages actors send each other. Follow a run from fire to record by reading this file top
 * to bottom:
 *
 *   scheduler --MSG_FIRE--> executor            a job is due (or triggered by the API / a retry)
 *   executor  --MSG_RUN_EVENT(QUEUED)--> store, hub     waiting for a slot (limits.max_concurrent)
 *   executor  --MSG_RUN_EVENT(STARTED)--> store, hub    the child is running
 *   executor  --MSG_RUN_EVENT(PROGRESS)--> hub          items / progress reported on the result fd
 *   executor  --MSG_RUN_OUTPUT--> hub                   output lines, for live tails: one batch
 *                                                       per read of a pipe, not one per line
 *   executor  --MSG_RUN_EVENT(FINISHED)--> store
 *   store     --MSG_RUN_EVENT(FINISHED)--> api, notifier (supervisor in --once mode)   once its
 *                                                       write completed (actors/store_actor.h)
 *
 * Health and notifications (actors/prober.h, actors/notifier.h):
 *
 *   prober    --MSG_STORE_REQ(PING)--> store --MSG_STORE_REPLY--> prober   the probe "store"
 *   prober    --MSG_HEALTH--> executor, notifier, observers (API hub)   a probe changed status
 *   api       --MSG_HEALTH_GET--> prober      --MSG_HEALTH_LIST--> api   the current list, at once
 *   api       --MSG_HEALTH_REFRESH--> prober  --MSG_HEALTH_LIST--> api   once fresh results are in
 *   executor  --MSG_RUN_EVENT(QUEUED/STARTED/PROGRESS)--> observers (hub, notifier)
 *   executor  --MSG_RUN_OUTPUT--> the observers that asked for output (the hub)
 *   executor  --MSG_AUDIT(job.auto_disabled)--> observers       a copy of the audit record
 *   api       --MSG_NOTIFY_GET--> notifier    --MSG_NOTIFY_LIST--> api   recent deliveries
 *
 * Configuration (actors/supervisor.h):
 *
 *   supervisor --MSG_EXEC_CONFIG--> executor, api, cluster (+ prober, notifier on reloads)
 *   api        --MSG_RELOAD--> supervisor --MSG_RELOAD_REPLY--> api   POST /api/reload
 *   supervisor --MSG_AUDIT(config.reload)--> store                    every accepted reload
 *
 * With its own store the executor assigns run ids itself (from the highest id the store holds at
 * start), so a child knows its CRONVISOR_RUN_ID the moment it starts without waiting for a
 * database round trip. With a shared store the database assigns them (MSG_CLAIM, below).
 *
 * Every message starts with cv_msg_t (core/actor.h). Strings and runs inside a message are owned
 * by it and released by its dispose function. */
#ifndef CV_PROTO_MSG_H
#define CV_PROTO_MSG_H

#include "core/actor.h"
#include "proto/run.h"

typedef enum {
    MSG_FIRE = 1,       /* msg_fire_t: run a job now */
    MSG_FIRE_REPLY,     /* msg_fire_reply_t: the executor's answer to a FIRE that asked for one */
    MSG_CANCEL,         /* msg_cancel_t: cancel a queued or running run */
    MSG_RUN_EVENT,      /* msg_run_event_t: a run changed state */
    MSG_RUN_OUTPUT,     /* msg_run_output_t: a batch of lines of a run's output */
    MSG_STORE_REQ,      /* msg_store_req_t (actors/store_actor.h): a typed store request */
    MSG_STORE_REPLY,    /* msg_store_reply_t (actors/store_actor.h): its answer */
    MSG_AUDIT,          /* msg_audit_t: append an audit record */
    MSG_OVERRIDE,       /* msg_override_t: set (or delete, value NULL) a runtime override */
    MSG_EXEC_CONFIG,    /* msg_exec_config_t: a configuration snapshot (supervisor -> actors) */
    MSG_JOB_ENABLE,     /* msg_job_enable_t: enable or disable a job at run time */
    MSG_SHUTDOWN,       /* msg_shutdown_t: stop firing / stop running, then report done */
    MSG_SHUTDOWN_DONE,  /* cv_msg_t: an actor finished its shutdown */
    MSG_JOB_SCHEDULE,   /* msg_job_schedule_t: a job's schedule changed at run time (API) */
    MSG_HEALTH,         /* msg_health_t: a probe changed status */
    MSG_HEALTH_GET,     /* msg_health_query_t: reply MSG_HEALTH_LIST with the current results */
    MSG_HEALTH_REFRESH, /* msg_health_query_t: check now, reply MSG_HEALTH_LIST when done */
    MSG_HEALTH_LIST,    /* msg_health_list_t: the prober's answer to GET / REFRESH */
    MSG_NOTIFY_GET,     /* msg_notify_query_t: reply MSG_NOTIFY_LIST */
    MSG_NOTIFY_LIST,    /* msg_notify_list_t: recent notifications, newest first */
    MSG_CLAIM,          /* msg_claim_t: insert a run before it runs (shared store) */
    MSG_CLAIM_REPLY,    /* msg_claim_reply_t: the store actor's answer to a MSG_CLAIM */
    MSG_INSTANCE_BEAT,  /* msg_instance_beat_t: an instance sharing the store heart-beat */
    MSG_STORE_STATE,    /* msg_store_state_t: the store reaches its database or not (spool) */
    MSG_RELOAD,         /* msg_reload_t: reload the configuration (api -> supervisor) */
    MSG_RELOAD_REPLY,   /* msg_reload_reply_t: the supervisor's answer to a MSG_RELOAD */
    MSG_SCHED_JOBS,     /* msg_sched_jobs_t (actors/scheduler.h): supervisor -> scheduler */
    MSG_CLUSTER_OVERRIDES, /* msg_cluster_overrides_t (actors/cluster.h): cluster -> supervisor */
    MSG_PING,              /* msg_ping_t: a monitored job reported in (api -> executor) */
    MSG_PING_DONE,         /* cv_msg_t: a MSG_PING is recorded or given up (to its reply_to) */
    MSG_PUBLIC_END,        /* not a message: one past the last public type (append above it) */
    MSG_ACTOR_PRIVATE = 1000, /* types from here on are private to one actor */
} msg_type_t;

/* ---- private message numbers ----
 * A message one actor sends only to itself (a worker's result, a step of its own) is private: its
 * number is its actor's base below plus 0 .. MSG_PRIVATE_SPAN - 1, declared in the actor's .c
 * file and checked there with MSG_PRIVATE_CHECK(base, last). A message that goes from one actor
 * to another is public: it belongs in msg_type_t above. The bases follow each other one span
 * apart (checked below), so no two actors' private numbers can meet. */
#define MSG_PRIVATE_SPAN 100
enum {
    MSG_PRIVATE_SCHED = MSG_ACTOR_PRIVATE,
    MSG_PRIVATE_EXEC = MSG_PRIVATE_SCHED + MSG_PRIVATE_SPAN,
    MSG_PRIVATE_STORE = MSG_PRIVATE_EXEC + MSG_PRIVATE_SPAN,
    MSG_PRIVATE_PROBER = MSG_PRIVATE_STORE + MSG_PRIVATE_SPAN,
    MSG_PRIVATE_NOTIFIER = MSG_PRIVATE_PROBER + MSG_PRIVATE_SPAN,
    MSG_PRIVATE_CLUSTER = MSG_PRIVATE_NOTIFIER + MSG_PRIVATE_SPAN,
    MSG_PRIVATE_SUPERVISOR = MSG_PRIVATE_CLUSTER + MSG_PRIVATE_SPAN,
    MSG_PRIVATE_API = MSG_PRIVATE_SUPERVISOR + MSG_PRIVATE_SPAN,
    MSG_PRIVATE_END = MSG_PRIVATE_API + MSG_PRIVATE_SPAN,
};
_Static_assert(MSG_PRIVATE_EXEC - MSG_PRIVATE_SCHED >= MSG_PRIVATE_SPAN &&
                   MSG_PRIVATE_STORE - MSG_PRIVATE_EXEC >= MSG_PRIVATE_SPAN &&
                   MSG_PRIVATE_PROBER - MSG_PRIVATE_STORE >= MSG_PRIVATE_SPAN &&
                   MSG_PRIVATE_NOTIFIER - MSG_PRIVATE_PROBER >= MSG_PRIVATE_SPAN &&
                   MSG_PRIVATE_CLUSTER - MSG_PRIVATE_NOTIFIER >= MSG_PRIVATE_SPAN &&
                   MSG_PRIVATE_SUPERVISOR - MSG_PRIVATE_CLUSTER >= MSG_PRIVATE_SPAN &&
                   MSG_PRIVATE_API - MSG_PRIVATE_SUPERVISOR >= MSG_PRIVATE_SPAN &&
                   MSG_PRIVATE_END - MSG_PRIVATE_API >= MSG_PRIVATE_SPAN,
               "two actors' private message ranges overlap");
_Static_assert(MSG_PUBLIC_END <= MSG_ACTOR_PRIVATE,
               "the public message types reach the private ranges");
/** In an actor's .c file, after its private enum: fails to compile unless last (its highest
 * private type) lies within base's span. */
#define MSG_PRIVATE_CHECK(base, last)                                                              \
    _Static_assert((int)(last) >= (int)(base) && (int)(last) < (int)(base) + MSG_PRIVATE_SPAN,     \
                   #last " is outside " #base "'s private span")

typedef struct {
    cv_msg_t hdr;
    char *job;
    char *trigger;         /* "cron", "api:<token>", "retry", "catch_up", "reboot", "once" */
    int64_t scheduled_for; /* ms */
    int attempt;           /* 1 unless a retry */
    int64_t retry_of;      /* first attempt's run id for retries */
    cv_actor_t *reply_to;  /* optional: receives MSG_FIRE_REPLY */
    uint64_t corr;         /* correlation id echoed in the reply */
} msg_fire_t;

typedef enum {
    FIRE_ACCEPTED, /* started or queued: run_id is set */
    FIRE_SKIPPED,  /* the concurrency policy forbids it: run_id of the SKIPPED record */
    FIRE_UNKNOWN,  /* no such job */
    FIRE_SHUTTING, /* the daemon is shutting down */
} fire_outcome_t;

typedef struct {
    cv_msg_t hdr;
    uint64_t corr;
    fire_outcome_t outcome;
    int64_t run_id;
    run_status_t status;
    char *reason;
} msg_fire_reply_t;

typedef struct {
    cv_msg_t hdr;
    int64_t run_id;
    char *by; /* who cancelled, for the record */
} msg_cancel_t;

/* A monitored job (ping:) reported in: POST /ping/{job}[/start|/fail], its key already checked.
 *   api --MSG_PING--> executor   (the executor records the run and clears the missed check)
 *   executor --MSG_PING_DONE--> reply_to   (once the ping is recorded or given up: the API bounds
 *                                           the pings accepted but not yet done, limits.ping_queue)
 */
typedef enum { PING_SUCCESS, PING_START, PING_FAIL } ping_kind_t;

typedef struct {
    cv_msg_t hdr;
    char *job;
    ping_kind_t kind;
    int64_t at_ms; /* when the ping arrived (Unix ms) */
    char *body;    /* the request body, kept as the run's output; NULL when empty */
    size_t body_len;
    int64_t items_processed; /* -1 when not given */
    int64_t items_failed;    /* -1 when not given */
    cv_actor_t *reply_to;    /* told MSG_PING_DONE when done; NULL: nobody */
} msg_ping_t;

/** A MSG_PING (body copied, len bytes, may be NULL). */
msg_ping_t *msg_ping_new(const char *job, ping_kind_t kind, int64_t at_ms, const char *body,
                         size_t len);
/** "success", "start", "fail". */
const char *ping_kind_name(ping_kind_t k);

typedef enum { RUN_EV_QUEUED, RUN_EV_STARTED, RUN_EV_PROGRESS, RUN_EV_FINISHED } run_ev_kind_t;

typedef struct {
    cv_msg_t hdr;
    run_ev_kind_t kind;
    bool insert; /* the store has not seen this run yet: insert rather than update */
    bool remote; /* a run of another instance, read back from the shared store */
    run_t *run;  /* a snapshot, immutable (maybe shared): one reference is the message's */
} msg_run_event_t;

/** Shared store: the heartbeat of an instance (this one included), as the database announced
 * it. cluster --MSG_INSTANCE_BEAT--> api (published as instance.heartbeat). id NULL: the
 * connection to the database came back, events may have been missed (the api resyncs). */
typedef struct {
    cv_msg_t hdr;
    char *id;
    int64_t last_seen; /* ms */
} msg_instance_beat_t;

/** One line of a msg_run_output_t; its text is msg_run_output_text(o, i). */
typedef struct {
    int64_t at_ms;
    const char *stream; /* "stdout", "stderr", "result", "system"... (static) */
    size_t off, len;    /* in the message's text buffer, NUL-terminated there */
} msg_output_line_t;

/** A batch of lines of one run's output: the lines of one read of its pipes (one message per
 * read, not per line), in order. */
typedef struct {
    cv_msg_t hdr;
    int64_t run_id;
    size_t n;
    msg_output_line_t *lines;
    cv_buf_t text;
    uint64_t dropped; /* lines left out (limits.live_output_lines); the last line says so */
} msg_run_output_t;

typedef struct {
    cv_msg_t hdr;
    char *job;
    bool enabled;
} msg_job_enable_t;

typedef struct {
    cv_msg_t hdr;
    cv_actor_t *reply_to; /* receives MSG_SHUTDOWN_DONE */
    int64_t grace_ms;
    bool immediate; /* second signal: kill now */
} msg_shutdown_t;

typedef struct {
    cv_msg_t hdr;
    char *actor;  /* who: "system", "api:<token name>" */
    char *action; /* "job.auto_disabled", "job.disable", "run.trigger", ... */
    char *job;
    int64_t run_id;
    char *before; /* JSON text or NULL */
    char *after;
} msg_audit_t;

typedef struct {
    cv_msg_t hdr;
    char *job;
    char *field;
    char *value; /* JSON text; NULL deletes the override */
    char *by;
} msg_override_t;

struct cfgref;
typedef struct {
    cv_msg_t hdr;
    struct cfgref *cfg; /* a reference, released by dispose */
    char *summary;      /* NULL at start; after a reload what it changed (cfgdiff_summary) */
} msg_exec_config_t;

typedef struct {
    cv_msg_t hdr;
    char *job;
    char *schedule; /* the effective schedule and time zone (config or override) */
    char *timezone;
    bool enabled;
} msg_job_schedule_t;

/* ---- health ---- */

typedef enum {
    HEALTH_UNKNOWN = 0, /* not checked yet (or failing, but fewer than fail_after times) */
    HEALTH_HEALTHY,
    HEALTH_DEGRADED,  /* answered, but slower than degraded_after */
    HEALTH_UNHEALTHY, /* failed fail_after times in a row (error or timeout) */
} health_status_t;

/** The latest result of one probe. Strings are heap copies owned by whatever holds the struct. */
typedef struct health_result {
    char *probe;      /* probe name; "store" for the built-in one */
    const char *type; /* "http", "postgres", "redis", "tcp", "exec", "store" (static) */
    health_status_t status;
    int64_t latency_ms; /* of the latest check; -1 before the first */
    char *message;      /* what the latest check said (an error, secrets removed), or NULL */
    int64_t checked_at; /* ms (wall clock) of the latest check; 0 before the first */
    int64_t since;      /* ms: when the probe entered `status` (0 while unknown since start) */
    int consecutive_failures;
} health_result_t;

/** MSG_HEALTH: sent on every status change (also from unknown), to the executor (requires:),
 * the notifier (probe.unhealthy / probe.recovered) and the observers (API: health.changed). */
typedef struct {
    cv_msg_t hdr;
    health_result_t h;
    health_status_t previous;
} msg_health_t;

/** MSG_HEALTH_GET and MSG_HEALTH_REFRESH. probe NULL means every probe. The reply always comes
 * (as MSG_HEALTH_LIST with the same corr), with error set for an unknown probe. */
typedef struct {
    cv_msg_t hdr;
    char *probe;
    cv_actor_t *reply_to;
    uint64_t corr;
} msg_health_query_t;

/** MSG_HEALTH_LIST: items in configuration order (the built-in "store" first); only the asked
 * probe when the query named one. error is NULL, or why nothing is listed. */
typedef struct {
    cv_msg_t hdr;
    uint64_t corr;
    health_result_t *items;
    size_t count;
    char *error;
} msg_health_list_t;

/* ---- notifications ---- */

/** One notification and what became of it. */
typedef struct notify_record {
    uint64_t id;
    char *notifier; /* cfg_notify_t.name */
    char *event;    /* "run.failed", "probe.unhealthy", ... */
    char *subject;  /* the job or probe name */
    int64_t run_id; /* 0 when not about a run */
    int64_t created_at;
    int64_t finished_at; /* 0 while pending */
    int attempts;
    bool pending;
    bool delivered;
    long http_status; /* of the last attempt; 0 when no response */
    char *last_error; /* secret-free, or NULL */
} notify_record_t;

/** MSG_NOTIFY_GET: the reply lists at most `limit` records (0: all kept), newest first. */
typedef struct {
    cv_msg_t hdr;
    cv_actor_t *reply_to;
    uint64_t corr;
    size_t limit;
} msg_notify_query_t;

typedef struct {
    cv_msg_t hdr;
    uint64_t corr;
    notify_record_t *items;
    size_t count;
} msg_notify_list_t;

const char *health_status_name(health_status_t s); /* "healthy", "degraded", ... */
/** Frees the strings of h (not h itself) and zeroes it. */
void health_result_clear(health_result_t *h);
/** A MSG_HEALTH with a deep copy of h. */
msg_health_t *msg_health_new(const health_result_t *h, health_status_t previous);
/** A MSG_HEALTH_GET or MSG_HEALTH_REFRESH (type); probe may be NULL (all). */
msg_health_query_t *msg_health_query_new(int type, const char *probe, cv_actor_t *reply_to,
                                         uint64_t corr);
/** A MSG_HEALTH_LIST with deep copies of items[0..count); error may be NULL. */
msg_health_list_t *msg_health_list_new(uint64_t corr, const health_result_t *items, size_t count,
                                       const char *error);
void notify_record_copy(notify_record_t *dst, const notify_record_t *src);
void notify_record_clear(notify_record_t *r);
/** A MSG_NOTIFY_LIST that takes ownership of items (an array of count records, may be NULL). */
msg_notify_list_t *msg_notify_list_new(uint64_t corr, notify_record_t *items, size_t count);
/** A copy of an audit message (for observers). */
msg_audit_t *msg_audit_dup(const msg_audit_t *a);

/** With a shared store (several daemons on one PostgreSQL database) the executor inserts each
 * run before running it: the database assigns its id (run->id 0), and for a cron first attempt
 * the insert is the claim of the firing, which only one instance wins (-EEXIST for the others).
 *
 *   executor --MSG_CLAIM--> store --MSG_CLAIM_REPLY{status, run_id}--> executor */
typedef struct {
    cv_msg_t hdr;
    run_t *run; /* QUEUED snapshot to insert; owned by the message */
    cv_actor_t *reply_to;
    uint64_t corr;
    /* > 0: also look for RUNNING or QUEUED runs of the job on other instances whose last
     * heartbeat is at or after this instant (ms): the concurrency policy across instances */
    int64_t live_since;
} msg_claim_t;

#define MSG_CLAIM_MAX_OTHERS 8

typedef struct {
    cv_msg_t hdr;
    uint64_t corr;
    int status;       /* 0 won, -EEXIST another instance won, other negative errno: failed */
    int64_t run_id;   /* the id the database assigned, when status is 0 */
    uint64_t done_ns; /* cv_mono_ns() when the store answered (for latency figures) */
    /* with live_since: the job's runs active on other live instances (the first few) */
    size_t nothers;
    int64_t other_run[MSG_CLAIM_MAX_OTHERS];
    char *other_instance[MSG_CLAIM_MAX_OTHERS];
} msg_claim_reply_t;

/** The store's state changed (outage spool: PostgreSQL unreachable, SQLite refusing writes): sent
 * by the store actor to the actors that watch it (the API: /readyz, the store.changed event,
 * /metrics), and once when one starts to watch. health is a store_health_t (storage/store.h): 0 up,
 * 1 degraded, 2 replaying.
 *
 *   store --MSG_STORE_STATE--> api */
typedef struct {
    cv_msg_t hdr;
    int health;
    uint64_t spooled, spool_bytes, dropped;
    uint64_t queued, queue_refused; /* PostgreSQL: waiting for a lost connection; refused */
} msg_store_state_t;

/** A reload asked through the API (POST /api/reload); the supervisor reloads as on SIGHUP and
 * answers with MSG_RELOAD_REPLY.
 *
 *   api --MSG_RELOAD--> supervisor --MSG_RELOAD_REPLY--> api */
typedef struct {
    cv_msg_t hdr;
    char *by; /* the audit's actor: "api:<token name>" */
    cv_actor_t *reply_to;
    uint64_t corr;
} msg_reload_t;

typedef enum {
    RELOAD_APPLIED,        /* changed: the summary */
    RELOAD_INVALID,        /* errors: the configuration's errors, each with its location */
    RELOAD_RESTART_NEEDED, /* errors: the keys that cannot change without a restart */
    RELOAD_REFUSED,        /* errors: why (shutting down) */
    RELOAD_BUSY, /* errors: why (server.max_pending_reloads reloads already wait for the store) */
} reload_outcome_t;

typedef struct {
    cv_msg_t hdr;
    uint64_t corr;
    reload_outcome_t outcome;
    char *changed; /* RELOAD_APPLIED: the cfgdiff summary */
    char *errors;  /* otherwise: a JSON array of {file, line, column, job, message, text} */
} msg_reload_reply_t;

/** Constructors: copy their string arguments; the returned message is ready to post. */
msg_fire_t *msg_fire_new(const char *job, const char *trigger, int64_t scheduled_for);
msg_run_event_t *msg_run_event_new(run_ev_kind_t kind, const run_t *run);
/** The same with a published run, shared rather than copied: the message takes a reference
 * (run_ref), so nobody may change run afterwards. */
msg_run_event_t *msg_run_event_share(run_ev_kind_t kind, const run_t *run);
/** An empty batch of output lines of run_id. */
msg_run_output_t *msg_run_output_new(int64_t run_id);
/** Appends a copy of one line (len bytes, no newline) to a batch. */
void msg_run_output_add(msg_run_output_t *o, int64_t at_ms, const char *stream, const char *line,
                        size_t len);
/** The text of line i of a batch (NUL-terminated). */
const char *msg_run_output_text(const msg_run_output_t *o, size_t i);
/** A copy of a batch (for a second observer). */
msg_run_output_t *msg_run_output_copy(const msg_run_output_t *o);
msg_fire_reply_t *msg_fire_reply_new(uint64_t corr, fire_outcome_t outcome, int64_t run_id,
                                     run_status_t status, const char *reason);
msg_job_enable_t *msg_job_enable_new(const char *job, bool enabled);
/** A MSG_CANCEL of run_id; by: who cancelled, for the record. */
msg_cancel_t *msg_cancel_new(int64_t run_id, const char *by);
msg_audit_t *msg_audit_new(const char *actor, const char *action, const char *job, int64_t run_id,
                           const char *before, const char *after);
msg_override_t *msg_override_new(const char *job, const char *field, const char *value,
                                 const char *by);
/** Takes a new reference on cfg. */
msg_exec_config_t *msg_exec_config_new(struct cfgref *cfg);
msg_claim_t *msg_claim_new(const run_t *run, cv_actor_t *reply_to, uint64_t corr);
msg_claim_reply_t *msg_claim_reply_new(uint64_t corr, int status, int64_t run_id);
msg_instance_beat_t *msg_instance_beat_new(const char *id, int64_t last_seen);
msg_store_state_t *msg_store_state_new(int health, uint64_t spooled, uint64_t spool_bytes,
                                       uint64_t dropped);
msg_reload_t *msg_reload_new(const char *by, cv_actor_t *reply_to, uint64_t corr);
msg_reload_reply_t *msg_reload_reply_new(uint64_t corr, reload_outcome_t outcome,
                                         const char *changed, const char *errors);
const char *run_ev_kind_name(run_ev_kind_t k);
msg_job_schedule_t *msg_job_schedule_new(const char *job, const char *schedule, const char *zone,
                                         bool enabled);

#endif
