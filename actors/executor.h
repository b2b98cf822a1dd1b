/* The executor actor: turns MSG_FIRE into runs. It applies the job's concurrency policy
 * (forbid / allow / replace) and the global limit (limits.max_concurrent, with a FIFO queue),
 * starts a child process (actors/proc.h) or an HTTP call (core/httpc.h) (a `ping:` job runs
 * elsewhere: it waits for its pings, exec_ping.c), follows its output and result protocol, enforces
 * its timeout, computes its status, schedules retries with exponential backoff, disables a job
 * after auto_disable_after consecutive failures, and reports every state change as MSG_RUN_EVENT to
 * the store (and the live ones to the hub).
 *
 * A job with `requires:` is not started while one of those probes is unhealthy (as last told by
 * MSG_HEALTH from the prober): the run is recorded SKIPPED with the probe's message.
 *
 * Observers: the hub and up to EXECUTOR_MAX_OBSERVERS-1 more actors (the notifier...) receive
 * the live run events (QUEUED, STARTED, PROGRESS), the output lines (those added with output)
 * and, for each job.auto_disabled, a copy of its MSG_OVERRIDE and of its MSG_AUDIT.
 *
 * Messages it takes: MSG_EXEC_CONFIG, MSG_FIRE, MSG_CANCEL, MSG_SHUTDOWN, MSG_HEALTH,
 * MSG_OVERRIDE (the runtime overrides: enabled, ...), MSG_PING (a `ping:` job reported in; its
 * reply_to is told MSG_PING_DONE once it is recorded) and MSG_CLAIM_REPLY (shared store: the
 * store's answer to its MSG_CLAIM). On MSG_EXEC_CONFIG it applies the jobs and limits.* to the next
 * runs (queued runs start if max_concurrent grew); a running run keeps the snapshot it started
 * with. */
#ifndef CV_ACTORS_EXECUTOR_H
#define CV_ACTORS_EXECUTOR_H

#include "core/actor.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct executor executor_t;

#define EXECUTOR_MAX_OBSERVERS 8

typedef struct executor_opts {
    cv_actor_t *store;     /* required: receives every run event, audits and overrides */
    cv_actor_t *hub;       /* optional: receives queued/started/progress events, output lines and
                            * MSG_OVERRIDE copies of auto-disables */
    cv_actor_t *scheduler; /* optional: told to disable a job (auto_disable_after) */
    const char *instance;  /* this daemon's id, stamped on every run */
    int64_t first_run_id;  /* the id of the next run (the store's highest id + 1) */
    /* several daemons share the store (store_is_shared): each run is inserted before it runs,
     * with an id from the database, and a cron firing runs only where that insert won */
    bool shared_store;
    /* every output line reaches the observers (the `run` command prints them all); otherwise
     * at most limits.live_output_lines of each read of a run's pipes */
    bool output_lossless;
} executor_opts_t;

executor_t *executor_create(cv_runtime_t *rt, const executor_opts_t *opts);
cv_actor_t *executor_actor(executor_t *ex);
/** Sets the scheduler told of auto-disables (created after the executor). */
void executor_set_scheduler(executor_t *ex, cv_actor_t *scheduler);
/** Adds an observer (see above) besides opts.hub; with_output false: no output lines. Returns 0,
 * or -ENOSPC when the list is full. */
int executor_add_observer(executor_t *ex, cv_actor_t *observer, bool with_output);
/** Frees the executor. Only after its shutdown completed (MSG_SHUTDOWN_DONE): no run may be
 * active. */
void executor_destroy(executor_t *ex);

/** Counters of the monitored jobs' checks of every executor of the process (loop thread only),
 * for /metrics. */
typedef struct executor_ping_stats {
    uint64_t checks_dropped; /* scheduled instants not checked: limits.ping_checks were waiting */
} executor_ping_stats_t;
void executor_ping_stats_get(executor_ping_stats_t *out);

/** Runs started, runs active and runs waiting in the queue (for metrics and tests). */
uint64_t executor_started(const executor_t *ex);
size_t executor_active(const executor_t *ex);
size_t executor_queued(const executor_t *ex);

#endif
