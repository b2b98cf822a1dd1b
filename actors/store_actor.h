/* The store actor: every read and write of the store_t (storage/store.h) goes through it. The
 * supervisor opens, migrates and closes the store and asks store_is_shared; the cluster actor
 * registers its LISTEN watches (store_watch_events, store_watch_overrides) on it; nothing else
 * calls the store. It persists every run event the executor sends (group-committed by the
 * backend) and, once the write of a finished run has completed (durable, or failed and logged
 * as NOT RECORDED), forwards that event to its subscribers (the http actor, the notifier, and
 * the supervisor in --once mode).
 *
 * Its protocol. Writes that need no answer: MSG_RUN_EVENT, MSG_AUDIT, MSG_OVERRIDE; a claim:
 * MSG_CLAIM -> MSG_CLAIM_REPLY (proto/msg.h). Every other access is a typed request:
 *
 *   requester --MSG_STORE_REQ(op, args, reply_to, corr)--> store
 *   store     --MSG_STORE_REPLY(op, corr, status, result)--> reply_to
 *
 * The store actor switches on op, makes the matching asynchronous store_* call and, when it
 * completes, posts the reply (results copied or taken into the reply: the requester owns them).
 * Nothing of another module runs inside the store actor.
 *
 * Replies racing their requester (core/actor.h, "replies, deadlines and owners"):
 * - live (optional): the requester's cv_live_t; the request holds its own reference (taken with
 *   cv_live_ref, dropped by the dispose). Once it is ended the request is neither run (when
 *   the store actor reaches it) nor answered (when the store completes it).
 * - cancel (optional): a token that one request (e.g. an HTTP request) is still wanted. Ended
 *   before the store actor reaches the request: the store work is not done and the reply says
 *   -ECANCELED (so the requester frees what it kept for it).
 * - A request still queued when the store actor is destroyed is answered -ESHUTDOWN (when it
 *   has a reply_to and its requester is alive), from the message's dispose.
 * The requester matches a reply by corr against what it still waits for and drops stale ones. */
#ifndef CV_ACTORS_STORE_ACTOR_H
#define CV_ACTORS_STORE_ACTOR_H

#include "core/actor.h"
#include "storage/store.h"

typedef struct store_actor store_actor_t;

/** Wraps an open, migrated store. The actor does not close the store (the supervisor does, after
 * store_actor_destroy, so every queued write is flushed by store_close). */
store_actor_t *store_actor_create(cv_runtime_t *rt, store_t *st);
void store_actor_destroy(store_actor_t *sa);
cv_actor_t *store_actor_actor(store_actor_t *sa);
/** Adds an actor that receives a copy of every MSG_RUN_EVENT(FINISHED) once its write has
 * completed (durable, or failed and logged). */
void store_actor_subscribe(store_actor_t *sa, cv_actor_t *listener);
/** Adds an actor that receives MSG_STORE_STATE now and whenever the store's state changes. */
void store_actor_watch_state(store_actor_t *sa, cv_actor_t *listener);
/** Writes still waiting for their commit (and typed requests not yet answered). */
size_t store_actor_pending(const store_actor_t *sa);

/* ---- typed requests ---- */

/** What a MSG_STORE_REQ asks; the arguments it uses and the result its reply carries. */
typedef enum {
    STORE_OP_PING = 1,              /* -                          -> status */
    STORE_OP_GET_RUN,               /* id                         -> run */
    STORE_OP_QUERY_RUNS,            /* filter (+ job/trigger/cursor strings) -> page */
    STORE_OP_JOB_STATS,             /* jobs, njobs, limit (last_n) -> stats, nstats */
    STORE_OP_SUMMARY,               /* since                      -> summary */
    STORE_OP_OVERRIDE_LIST,         /* job (NULL: all)            -> overrides, noverrides */
    STORE_OP_AUDIT_LIST,            /* job, limit, cursor         -> audit */
    STORE_OP_NOTE_PUT,              /* note                       -> status */
    STORE_OP_NOTE_LIST,             /* limit                      -> notes, nnotes */
    STORE_OP_LIST_INSTANCES,        /* -                          -> instances, ninstances */
    STORE_OP_NOTIFY,                /* channel, payload           -> status */
    STORE_OP_HEARTBEAT,             /* instance                   -> status */
    STORE_OP_ABANDON_DEAD,          /* since (seen_before)        -> count */
    STORE_OP_ABANDON_STALE,         /* instance.id (NULL: all), reason -> count */
    STORE_OP_RETENTION,             /* days, max_runs             -> count */
    STORE_OP_INSERT_RUN,            /* run                        -> id */
    STORE_OP_UPDATE_RUN,            /* run                        -> status */
    STORE_OP_OVERRIDE_SET,          /* override                   -> status */
    STORE_OP_OVERRIDE_DELETE,       /* job, field                 -> status */
    STORE_OP_AUDIT_APPEND,          /* audit                      -> id */
    STORE_OP_RUNNING_AND_INSTANCES, /* RUNNING runs (one page of STORE_PAGE_MAX) and instances,
                                     * in one batch -> page, instances */
} store_op_t;

/** The arguments of a request. Every string and the run are owned by the message. */
typedef struct store_req_args {
    int64_t id;    /* GET_RUN */
    int64_t since; /* SUMMARY: ms; ABANDON_DEAD: seen_before */
    int limit;     /* AUDIT_LIST, NOTE_LIST; JOB_STATS: last_n */
    int days, max_runs;
    char *job, *field, *cursor, *reason, *channel, *payload;
    store_run_filter_t filter; /* QUERY_RUNS: its strings owned (job, trigger, cursor) */
    char **jobs;               /* JOB_STATS */
    size_t njobs;
    run_t *run;                /* INSERT_RUN, UPDATE_RUN */
    store_note_t note;         /* NOTE_PUT */
    store_instance_t instance; /* HEARTBEAT; ABANDON_STALE uses instance.id */
    store_override_t override; /* OVERRIDE_SET */
    store_audit_t audit;       /* AUDIT_APPEND */
} store_req_args_t;

typedef struct {
    cv_msg_t hdr;
    store_op_t op;
    cv_actor_t *reply_to; /* NULL: no reply (a failure is logged) */
    uint64_t corr;        /* echoed in the reply */
    cv_live_t *live;      /* NULL, or a reference owned by the message (see above) */
    cv_live_t *cancel;    /* NULL, or a reference owned by the message (see above) */
    store_req_args_t a;
    bool handled; /* set by the store actor */
} msg_store_req_t;

/** A new request (type MSG_STORE_REQ, its dispose set); fill m->a, then post it to the store
 * actor. live and cancel, when not NULL, get a reference of their own. */
msg_store_req_t *store_req_new(store_op_t op, cv_actor_t *reply_to, uint64_t corr, cv_live_t *live,
                               cv_live_t *cancel);

/** The answer. The result fields that op fills are owned by the reply (freed by its dispose);
 * a receiver that keeps one steals it (sets the field to NULL / the count to 0). */
typedef struct {
    cv_msg_t hdr;
    store_op_t op;
    uint64_t corr;
    int status;    /* 0, a negative errno from the store, -ECANCELED or -ESHUTDOWN */
    int64_t value; /* id (INSERT_RUN, AUDIT_APPEND) or count (ABANDON_*, RETENTION) */
    run_t *run;
    store_run_page_t page;
    store_job_stats_t *stats;
    size_t nstats;
    store_summary_t summary;
    store_override_t *overrides;
    size_t noverrides;
    store_audit_page_t audit;
    store_note_t *notes;
    size_t nnotes;
    store_instance_t *instances;
    size_t ninstances;
} msg_store_reply_t;

/** A new reply (type MSG_STORE_REPLY, its dispose set), result empty. */
msg_store_reply_t *store_reply_new(store_op_t op, uint64_t corr, int status);

#endif
