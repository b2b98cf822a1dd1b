/* The notifier actor: webhooks on events, per `notify[]` entry (core/config.h, cfg_notify_t).
 *
 * Events and where they come from:
 *   run.failed, run.timed_out    a FINISHED run (FAILED / TIMED_OUT), durable (store subscription)
 *   run.recovered                the first SUCCESS or PARTIAL of a job after failures (the
 *                                failing state survives restarts: read from the store at start)
 *   run.slow                     a run still going at slow_factor x its job's p95 duration (p95 of
 *                                the last 20 runs, learnt from the store when the run STARTED, an
 *                                executor observer event); once per run
 *   job.auto_disabled            the executor's MSG_AUDIT copy (executor observer)
 *   probe.unhealthy, .recovered  MSG_HEALTH from the prober (recovered: unhealthy -> healthy or
 *                                degraded)
 * A notifier's `jobs` filter applies to run.* and job.* events.
 *
 * Delivery: a JSON POST on httpc; `format: slack` sends {"text": ...} instead of the full event.
 * A 2xx answer is delivered; anything else is retried with exponential backoff up to `attempts`
 * times. At most limits.notify_pending deliveries (all notifiers) are pending at once: past it a
 * notification is recorded failed after 0 attempts, not sent. Every notification is kept in a ring
 * in memory (MSG_NOTIFY_GET lists it) and logged: `notify NAME: EVENT SUBJECT delivered (attempt A,
 * HTTP S) to ORIGIN/...` `notify NAME: EVENT SUBJECT attempt A failed: WHY; retry in Dms` `notify
 * NAME: EVENT SUBJECT failed after A attempt(s): WHY` The webhook URL is registered as a secret;
 * only its scheme, host and port are ever logged.
 *
 * Messages it takes: MSG_RUN_EVENT, MSG_HEALTH, MSG_AUDIT, MSG_NOTIFY_GET, MSG_STORE_REPLY (its
 * own statistics requests), and MSG_EXEC_CONFIG: applies the snapshot's notify[] (a removed or
 * changed notifier's deliveries end cleanly) and limits.notification_history (the ring resized,
 * newest kept). */
#ifndef CV_ACTORS_NOTIFIER_H
#define CV_ACTORS_NOTIFIER_H

#include "core/actor.h"
#include "core/cfgcheck.h"
#include "proto/msg.h"

typedef struct notifier notifier_t;

typedef struct notifier_opts {
    cfgref_t *cfg;            /* required: its notify[] and jobs; a reference is taken */
    cv_actor_t *store;        /* optional: job statistics (p95, failing state at start) */
    const char *instance;     /* stamped on every payload */
    int attempts;             /* per notification; 0: 3 */
    int64_t backoff_ms;       /* first retry delay, doubled each time; 0: 1 s */
    int64_t timeout_ms;       /* per attempt; 0: 10 s */
    size_t ring_size;         /* notifications kept; 0: 200 */
    int64_t min_slow_samples; /* runs needed before run.slow applies; 0: 5 */
} notifier_opts_t;

/** Creates the notifier (registers every webhook URL as a secret). Aborts on out-of-memory. */
notifier_t *notifier_create(cv_runtime_t *rt, const notifier_opts_t *opts);
cv_actor_t *notifier_actor(notifier_t *n);
/** Reads each job's failing state from the store (for run.recovered across restarts). */
void notifier_start(notifier_t *n);
/** Notifications delivered / finally failed so far (tests, metrics). */
uint64_t notifier_delivered(const notifier_t *n);
uint64_t notifier_failed(const notifier_t *n);
/** Deliveries of every notifier of the process (loop thread only), for /metrics. */
typedef struct notifier_stats {
    uint64_t pending; /* in flight or waiting for a retry */
    uint64_t dropped; /* not attempted: limits.notify_pending were pending (recorded failed) */
} notifier_stats_t;
void notifier_stats_get(notifier_stats_t *out);
/** Stops: deliveries in flight are cancelled (recorded as failed, logged), timers closed; the
 * notifier is freed once every handle is closed, then cb(ud) runs (may be NULL). */
void notifier_close(notifier_t *n, void (*cb)(void *ud), void *ud);

#endif
