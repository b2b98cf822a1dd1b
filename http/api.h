/* The http actor: the daemon's REST API, WebSocket event stream and /metrics (issue 4), built on
 * http/server.h (routes, replies), http/auth.h (tokens, roles, rate limits, tickets) and
 * http/ws.h (the event hub). The REST API is described in proto/openapi.yaml, served at
 * /api/openapi.yaml.
 *
 * The actor owns the api_server_t, the auth_t, the ws hub and a read model of the jobs:
 *   - definitions from the configuration (MSG_EXEC_CONFIG, at start and on every reload) with the
 *     runtime overrides (given at creation, then changed through the API or by the executor's
 *     auto-disable, which it receives as MSG_OVERRIDE);
 *   - next fire instants computed here with the cron engine from the effective schedule (cached
 *     until they pass; no coupling to the scheduler);
 *   - running and queued counts and the last run, from the executor's events (it is the
 *     executor's `hub`) and the store's durable FINISHED events (it subscribes to the store actor);
 *   - statistics from store_job_stats, read at start and after each finished run of a job.
 * Handlers read the store only through typed requests to the store actor (MSG_STORE_REQ,
 * actors/store_actor.h); triggers are MSG_FIRE with a reply; cancels MSG_CANCEL; schedule and
 * enable changes MSG_OVERRIDE + MSG_AUDIT to the store and MSG_JOB_SCHEDULE / MSG_JOB_ENABLE to the
 * scheduler.
 *
 * POST /api/reload (admin) asks the supervisor (MSG_RELOAD) and answers with its MSG_RELOAD_REPLY.
 *
 * Messages it takes: MSG_EXEC_CONFIG, MSG_RUN_EVENT, MSG_RUN_OUTPUT, MSG_FIRE_REPLY,
 * MSG_RELOAD_REPLY, MSG_OVERRIDE (auto-disable copies), MSG_HEALTH (probe states: the prober's hook
 * into /metrics and the health.changed event). On MSG_EXEC_CONFIG it applies the jobs, links,
 * limits shown and the server.* / ws_* bounds to new connections and requests (tokens and rate
 * limits: api_reload_auth). */
#ifndef CV_HTTP_API_H
#define CV_HTTP_API_H

#include <stddef.h>
#include <stdint.h>

#include "core/actor.h"
#include "core/cfgcheck.h"
#include "storage/store.h"

typedef struct api api_t;

typedef struct api_opts {
    cfgref_t *cfg;                     /* server.listen, server.tls, auth.tokens; a reference is
                                        * taken (later configs arrive as MSG_EXEC_CONFIG) */
    cv_actor_t *store;                 /* the store actor: reads, overrides, audit (required) */
    cv_actor_t *supervisor;            /* POST /api/reload (MSG_RELOAD); NULL: 404 */
    const store_override_t *overrides; /* the overrides at start (copied) */
    size_t n_overrides;
    const char *instance; /* this daemon's instance id (for /metrics) */
} api_opts_t;

/** Creates the actor and starts listening on cfg->server.listen. Returns NULL with a heap
 * message in *err (caller frees) when the address is malformed or taken, TLS files are bad, a
 * token is invalid, or the address is not loopback while no token is configured. Logs
 * "listening on http(s)://HOST:PORT" (the bound port, so port 0 can be found). */
api_t *api_create(cv_runtime_t *rt, const api_opts_t *opts, char **err);
/** The actor to give the executor as its hub and to subscribe to the store actor. */
cv_actor_t *api_actor(api_t *a);
/** Tells the actor where the executor (triggers, cancels) and the scheduler (enable, schedule)
 * are; both are created after it. scheduler may be NULL (--once). */
void api_set_peers(api_t *a, cv_actor_t *executor, cv_actor_t *scheduler);
/** Tells the API where the prober and the notifier are (GET /api/health, /api/notifications);
 * either may be NULL. */
void api_set_health_peers(api_t *a, cv_actor_t *prober, cv_actor_t *notifier);
/** The bound TCP port. */
int api_port(const api_t *a);
/** Applies the API tokens of cfg at once (SIGHUP): requests with a removed token get 401 from
 * now on, role changes apply to the next request, and open WebSocket sessions of removed tokens
 * are closed. The listen address is the running one (it changes only with a restart): a table
 * without tokens is refused unless it is loopback. Returns 0, or -EINVAL / -EPERM with *err set
 * (heap, caller frees) and nothing changed. */
int api_reload_auth(api_t *a, const cfg_t *cfg, char **err);
/** Stops taking messages, closes the server (requests waiting for an answer get 503) and frees
 * everything once h2o released its handles; then cb(ud). Store calls still in flight finish
 * harmlessly: call this before store_close so they can run. */
void api_close(api_t *a, void (*cb)(void *ud), void *ud);

#endif
