/* The cluster actor: this instance's duties towards the others sharing a PostgreSQL store.
 *
 * Started by the supervisor only when the store is shared (store_is_shared). It heart-beats
 * every sixth of cluster.heartbeat_timeout (between 0.2 s and 5 s), each beat followed by a sweep
 * of the runs of instances that stopped heart-beating (not in --once mode), and relays what the
 * store hears by LISTEN/NOTIFY:
 *
 *   override changed        --MSG_CLUSTER_OVERRIDES--> supervisor (re-reads the overrides)
 *   run of another instance --MSG_RUN_EVENT (remote)--> api
 *   cancel asked elsewhere  --MSG_CANCEL-->             executor (runs of this instance only)
 *   instance heartbeat      --MSG_INSTANCE_BEAT-->      api (NULL instance: resync after a gap)
 *
 * It receives MSG_EXEC_CONFIG (a new heartbeat timeout: beat at the new cadence) and
 * MSG_SHUTDOWN (stop beating and relaying). */
#ifndef CV_ACTORS_CLUSTER_H
#define CV_ACTORS_CLUSTER_H

#include "core/actor.h"
#include "core/cfgcheck.h"
#include "proto/msg.h"
#include "storage/store.h"

typedef struct cluster cluster_t;

/* MSG_CLUSTER_OVERRIDES (proto/msg.h), to the supervisor: another instance changed a runtime
 * override. */
typedef struct {
    cv_msg_t hdr;
    char *job; /* NULL: changes missed while the database was unreachable */
} msg_cluster_overrides_t;

typedef struct cluster_opts {
    store_t *store;          /* for its watches (LISTEN) only */
    cv_actor_t *store_actor; /* every store request (heartbeats, sweeps, reads) */
    cfgref_t *cfg;           /* a reference is taken */
    const char *instance;
    int64_t started_at;     /* ms */
    bool once;              /* --once: heartbeats only (no sweep, no relay) */
    cv_actor_t *supervisor; /* MSG_CLUSTER_OVERRIDES */
    cv_actor_t *api;        /* remote runs and instance beats; NULL: nothing relayed */
    cv_actor_t *executor;   /* cancel requests */
} cluster_opts_t;

/** Creates the actor and starts beating (the supervisor sent the first heartbeat at start-up)
 * and listening. */
cluster_t *cluster_create(cv_runtime_t *rt, const cluster_opts_t *opts);
cv_actor_t *cluster_actor(cluster_t *c);
/** Stops beating and relaying (closes its timer). The store may still call back until it is
 * closed: destroy only after store_close. */
void cluster_stop(cluster_t *c);
void cluster_destroy(cluster_t *c);

#endif
