/* Job endpoints: list and show, trigger, enable/disable, schedule edits, override reset, and the
 * schedule preview. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/tz.h"
#include "http/api_int.h"

#define PREVIEW_MAX 100

typedef struct trigger {
    cv_list_t link;
    uint64_t corr;
    api_req_t *req;
    char *job, *by;
} trigger_t;

static int64_t now_s(void)
{
    return cv_now_ms() / 1000;
}

static char *actor_of(const api_req_t *req)
{
    return auth_principal_actor(req->principal);
}

void api__audit(api_t *a, const api_req_t *req, const char *action, const char *job, int64_t run_id,
                json_t *before, json_t *after)
{
    char *who = actor_of(req);
    char *b = before ? json_dumps(before, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char *f = after ? json_dumps(after, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    msg_audit_t *m = msg_audit_new(who, action, job, run_id, b, f);
    cv_actor_post(a->store, &m->hdr);
    cv_info("http", "%s by %s: job=%s%s%s", action, who, job ? job : "-", f ? " after=" : "",
            f ? f : "");
    free(who);
    free(b);
    free(f);
    json_decref(before);
    json_decref(after);
}

/* The job named by the {name} parameter, or NULL after a 404. */
static api__job_t *req_job(api_t *a, api_req_t *req)
{
    const char *name = api_req_param(req, "name");
    api__job_t *j = api__job_find(a, name);
    if (j == NULL) {
        char *msg = cv_sprintf("no job named \"%s\"", name ? name : "");
        api_reply_error(req, 404, "not_found", msg);
        free(msg);
    }
    return j;
}

static bool refuse_locked(api__job_t *j, api_req_t *req)
{
    if (!j->cfg->locked)
        return false;
    char *msg = cv_sprintf("job \"%s\" is locked in the configuration: runtime changes are "
                           "not allowed",
                           j->name);
    api_reply_error(req, 423, "locked", msg);
    free(msg);
    return true;
}

/* ---- reads ---- */

static void refresh_cache(api_t *a, int64_t now)
{
    json_t *arr = json_array();
    int64_t until = INT64_MAX;
    for (size_t i = 0; i < a->njobs; i++) {
        json_array_append_new(arr, api__job_json(a, a->jobs[i], now));
        if (a->jobs[i]->eff.next < until)
            until = a->jobs[i]->eff.next;
    }
    json_t *body = json_pack("{s:o}", "jobs", arr);
    a->jobs_cache = json_dumps(body, JSON_COMPACT);
    a->jobs_cache_len = strlen(a->jobs_cache);
    a->jobs_cache_until = until;
    json_decref(body);
}

static void h_jobs(api_req_t *req, void *data)
{
    api_t *a = data;
    if (!api__stats_fresh(a, req, h_jobs))
        return;
    int64_t now = now_s();
    if (a->jobs_cache == NULL || now >= a->jobs_cache_until) {
        api__model_changed(a);
        refresh_cache(a, now);
    }
    api_reply_bytes(req, 200, "application/json", a->jobs_cache, a->jobs_cache_len, NULL, 0);
}

static void h_job(api_req_t *req, void *data)
{
    api_t *a = data;
    if (!api__stats_fresh(a, req, h_job))
        return;
    api__job_t *j = req_job(a, req);
    if (j)
        api_reply_json(req, 200, api__job_json(a, j, now_s()));
}

/* ---- trigger ---- */

static void trigger_free(trigger_t *t)
{
    cv_list_remove(&t->link);
    free(t->job);
    free(t->by);
    free(t);
}

static void h_trigger(api_req_t *req, void *data)
{
    api_t *a = data;
    api__job_t *j = req_job(a, req);
    if (j == NULL)
        return;
    if (a->executor == NULL) {
        api_reply_error(req, 503, "unavailable", "the executor is not running");
        return;
    }
    if (j->cfg->action == CFG_ACTION_PING) {
        char *msg = cv_sprintf("job '%s' runs elsewhere and reports by POST /ping/%s; it cannot "
                               "be run from here",
                               j->name, j->name);
        api_reply_error(req, 409, "ping_job", msg);
        free(msg);
        return;
    }
    trigger_t *t = cv_calloc(1, sizeof(*t));
    t->corr = ++a->next_corr;
    t->req = req;
    t->job = cv_strdup(j->name);
    t->by = actor_of(req);
    cv_list_insert_tail(&a->triggers, &t->link);
    msg_fire_t *f = msg_fire_new(j->name, t->by, cv_now_ms());
    f->reply_to = a->actor;
    f->corr = t->corr;
    cv_actor_post(a->executor, &f->hdr);
    api_req_defer(req);
}

static void trigger_answer(api_t *a, trigger_t *t, const msg_fire_reply_t *r)
{
    const char *why = r->reason ? r->reason : "refused";
    switch (r->outcome) {
    case FIRE_ACCEPTED: {
        api__audit(a, t->req, "run.trigger", t->job, r->run_id, NULL,
                   json_pack("{s:I}", "run_id", (json_int_t)r->run_id));
        api_reply_json(t->req, 202,
                       json_pack("{s:I,s:s,s:s}", "run_id", (json_int_t)r->run_id, "status",
                                 run_status_name(r->status), "job", t->job));
        break;
    }
    case FIRE_SKIPPED:
        api__audit(a, t->req, "run.trigger_refused", t->job, r->run_id, NULL,
                   json_pack("{s:s}", "reason", why));
        api_reply_error(t->req, 409, "conflict", why);
        break;
    case FIRE_UNKNOWN:
        api_reply_error(t->req, 404, "not_found", why);
        break;
    case FIRE_SHUTTING:
        api_reply_error(t->req, 503, "shutting_down", why);
        break;
    }
}

void api__trigger_replied(api_t *a, const msg_fire_reply_t *r)
{
    for (cv_list_t *n = a->triggers.next; n != &a->triggers; n = n->next) {
        trigger_t *t = cv_container_of(n, trigger_t, link);
        if (t->corr == r->corr) {
            trigger_answer(a, t, r);
            trigger_free(t);
            return;
        }
    }
}

void api__triggers_abort(api_t *a)
{
    while (!cv_list_empty(&a->triggers)) {
        trigger_t *t = cv_container_of(a->triggers.next, trigger_t, link);
        api_reply_error(t->req, 503, "shutting_down", "the daemon is shutting down");
        trigger_free(t);
    }
}

/* ---- enable / disable ---- */

static void post_override(api_t *a, const api_req_t *req, const char *job, const char *field,
                          json_t *value)
{
    char *text = value ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char *by = actor_of(req);
    msg_override_t *o = msg_override_new(job, field, text, by);
    cv_actor_post(a->store, &o->hdr);
    if (a->executor) { /* it runs what the API shows (core/effjob.h) */
        o = msg_override_new(job, field, text, by);
        cv_actor_post(a->executor, &o->hdr);
    }
    api__model_override(a, job, field, text, by);
    free(text);
    free(by);
}

static void set_enabled(api_req_t *req, api_t *a, bool enabled)
{
    api__job_t *j = req_job(a, req);
    if (j == NULL || refuse_locked(j, req))
        return;
    bool before = api__job_enabled(j);
    json_t *v = json_boolean(enabled);
    post_override(a, req, j->name, "enabled", v);
    json_decref(v);
    if (a->scheduler) {
        msg_job_enable_t *m = msg_job_enable_new(j->name, enabled);
        cv_actor_post(a->scheduler, &m->hdr);
    }
    api__audit(a, req, enabled ? "job.enable" : "job.disable", j->name, 0,
               json_pack("{s:b}", "enabled", before), json_pack("{s:b}", "enabled", enabled));
    api__publish_job(a, j);
    api_reply_json(req, 200, api__job_json(a, j, now_s()));
}

static void h_enable(api_req_t *req, void *data)
{
    set_enabled(req, data, true);
}

static void h_disable(api_req_t *req, void *data)
{
    set_enabled(req, data, false);
}

/* ---- schedules ---- */

/* Parses schedule and zone; on an error replies 422 and returns -EINVAL. */
static int check_schedule(api_req_t *req, const char *schedule, const char *zone_name,
                          const char *seed, cron_expr_t **expr, const tz_zone_t **zone)
{
    char err[192];
    cron_error_t cerr = {0};
    *zone = tz_load(zone_name, err, sizeof(err));
    if (*zone == NULL) {
        api_reply_json(req, 422,
                       json_pack("{s:{s:s,s:o}}", "error", "code", "invalid_timezone", "message",
                                 api__jstr(err)));
        return -EINVAL;
    }
    if (cron_parse(schedule, seed, expr, &cerr) != 0) {
        api_reply_json(req, 422,
                       json_pack("{s:{s:s,s:o,s:i,s:s}}", "error", "code", "invalid_schedule",
                                 "message", api__jstr(cerr.message), "column", cerr.column, "field",
                                 cerr.field ? cerr.field : ""));
        return -EINVAL;
    }
    return 0;
}

static json_t *next_fires(const cron_expr_t *e, const tz_zone_t *z, int count)
{
    json_t *arr = json_array();
    int64_t t = now_s();
    for (int i = 0; i < count && cron_next(e, z, t, &t) == 0; i++)
        json_array_append_new(arr, api__jtime(t * 1000));
    return arr;
}

static const char *body_string(api_req_t *req, const char *key)
{
    return json_string_value(json_object_get(req->json, key));
}

/* 400 unless the body is a JSON object with a string "schedule". */
static bool need_schedule_body(api_req_t *req)
{
    if (json_is_object(req->json) && body_string(req, "schedule") != NULL)
        return true;
    api_reply_error(req, 400, "bad_request",
                    "the body must be a JSON object with a string \"schedule\"");
    return false;
}

static void tell_scheduler(api_t *a, api__job_t *j)
{
    if (a->scheduler == NULL)
        return;
    msg_job_schedule_t *m = msg_job_schedule_new(j->name, api__job_schedule(j),
                                                 api__job_timezone(j), api__job_enabled(j));
    cv_actor_post(a->scheduler, &m->hdr);
}

static json_t *schedule_pair(api__job_t *j)
{
    return json_pack("{s:s,s:s}", "schedule", api__job_schedule(j), "timezone",
                     api__job_timezone(j));
}

static void h_schedule(api_req_t *req, void *data)
{
    api_t *a = data;
    api__job_t *j = req_job(a, req);
    if (j == NULL || refuse_locked(j, req) || !need_schedule_body(req))
        return;
    const char *schedule = body_string(req, "schedule");
    const char *zone_text = body_string(req, "timezone");
    cron_expr_t *e = NULL;
    const tz_zone_t *z;
    if (check_schedule(req, schedule, zone_text ? zone_text : api__job_timezone(j), j->name, &e,
                       &z) != 0)
        return;
    json_t *before = schedule_pair(j);
    json_t *v = json_string(schedule);
    post_override(a, req, j->name, "schedule", v);
    json_decref(v);
    if (zone_text) {
        v = json_string(zone_text);
        post_override(a, req, j->name, "timezone", v);
        json_decref(v);
    }
    tell_scheduler(a, j);
    api__audit(a, req, "job.schedule", j->name, 0, before, schedule_pair(j));
    api__publish_job(a, j);
    api_reply_json(
        req, 200,
        json_pack("{s:o,s:o}", "job", api__job_json(a, j, now_s()), "next", next_fires(e, z, 5)));
    cron_free(e);
}

static void h_reset(api_req_t *req, void *data)
{
    api_t *a = data;
    api__job_t *j = req_job(a, req);
    if (j == NULL)
        return;
    json_t *before = json_object();
    for (size_t i = 0; i < CV_ARRAY_SIZE(effjob_fields); i++) {
        const char *v = effjob_overrides_get(&a->overrides, j->name, effjob_fields[i]);
        json_t *jv = v ? json_loads(v, JSON_DECODE_ANY, NULL) : NULL;
        json_object_set_new(before, effjob_fields[i], jv ? jv : json_null());
    }
    for (size_t i = 0; i < CV_ARRAY_SIZE(effjob_fields); i++)
        post_override(a, req, j->name, effjob_fields[i], NULL);
    tell_scheduler(a, j);
    api__audit(a, req, "job.overrides_reset", j->name, 0, before, schedule_pair(j));
    api__publish_job(a, j);
    api_reply_json(req, 200, api__job_json(a, j, now_s()));
}

static void h_preview(api_req_t *req, void *data)
{
    if (!need_schedule_body(req))
        return;
    json_t *jc = json_object_get(req->json, "count");
    int count = json_is_integer(jc) ? (int)json_integer_value(jc) : 5;
    if (jc && (!json_is_integer(jc) || count < 1 || count > PREVIEW_MAX)) {
        api_reply_error(req, 400, "bad_request", "\"count\" must be an integer from 1 to 100");
        return;
    }
    const char *zone_text = body_string(req, "timezone");
    const char *seed = body_string(req, "job");
    cron_expr_t *e = NULL;
    const tz_zone_t *z;
    if (check_schedule(req, body_string(req, "schedule"), zone_text ? zone_text : "UTC", seed, &e,
                       &z) != 0)
        return;
    static const char *const kinds[] = {"", "cron", "every", "reboot", "manual"};
    api_reply_json(req, 200,
                   json_pack("{s:s,s:s,s:o}", "kind", kinds[cron_kind(e)], "timezone",
                             tz_zone_name(z), "next", next_fires(e, z, count)));
    cron_free(e);
}

int api__routes_jobs(api_t *a)
{
    const api_route_t routes[] = {
        {"GET", "/api/jobs", h_jobs, a, AUTH_ROLE_VIEWER, 0},
        {"GET", "/api/jobs/{name}", h_job, a, AUTH_ROLE_VIEWER, 0},
        {"POST", "/api/jobs/{name}/trigger", h_trigger, a, AUTH_ROLE_OPERATOR,
         API_ROUTE_RATE_LIMITED},
        {"POST", "/api/jobs/{name}/enable", h_enable, a, AUTH_ROLE_OPERATOR, 0},
        {"POST", "/api/jobs/{name}/disable", h_disable, a, AUTH_ROLE_OPERATOR, 0},
        {"PUT", "/api/jobs/{name}/schedule", h_schedule, a, AUTH_ROLE_ADMIN, API_ROUTE_JSON_BODY},
        {"DELETE", "/api/jobs/{name}/overrides", h_reset, a, AUTH_ROLE_ADMIN, 0},
        {"POST", "/api/schedule/preview", h_preview, a, AUTH_ROLE_VIEWER, API_ROUTE_JSON_BODY},
    };
    return api_server_routes(a->srv, routes, CV_ARRAY_SIZE(routes));
}
