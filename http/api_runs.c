/* Run endpoints (list, show, log, cancel), summary, audit, probes for containers, WebSocket
 * tickets and the OpenAPI document. Store reads are typed requests to the store actor
 * (api__store_call); their replies come back to the http actor, which answers the deferred
 * request. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "http/api_int.h"
#include "http/api_internal.h"
#include "storage/schema.h"

#define LOG_CHUNK_MAX (1024 * 1024)

/* One deferred request waiting for the store. */
typedef struct rcall {
    api_req_t *req;
    int64_t id, offset, since;
} rcall_t;

static rcall_t *rcall_new(api_req_t *req)
{
    rcall_t *c = cv_calloc(1, sizeof(*c));
    c->req = req;
    api_req_defer(req);
    return c;
}

static void reply_store_error(api_req_t *req, int status)
{
    if (status == -ECANCELED || status == -ESHUTDOWN) /* a gone client: this only frees req */
        api_reply_error(req, 503, "unavailable", "the store is not available");
    else if (status == -EINVAL)
        api_reply_error(req, 400, "bad_request", "the cursor is not valid");
    else if (status == -ENOENT)
        api_reply_error(req, 404, "not_found", "no such run");
    else if (status == -EAGAIN) /* unreachable, or storage.pending_max requests wait for it */
        api_reply_error(req, 503, "store_unavailable", "the database is unreachable");
    else
        api_reply_error(req, 503, "store_error", strerror(-status));
}

/* ---- query parameters ---- */

static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_status_mask(const char *s, uint32_t *mask)
{
    char *copy = cv_strdup(s), *save = NULL;
    int rc = 0;
    *mask = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        run_status_t st;
        rc = run_status_parse(tok, &st);
        if (rc == 0)
            *mask |= 1u << st;
    }
    free(copy);
    return *mask ? rc : -EINVAL;
}

static bool bad_param(api_req_t *req, const char *name, const char *expect)
{
    char *msg = cv_sprintf("query parameter \"%s\" must be %s", name, expect);
    api_reply_error(req, 400, "bad_request", msg);
    free(msg);
    return false;
}

/* Fills the filter from the query (strings stay owned by req). false after a 400. */
static bool run_filter(api_req_t *req, store_run_filter_t *f)
{
    const char *v;
    int64_t n;
    if ((v = api_req_query(req, "limit")) != NULL) {
        if (parse_int(v, 1, STORE_PAGE_MAX, &n) != 0)
            return bad_param(req, "limit", "an integer from 1 to 500");
        f->limit = (int)n;
    }
    if ((v = api_req_query(req, "status")) != NULL && parse_status_mask(v, &f->status_mask) != 0)
        return bad_param(req, "status", "a comma list of run statuses (SUCCESS,FAILED,...)");
    if ((v = api_req_query(req, "since")) != NULL && api__parse_time(v, &f->since) != 0)
        return bad_param(req, "since", "an RFC 3339 time");
    if ((v = api_req_query(req, "until")) != NULL && api__parse_time(v, &f->until) != 0)
        return bad_param(req, "until", "an RFC 3339 time");
    f->trigger = api_req_query(req, "trigger");
    f->cursor = api_req_query(req, "cursor");
    if (f->job == NULL)
        f->job = api_req_query(req, "job");
    return true;
}

/* ---- runs ---- */

static void on_page(api_t *a, void *ud, msg_store_reply_t *r)
{
    rcall_t *c = ud;
    const store_run_page_t *page = &r->page;
    if (r->status != 0) {
        reply_store_error(c->req, r->status);
    } else {
        json_t *runs = json_array();
        for (size_t i = 0; i < page->count; i++)
            json_array_append_new(runs, api__run_json(page->runs[i], false));
        json_t *cur = page->next_cursor ? json_string(page->next_cursor) : json_null();
        api_reply_json(c->req, 200, json_pack("{s:o,s:o}", "runs", runs, "next_cursor", cur));
    }
    free(c);
}

static void list_runs(api_t *a, api_req_t *req, const char *job)
{
    store_run_filter_t f = {.job = job};
    if (!run_filter(req, &f))
        return;
    rcall_t *c = rcall_new(req);
    msg_store_req_t *q = store_req_new(STORE_OP_QUERY_RUNS, NULL, 0, NULL, NULL);
    q->a.filter = f;
    q->a.filter.job = f.job ? cv_strdup(f.job) : NULL;
    q->a.filter.trigger = f.trigger ? cv_strdup(f.trigger) : NULL;
    q->a.filter.cursor = f.cursor ? cv_strdup(f.cursor) : NULL;
    api__store_call(a, c->req, q, on_page, c);
}

static void h_runs(api_req_t *req, void *data)
{
    list_runs(data, req, NULL);
}

static void h_job_runs(api_req_t *req, void *data)
{
    api_t *a = data;
    const char *name = api_req_param(req, "name");
    if (api__job_find(a, name) == NULL) {
        char *msg = cv_sprintf("no job named \"%s\"", name);
        api_reply_error(req, 404, "not_found", msg);
        free(msg);
        return;
    }
    list_runs(a, req, name);
}

/* The {id} parameter, or false after a 400. */
static bool run_id_param(api_req_t *req, int64_t *id)
{
    if (parse_int(api_req_param(req, "id"), 1, INT64_MAX, id) == 0)
        return true;
    api_reply_error(req, 400, "bad_request", "a run id is a positive integer");
    return false;
}

/* A run's detail also links its chain: the run whose outcome started it ("chained_from", from a
 * trigger "chain:<run id>") and the runs its outcome started ("chained", the runs whose trigger
 * names it). Both come from the store after the run itself, in that order. */
typedef struct dcall {
    api_req_t *req;
    json_t *run;
    int64_t id, parent;
    bool chains; /* the run's job names chains */
} dcall_t;

#define CHAINED_MAX 100 /* runs listed in "chained" (a job names each target once) */

static void detail_reply(dcall_t *d)
{
    api_reply_json(d->req, 200, d->run);
    free(d);
}

/* false after the client went away or the store stopped (d freed, req answered) */
static bool detail_store_gone(dcall_t *d, int status)
{
    if (status != -ECANCELED && status != -ESHUTDOWN)
        return false;
    reply_store_error(d->req, status);
    json_decref(d->run);
    free(d);
    return true;
}

static json_t *chain_link(int64_t id, const run_t *r)
{
    json_t *o = json_pack("{s:I}", "run", (json_int_t)id);
    json_object_set_new(o, "job", r ? json_string(r->job) : json_null());
    if (r)
        json_object_set_new(o, "status", json_string(run_status_name(r->status)));
    return o;
}

static void on_chained(api_t *a, void *ud, msg_store_reply_t *r)
{
    (void)a;
    dcall_t *d = ud;
    if (detail_store_gone(d, r->status))
        return;
    json_t *list = json_array();
    for (size_t i = 0; r->status == 0 && i < r->page.count; i++)
        json_array_append_new(list, chain_link(r->page.runs[i]->id, r->page.runs[i]));
    json_object_set_new(d->run, "chained", list);
    detail_reply(d);
}

static void ask_chained(api_t *a, dcall_t *d)
{
    if (!d->chains || d->id <= 0) {
        detail_reply(d);
        return;
    }
    msg_store_req_t *q = store_req_new(STORE_OP_QUERY_RUNS, NULL, 0, NULL, NULL);
    q->a.filter.trigger = cv_sprintf("chain:%lld", (long long)d->id);
    q->a.filter.limit = CHAINED_MAX;
    q->a.filter.above_id = d->id;
    api__store_call(a, d->req, q, on_chained, d);
}

static void on_chain_parent(api_t *a, void *ud, msg_store_reply_t *r)
{
    dcall_t *d = ud;
    if (detail_store_gone(d, r->status))
        return;
    json_object_set_new(d->run, "chained_from",
                        chain_link(d->parent, r->status == 0 ? r->run : NULL));
    ask_chained(a, d);
}

/* Takes o, the run's JSON. */
static void run_detail(api_t *a, api_req_t *req, const run_t *run, json_t *o)
{
    dcall_t *d = cv_calloc(1, sizeof(*d));
    d->req = req;
    d->run = o;
    d->id = run->id;
    d->parent = run_chain_parent(run->trigger);
    json_object_set_new(o, "chained_from", json_null());
    json_object_set_new(o, "chained", json_array());
    /* the runs it started are looked for while its job names chains (a run's are newer than
     * it: the scan goes no further down) */
    const api__job_t *j = api__job_find(a, run->job);
    d->chains =
        j && j->cfg && (j->cfg->n_on_success || j->cfg->n_on_failure || j->cfg->n_on_complete);
    if (d->parent > 0) {
        msg_store_req_t *q = store_req_new(STORE_OP_GET_RUN, NULL, 0, NULL, NULL);
        q->a.id = d->parent;
        api__store_call(a, req, q, on_chain_parent, d);
    } else {
        ask_chained(a, d);
    }
}

static void on_run(api_t *a, void *ud, msg_store_reply_t *r)
{
    rcall_t *c = ud;
    if (r->status != 0)
        reply_store_error(c->req, r->status);
    else
        run_detail(a, c->req, r->run, api__run_json(r->run, true));
    free(c);
}

/* A GET_RUN request for c->id, answered to done. */
static void ask_run(api_t *a, api_req_t *req, rcall_t *c, api__store_done_t done)
{
    msg_store_req_t *q = store_req_new(STORE_OP_GET_RUN, NULL, 0, NULL, NULL);
    q->a.id = c->id;
    api__store_call(a, req, q, done, c);
}

static void h_run(api_req_t *req, void *data)
{
    api_t *a = data;
    int64_t id;
    if (!run_id_param(req, &id))
        return;
    api__active_t *ar = api__active_find(a, id);
    if (ar != NULL) { /* the store has it too, but the live snapshot is newer */
        json_t *o = api__run_json(ar->run, true);
        json_object_set_new(o, "output_tail",
                            api__jstrn(ar->log.data ? ar->log.data : "", ar->log.len));
        api_req_defer(req);
        run_detail(a, req, ar->run, o);
        return;
    }
    rcall_t *c = rcall_new(req);
    c->id = id;
    ask_run(a, c->req, c, on_run);
}

/* ---- log ---- */

static void reply_log(api_req_t *req, int64_t id, const char *data, size_t size, int64_t offset,
                      bool complete, bool truncated)
{
    size_t from = offset > (int64_t)size ? size : (size_t)offset;
    size_t n = size - from > LOG_CHUNK_MAX ? LOG_CHUNK_MAX : size - from;
    api_reply_json(req, 200,
                   json_pack("{s:I,s:I,s:I,s:I,s:b,s:b,s:o}", "run_id", (json_int_t)id, "offset",
                             (json_int_t)from, "next_offset", (json_int_t)(from + n), "size",
                             (json_int_t)size, "complete", complete, "truncated", truncated, "data",
                             api__jstrn(data ? data + from : "", n)));
}

static void on_log_run(api_t *a, void *ud, msg_store_reply_t *r)
{
    rcall_t *c = ud;
    const run_t *run = r->run;
    if (r->status != 0) {
        reply_store_error(c->req, r->status);
    } else {
        const char *t = run->output_tail ? run->output_tail : "";
        reply_log(c->req, c->id, t, strlen(t), c->offset, run_status_final(run->status),
                  run->output_bytes > (int64_t)strlen(t));
    }
    free(c);
}

static void h_log(api_req_t *req, void *data)
{
    api_t *a = data;
    int64_t id, offset = 0;
    const char *off = api_req_query(req, "offset");
    if (!run_id_param(req, &id))
        return;
    if (off && parse_int(off, 0, INT64_MAX, &offset) != 0) {
        bad_param(req, "offset", "a non-negative integer");
        return;
    }
    api__active_t *ar = api__active_find(a, id);
    if (ar != NULL && !api__run_remote(a, ar->run)) { /* another instance's: from the store */
        reply_log(req, id, ar->log.data, ar->log.len, offset, false, ar->log_truncated);
        return;
    }
    rcall_t *c = rcall_new(req);
    c->id = id;
    c->offset = offset;
    ask_run(a, c->req, c, on_log_run);
}

/* ---- cancel ---- */

static void on_cancel_lookup(api_t *a, void *ud, msg_store_reply_t *r)
{
    rcall_t *c = ud;
    if (r->status != 0)
        reply_store_error(c->req, r->status);
    else
        api_reply_error(c->req, 409, "conflict", "the run is not queued or running");
    free(c);
}

/* Another instance's run: its owner cancels it when the database announces the request. */
static void cancel_remote(api_t *a, api_req_t *req, const run_t *r)
{
    char *by = auth_principal_actor(req->principal);
    json_t *o =
        json_pack("{s:I,s:s,s:s}", "run", (json_int_t)r->id, "instance", r->instance, "by", by);
    msg_store_req_t *q = store_req_new(STORE_OP_NOTIFY, NULL, 0, NULL, NULL);
    q->a.channel = cv_strdup(STORE_CHANNEL_CANCEL);
    q->a.payload = json_dumps(o, JSON_COMPACT);
    api__store_call(a, NULL, q, NULL, NULL);
    json_decref(o);
    free(by);
}

static void h_cancel(api_req_t *req, void *data)
{
    api_t *a = data;
    int64_t id;
    if (!run_id_param(req, &id))
        return;
    api__active_t *ar = api__active_find(a, id);
    if (ar == NULL || a->executor == NULL) {
        rcall_t *c = rcall_new(req);
        c->id = id;
        ask_run(a, NULL, c, on_cancel_lookup); /* a cancel goes on without its client */
        return;
    }
    if (api__run_remote(a, ar->run)) {
        cancel_remote(a, req, ar->run);
    } else {
        char *by = auth_principal_actor(req->principal);
        msg_cancel_t *m = msg_cancel_new(id, by);
        free(by);
        cv_actor_post(a->executor, &m->hdr);
    }
    api__audit(a, req, "run.cancel", ar->run->job, id,
               json_pack("{s:s}", "status", run_status_name(ar->run->status)), NULL);
    api_reply_json(req, 202,
                   json_pack("{s:I,s:s}", "run_id", (json_int_t)id, "status", "cancelling"));
}

/* ---- summary, audit ---- */

static void on_summary(api_t *a, void *ud, msg_store_reply_t *r)
{
    rcall_t *c = ud;
    const store_summary_t *s = &r->summary;
    if (r->status != 0)
        reply_store_error(c->req, r->status);
    else
        api_reply_json(c->req, 200,
                       json_pack("{s:I,s:I,s:I,s:I,s:I,s:o}", "running", (json_int_t)a->running,
                                 "queued", (json_int_t)a->queued, "succeeded",
                                 (json_int_t)s->success, "partial", (json_int_t)s->partial,
                                 "failed", (json_int_t)s->failed, "since", api__jtime(c->since)));
    free(c);
}

static void h_summary(api_req_t *req, void *data)
{
    rcall_t *c = rcall_new(req);
    c->since = cv_now_ms() - 24 * 3600 * 1000;
    msg_store_req_t *q = store_req_new(STORE_OP_SUMMARY, NULL, 0, NULL, NULL);
    q->a.since = c->since;
    api__store_call(data, c->req, q, on_summary, c);
}

static json_t *json_text(const char *text)
{
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

static void on_audit(api_t *a, void *ud, msg_store_reply_t *r)
{
    rcall_t *c = ud;
    const store_audit_page_t *page = &r->audit;
    if (r->status != 0) {
        reply_store_error(c->req, r->status);
        free(c);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < page->count; i++) {
        const store_audit_t *e = &page->entries[i];
        json_array_append_new(
            arr, json_pack("{s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id", (json_int_t)e->id, "at",
                           api__jtime(e->at), "actor", api__jstr(e->actor), "action",
                           api__jstr(e->action), "job", api__jstr(e->job), "run_id",
                           e->run_id ? json_integer(e->run_id) : json_null(), "before",
                           json_text(e->before), "after", json_text(e->after)));
    }
    json_t *cur = page->next_cursor ? json_string(page->next_cursor) : json_null();
    api_reply_json(c->req, 200, json_pack("{s:o,s:o}", "entries", arr, "next_cursor", cur));
    free(c);
}

static void h_audit(api_req_t *req, void *data)
{
    int64_t n = 0;
    const char *v = api_req_query(req, "limit");
    if (v && parse_int(v, 1, STORE_PAGE_MAX, &n) != 0) {
        bad_param(req, "limit", "an integer from 1 to 500");
        return;
    }
    rcall_t *c = rcall_new(req);
    msg_store_req_t *q = store_req_new(STORE_OP_AUDIT_LIST, NULL, 0, NULL, NULL);
    q->a.limit = (int)n;
    const char *job = api_req_query(req, "job"), *cursor = api_req_query(req, "cursor");
    q->a.job = job ? cv_strdup(job) : NULL;
    q->a.cursor = cursor ? cv_strdup(cursor) : NULL;
    api__store_call(data, c->req, q, on_audit, c);
}

/* ---- probes, tickets, the document ---- */

static void h_healthz(api_req_t *req, void *data)
{
    api_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void on_ping(api_t *a, void *ud, msg_store_reply_t *r)
{
    rcall_t *c = ud;
    if (r->status == 0)
        api_reply_json(c->req, 200,
                       json_pack("{s:s,s:s,s:i}", "status", "ready", "store", "up", "spooled", 0));
    else
        api_reply_json(c->req, 503,
                       json_pack("{s:{s:s,s:s},s:s,s:s,s:i}", "error", "code", "not_ready",
                                 "message", "the store does not answer", "status", "not_ready",
                                 "store", "down", "spooled", 0));
    free(c);
}

/* 503 at once while the store spools (degraded) or writes its spool back (replaying): the daemon
 * runs, but its history is not in the database. */
static void h_readyz(api_req_t *req, void *data)
{
    api_t *a = data;
    if (a->stopping) { /* a load balancer stops sending here while the jobs are given their grace */
        api_reply_json(req, 503,
                       json_pack("{s:{s:s,s:s},s:s,s:s,s:I}", "error", "code", "stopping",
                                 "message", "the daemon is shutting down", "status", "stopping",
                                 "store", store_health_name((store_health_t)a->store_health),
                                 "spooled", (json_int_t)a->store_spooled));
        return;
    }
    if (a->store_health != STORE_UP) {
        const char *state = store_health_name((store_health_t)a->store_health);
        char *msg = cv_sprintf("the store is %s: %llu record(s) wait to be written to the database",
                               state, (unsigned long long)a->store_spooled);
        api_reply_json(req, 503,
                       json_pack("{s:{s:s,s:s},s:s,s:s,s:I}", "error", "code", "store_degraded",
                                 "message", msg, "status", "degraded", "store", state, "spooled",
                                 (json_int_t)a->store_spooled));
        free(msg);
        return;
    }
    api__store_call(data, req, store_req_new(STORE_OP_PING, NULL, 0, NULL, NULL), on_ping,
                    rcall_new(req));
}

static void h_ticket(api_req_t *req, void *data)
{
    api_t *a = data;
    char ticket[80];
    int rc = auth_ticket_issue(a->auth, req->principal, uv_now(api_server_loop(a->srv)), ticket);
    if (rc == -EBUSY) {
        char *msg = cv_sprintf("server.ws_max_tickets (%d) tickets of other callers are waiting "
                               "to be used; ask again once they are used or expired (60 s)",
                               a->cfg->cfg->server.ws_max_tickets);
        api_header_t h = {"retry-after", "60"};
        api__reply_error_with(req, 429, "too_many_tickets", msg, &h, 1);
        free(msg);
        return;
    }
    if (rc != 0) {
        api_reply_error(req, 503, "unavailable", "no randomness available for a ticket");
        return;
    }
    api_reply_json(req, 200, json_pack("{s:s,s:i}", "ticket", ticket, "expires_in_ms", 60000));
}

static void h_openapi(api_req_t *req, void *data)
{
    api_reply_bytes(req, 200, "application/yaml", cv_openapi_yaml, cv_openapi_yaml_len, NULL, 0);
}

int api__routes_runs(api_t *a)
{
    const api_route_t routes[] = {
        {"GET", "/api/runs", h_runs, a, AUTH_ROLE_VIEWER, 0},
        {"GET", "/api/jobs/{name}/runs", h_job_runs, a, AUTH_ROLE_VIEWER, 0},
        {"GET", "/api/runs/{id}", h_run, a, AUTH_ROLE_VIEWER, 0},
        {"GET", "/api/runs/{id}/log", h_log, a, AUTH_ROLE_VIEWER, 0},
        {"POST", "/api/runs/{id}/cancel", h_cancel, a, AUTH_ROLE_OPERATOR, 0},
        {"GET", "/api/summary", h_summary, a, AUTH_ROLE_VIEWER, 0},
        {"GET", "/api/audit", h_audit, a, AUTH_ROLE_VIEWER, 0},
        {"GET", "/healthz", h_healthz, a, AUTH_ROLE_NONE, 0},
        {"GET", "/readyz", h_readyz, a, AUTH_ROLE_NONE, API_ROUTE_WAITS},
        {"POST", "/api/events/ticket", h_ticket, a, AUTH_ROLE_VIEWER, 0},
        {"GET", "/api/openapi.yaml", h_openapi, a, AUTH_ROLE_NONE, 0},
    };
    return api_server_routes(a->srv, routes, CV_ARRAY_SIZE(routes));
}
