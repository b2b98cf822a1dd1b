/* The http actor: creation, its mailbox, store calls and shutdown. See http/api.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/cfgdiff.h"
#include "core/log.h"
#include "http/api_int.h"
#include "http/ui.h"

/* ---- store calls ---- */

/* One typed request in flight to the store actor, until its reply comes back. */
typedef struct call {
    cv_list_t link; /* in a->store_calls */
    uint64_t corr;
    api__store_done_t done;
    void *ud;
} call_t;

void api__store_call(api_t *a, api_req_t *req, msg_store_req_t *q, api__store_done_t done, void *ud)
{
    q->reply_to = done ? a->actor : NULL;
    q->corr = ++a->next_corr;
    q->live = cv_live_ref(a->live);
    if (req != NULL)
        q->cancel = api_req_live(req); /* a new reference, ended once req is gone */
    if (done != NULL) {
        call_t *c = cv_calloc(1, sizeof(*c));
        c->corr = q->corr;
        c->done = done;
        c->ud = ud;
        cv_list_insert_tail(&a->store_calls, &c->link);
    }
    cv_actor_post(a->store, &q->hdr);
}

static void store_replied(api_t *a, msg_store_reply_t *r)
{
    for (cv_list_t *n = a->store_calls.next; n != &a->store_calls; n = n->next) {
        call_t *c = cv_container_of(n, call_t, link);
        if (c->corr != r->corr)
            continue;
        cv_list_remove(&c->link);
        if (r->status == -ECANCELED)
            a->store_calls_cancelled++; /* its client was gone: the store work was not done */
        c->done(a, c->ud, r);
        free(c);
        return;
    }
}

/* Closing: the calls still out are answered -ESHUTDOWN here (their replies, if any, are
 * dropped by the store actor: a->live is ended). */
static void store_calls_abort(api_t *a)
{
    while (!cv_list_empty(&a->store_calls)) {
        call_t *c = cv_container_of(a->store_calls.next, call_t, link);
        cv_list_remove(&c->link);
        msg_store_reply_t *r = store_reply_new(0, c->corr, -ESHUTDOWN);
        c->done(a, c->ud, r);
        r->hdr.dispose(&r->hdr);
        free(c);
    }
}

/* ---- the mailbox ---- */

static api_server_opts_t server_limits(const cfg_t *cfg)
{
    const cfg_server_t *sv = &cfg->server;
    return (api_server_opts_t){.max_body = (size_t)sv->max_body,
                               .idle_timeout_ms = (uint32_t)sv->request_timeout_ms,
                               .max_connections = (size_t)sv->max_connections,
                               .max_streams = (unsigned)sv->max_streams,
                               .max_pending = (size_t)sv->max_pending,
                               .max_resets = (unsigned)sv->max_resets,
                               .write_timeout_ms = (uint64_t)sv->write_timeout * 1000};
}

static ws_hub_opts_t hub_limits(const cfg_t *cfg)
{
    const cfg_server_t *sv = &cfg->server; /* 0 (or unset) takes the hub's default */
    return (ws_hub_opts_t){.max_queued = sv->ws_max_queued_bytes > 0 ? sv->ws_max_queued_bytes : 0,
                           .max_msg = sv->ws_max_message_bytes > 0 ? sv->ws_max_message_bytes : 0,
                           .max_clients = sv->ws_max_clients > 0 ? sv->ws_max_clients : 0,
                           .max_topics = sv->ws_max_topics > 0 ? sv->ws_max_topics : 0};
}

static const cfg_probe_t *probe_named(const cfg_t *cfg, const char *name)
{
    for (unsigned i = 0; i < cfg->n_probes; i++)
        if (strcmp(cfg->probes[i].name, name) == 0)
            return &cfg->probes[i];
    return NULL;
}

/* The probe states known (for /metrics) of probes removed or changed by a reload go: the prober
 * starts a changed probe again from unknown. */
static void forget_probes(api_t *a, const cfg_t *old, const cfg_t *cfg)
{
    size_t keep = 0;
    for (size_t i = 0; i < a->nprobes; i++) {
        api__probe_t *p = &a->probes[i];
        const cfg_probe_t *was = probe_named(old, p->name), *now = probe_named(cfg, p->name);
        if (was == NULL ? strcmp(p->name, "store") == 0
                        : now != NULL && cfgdiff_probe_eq(was, now)) {
            a->probes[keep++] = *p;
            continue;
        }
        free(p->name);
        free(p->status);
        free(p->error);
    }
    a->nprobes = keep;
}

/* A snapshot: the model (jobs, links, limits shown), and the server.* bounds for what comes
 * next. Tokens and the rate limit were applied by api_reload_auth before the reload was
 * accepted (it may refuse). After a reload the dashboard is told which jobs came and went
 * (job.added, job.removed) and what changed (config.reloaded). */
static void on_config(api_t *a, msg_exec_config_t *c)
{
    bool reload = c->summary != NULL; /* NULL for the snapshot at start */
    size_t nold = a->njobs;
    api__job_t **old = cv_calloc(nold + 1, sizeof(*old));
    if (nold)
        memcpy(old, a->jobs, nold * sizeof(*old));
    api_server_opts_t so = server_limits(c->cfg->cfg);
    api_server_set_limits(a->srv, &so);
    if (a->hub != NULL) {
        ws_hub_opts_t ho = hub_limits(c->cfg->cfg);
        ws_hub_set_limits(a->hub, &ho);
    }
    if (a->cfg != NULL && a->cfg != c->cfg)
        forget_probes(a, a->cfg->cfg, c->cfg->cfg);
    api__model_config(a, c->cfg);
    if (reload)
        api__model_reloaded(a, old, nold, c->summary);
    free(old);
    api__model_refresh_new_stats(a);
}

/* Auto-disables and the changes made on other instances; those already known (made through
 * this instance's API, then announced back by the database) are not published again. */
static void on_override(api_t *a, const msg_override_t *o)
{
    if (!api__model_override(a, o->job, o->field, o->value, o->by))
        return;
    api__job_t *j = api__job_find(a, o->job);
    if (j != NULL)
        api__publish_job(a, j);
}

static void handle(cv_actor_t *self, cv_msg_t *msg)
{
    api_t *a = cv_actor_state(self);
    switch (msg->type) {
    case MSG_EXEC_CONFIG:
        on_config(a, (msg_exec_config_t *)msg);
        break;
    case MSG_RUN_EVENT:
        api__model_event(a, (msg_run_event_t *)msg);
        break;
    case MSG_RUN_OUTPUT:
        api__model_output(a, (msg_run_output_t *)msg);
        break;
    case MSG_FIRE_REPLY:
        api__trigger_replied(a, (msg_fire_reply_t *)msg);
        break;
    case MSG_OVERRIDE:
        on_override(a, (msg_override_t *)msg);
        break;
    case MSG_HEALTH:
        api__model_health(a, (msg_health_t *)msg);
        break;
    case MSG_INSTANCE_BEAT: {
        msg_instance_beat_t *b = (msg_instance_beat_t *)msg;
        if (b->id == NULL)
            api__model_resync(a);
        else
            api__model_instance_beat(a, b);
        break;
    }
    case MSG_HEALTH_LIST:
        api__health_replied(a, (msg_health_list_t *)msg);
        break;
    case MSG_RELOAD_REPLY:
        api__reload_replied(a, (msg_reload_reply_t *)msg);
        break;
    case MSG_NOTIFY_LIST:
        api__notifications_replied(a, (msg_notify_list_t *)msg);
        break;
    case MSG_STORE_STATE:
        api__store_state(a, (msg_store_state_t *)msg);
        break;
    case MSG_STORE_REPLY:
        store_replied(a, (msg_store_reply_t *)msg);
        break;
    case MSG_PING_DONE: /* a ping posted to the executor is recorded (api_ping.c) */
        if (a->pings_waiting > 0)
            a->pings_waiting--;
        break;
    case MSG_AUDIT: /* the executor's audit copies: its MSG_OVERRIDE copy carries the change */
        break;
    case MSG_SHUTDOWN: /* the daemon stops: not ready any more (the API serves until closed) */
        a->stopping = true;
        break;
    default:
        cv_warn("http", "unexpected message type %d", msg->type);
    }
}

/* ---- creation ---- */

/* The token table of cfg, for auth_create or auth_reload (caller frees; the strings are cfg's). */
static auth_token_conf_t *token_confs(const cfg_t *cfg)
{
    auth_token_conf_t *confs = cv_calloc(cfg->auth.n_tokens + 1, sizeof(*confs));
    for (unsigned i = 0; i < cfg->auth.n_tokens; i++) {
        const cfg_token_t *t = &cfg->auth.tokens[i];
        confs[i].name = t->name;
        confs[i].role = (auth_role_t)t->role;
        confs[i].token = t->token;
        confs[i].sha256_hex = t->sha256;
    }
    return confs;
}

/* auth.proxy of cfg (the strings are cfg's). */
static auth_proxy_conf_t proxy_conf(const cfg_t *cfg)
{
    const cfg_proxy_t *p = &cfg->auth.proxy;
    return (auth_proxy_conf_t){.user_header = p->user_header,
                               .role_header = p->role_header,
                               .from = p->from,
                               .nfrom = p->n_from,
                               .default_role = (auth_role_t)p->default_role};
}

static auth_t *make_auth(const cfg_t *cfg, char **err)
{
    auth_token_conf_t *confs = token_confs(cfg);
    auth_opts_t ao = {.tokens = confs,
                      .ntokens = cfg->auth.n_tokens,
                      .rate_per_sec = cfg->auth.rate_per_second,
                      .rate_burst = cfg->auth.rate_burst,
                      .max_tickets = (size_t)cfg->server.ws_max_tickets,
                      .max_caller_tickets = (size_t)cfg->server.ws_max_tickets_per_caller,
                      .proxy = proxy_conf(cfg)};
    auth_t *auth = auth_create(&ao, err);
    free(confs);
    return auth;
}

int api_reload_auth(api_t *a, const cfg_t *cfg, char **err)
{
    *err = NULL;
    int rc = auth_listen_allowed(a->listen, cfg->auth.n_tokens, err);
    if (rc != 0)
        return rc;
    auth_token_conf_t *confs = token_confs(cfg);
    auth_opts_t ao = {.tokens = confs,
                      .ntokens = cfg->auth.n_tokens,
                      .rate_per_sec = cfg->auth.rate_per_second,
                      .rate_burst = cfg->auth.rate_burst,
                      .max_tickets = (size_t)cfg->server.ws_max_tickets,
                      .max_caller_tickets = (size_t)cfg->server.ws_max_tickets_per_caller,
                      .proxy = proxy_conf(cfg)};
    rc = auth_reload(a->auth, &ao, err);
    free(confs);
    if (rc == 0 && a->hub != NULL)
        ws_hub_revalidate(a->hub);
    return rc;
}

static int add_routes(api_t *a)
{
    int rc = api__routes_jobs(a);
    if (rc == 0)
        rc = api__routes_runs(a);
    if (rc == 0)
        rc = api__routes_metrics(a);
    if (rc == 0)
        rc = api__routes_ping(a);
    if (rc == 0)
        rc = api__health_routes(a);
    if (rc == 0)
        rc = ui_routes(a->srv); /* the dashboard (http/ui.h) */
    return rc;
}

static void apply_overrides(api_t *a, const store_override_t *ov, size_t n)
{
    for (size_t i = 0; i < n; i++)
        api__model_override(a, ov[i].job, ov[i].field, ov[i].value, ov[i].updated_by);
}

static void log_listening(api_t *a, const cfg_t *cfg)
{
    char host[256];
    int port = 0;
    auth_split_listen(cfg->server.listen, host, sizeof(host), &port);
    bool v6 = strchr(host, ':') != NULL;
    cv_info("http", "listening on %s://%s%s%s:%d", cfg->server.tls.cert ? "https" : "http",
            v6 ? "[" : "", host, v6 ? "]" : "", api_server_port(a->srv));
    if (auth_is_open(a->auth))
        cv_warn("http",
                "no API tokens configured: the API is open (read-write, admin) to anyone "
                "who can reach %s (loopback only)",
                cfg->server.listen);
}

api_t *api_create(cv_runtime_t *rt, const api_opts_t *opts, char **err)
{
    const cfg_t *cfg = opts->cfg->cfg;
    *err = NULL;
    auth_t *auth = make_auth(cfg, err);
    if (auth == NULL)
        return NULL;
    api_server_opts_t so = {.listen = cfg->server.listen ? cfg->server.listen : "127.0.0.1:8080",
                            .auth = auth,
                            .tls_cert_file = cfg->server.tls.cert,
                            .tls_key_file = cfg->server.tls.key,
                            .max_body = (size_t)cfg->server.max_body,
                            .idle_timeout_ms = (uint32_t)cfg->server.request_timeout_ms,
                            .max_connections = (size_t)cfg->server.max_connections,
                            .max_streams = (unsigned)cfg->server.max_streams,
                            .max_pending = (size_t)cfg->server.max_pending,
                            .max_resets = (unsigned)cfg->server.max_resets,
                            .write_timeout_ms = (uint64_t)cfg->server.write_timeout * 1000};
    api_server_t *srv = api_server_create(cv_runtime_loop(rt), &so, err);
    if (srv == NULL) {
        auth_destroy(auth);
        return NULL;
    }
    api_t *a = cv_calloc(1, sizeof(*a));
    a->auth = auth;
    a->srv = srv;
    a->store = opts->store;
    a->supervisor = opts->supervisor;
    a->instance = cv_strdup(opts->instance ? opts->instance : "local");
    a->listen = cv_strdup(so.listen);
    a->started_ms = cv_now_ms();
    cv_list_init(&a->active);
    cv_list_init(&a->triggers);
    cv_list_init(&a->stats_waiters);
    cv_list_init(&a->queries);
    cv_list_init(&a->store_calls);
    a->live = cv_live_new();
    ws_hub_opts_t ho = hub_limits(cfg);
    a->hub = ws_hub_create(srv, &ho);
    if (a->hub == NULL || add_routes(a) != 0)
        cv_error("http", "the API routes could not all be added");
    api__model_config(a, opts->cfg);
    apply_overrides(a, opts->overrides, opts->n_overrides);
    a->actor = cv_actor_create(rt, "http", handle, a);
    log_listening(a, cfg);
    return a;
}

cv_actor_t *api_actor(api_t *a)
{
    return a->actor;
}

void api_set_peers(api_t *a, cv_actor_t *executor, cv_actor_t *scheduler)
{
    a->executor = executor;
    a->scheduler = scheduler;
    api__model_refresh_new_stats(a);
}

void api_set_health_peers(api_t *a, cv_actor_t *prober, cv_actor_t *notifier)
{
    a->prober = prober;
    a->notifier = notifier;
}

int api_port(const api_t *a)
{
    return api_server_port(a->srv);
}

/* ---- closing ---- */

void api__free(api_t *a)
{
    api__model_free(a);
    if (a->cfg)
        cfgref_put(a->cfg);
    free(a->instance);
    free(a->listen);
    free(a);
}

static void on_server_closed(api_server_t *srv, void *data)
{
    api_t *a = data;
    auth_destroy(a->auth);
    a->auth = NULL;
    a->srv = NULL;
    void (*cb)(void *) = a->close_cb;
    void *ud = a->close_ud;
    if (a->pending == 0)
        api__free(a);
    if (cb)
        cb(ud);
}

void api_close(api_t *a, void (*cb)(void *ud), void *ud)
{
    a->closed = true;
    a->close_cb = cb;
    a->close_ud = ud;
    cv_actor_destroy(a->actor);
    a->actor = NULL;
    cv_live_end(a->live);
    a->live = NULL;
    store_calls_abort(a);
    api__triggers_abort(a);
    api__queries_abort(a);
    api__stats_waiters_abort(a);
    a->hub = NULL; /* freed by the server */
    api_server_close(a->srv, on_server_closed, a);
}
