/* The prober actor: health checks of the services the jobs depend on.
 *
 * Each entry of `probes[]` (core/config.h, cfg_probe_t) is checked every `interval` on its own
 * timer, with a deadline of `timeout`: http (on core/httpc.h), postgres (libpq's non-blocking API
 * on uv_poll), redis (hiredis' libuv adapter), tcp (a connect) and exec (a command that must exit
 * 0, on actors/proc.h). The store itself is always a probe, named "store" (a store_ping through
 * the store actor). No check blocks the loop: host names are resolved with uv_getaddrinfo before
 * libpq or hiredis see them, and a check whose server hangs ends at its deadline while the other
 * probes keep their schedule. A check that is still running when its interval comes again is not
 * started twice.
 *
 * A result (proto/msg.h health_result_t) is healthy, degraded (answered slower than
 * degraded_after), unhealthy (failed fail_after times in a row) or unknown (not known yet). Its
 * message never holds a registered secret (passwords in conninfo and redis URLs are registered
 * when the prober is created). Every status change is logged as
 *   `probe NAME status=S previous=P latency=Lms: message`
 * and posted as MSG_HEALTH to every observer.
 *
 * Messages it takes: MSG_HEALTH_GET, MSG_HEALTH_REFRESH (see proto/msg.h), MSG_STORE_STATE (with
 * store_passive: the store probe's status: degraded is unhealthy) and MSG_EXEC_CONFIG:
 * applies the snapshot's probes[] (added start now, removed stop, changed restart from unknown,
 * unchanged keep their status and history). */
#ifndef CV_ACTORS_PROBER_H
#define CV_ACTORS_PROBER_H

#include "core/actor.h"
#include "core/cfgcheck.h"
#include "proto/msg.h"

typedef struct prober prober_t;

#define PROBER_MAX_OBSERVERS 8

typedef struct prober_opts {
    cfgref_t *cfg;             /* required: its probes[]; a reference is taken */
    cv_actor_t *store;         /* the store actor; NULL: no "store" probe */
    int64_t store_interval_ms; /* 0: 30 s */
    int64_t store_timeout_ms;  /* 0: 5 s */
    /* The store's health follows its writes (SQLite): the "store" probe pings once at start and
     * on a refresh, then takes its status from MSG_STORE_STATE (the supervisor makes the prober
     * watch the store actor's state): no periodic ping wakes an idle daemon. */
    bool store_passive;
} prober_opts_t;

/** Creates the prober (no check runs before prober_start). Aborts on out-of-memory. */
prober_t *prober_create(cv_runtime_t *rt, const prober_opts_t *opts);
cv_actor_t *prober_actor(prober_t *p);
/** Adds an actor that receives MSG_HEALTH on every status change (the executor, the notifier,
 * the API hub). Returns 0, or -ENOSPC beyond PROBER_MAX_OBSERVERS. */
int prober_add_observer(prober_t *p, cv_actor_t *observer);
/** Starts every probe's schedule: each is checked now, then every interval. */
void prober_start(prober_t *p);
/** Number of checks completed so far (tests and metrics). */
uint64_t prober_checks(const prober_t *p);
/** Stops: aborts checks in flight (nothing more is posted), closes every handle and frees the
 * prober once they are closed, then calls cb(ud) (may be NULL). Queued messages for the actor
 * are dropped; refresh requests waiting get no reply. */
void prober_close(prober_t *p, void (*cb)(void *ud), void *ud);

#endif
