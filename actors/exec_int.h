/* Internals of the executor shared by its files (executor.c: policies and lifecycle;
 * exec_spawn.c: command runs; exec_http.c: HTTP runs; exec_ping.c: monitored `ping:` jobs;
 * exec_claim.c: claims on a shared store). Not for other actors. */
#ifndef CV_ACTORS_EXEC_INT_H
#define CV_ACTORS_EXEC_INT_H

#include "actors/executor.h"
#include "actors/proc.h"
#include "actors/store_actor.h"
#include "core/cfgcheck.h"
#include "core/effjob.h"
#include "core/httpc.h"
#include "core/strmap.h"
#include "proto/msg.h"

/* Per-job state that outlives config reloads. */
typedef struct exec__job {
    int active; /* running + queued */
    int consecutive_failures;
    /* monitored jobs (exec_ping.c) */
    int64_t last_ping_ms;        /* Unix ms of the last ping, 0: none */
    struct exec__run *ping_open; /* the run a /start ping began, or NULL */
    int ping_waits;              /* scheduled instants waiting for their grace to pass */
} exec__job_t;

/* The last known status of a probe (for `requires:`). */
typedef struct exec__health {
    health_status_t status;
    char *message;
} exec__health_t;

/* One run the executor is responsible for, from queued to finished. */
typedef struct exec__run {
    cv_list_t link; /* in executor.active or executor.queue */
    executor_t *ex;
    run_t *run;
    exec__job_t *js;
    const cfg_job_t *job; /* valid while `cfg` is held */
    cfgref_t *cfg;        /* the config the run started under */
    proc_t *proc;
    httpc_xfer_t *xfer;
    bool persisted; /* the store has a row for it (it was queued) */
    char *cancel_reason;
    int64_t last_progress_ms;
    msg_run_output_t *batch; /* output lines not yet passed to the observers */
    uint64_t live_dropped;   /* lines of the batch beyond limits.live_output_lines */
    /* shared store: the job's runs active on other live instances when this one was claimed */
    size_t nothers;
    int64_t other_run[MSG_CLAIM_MAX_OTHERS];
    char *other_instance; /* of other_run[0] */
} exec__run_t;

struct executor {
    cv_actor_t *actor;
    cv_actor_t *store, *scheduler;
    cv_actor_t *observers[EXECUTOR_MAX_OBSERVERS]; /* the hub first, when given */
    bool observer_output[EXECUTOR_MAX_OBSERVERS];  /* also wants MSG_RUN_OUTPUT */
    size_t nobservers;
    bool output_lossless; /* every line to the observers (the `run` command) */
    cv_strmap_t health;   /* probe name -> exec__health_t, from MSG_HEALTH */
    char *instance;
    cfgref_t *cfg;
    cv_strmap_t jobs; /* name -> exec__job_t */
    cv_list_t active; /* exec__run_t running */
    cv_list_t queue;  /* exec__run_t waiting for a slot, FIFO */
    cv_list_t retries;
    cv_list_t ping_waits; /* monitored jobs' instants waiting for their grace (exec_ping.c) */
    cv_list_t ping_open;  /* exec__run_t begun by a /start ping, not yet ended */
    /* shared store (exec_ping.c): pings being recorded through the store or waiting for the
     * one before them of their job, and the store requests of pings and checks in flight */
    cv_list_t ping_ops;
    size_t nping_ops;
    size_t ping_inflight;
    uint64_t ping_corr;
    /* the runtime overrides (MSG_OVERRIDE), for exec__enabled */
    effjob_overrides_t overrides;
    size_t nactive, nqueued;
    int64_t next_id;
    uint64_t started;
    httpc_t *http;
    bool shutting;
    cv_actor_t *shutdown_reply;
    /* shared store (exec_claim.c): every run is inserted before it runs */
    bool shared;
    cv_list_t claims; /* claim_t waiting for MSG_CLAIM_REPLY */
    size_t nclaiming;
    uint64_t claim_corr;
    int64_t next_provisional; /* -1, -2, ...: ids of runs started while the store is unreachable */
};

/** Whether job is enabled now: its configuration with the runtime overrides (core/effjob.h), as
 * the scheduler and the API see it. */
bool exec__enabled(const executor_t *ex, const cfg_job_t *job);

/** Starts a command run (exec_spawn.c). On a start failure the run is finished as FAILED. */
/** The instant (Unix ns) before which the run must not start: its scheduled instant for a cron
 * firing (the scheduler wakes a few ms ahead so that the run is ready on time), else 0. */
int64_t exec__not_before_ns(const exec__run_t *xr);
void exec__spawn(exec__run_t *xr);
/** Starts an HTTP run (exec_http.c). */
void exec__http(exec__run_t *xr);
/** Asks a running run to stop: TERM then KILL after grace_ms (0: KILL now). */
void exec__stop(exec__run_t *xr, int64_t grace_ms, const char *reason);

/** Called by exec_spawn.c and exec_http.c when a run is over: the record holds its outcome. */
void exec__finished(exec__run_t *xr);
/** Posts a RUNNING or PROGRESS event. */
void exec__publish(exec__run_t *xr, run_ev_kind_t kind, bool insert);
/** Adds an output line to the run's batch for the observers (live tail). Past
 * limits.live_output_lines lines in one batch, lines are only counted (the batch then ends with
 * a marker line saying how many). */
void exec__output(exec__run_t *xr, int64_t at_ms, const char *stream, const char *text, size_t len);
/** Posts the run's batch of output lines, if any, as one message to each observer. */
void exec__output_flush(exec__run_t *xr);

/** The state of the job named name, created on first use. */
exec__job_t *exec__job_state(executor_t *ex, const char *name);

/* ---- monitored jobs (exec_ping.c) ---- */

/** Records a ping of a monitored job: /start begins a RUNNING run, success and /fail end it (or
 * record one of no duration); the body is its output. Unknown or non-ping jobs are ignored. */
void exec__ping(executor_t *ex, const msg_ping_t *p);
/** A scheduled instant of the monitored job: arms the check at instant + ping.grace, which
 * records a FAILED run "no ping received" unless a ping came meanwhile. */
void exec__ping_fire(executor_t *ex, const cfg_job_t *job, const msg_fire_t *f);
/** Shutdown: drops the armed checks and ends the runs begun by /start as CANCELLED (a shared
 * store keeps them open: another instance may end them). What waits for the store goes on. */
void exec__ping_shutdown(executor_t *ex);
/** Shared store: the store actor's answer to a ping's or a check's request. */
void exec__ping_store_reply(executor_t *ex, msg_store_reply_t *r);
/** Shared store: the answer to the claim of a missed instant; false when m is not one. */
bool exec__ping_claim_reply(executor_t *ex, const msg_claim_reply_t *m);

/* ---- shared store (exec_claim.c) ---- */

/** Inserts xr's run as QUEUED through the store actor (the database assigns its id); once
 * claimed, the run goes on through exec__admit with f (copied). A cron first attempt another
 * instance claimed first is dropped without a record. Takes xr. */
void exec__claim(exec__run_t *xr, const msg_fire_t *f);
/** Asks the instances owning xr's other_run[] to cancel them (concurrency: replace), by a
 * notification through the store. */
void exec__cancel_elsewhere(exec__run_t *xr);
/** Handles the store actor's answer to a claim. */
void exec__claim_reply(executor_t *ex, const msg_claim_reply_t *m);
/** The claims still waiting for the store are answered as lost at shutdown. */
void exec__claims_free(executor_t *ex);

/** Applies the concurrency policy and the global limit to a new run, then starts or queues it
 * (executor.c). f is the fire it came from (for the reply). Takes xr. */
void exec__admit(exec__run_t *xr, const msg_fire_t *f);
/** Records a firing that could not be claimed as SKIPPED (on_store_outage: skip). Takes xr. */
void exec__skip_unclaimed(exec__run_t *xr, const msg_fire_t *f, const char *why);
/** Forgets a run that will not run and is not recorded (a lost claim). Takes xr. */
void exec__drop(exec__run_t *xr);
/** Answers the shutdown once nothing runs, waits or is asked of the store any more. */
void exec__shutdown_check(executor_t *ex);

#endif
