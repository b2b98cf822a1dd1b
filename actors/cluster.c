/* The cluster actor (see cluster.h). Its store requests (typed messages to the store actor,
 * actors/store_actor.h) are grouped in the cluster_store_* functions below; their replies come
 * back as MSG_STORE_REPLY. */
#include "actors/cluster.h"
#include "actors/store_actor.h"
#include "core/log.h"
#include "storage/schema.h"
#include "core/util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cluster {
    cv_actor_t *self;
    store_t *store;          /* its watches only */
    cv_actor_t *store_actor; /* its requests */
    cv_live_t *live;         /* ended by cluster_destroy: late replies are dropped */
    cfgref_t *cfg;
    char *instance;
    int64_t started_at;
    bool once;
    cv_actor_t *supervisor, *api, *executor;
    uv_timer_t heartbeat;
    bool heartbeat_on, heartbeat_busy;
    bool stopping;
    bool listened;                                /* the first LISTEN of this instance is done */
    int64_t beat_every, last_beat, beating_since; /* ms */
};

static void on_dead_swept(cluster_t *c, int status, int64_t count);
static void on_heartbeat_sent(cluster_t *c, int status);
static void on_remote_run(cluster_t *c, int status, run_t *run, run_status_t was);

/* ---- the store calls ---- */

static msg_store_req_t *cluster_req(cluster_t *c, store_op_t op, uint64_t corr)
{
    return store_req_new(op, c->self, corr, c->live, NULL);
}

static void cluster_store_beat(cluster_t *c)
{
    char host[256] = "localhost";
    gethostname(host, sizeof(host) - 1);
    msg_store_req_t *q = cluster_req(c, STORE_OP_HEARTBEAT, 0);
    q->a.instance = (store_instance_t){.id = cv_strdup(c->instance),
                                       .hostname = cv_strdup(host),
                                       .pid = getpid(),
                                       .started_at = c->started_at,
                                       .version = cv_strdup(CV_VERSION)};
    cv_actor_post(c->store_actor, &q->hdr);
}

static void cluster_store_sweep(cluster_t *c)
{
    msg_store_req_t *q = cluster_req(c, STORE_OP_ABANDON_DEAD, 0);
    q->a.since = cv_now_ms() - c->cfg->cfg->cluster.heartbeat_timeout_ms;
    cv_actor_post(c->store_actor, &q->hdr);
}

/* corr: the status the notification announced */
static void cluster_store_get_run(cluster_t *c, int64_t id, run_status_t announced)
{
    msg_store_req_t *q = cluster_req(c, STORE_OP_GET_RUN, (uint64_t)announced);
    q->a.id = id;
    cv_actor_post(c->store_actor, &q->hdr);
}

static void cluster_store_replied(cluster_t *c, const msg_store_reply_t *r)
{
    switch (r->op) {
    case STORE_OP_HEARTBEAT:
        on_heartbeat_sent(c, r->status);
        break;
    case STORE_OP_ABANDON_DEAD:
        on_dead_swept(c, r->status, r->value);
        break;
    case STORE_OP_GET_RUN:
        on_remote_run(c, r->status, r->run, (run_status_t)r->corr);
        break;
    default:
        break;
    }
}

/* ---- heartbeats ---- */

static void on_dead_swept(cluster_t *c, int status, int64_t count)
{
    c->heartbeat_busy = false;
    if (status == 0 && count > 0)
        cv_warn("store", "%lld run(s) of instances that stopped heart-beating marked ABANDONED",
                (long long)count);
}

/* Sweeps only after beating without a gap for a whole timeout: after an outage of the
 * database every live instance gets that long to beat again before anyone judges it dead. */
static void on_heartbeat_sent(cluster_t *c, int status)
{
    int64_t now = cv_now_ms(), timeout = c->cfg->cfg->cluster.heartbeat_timeout_ms;
    if (status == 0 && (c->beating_since == 0 || now - c->last_beat > 2 * c->beat_every))
        c->beating_since = now;
    if (status == 0)
        c->last_beat = now;
    if (status != 0 || c->stopping || c->once || now - c->beating_since < timeout) {
        c->heartbeat_busy = false;
        return;
    }
    cluster_store_sweep(c);
}

static void on_heartbeat_timer(uv_timer_t *t)
{
    cluster_t *c = t->data;
    if (!c->stopping && !c->heartbeat_busy) {
        c->heartbeat_busy = true;
        cluster_store_beat(c);
    }
}

static int64_t beat_interval(const cluster_t *c)
{
    int64_t every = c->cfg->cfg->cluster.heartbeat_timeout_ms / 6;
    return every < 200 ? 200 : every > 5000 ? 5000 : every;
}

/* A reload may change the timeout: beat at the new cadence (a shorter timeout with the old
 * cadence would have the others judge this instance dead). */
static void restart_heartbeat(cluster_t *c)
{
    if (!c->heartbeat_on || beat_interval(c) == c->beat_every)
        return;
    c->beat_every = beat_interval(c);
    uv_timer_start(&c->heartbeat, on_heartbeat_timer, (uint64_t)c->beat_every,
                   (uint64_t)c->beat_every);
}

static void start_heartbeat(cluster_t *c)
{
    int64_t every = beat_interval(c);
    c->beat_every = every;
    c->last_beat = c->beating_since = cv_now_ms(); /* the first heartbeat was sent at start */
    uv_timer_init(cv_runtime_loop(cv_actor_runtime(c->self)), &c->heartbeat);
    c->heartbeat.data = c;
    c->heartbeat_on = true;
    uv_timer_start(&c->heartbeat, on_heartbeat_timer, (uint64_t)every, (uint64_t)every);
}

/* ---- override changes made by other instances ---- */

static void cluster_overrides_dispose(cv_msg_t *m)
{
    free(((msg_cluster_overrides_t *)m)->job);
    free(m);
}

static void on_override_notify(void *ud, const char *job)
{
    cluster_t *c = ud;
    if (c->stopping)
        return;
    msg_cluster_overrides_t *m = cv_msg_new(sizeof(*m), MSG_CLUSTER_OVERRIDES);
    m->hdr.dispose = cluster_overrides_dispose;
    m->job = job ? cv_strdup(job) : NULL;
    cv_actor_post(c->supervisor, &m->hdr);
}

/* ---- the runs and heartbeats of other instances, cancel requests ---- */

/* A notification may be read after the run moved on: a run announced RUNNING that is already
 * over is still shown starting (as it was) before the notification of its end. */
static void on_remote_run(cluster_t *c, int status, run_t *run, run_status_t was)
{
    if (status != 0 || c->stopping || c->api == NULL)
        return;
    msg_run_event_t *e = NULL;
    if (was == RUN_RUNNING && run->status != RUN_QUEUED) {
        e = msg_run_event_new(RUN_EV_STARTED, run);
        if (run_status_final(run->status)) {
            e->run->status = RUN_RUNNING;
            e->run->finished_at = e->run->duration_ms = 0;
            e->run->exit_code = -1;
            e->run->signal = 0;
            free(e->run->error);
            e->run->error = NULL;
        }
    } else if (run_status_final(was) && run_status_final(run->status)) {
        e = msg_run_event_new(RUN_EV_FINISHED, run);
    }
    if (e == NULL)
        return;
    e->remote = true;
    cv_actor_post(c->api, &e->hdr);
}

/* payload "<id> <status> <instance>": the runs of the others only (this daemon's own events
 * reach its API directly). QUEUED is not announced on: a claimed run is QUEUED for a moment. */
static void remote_run_changed(cluster_t *c, const char *payload)
{
    char status[16];
    long long id;
    int off = 0;
    if (sscanf(payload, "%lld %15s %n", &id, status, &off) != 2 || off == 0)
        return;
    run_status_t st;
    if (strcmp(payload + off, c->instance) == 0 || run_status_parse(status, &st) != 0 ||
        st == RUN_QUEUED)
        return;
    cluster_store_get_run(c, id, st);
}

/* payload {"run": id, "instance": owner, "by": who}: cancels the run when it is this one's. */
static void cancel_requested(cluster_t *c, const char *payload)
{
    json_t *o = json_loads(payload, 0, NULL);
    json_int_t id = json_integer_value(json_object_get(o, "run"));
    const char *owner = json_string_value(json_object_get(o, "instance"));
    const char *by = json_string_value(json_object_get(o, "by"));
    if (id > 0 && (owner == NULL || strcmp(owner, c->instance) == 0) && c->executor) {
        cv_info("daemon", "run %lld: cancel asked by %s", (long long)id, by ? by : "?");
        msg_cancel_t *m = msg_cancel_new(id, by ? by : "another instance");
        cv_actor_post(c->executor, &m->hdr);
    }
    json_decref(o);
}

static void on_store_event(void *ud, const char *channel, const char *payload)
{
    cluster_t *c = ud;
    if (c->stopping || c->api == NULL)
        return;
    if (channel == NULL) { /* reconnected: what was missed meanwhile */
        if (c->listened)
            cv_info("daemon", "listening to the other instances again: resyncing the API's view");
        else
            cv_info("daemon", "listening to the other instances");
        c->listened = true;
        msg_instance_beat_t *b = msg_instance_beat_new(NULL, 0);
        cv_actor_post(c->api, &b->hdr);
        return;
    }
    if (payload == NULL)
        return;
    if (strcmp(channel, STORE_CHANNEL_RUNS) == 0) {
        remote_run_changed(c, payload);
    } else if (strcmp(channel, STORE_CHANNEL_CANCEL) == 0) {
        cancel_requested(c, payload);
    } else if (strcmp(channel, STORE_CHANNEL_INSTANCES) == 0) {
        char *end = NULL;
        long long seen = strtoll(payload, &end, 10);
        if (end && *end == ' ') {
            msg_instance_beat_t *b = msg_instance_beat_new(end + 1, seen);
            cv_actor_post(c->api, &b->hdr);
        }
    }
}

/* ---- the mailbox ---- */

static void handle(cv_actor_t *self, cv_msg_t *msg)
{
    cluster_t *c = cv_actor_state(self);
    switch (msg->type) {
    case MSG_EXEC_CONFIG: {
        msg_exec_config_t *m = (msg_exec_config_t *)msg;
        cfgref_t *old = c->cfg;
        c->cfg = cfgref_get(m->cfg);
        cfgref_put(old);
        restart_heartbeat(c);
        break;
    }
    case MSG_SHUTDOWN:
        c->stopping = true;
        break;
    case MSG_STORE_REPLY:
        cluster_store_replied(c, (const msg_store_reply_t *)msg);
        break;
    default:
        break;
    }
}

cluster_t *cluster_create(cv_runtime_t *rt, const cluster_opts_t *o)
{
    cluster_t *c = cv_calloc(1, sizeof(*c));
    c->store = o->store;
    c->store_actor = o->store_actor;
    c->live = cv_live_new();
    c->cfg = cfgref_get(o->cfg);
    c->instance = cv_strdup(o->instance);
    c->started_at = o->started_at;
    c->once = o->once;
    c->supervisor = o->supervisor;
    c->api = o->api;
    c->executor = o->executor;
    c->self = cv_actor_create(rt, "cluster", handle, c);
    start_heartbeat(c);
    if (!c->once) {
        store_watch_overrides(c->store, on_override_notify, c);
        if (c->api)
            store_watch_events(c->store, on_store_event, c);
    }
    return c;
}

cv_actor_t *cluster_actor(cluster_t *c)
{
    return c->self;
}

static void on_timer_closed(uv_handle_t *h)
{
}

void cluster_stop(cluster_t *c)
{
    c->stopping = true;
    if (c->heartbeat_on)
        uv_close((uv_handle_t *)&c->heartbeat, on_timer_closed);
    c->heartbeat_on = false;
}

void cluster_destroy(cluster_t *c)
{
    if (c == NULL)
        return;
    cv_actor_destroy(c->self);
    cv_live_end(c->live);
    cfgref_put(c->cfg);
    free(c->instance);
    free(c);
}
