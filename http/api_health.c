/* Health and notification endpoints: GET /api/health, POST /api/health/refresh (all probes or
 * ?probe=NAME; answers once the fresh results are in), GET /api/notifications, and GET /api/info
 * (version, instance, the configuration's links), GET /api/instances (the daemons sharing the
 * store, from their heartbeats: empty on SQLite), POST /api/reload (admin: the supervisor reloads
 * the configuration file as on SIGHUP). The prober and the notifier own the data; the
 * http actor asks them by message (MSG_HEALTH_GET / MSG_HEALTH_REFRESH / MSG_NOTIFY_GET) and
 * answers the deferred request when their reply arrives. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/api_int.h"

/* A request waiting for the prober's or the notifier's answer. */
typedef struct query {
    cv_list_t link;
    uint64_t corr;
    api_req_t *req;
} query_t;

static void ask(api_t *a, api_req_t *req, cv_actor_t *to, cv_msg_t *m, uint64_t corr)
{
    query_t *q = cv_calloc(1, sizeof(*q));
    q->corr = corr;
    q->req = req;
    cv_list_insert_tail(&a->queries, &q->link);
    api_req_defer(req);
    cv_actor_post(to, m);
}

static query_t *take(api_t *a, uint64_t corr)
{
    for (cv_list_t *n = a->queries.next; n != &a->queries; n = n->next) {
        query_t *q = cv_container_of(n, query_t, link);
        if (q->corr == corr) {
            cv_list_remove(n);
            return q;
        }
    }
    return NULL;
}

static void h_health(api_req_t *req, void *data)
{
    api_t *a = data;
    if (a->prober == NULL) {
        api_reply_json(req, 200, json_pack("{s:[]}", "probes"));
        return;
    }
    uint64_t corr = ++a->next_corr;
    msg_health_query_t *m = msg_health_query_new(MSG_HEALTH_GET, NULL, a->actor, corr);
    ask(a, req, a->prober, &m->hdr, corr);
}

static void h_health_refresh(api_req_t *req, void *data)
{
    api_t *a = data;
    const char *probe = api_req_query(req, "probe");
    if (a->prober == NULL) {
        api_reply_error(req, 404, "not_found", "no probes are configured");
        return;
    }
    uint64_t corr = ++a->next_corr;
    msg_health_query_t *m =
        msg_health_query_new(MSG_HEALTH_REFRESH, probe && *probe ? probe : NULL, a->actor, corr);
    ask(a, req, a->prober, &m->hdr, corr);
}

void api__health_replied(api_t *a, const msg_health_list_t *l)
{
    query_t *q = take(a, l->corr);
    if (q == NULL)
        return;
    if (l->error) {
        api_reply_error(q->req, 404, "not_found", l->error);
    } else {
        json_t *arr = json_array();
        for (size_t i = 0; i < l->count; i++)
            json_array_append_new(arr, api__health_json(&l->items[i]));
        api_reply_json(q->req, 200, json_pack("{s:o}", "probes", arr));
    }
    free(q);
}

static void h_notifications(api_req_t *req, void *data)
{
    api_t *a = data;
    if (a->notifier == NULL) {
        api_reply_json(req, 200, json_pack("{s:[]}", "notifications"));
        return;
    }
    const char *limit = api_req_query(req, "limit");
    uint64_t corr = ++a->next_corr;
    msg_notify_query_t *m = cv_msg_new(sizeof(*m), MSG_NOTIFY_GET);
    m->reply_to = a->actor;
    m->corr = corr;
    m->limit = limit ? (size_t)strtoul(limit, NULL, 10) : 100;
    ask(a, req, a->notifier, &m->hdr, corr);
}

static json_t *notify_json(const notify_record_t *r)
{
    return json_pack(
        "{s:I,s:s,s:s,s:s,s:o,s:o,s:o,s:i,s:b,s:b,s:I,s:o}", "id", (json_int_t)r->id, "notifier",
        r->notifier, "event", r->event, "subject", r->subject ? r->subject : "", "run_id",
        r->run_id ? json_integer(r->run_id) : json_null(), "created_at", api__jtime(r->created_at),
        "finished_at", api__jtime(r->finished_at), "attempts", r->attempts, "pending", r->pending,
        "delivered", r->delivered, "http_status", (json_int_t)r->http_status, "last_error",
        r->last_error ? api__jstr(r->last_error) : json_null());
}

void api__notifications_replied(api_t *a, const msg_notify_list_t *l)
{
    query_t *q = take(a, l->corr);
    if (q == NULL)
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < l->count; i++)
        json_array_append_new(arr, notify_json(&l->items[i]));
    api_reply_json(q->req, 200, json_pack("{s:o}", "notifications", arr));
    free(q);
}

void api__queries_abort(api_t *a)
{
    while (!cv_list_empty(&a->queries)) {
        query_t *q = cv_container_of(a->queries.next, query_t, link);
        cv_list_remove(&q->link);
        api_reply_error(q->req, 503, "shutting_down", "the daemon is shutting down");
        free(q);
    }
}

static void h_info(api_req_t *req, void *data)
{
    api_t *a = data;
    const cfg_t *cfg = a->cfg->cfg;
    json_t *links = json_array();
    for (unsigned i = 0; i < cfg->n_links; i++)
        json_array_append_new(
            links, json_pack("{s:s,s:s}", "title", cfg->links[i].title, "url", cfg->links[i].url));
    /* who asks: the dashboard signs a person named by the trusted proxy in without a token */
    json_t *you = json_pack("{s:o,s:s,s:b}", "name", api__jstr(req->principal->name), "role",
                            auth_role_name(req->principal->role), "person", req->principal->person);
    api_reply_json(req, 200,
                   json_pack("{s:s,s:s,s:o,s:o,s:o}", "version", CV_VERSION, "instance",
                             a->instance, "started_at", api__jtime(a->started_ms), "links", links,
                             "you", you));
}

/* ---- instances (through the store actor) ----
 * The instances table (empty on SQLite, where this daemon is listed alone) and the RUNNING runs
 * of the store, by instance: what each one is running. */

typedef struct {
    api_req_t *req;
    char *self; /* this daemon's instance id (the api may be gone when the store answers) */
    int64_t started_ms, timeout_ms;
    run_t **running;
    size_t nrunning;
} icall_t;

static void icall_free(icall_t *c)
{
    for (size_t i = 0; i < c->nrunning; i++)
        run_free(c->running[i]);
    free(c->running);
    free(c->self);
    free(c);
}

static json_t *instance_json(const icall_t *c, const store_instance_t *in, int64_t now)
{
    json_t *running = json_array();
    for (size_t i = 0; i < c->nrunning; i++) {
        const run_t *r = c->running[i];
        if (r->instance && strcmp(r->instance, in->id) == 0)
            json_array_append_new(running,
                                  json_pack("{s:I,s:o,s:s,s:o}", "id", (json_int_t)r->id, "job",
                                            api__jstr(r->job), "trigger", r->trigger, "started_at",
                                            api__jtime(r->started_at)));
    }
    bool self = strcmp(in->id, c->self) == 0;
    return json_pack("{s:o,s:o,s:I,s:s,s:o,s:o,s:b,s:b,s:o}", "id", api__jstr(in->id), "hostname",
                     api__jstr(in->hostname ? in->hostname : ""), "pid", (json_int_t)in->pid,
                     "version", in->version ? in->version : "", "started_at",
                     api__jtime(in->started_at), "last_seen", api__jtime(in->last_seen), "self",
                     self, "alive", self || in->last_seen >= now - c->timeout_ms, "running",
                     running);
}

static void on_instances(api_t *a, void *ud, msg_store_reply_t *r)
{
    icall_t *c = ud;
    const store_instance_t *inst = r->instances;
    size_t count = r->ninstances;
    if (r->status == 0) { /* the RUNNING runs, taken */
        c->running = r->page.runs;
        c->nrunning = r->page.count;
        r->page.runs = NULL;
        r->page.count = 0;
    }
    if (r->status != 0) {
        api_reply_error(c->req, 503, "store_unavailable", "the store did not answer");
        icall_free(c);
        return;
    }
    int64_t now = cv_now_ms();
    json_t *arr = json_array();
    bool listed = false;
    for (size_t i = 0; i < count; i++) {
        listed = listed || strcmp(inst[i].id, c->self) == 0;
        json_array_append_new(arr, instance_json(c, &inst[i], now));
    }
    if (!listed) { /* SQLite: no heartbeats, this daemon alone */
        char host[256] = "localhost";
        gethostname(host, sizeof(host) - 1);
        store_instance_t me = {.id = c->self,
                               .hostname = host,
                               .pid = getpid(),
                               .started_at = c->started_ms,
                               .last_seen = now,
                               .version = CV_VERSION};
        json_array_insert_new(arr, 0, instance_json(c, &me, now));
    }
    api_reply_json(c->req, 200,
                   json_pack("{s:s,s:b,s:I,s:o}", "self", c->self, "shared", listed,
                             "heartbeat_timeout_ms", (json_int_t)c->timeout_ms, "instances", arr));
    icall_free(c);
}

static void h_instances(api_req_t *req, void *data)
{
    api_t *a = data;
    icall_t *c = cv_calloc(1, sizeof(*c));
    c->req = req;
    c->self = cv_strdup(a->instance);
    c->started_ms = a->started_ms;
    c->timeout_ms = a->cfg ? a->cfg->cfg->cluster.heartbeat_timeout_ms : 0;
    api_req_defer(req);
    api__store_call(a, req, store_req_new(STORE_OP_RUNNING_AND_INSTANCES, NULL, 0, NULL, NULL),
                    on_instances, c);
}

/* ---- POST /api/reload ---- */

static void h_reload(api_req_t *req, void *data)
{
    api_t *a = data;
    if (a->supervisor == NULL) {
        api_reply_error(req, 404, "not_found", "no configuration to reload");
        return;
    }
    uint64_t corr = ++a->next_corr;
    char *by = auth_principal_actor(req->principal);
    msg_reload_t *m = msg_reload_new(by, a->actor, corr);
    free(by);
    ask(a, req, a->supervisor, &m->hdr, corr);
}

/* 200 {"changed": summary}; 422 {"error": {code, message, errors: [...]}} for an invalid
 * configuration (each error with its file, line and column); 409 when a key that needs a
 * restart changed; 429 while server.max_pending_reloads reloads wait; 503 while shutting down. */
void api__reload_replied(api_t *a, const msg_reload_reply_t *r)
{
    query_t *q = take(a, r->corr);
    if (q == NULL)
        return;
    if (r->outcome == RELOAD_APPLIED) {
        api_reply_json(q->req, 200, json_pack("{s:s}", "changed", r->changed ? r->changed : ""));
        free(q);
        return;
    }
    json_t *errors = r->errors ? json_loads(r->errors, 0, NULL) : NULL;
    if (!json_is_array(errors)) {
        json_decref(errors);
        errors = json_array();
    }
    json_t *first = json_object_get(json_array_get(errors, 0), "message");
    const char *msg = json_is_string(first) ? json_string_value(first) : "reload refused";
    int status = r->outcome == RELOAD_INVALID          ? 422
                 : r->outcome == RELOAD_RESTART_NEEDED ? 409
                 : r->outcome == RELOAD_BUSY           ? 429
                                                       : 503;
    const char *code = r->outcome == RELOAD_INVALID          ? "invalid_config"
                       : r->outcome == RELOAD_RESTART_NEEDED ? "restart_required"
                       : r->outcome == RELOAD_BUSY           ? "too_many_reloads"
                                                             : "shutting_down";
    if (r->outcome == RELOAD_BUSY)
        a->reloads_refused++;
    json_t *body =
        json_pack("{s:{s:s, s:s, s:o}}", "error", "code", code, "message", msg, "errors", errors);
    api_reply_json(q->req, status, body);
    free(q);
}

int api__health_routes(api_t *a)
{
    const api_route_t routes[] = {
        {"GET", "/api/health", h_health, a, AUTH_ROLE_VIEWER, 0},
        {"POST", "/api/health/refresh", h_health_refresh, a, AUTH_ROLE_OPERATOR, 0},
        {"GET", "/api/notifications", h_notifications, a, AUTH_ROLE_VIEWER, 0},
        {"GET", "/api/info", h_info, a, AUTH_ROLE_VIEWER, 0},
        {"GET", "/api/instances", h_instances, a, AUTH_ROLE_VIEWER, 0},
        {"POST", "/api/reload", h_reload, a, AUTH_ROLE_ADMIN, 0},
    };
    return api_server_routes(a->srv, routes, CV_ARRAY_SIZE(routes));
}
